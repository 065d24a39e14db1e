"""The demo's training: progress a batch at a time, deliberate threads, reproducible weights."""
import os
import subprocess
import sys

import pytest
import torch

from precompute.demo import generate_dataset, train as train_module
from precompute.demo.train import TRAIN_THREADS, train_demo_model
from precompute.threads import limit_threads


class RecordingBar:
    """Stands in for tqdm: records what the training reports."""

    def __init__(self, total, desc, disable, leave, unit="it"):
        self.total, self.unit, self.updates, self.postfixes, self.threads = total, unit, 0, [], set()

    def update(self, n=1):
        self.updates += n
        self.threads.add(torch.get_num_threads())

    def set_postfix_str(self, text, refresh=True):
        self.postfixes.append(text)

    def close(self):
        pass


@pytest.fixture(scope="module")
def tiny_demo_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-demo")
    generate_dataset(root / "data", seed=0, n_per_class=4, stream="data")
    generate_dataset(root / "holdout", seed=0, n_per_class=2, stream="holdout")
    return root


def test_training_progress_moves_every_batch(tiny_demo_data, monkeypatch):
    """Issue 17: the bar sat at 'train: 0/15' for two minutes; it now counts batches, so tqdm can estimate the time left."""
    bars = []
    monkeypatch.setattr(train_module, "progress_bar", lambda **kw: bars.append(RecordingBar(**kw)) or bars[-1])
    threads_before = torch.get_num_threads()
    train_demo_model(tiny_demo_data / "data", tiny_demo_data / "holdout", num_classes=10, epochs=2, batch_size=8,
                     progress=True)
    (bar,) = bars
    assert bar.unit == "batch"
    assert bar.total == bar.updates == 2 * 5  # 40 images in batches of 8, two epochs
    assert bar.postfixes[0].startswith("epoch 1/2") and bar.postfixes[-1].startswith("epoch 2/2")
    assert bar.threads == {TRAIN_THREADS}, "training runs with its deliberate thread count"
    assert torch.get_num_threads() == threads_before, "and restores the caller's"


def test_training_is_reproducible_whatever_the_callers_threads(tiny_demo_data):
    weights = []
    for threads in (1, 2):
        with limit_threads(threads):
            model, report = train_demo_model(tiny_demo_data / "data", tiny_demo_data / "holdout", num_classes=10,
                                             epochs=1, batch_size=8)
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
        assert report["train_threads"] == TRAIN_THREADS
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=0, atol=0, msg=name)


def test_precompute_sets_a_passive_openmp_wait_policy():
    """Spinning OpenMP threads made a busy 2-core machine train 5x slower; a user's own setting wins."""
    code = "import precompute, os; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"


def test_x86_kernel_pin_reaches_torch_in_a_fresh_process():
    code = ("from precompute.threads import pin_x86_kernels; pinned = pin_x86_kernels(); import torch; "
            "print(pinned, torch.backends.cpu.get_cpu_capability())")
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")}
    pinned, capability = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                        check=True).stdout.split()
    assert pinned == "False" or capability == "AVX2"
