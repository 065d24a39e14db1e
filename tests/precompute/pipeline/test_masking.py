"""``run --masks``: right-reason scores on the demo, added to a finished run without recomputing,
and bad masks refused in one line with the run left as it was."""
import csv
import hashlib
import os
import shutil

import numpy as np
import pytest

from precompute.cli import main
from precompute.store import RunStore

CLASSES = "star,heart"


def _tree_digest(root):
    """SHA-256 of every file's relative path and bytes under ``root``."""
    digest = hashlib.sha256()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()


def _run_args(demo_run, out, *extra):
    return ["run", "--data", str(demo_run / "data"), "--model", "spray_demo_vgg",
            "--weights", str(demo_run / "model" / "weights.pt"), "--out", str(out), "--image-size", "64",
            "--normalize", "none", "--classes", CLASSES, "--workers", "0", "--maps", "umap", "--quiet", *extra]


@pytest.fixture(scope="module")
def plain_run(demo_run, tmp_path_factory):
    """Two demo classes analysed through the CLI without masks."""
    out = tmp_path_factory.mktemp("masking") / "run"
    assert main(_run_args(demo_run, out)) == 0
    return out


def test_planted_artifact_samples_score_low_on_the_demo(demo_run):
    store = RunStore(demo_run)
    truth = {row["path"]: row["artifact"] for row in csv.DictReader(open(demo_run / "truth.csv"))}
    planted = sorted({entry["class"] for entry in store.artifacts()})
    assert len(planted) == 6
    for name in planted:
        cid = store.id_for_name(name)
        masks = store.class_masks(cid)
        carries = np.array([truth[str(path)] != "" for path in store.arrays(cid)["paths"]])
        score = masks["right_reason"]
        assert np.nanmean(score[carries]) < 0.5 * np.nanmean(score[~carries]), name
        assert store.summary(cid)["right_reason"] == pytest.approx(np.nanmean(score), rel=1e-5)
    clean = store.summary(store.id_for_name("ring"))
    assert clean["right_reason"] > 2 * clean["right_reason_chance"]  # far above a random explainer


def test_masks_added_to_a_finished_run_without_attributing_again(plain_run, demo_run, capsys):
    store = RunStore(plain_run)
    ids = store.finished_ids()
    assert all(store.class_masks(cid) is None and "right_reason" not in store.summary(cid) for cid in ids)
    heatmaps_before = {cid: (plain_run / "classes" / cid / "heatmaps.npy").stat().st_mtime_ns for cid in ids}
    assert main(_run_args(demo_run, plain_run, "--masks", str(demo_run / "masks"))) == 0
    for cid in ids:
        assert (plain_run / "classes" / cid / "heatmaps.npy").stat().st_mtime_ns == heatmaps_before[cid]
        summary, masks = store.summary(cid), store.class_masks(cid)
        assert 0 < summary["right_reason"] < 1 and summary["masks"]["scored"] == summary["n"]
        assert masks["object_mask"].shape == (summary["n"], 64 * 64 // 8)
        # the same scores as the demo's own run (its training images come first), made from its own heatmaps
        demo_scores = RunStore(demo_run).class_masks(cid)["right_reason"][:summary["n"]]
        np.testing.assert_allclose(masks["right_reason"], demo_scores, atol=0.02)
        assert store.thumbnail(cid, "mask", 0)[:4] == b"RIFF"


@pytest.mark.parametrize("damage, message", [
    ("missing", "no mask for star/0003.png"),
    ("size", "is 32x32 pixels but its image star/0003.png is 64x64"),
])
def test_bad_masks_get_one_line_and_leave_the_run_intact(plain_run, demo_run, tmp_path, capsys, damage, message):
    from PIL import Image

    masks = tmp_path / "masks"
    shutil.copytree(demo_run / "masks", masks)
    if damage == "missing":
        (masks / "star" / "0003.png").unlink()
    else:
        Image.new("L", (32, 32)).save(masks / "star" / "0003.png")
    before = _tree_digest(plain_run)
    capsys.readouterr()
    assert main(_run_args(demo_run, plain_run, "--masks", str(masks), "--force")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert _tree_digest(plain_run) == before
