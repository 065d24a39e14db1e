"""Precompute on broken input: one test per row of the reliability table, through the real CLI.

Each bad input must give a clear message naming the file and the reason, and never a
traceback; a bad model, weights file or class count must fail before any work.
"""
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from precompute.analysis import fisher_design
from precompute.cli import main
from precompute.store import RunStore
from tests.helpers.tiny_data import make_image_folder
from tests.helpers.tiny_models import write_model_and_weights

FAST = ["--quiet", "--workers", "0", "--maps", "tsne", "--image-size", "24", "--normalize", "none"]

MODEL_SOURCE = textwrap.dedent('''
    import torch
    from torch import nn


    def build(num_classes=3):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                             nn.Linear(16, num_classes))


    class Blind(nn.Module):
        """Ignores its input: every heatmap is exactly zero."""

        def __init__(self, num_classes):
            super().__init__()
            self.head = nn.Linear(1, num_classes)

        def forward(self, x):
            return self.head(x[:, 0, 0, :1] * 0)


    def blind(num_classes=3):
        return Blind(num_classes)
''')


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path, (weights, blind) = write_model_and_weights(tmp_path_factory.mktemp("model"), MODEL_SOURCE, 3,
                                                     {"build": "w.pt", "blind": "blind.pt"}, name="models.py")
    return path, weights, blind


def run(data, out, model_path, weights, *extra, function="build"):
    return main(["run", "--data", str(data), "--model", f"{model_path}:{function}", "--weights", str(weights),
                 "--out", str(out), *FAST, *extra])


