"""DataLoader workers die with their parent; torch's thread count during a run is chosen, recorded and restored."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from precompute.cli import main
from precompute.store import RunStore
from precompute.workers import attribution_threads
from tests.helpers.tiny_data import make_image_folder
from tests.helpers.tiny_models import write_model_and_weights

# A parent that starts a child calling die_with_parent, prints the child's pid, then waits to be killed.
FAMILY = textwrap.dedent('''
    import os, sys, time
    fallback = sys.argv[1] == "fallback"
    parent = os.getpid()
    child = os.fork()
    if child == 0:
        import precompute.workers as workers
        if fallback:  # as on a system without prctl
            workers._set_parent_death_signal = lambda signum: False
        workers.die_with_parent(parent)
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
    time.sleep(60)
''')


def running(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not hasattr(os, "fork") or not os.path.isdir("/proc/self"), reason="needs fork and /proc")
@pytest.mark.parametrize("mode", ["prctl", "fallback"])
def test_a_child_dies_within_a_second_of_its_killed_parent(mode):
    parent = subprocess.Popen([sys.executable, "-c", FAMILY, mode], stdout=subprocess.PIPE, text=True,
                              cwd=os.getcwd())
    child = int(parent.stdout.readline())
    try:
        time.sleep(0.3)
        assert running(child), "the child lives while its parent does"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 1.5
        while running(child) and time.time() < deadline:
            time.sleep(0.02)
        assert not running(child), f"the child outlived its parent ({mode})"
    finally:
        parent.kill()
        parent.wait()
        if running(child):
            os.kill(child, signal.SIGKILL)


def test_a_child_whose_parent_is_already_gone_exits_at_once():
    # pid 0 is never a parent: as if the parent had died before the child got this far.
    process = subprocess.run(
        [sys.executable, "-c", "from precompute.workers import die_with_parent; die_with_parent(0); print('alive')"],
        capture_output=True, text=True, cwd=os.getcwd(), timeout=60)
    assert process.returncode == 1 and "alive" not in process.stdout


def test_attribution_threads_leave_the_workers_their_cores():
    assert attribution_threads(0, cores=8, environ={}) == 8
    assert attribution_threads(3, cores=8, environ={}) == 5
    assert attribution_threads(8, cores=8, environ={}) == 1
    assert attribution_threads(2, cores=8, environ={"OMP_NUM_THREADS": "4"}) == 4
    assert attribution_threads(2, cores=8, environ={"OMP_NUM_THREADS": "junk"}) == 6


THREAD_MODEL = textwrap.dedent('''
    from pathlib import Path

    import torch
    from torch import nn


    class Recorder(nn.Module):
        """Notes torch's thread count while the run explains an image."""

        def forward(self, x):
            Path(__file__).with_name("threads.txt").write_text(str(torch.get_num_threads()))
            return x


    def build(num_classes=3):
        torch.manual_seed(0)
        return nn.Sequential(Recorder(), nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                             nn.Flatten(), nn.Linear(16, num_classes))
''')


def test_a_run_sets_records_and_restores_torch_threads(tmp_path, monkeypatch):
    data, _ = make_image_folder(tmp_path / "data", n=6)
    model, (weights,) = write_model_and_weights(tmp_path, THREAD_MODEL, 3, {"build": "w.pt"})
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    expected = attribution_threads(0)
    before = torch.get_num_threads()
    torch.set_num_threads(1 if expected > 1 else 2)
    try:
        outside = torch.get_num_threads()
        assert main(["run", "--data", str(data), "--model", f"{model}:build", "--weights", str(weights),
                     "--out", str(tmp_path / "out"), "--quiet", "--workers", "0", "--maps", "tsne",
                     "--image-size", "24", "--normalize", "none", "--lrp-backend", "zennit"]) == 0
        assert torch.get_num_threads() == outside, "restored after the run"
    finally:
        torch.set_num_threads(before)
    assert int((tmp_path / "threads.txt").read_text()) == expected
    assert RunStore(tmp_path / "out").manifest["run"]["torch_threads"] == expected
