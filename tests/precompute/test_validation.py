"""``run --val-data``: validation images in their class's analysis, the suspect cluster, the figures."""
import numpy as np
import pytest
from PIL import Image

from precompute.cli import main
from precompute.data import scan_image_folder
from precompute.errors import ConfigError
from precompute.store import RunStore
from precompute.validation import VALIDATION, add_validation, suspect_cluster, validation_summary


def _folder(root, layout):
    for cls, count in layout.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.new("RGB", (8, 8)).save(root / cls / f"{i}.png")
    return root


def test_validation_files_follow_each_class_relative_to_the_data_root(tmp_path):
    train = _folder(tmp_path / "train", {"a": 3, "b": 2})
    val = _folder(tmp_path / "val", {"a": 2})
    index = add_validation(scan_image_folder(train), val)
    a, b = index.classes
    assert a.n_train == 3 and a.paths[3:] == ["../val/a/0.png", "../val/a/1.png"]
    assert b.n_train == 2 and len(b.paths) == 2
    assert all((train / path).resolve().is_file() for path in a.paths)


def test_validation_classes_must_be_training_classes(tmp_path):
    train = _folder(tmp_path / "train", {"a": 1})
    with pytest.raises(ConfigError, match=r"class folder\(s\) zebra are not classes of --data"):
        add_validation(scan_image_folder(train), _folder(tmp_path / "v1", {"zebra": 1}))
    index = scan_image_folder(_folder(tmp_path / "t2", {"a": 1, "b": 1}), classes=["b"])
    with pytest.raises(ConfigError, match="none of the selected classes"):
        add_validation(index, _folder(tmp_path / "v2", {"a": 1}))


def test_the_suspect_cluster_is_the_separated_one_and_on_a_tie_the_smaller():
    rng = np.random.default_rng(0)
    embedding = np.concatenate([rng.normal(0, 1, (50, 3)), rng.normal(0, 1, (30, 3)), rng.normal(9, 0.3, (10, 3))])
    labels = np.repeat([0, 1, 2], [50, 30, 10])
    assert suspect_cluster(embedding, labels) == 2
    two = np.repeat([0, 1], [60, 30])  # one-vs-rest is symmetric for k = 2: the minority wins
    assert suspect_cluster(embedding[:90], two) == 1


def test_validation_summary_counts_and_accuracy_without_the_suspect():
    split = np.array([0, 0, 1, 1, 1, 1], np.uint8)
    labels = np.array([0, 1, 1, 1, 0, 0])
    true_rank = np.array([1, 1, 1, 1, 2, 1])
    summary = validation_summary(split, labels, 1, true_rank)
    assert summary["n_validation"] == 4 and summary["validation_accuracy"] == 0.75
    assert summary["validation_suspect"] == {"cluster": 1, "size": 3, "n_validation": 2, "accuracy_without": 0.5}


def _run(demo_run, out, *extra):
    return main(["run", "--data", str(demo_run / "data"), "--val-data", str(demo_run / "holdout"),
                 "--model", "spray_demo_vgg", "--weights", str(demo_run / "model" / "weights.pt"), "--out", str(out),
                 "--image-size", "64", "--normalize", "none", "--classes", "star,heart", "--workers", "0",
                 "--maps", "umap", "--quiet", *extra])


def test_run_with_val_data_through_the_cli(demo_run, tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(demo_run, out) == 0
    store = RunStore(out)
    assert store.manifest["data"]["val_root"].endswith("holdout")
    cid = store.id_for_name("star")
    arrays, summary = store.arrays(cid), store.summary(cid)
    n_val = len(list((demo_run / "holdout" / "star").glob("*.png")))
    assert summary["n_validation"] == n_val == int((arrays["split"] == VALIDATION).sum())
    assert all(str(p).startswith("../holdout/star/") for p in arrays["paths"][arrays["split"] == VALIDATION])
    assert (store.data_root() / str(arrays["paths"][-1])).is_file()
    # the demo's validation images with the watermark sit in the star class's suspect cluster
    truth = {row.split(",")[0]: row.split(",")[2] for row in (demo_run / "truth.csv").read_text().splitlines()[1:]}
    names = [str(name) for name in arrays["clustering_names"]]
    labels = arrays["clustering_labels"][names.index(summary["default_clustering"])]
    suspect = labels == summary["validation_suspect"]["cluster"]
    carries = np.array([truth.get(str(p), "") == "watermark" for p in arrays["paths"]])
    val = arrays["split"] == VALIDATION
    assert carries[val].sum() >= 3 and (carries & val & suspect).sum() >= 0.8 * (carries & val).sum()
    assert summary["validation_suspect"]["n_validation"] == int((val & suspect).sum())


@pytest.mark.parametrize("extra, message", [
    (["--val-data", "/no/such/folder"], "--val-data /no/such/folder: not a folder"),
    (["--masks", "MASKS"], "--masks with --val-data needs --val-masks"),
])
def test_bad_validation_options_are_one_line_errors(demo_run, tmp_path, capsys, extra, message):
    extra = [str(demo_run / "masks") if value == "MASKS" else value for value in extra]
    out = tmp_path / "run"
    assert _run(demo_run, out, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()