def test_broken_and_odd_files_are_skipped_or_converted(tmp_path, model, capsys):
    data, _ = make_image_folder(tmp_path / "data", n=10)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)
    # corrupt, truncated, not an image, and an image named like one that is not
    (data / "ant" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    (data / "ant" / "truncated.png").write_bytes(buffer.getvalue()[:300])
    (data / "ant" / "readme.txt").write_text("not an image")
    (data / "ant" / "fake.jpg").write_text("<html>404</html>")
    # every odd mode, which must be converted and analysed
    Image.fromarray(pixels).convert("L").save(data / "bee" / "gray.png")
    Image.fromarray(pixels).convert("P").save(data / "bee" / "palette.png")
    Image.fromarray(np.dstack([pixels, np.full((30, 30), 128, np.uint8)]), mode="RGBA").save(data / "bee" / "rgba.png")
    Image.fromarray(pixels).convert("CMYK").save(data / "bee" / "cmyk.jpg")
    Image.fromarray(rng.integers(0, 65535, (30, 30)).astype(np.uint16)).save(data / "bee" / "deep.png")
    path, weights, _ = model
    assert run(data, tmp_path / "out", path, weights) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for name in ("corrupt.png", "truncated.png", "readme.txt", "fake.jpg"):
        assert name in err, f"{name} is named in the output"
    store = RunStore(tmp_path / "out")
    skipped = store.report()["skipped_files"]
    assert set(skipped) == {"ant/corrupt.png", "ant/truncated.png", "ant/readme.txt", "ant/fake.jpg"}
    assert "not an image" in skipped["ant/readme.txt"] and "cannot decode" in skipped["ant/corrupt.png"]
    bee = store.arrays(store.id_for_name("bee"))["paths"].tolist()
    assert {"bee/gray.png", "bee/palette.png", "bee/rgba.png", "bee/cmyk.jpg", "bee/deep.png"} <= set(bee)
    assert store.summary(store.id_for_name("ant"))["n"] == 10


def test_small_and_empty_classes(tmp_path, model, capsys):
    data, _ = make_image_folder(tmp_path / "data", classes=("ant", "bee", "cat"), n=12)
    for extra in sorted((data / "bee").iterdir())[7:]:
        extra.unlink()  # 7 images: fewer than k + 2 = 12
    for extra in sorted((data / "cat").iterdir())[3:]:
        extra.unlink()  # 3 images: too few for any graph
    (data / "dog").mkdir()  # empty
    path, weights, _ = model
    assert main(["run", "--data", str(data), "--model", f"{path}:build", "--weights", str(weights), "--out",
                 str(tmp_path / "out"), "--num-classes", "3", "--classes", "ant,bee,cat", *FAST]) == 0
    (data / "cat").rename(data / "zzz")  # keep the label space at 3 for the empty-class run below
    store = RunStore(tmp_path / "out")
    bee = store.summary(store.id_for_name("bee"))
    assert bee["n"] == 7 and bee["neighbors_used"] == 5
    report = store.report()["classes"]
    assert report["c0002"]["status"] == "skipped" and "need at least 4" in report["c0002"]["note"]
    err = capsys.readouterr().err
    assert "k reduced to 5" in err and "readable images" in err
    # an empty class folder: the run goes on
    shutil.rmtree(data / "zzz")
    assert run(data, tmp_path / "out2", path, weights, "--num-classes", "3") == 0
    assert "empty folder" in capsys.readouterr().err
    assert RunStore(tmp_path / "out2").finished_ids() == ["c0000", "c0001"]


def test_zero_and_identical_heatmaps_store_no_nan(tmp_path, model):
    data, _ = make_image_folder(tmp_path / "data", classes=("ant", "bee"), n=10)
    same = np.asarray(Image.open(data / "bee" / "000.png"))
    for image in (data / "bee").iterdir():
        Image.fromarray(same).save(image)  # identical images: identical heatmaps
    path, _, blind = model
    assert run(data, tmp_path / "blind", path, blind, "--num-classes", "3", function="blind") == 0
    path, weights, _ = model
    assert run(data, tmp_path / "same", path, weights, "--num-classes", "3") == 0
    for out, cid in ((tmp_path / "blind", "c0000"), (tmp_path / "same", "c0001")):
        store = RunStore(out)
        if out.name == "blind":
            assert not np.any(store.heatmaps(cid)), "the blind model's heatmaps are zero"
        arrays = store.arrays(cid)
        ks = [int(name.rsplit("-k", 1)[1]) for name in arrays["clustering_names"]]
        design = fisher_design(*arrays["eigenvectors"].shape, sorted(set(ks)))
        defined = np.array([k in design.ks for k in ks], dtype=bool)
        assert defined.any()
        for name, array in arrays.items():
            if array.dtype.kind == "f":
                # Fisher separability is undefined (NaN) only for the k a class of 10 cannot support.
                assert np.isfinite(array[defined] if name == "fisher" else array).all(), (out.name, name)
        assert np.isnan(arrays["fisher"][~defined]).all()
        summary = json.loads((out / "classes" / cid / "summary.json").read_text())
        assert summary["tau"] is not None and np.isfinite(summary["tau"])


@pytest.fixture
def tiny(tmp_path, model):
    data, _ = make_image_folder(tmp_path / "data", n=6)
    return data, model


def expect_early_error(capsys, out, *fragments):
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    assert not out.exists(), "nothing was written before the error"


def test_weights_that_do_not_fit(tiny, tmp_path, capsys):
    data, (path, _, _) = tiny
    other = tmp_path / "other.pt"
    torch.save({"0.weight": torch.zeros(8, 3, 5, 5)}, other)
    assert run(data, tmp_path / "out", path, other) == 2
    expect_early_error(capsys, tmp_path / "out", "other.pt")


def test_wrong_number_of_classes(tiny, tmp_path, capsys):
    data, (path, weights, _) = tiny
    assert run(data, tmp_path / "out", path, weights, "--num-classes", "7") == 2
    expect_early_error(capsys, tmp_path / "out", "3 outputs", "7")


def test_missing_weights(tiny, tmp_path, capsys):
    data, (path, _, _) = tiny
    assert run(data, tmp_path / "out", path, tmp_path / "gone.pt") == 2
    expect_early_error(capsys, tmp_path / "out", "gone.pt")


def test_model_file_without_that_function(tiny, tmp_path, capsys):
    data, (path, weights, _) = tiny
    assert run(data, tmp_path / "out", path, weights, function="missing") == 2
    expect_early_error(capsys, tmp_path / "out", "missing", path.name)


def test_model_file_passed_as_weights_is_named_as_such(tiny, tmp_path, capsys):
    data, (path, _, _) = tiny
    assert run(data, tmp_path / "out", path, path) == 2
    err = capsys.readouterr().err
    assert err == (f"error: weights file {path} is not a torch checkpoint (it looks like Python source; a model "
                   "file is passed as --model path/file.py:function); expected a state_dict saved with "
                   "torch.save(model.state_dict(), path)\n")
    assert not (tmp_path / "out").exists()


class Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_state_dict_with_pickled_code_is_refused(tiny, tmp_path, capsys, monkeypatch):
    data, (path, _, _) = tiny
    evil = tmp_path / "evil.pt"
    torch.save({"0.weight": Payload()}, evil)
    monkeypatch.chdir(tmp_path)
    assert run(data, tmp_path / "out", path, evil) == 2
    expect_early_error(capsys, tmp_path / "out", "evil.pt", "refused")
    assert not (tmp_path / "pwned").exists(), "the payload never ran"
    with open(tmp_path / "plain.pkl", "wb") as handle:
        pickle.dump({"x": Payload()}, handle)
    assert run(data, tmp_path / "out", path, tmp_path / "plain.pkl") == 2
    assert not (tmp_path / "pwned").exists()


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 3 MB file system (tmpfs); skipped where mounting is not allowed."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


def test_disk_full_keeps_finished_classes(tmp_path, model, tiny_disk):
    data, _ = make_image_folder(tmp_path / "data", classes=tuple(f"c{i}" for i in range(12)), n=30,
                                planted="c0", size=(64, 64))
    path, _, _ = model
    namespace = {}
    exec(compile(MODEL_SOURCE, str(path), "exec"), namespace)
    weights = tmp_path / "w12.pt"
    torch.save(namespace["build"](12).state_dict(), weights)
    out = tiny_disk / "run"
    process = subprocess.run(
        [sys.executable, "-m", "precompute", "run", "--data", str(data), "--model", f"{path}:build", "--weights",
         str(weights), "--out", str(out), "--num-classes", "12", *FAST[:-4], "--image-size", "64", "--normalize",
         "none", "--thumb-size", "64"],
        capture_output=True, text=True, cwd=os.getcwd())
    assert process.returncode == 2, process.stderr[-2000:]
    assert "Traceback" not in process.stderr
    assert "out of disk space" in process.stderr and "intact" in process.stderr
    store = RunStore(out)
    finished = store.finished_ids()
    assert 0 < len(finished) < 12
    for cid in finished:  # every finished class is complete and readable
        assert store.arrays(cid)["paths"].shape == (30,)
        assert store.heatmaps(cid).shape == (30, 64, 64)
    assert not any(p.name.startswith(".tmp") for p in (out / "classes").iterdir())
