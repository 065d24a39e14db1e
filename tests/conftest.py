"""Session-wide fixtures.

``demo_run`` builds the embedded demo store exactly as ``python -m precompute demo``
does (dataset, trained model, artifacts, SpRAy analysis), once per test session: about
a minute and a half on 2 CPU cores. Tests that need a real model, dataset or store build
on it instead of training their own.
"""
import json

import pytest


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """Path of a complete demo run store (``build_demo_store(seed=0)``)."""
    from precompute.demo_run import build_demo_store

    out = tmp_path_factory.mktemp("demo") / "run"
    build_demo_store(out, seed=0, progress=False, log=lambda message: None)
    return out


@pytest.fixture(scope="session")
def demo_assets(demo_run):
    """``(out_dir, report)`` of the demo's assets; they live inside the demo run store."""
    return demo_run, json.loads((demo_run / "demo_report.json").read_text())
