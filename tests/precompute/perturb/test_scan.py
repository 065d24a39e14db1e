"""``python -m precompute perturb`` on the demo: the watermark's corner, resume, one-line errors."""
import json
import shutil

import numpy as np
import pytest

from precompute.cli import main
from precompute.store import RunStore
from tests.precompute.pipeline.test_masking import _tree_digest


@pytest.fixture(scope="module")
def demo_copy(demo_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("perturb") / "run"
    shutil.copytree(demo_run, out, ignore=shutil.ignore_patterns("experiments", "variants"))
    return out


def _watermark_cells(store, grid):
    """Grid cells (row, column) that the star's watermark overlaps."""
    entry = next(e for e in store.artifacts() if e["name"] == "watermark")
    (x, y), (w, h) = entry["position"], entry["size"]
    size = store.manifest_record().model.image_size
    cell = size / grid
    rows = range(int(y // cell), int(np.ceil((y + h) / cell)))
    cols = range(int(x // cell), int(np.ceil((x + w) / cell)))
    return {(r, c) for r in rows for c in cols}


def test_watermarked_star_images_peak_at_the_watermark(demo_copy, capsys):
    import csv

    assert main(["perturb", str(demo_copy), "--classes", "star,ring", "--grid", "8", "--force", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["grid"] == 8 and [row["class"] for row in result["classes"]] == ["star", "ring"]
    store = RunStore(demo_copy)
    cid = store.id_for_name("star")
    scan = store.class_perturbation(cid)
    truth = {row["path"]: row["artifact"] for row in csv.DictReader(open(demo_copy / "truth.csv"))}
    carries = np.array([truth[str(p)] == "watermark" for p in store.arrays(cid)["paths"]])
    peaks = [tuple(np.unravel_index(np.argmax(m), m.shape)) for m in scan["maps"]]
    cells = _watermark_cells(store, 8)
    at_watermark = np.array([peak in cells for peak in peaks])
    assert at_watermark[carries].mean() >= 0.8
    assert at_watermark[~carries].mean() < 0.3
    # with masks, the reference is the object: the watermark's drop lies off it
    summary = store.summary(cid)
    assert summary["perturbation"]["reference"] == "mask"
    assert np.nanmean(scan["off_object"][carries]) > np.nanmean(scan["off_object"][~carries])
    ring = store.summary(store.id_for_name("ring"))["off_object_sensitivity"]
    assert summary["off_object_sensitivity"] > ring


def test_a_second_run_resumes_and_force_scans_again(demo_copy, capsys):
    assert main(["perturb", str(demo_copy), "--classes", "ring", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "resuming: 1 of 1 classes" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["classes"][0]["skipped"] is True


def test_without_masks_the_reference_is_the_lrp_region(demo_copy, capsys):
    store = RunStore(demo_copy)
    cid = store.id_for_name("heart")
    (demo_copy / "classes" / cid / "masks.npz").unlink()
    assert main(["perturb", str(demo_copy), "--classes", "heart", "--grid", "4", "--quiet"]) == 0
    assert store.summary(cid)["perturbation"]["reference"] == "lrp"
    assert store.class_perturbation(cid)["maps"].shape[1:] == (4, 4)


@pytest.mark.parametrize("args, message", [
    (["--classes", "unicorn"], "--classes: no class 'unicorn'"),
    (["--classes", "star", "--grid", "1"], "--grid 1: must be between 2 and the image side (64 pixels)"),
    (["--classes", "star", "--grid", "65"], "--grid 65"),
])
def test_bad_input_gets_one_line_and_changes_nothing(demo_copy, capsys, args, message):
    before = _tree_digest(demo_copy / "classes")
    capsys.readouterr()
    assert main(["perturb", str(demo_copy), *args, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert _tree_digest(demo_copy / "classes") == before


def test_missing_images_are_a_one_line_error(demo_copy, tmp_path, capsys):
    broken = tmp_path / "run"
    shutil.copytree(demo_copy, broken, ignore=shutil.ignore_patterns("data"))
    (broken / "data").mkdir()
    assert main(["perturb", str(broken), "--classes", "circle", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "the original image is gone" in err[-1]
