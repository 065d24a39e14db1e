"""``python -m precompute run`` as a user meets it: fast errors, and output that keeps the bars whole."""
import json
import os
import re
import subprocess
import sys
import textwrap
import time

import pytest

from tests.helpers.tiny_data import make_image_folder
from tests.helpers.tiny_models import write_model_and_weights

HEAVY = ("torch", "torchvision", "zennit", "umap", "sklearn")

# Runs main() in a fresh interpreter and reports which heavy modules it imported.
PROBE = textwrap.dedent('''
    import json, sys, time
    started = time.perf_counter()
    from precompute.cli import main
    status = main(sys.argv[1:])
    print(json.dumps({"status": status, "seconds": time.perf_counter() - started,
                      "heavy": sorted(name for name in %r if name in sys.modules)}))
''' % (HEAVY,))


def probe(*args):
    """Exit status, stderr, the heavy modules imported and the seconds ``main(args)`` took, in a new process."""
    started = time.perf_counter()
    process = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True,
                             cwd=os.getcwd(), timeout=120)
    wall = time.perf_counter() - started
    assert process.stdout, process.stderr[-2000:]
    result = json.loads(process.stdout.strip().splitlines()[-1])
    return result["status"], process.stderr, result["heavy"], wall


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data, _ = make_image_folder(root / "data", n=4)
    model = root / "model.py"
    model.write_text("def build(num_classes=3):\n    raise AssertionError('never built')\n")
    weights = root / "w.pt"
    weights.write_bytes(b"never read")
    (root / "a_file").write_text("not a folder")
    return root, data, model, weights


def run_args(data, model, weights, out, *extra):
    return ["run", "--data", data, "--model", f"{model}:build", "--weights", weights, "--out", out, *extra]


def test_a_missing_data_folder_is_reported_at_once_without_torch(inputs):
    root, _, model, weights = inputs
    status, err, heavy, wall = probe(*run_args(root / "nope", model, weights, root / "out"))
    assert status == 2
    assert err == f"error: {root / 'nope'}: data folder not found (expected DIR/<class>/<image>)\n"
    assert heavy == [], f"imported {heavy} before checking the arguments"
    assert wall < 5, f"took {wall:.1f} s"
    assert not (root / "out").exists()


@pytest.mark.parametrize("case", ["data is a file", "weights missing", "weights is a folder", "model file missing",
                                  "class index missing", "out is a file", "unknown distance", "unknown map",
                                  "unknown engine"])
def test_bad_paths_and_names_fail_fast_without_torch(inputs, case):
    root, data, model, weights = inputs
    out = root / "out"
    args = {
        "data is a file": run_args(root / "a_file", model, weights, out),
        "weights missing": run_args(data, model, root / "gone.pt", out),
        "weights is a folder": run_args(data, model, data, out),
        "model file missing": run_args(data, root / "gone.py", weights, out),
        "class index missing": run_args(data, model, weights, out, "--class-index", root / "gone.json"),
        "out is a file": run_args(data, model, weights, root / "a_file"),
        "unknown distance": run_args(data, model, weights, out, "--distance", "manhattan"),
        "unknown map": run_args(data, model, weights, out, "--maps", "umap,pca"),
        "unknown engine": run_args(data, model, weights, out, "--engine", "spark"),
    }[case]
    expected = {
        "data is a file": f"{root / 'a_file'}: is a file, not a folder",
        "weights missing": f"weights file {root / 'gone.pt'} does not exist",
        "weights is a folder": f"weights file {data} is a directory, not a file",
        "model file missing": f"model file {root / 'gone.py'} does not exist",
        "class index missing": f"class index file {root / 'gone.json'} does not exist",
        "out is a file": f"--out {root / 'a_file'}: is a file",
        "unknown distance": "unknown distance 'manhattan'",
        "unknown map": "unknown 2-D map 'pca'",
        "unknown engine": "unknown engine 'spark'",
    }[case]
    status, err, heavy, wall = probe(*args)
    assert status == 2 and err.startswith("error: ") and expected in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert heavy == [], f"imported {heavy} before checking the arguments"
    assert wall < 5, f"took {wall:.1f} s"
    assert not out.exists()


# ---- progress output -----------------------------------------------------------------

GATED_MODEL = textwrap.dedent('''
    import time
    from pathlib import Path

    import torch
    from torch import nn


    def build_now(num_classes=3):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                             nn.Linear(16, num_classes))


    def build(num_classes=3):
        """Waits until the test has read the run's first line: the model cannot load before that line."""
        gate = Path(__file__).with_name("gate")
        deadline = time.monotonic() + 60
        while not gate.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the test never saw a line before the model loaded")
            time.sleep(0.02)
        return build_now(num_classes)
''')

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def test_progress_run_speaks_before_the_model_loads_and_keeps_log_lines_out_of_the_bars(tmp_path):
    data, _ = make_image_folder(tmp_path / "data", n=8)
    (data / "ant" / "004-corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    model, _ = write_model_and_weights(tmp_path, GATED_MODEL, 3, {"build_now": "w.pt"})
    command = [sys.executable, "-m", "precompute", "run", "--data", str(data), "--model", f"{model}:build",
               "--weights", str(tmp_path / "w.pt"), "--out", str(tmp_path / "out"), "--image-size", "24",
               "--normalize", "none", "--workers", "0", "--maps", "tsne", "--batch-size", "4"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=os.getcwd())
    try:
        first = process.stderr.readline().decode()
        first_seconds = time.perf_counter() - started
        (tmp_path / "gate").touch()  # now the model may load
        err = first + process.stderr.read().decode()
        assert process.wait(timeout=120) == 0, err[-3000:]
    finally:
        process.kill()
        process.wait()
    print(f"first line after {first_seconds:.2f} s: {first!r}")
    assert first == f"scanning {data} ...\n"
    assert first_seconds < 10
    assert "loading the model" in err
    assert "images:" in err and "classes:" in err, "the bars were drawn"
    # Every piece of output between two carriage returns or newlines: a bar or one log line, never both.
    pieces = [ANSI.sub("", piece) for piece in re.split(r"[\r\n]", err)]
    skipped = [piece for piece in pieces if "004-corrupt.png" in piece]
    assert skipped, err[-3000:]
    for piece in skipped:
        assert piece.startswith("skipped "), f"a log line shares its line with a bar: {piece!r}"
    for piece in pieces:
        if "|" in piece and ("images:" in piece or "classes:" in piece):
            assert "skipped" not in piece and "warning" not in piece, piece
