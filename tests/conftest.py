"""Session-wide fixtures.

``demo_run`` builds the embedded demo store as ``python -m precompute demo`` does
(dataset, trained model, artifacts, SpRAy analysis), once per test session, but
smaller: :data:`TEST_DEMO` images per class and epochs instead of the README demo's
200 and 15. That model is less accurate on the shapes (50 % held out against 93 %)
yet leans on the planted artifacts just as much (each found with F1 0.98 or more,
each pasted one flipping 88-97 % of other classes' images), which is what the tests
check; it builds in 113 s on an idle 2-core machine. Tests that need a real model, dataset or
store build on it instead of training their own.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# What `import precompute` sets (see precompute/__init__.py), here before any test module imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: Size of the test session's demo: images per class and training epochs.
TEST_DEMO = {"n_per_class": 80, "epochs": 15, "perturb": ("star", "diamond")}


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """Path of a complete demo run store (``build_demo_store(seed=0, **TEST_DEMO)``).

    Built in a fresh process, as ``python -m precompute demo`` builds it: the demo's training
    pins torch's x86 kernels before torch runs its first kernel
    (:func:`precompute.threads.pin_x86_kernels`), which a test session that has already run
    torch can no longer do. In-process, an AVX-512 machine trained another model.
    """
    out = tmp_path_factory.mktemp("demo") / "run"
    code = ("import sys; from precompute.demo_run import build_demo_store; "
            f"build_demo_store(sys.argv[1], seed=0, progress=False, log=lambda message: None, **{TEST_DEMO!r})")
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, cwd=Path(__file__).resolve().parents[1])
    return out


@pytest.fixture(scope="session")
def demo_compare_run(demo_run):
    """Path of the demo's comparison run: its second model (a small ResNet) trained on the same
    data and analysed (``build_demo_comparison(demo_run, epochs=TEST_DEMO["epochs"])``), in
    ``<demo_run>-resnet``. Built in a fresh process, for the reason :func:`demo_run` gives."""
    code = ("import sys; from precompute.demo_run import build_demo_comparison; "
            f"build_demo_comparison(sys.argv[1], seed=0, progress=False, log=lambda message: None, "
            f"epochs={TEST_DEMO['epochs']!r})")
    subprocess.run([sys.executable, "-c", code, str(demo_run)], check=True, cwd=Path(__file__).resolve().parents[1])
    from precompute.demo_run import comparison_dir

    return comparison_dir(demo_run)


@pytest.fixture(scope="session")
def demo_assets(demo_run):
    """``(out_dir, report)`` of the demo's assets; they live inside the demo run store."""
    return demo_run, json.loads((demo_run / "demo_report.json").read_text())
