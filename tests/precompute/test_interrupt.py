"""``kill -9`` a real precompute run at random moments; re-running finishes it, identically."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from precompute.store import RunStore
from tests.helpers.tiny_data import make_image_folder
from tests.helpers.tiny_models import write_model_and_weights

MODEL = textwrap.dedent('''
    import torch
    from torch import nn


    def build(num_classes=6):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
                             nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, num_classes))
''')


CLASSES = 4
"""Classes of the interrupted run: enough for two kills between classes."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupt")
    data, _ = make_image_folder(root / "data", classes=tuple(f"k{i}" for i in range(CLASSES)), n=40, planted="k1",
                                size=(40, 40))
    model, (weights,) = write_model_and_weights(root, MODEL, CLASSES, {"build": "w.pt"})
    return root, data, model, weights


def command(data, model, weights, out):
    return [sys.executable, "-m", "precompute", "run", "--data", str(data), "--model", f"{model}:build",
            "--weights", str(weights), "--out", str(out), "--image-size", "32", "--normalize", "none",
            "--batch-size", "8", "--workers", "0", "--maps", "umap,tsne", "--quiet"]


def assert_visible_classes_complete(out):
    """What a reader sees at any moment: only whole classes."""
    if not (out / "manifest.json").exists():
        return 0
    store = RunStore(out)
    for cid in store.finished_ids():
        arrays = store.arrays(cid)
        n = len(arrays["paths"])
        assert store.heatmaps(cid).shape[0] == n == 40
        assert store.thumbnail(cid, "heatmap", n - 1)
    return len(store.finished_ids())


def snapshot(out):
    """Everything a run stores, except wall-clock fields."""
    store = RunStore(out)
    result = {}
    for cid in store.finished_ids():
        folder = out / "classes" / cid
        summary = json.loads((folder / "summary.json").read_text())
        summary.pop("seconds", None)
        result[cid] = {
            "summary": summary,
            "arrays": store.arrays(cid),
            "heatmaps": np.asarray(store.heatmaps(cid)),
            "thumbs": [(folder / f"thumbs-{k}.bin").read_bytes() for k in ("image", "heatmap")],
        }
    return result


def test_kill_minus_nine_then_resume_is_identical(setup):
    root, data, model, weights = setup
    reference = root / "reference"
    subprocess.run(command(data, model, weights, reference), check=True, capture_output=True, cwd=os.getcwd())

    out = root / "killed"
    rng = np.random.default_rng(7)
    kills = 0
    for attempt in range(6):
        finished_before = assert_visible_classes_complete(out)
        process = subprocess.Popen(command(data, model, weights, out), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, cwd=os.getcwd())
        # Kill by progress, not by the clock (a fast machine finishes a fixed delay's run):
        # a random moment after this attempt has written a class, mid-way through the next.
        kill_at = None
        while process.poll() is None:
            if kill_at is None and assert_visible_classes_complete(out) > finished_before:
                kill_at = time.time() + rng.uniform(0.0, 0.4)
            if kill_at is not None and time.time() >= kill_at:
                break
            time.sleep(0.02)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        if assert_visible_classes_complete(out) == CLASSES:
            break
    assert kills >= 2, "the run was really interrupted"
    final = subprocess.run(command(data, model, weights, out), capture_output=True, text=True, cwd=os.getcwd())
    assert final.returncode == 0, final.stderr[-2000:]
    assert not any(p.name.startswith((".tmp", ".old")) for p in (out / "classes").iterdir())

    expected, got = snapshot(reference), snapshot(out)
    assert sorted(got) == sorted(expected) == [f"c{i:04d}" for i in range(CLASSES)]
    for cid in expected:
        assert got[cid]["summary"] == expected[cid]["summary"], cid
        for name, array in expected[cid]["arrays"].items():
            np.testing.assert_array_equal(got[cid]["arrays"][name], array, err_msg=f"{cid} {name}")
        np.testing.assert_array_equal(got[cid]["heatmaps"], expected[cid]["heatmaps"])
        assert got[cid]["thumbs"] == expected[cid]["thumbs"], cid


def children_of(pid):
    """Pids of the processes whose parent is ``pid``, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def running(pid):
    """Whether ``pid`` exists and is not a zombie (a killed orphan may wait for init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads processes from /proc (Linux)")
def test_kill_minus_nine_takes_the_dataloader_workers_with_it(tmp_path):
    # Batches of 16 images of 96x96 (442 KB) do not fit in a pipe: while the killed run was
    # analysing, its workers had finished batches waiting to be read, which kept them alive.
    data, _ = make_image_folder(tmp_path / "data", classes=("k0", "k1", "k2", "k3"), n=40, planted="k1",
                                size=(96, 96))
    model, (weights,) = write_model_and_weights(tmp_path, MODEL, 4, {"build": "w.pt"})
    out = tmp_path / "run"
    arguments = command(data, model, weights, out)
    arguments[arguments.index("--workers") + 1] = "2"
    arguments[arguments.index("--image-size") + 1] = "96"
    arguments[arguments.index("--batch-size") + 1] = "16"
    process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=os.getcwd())
    workers = []
    try:
        deadline = time.time() + 120
        while process.poll() is None and time.time() < deadline:
            workers = children_of(process.pid)
            if len(workers) >= 2 and assert_visible_classes_complete(out) >= 1:
                break
            time.sleep(0.02)
        assert process.poll() is None and len(workers) == 2, (workers, process.stderr.read().decode()[-2000:]
                                                               if process.poll() is not None else "")
        process.send_signal(signal.SIGKILL)
        process.wait()
        deadline = time.time() + 3
        while any(running(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.02)
        left = [pid for pid in workers if running(pid)]
    finally:
        process.kill()
        process.wait()
        for pid in workers:  # never leave an orphan behind, even when the test fails
            if running(pid):
                os.kill(pid, signal.SIGKILL)
    assert left == [], f"DataLoader workers {left} outlived their killed run"
