"""The embedded demo end to end: the store is complete and SpRAy finds every planted artifact."""
import json

import numpy as np
import torch

from precompute.cli import main
from precompute.demo import ARTIFACTS
from precompute.demo_run import demo_store_ready
from precompute.models import load_model
from precompute.store import RunStore
from tests.conftest import TEST_DEMO


def test_demo_store_is_complete(demo_run):
    assert demo_store_ready(demo_run)
    store = RunStore(demo_run)
    assert len(store.finished_ids()) == len(store.manifest["classes"]) >= 8
    held_out = store.demo_report()["holdout_per_class"]
    for record in store.classes():  # the held-out split is analysed with the training images
        assert record.summary["n"] == TEST_DEMO["n_per_class"] + held_out
        assert record.summary["n_validation"] == held_out
        assert record.summary["heatmap_shape"] == [64, 64]
    assert {a["name"] for a in store.artifacts()} >= {"watermark", "gray-border", "rounded-corners"}
    for artifact in store.artifacts():
        assert (store.artifacts_dir / artifact["file"]).is_file()
    assert store.manifest["demo"]["truth"] == "truth.csv"
    assert store.manifest["model"]["weights"] == "model/weights.pt", "relative: the run can be moved"


def test_a_demo_from_before_the_index_masks_and_scan_gets_them_without_recomputing(demo_run, tmp_path):
    import shutil

    from precompute.demo_run import build_demo_store

    copy = tmp_path / "demo"
    shutil.copytree(demo_run, copy, ignore=shutil.ignore_patterns("search", "variants", "experiments", "masks",
                                                                  "masks.npz", "perturbation.npz",
                                                                  "holdout-masks"))
    optional = ("right_reason", "right_reason_chance", "masks", "off_object_sensitivity", "perturbation")
    for path in (copy / "classes").glob("*/summary.json"):  # as an older build wrote them
        summary = json.loads(path.read_text())
        path.write_text(json.dumps({k: v for k, v in summary.items() if k not in optional}))
    assert not demo_store_ready(copy)
    stamps = {p: p.stat().st_mtime_ns for p in (copy / "classes").glob("*/*") if p.suffix in (".npy", ".npz")}
    build_demo_store(copy, progress=False, log=lambda message: None, perturb=("star",))
    assert demo_store_ready(copy)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # heatmaps and analyses untouched
    store, original = RunStore(copy), RunStore(demo_run)
    vectors, rows, meta = store.search_index()
    assert len(vectors) == sum(store.summary(cid)["n"] for cid in meta["classes"])
    for cid in store.finished_ids():  # the masks drawn again are the build's own
        np.testing.assert_array_equal(store.class_masks(cid)["object_mask"], original.class_masks(cid)["object_mask"])
    assert store.class_perturbation(store.id_for_name("star")) is not None


def test_stored_model_reference_rebuilds_the_model(demo_run):
    store = RunStore(demo_run)
    model_info = store.manifest["model"]
    model = load_model(model_info["spec"], store.root / model_info["weights"], model_info["num_classes"])
    arrays = store.arrays("c0001")
    from precompute.data import load_rgb, resize_center_crop

    image = np.array(resize_center_crop(load_rgb(store.data_root() / arrays["paths"][0]), model_info["image_size"]))
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255), dim=1)[0]
    assert int(probs.argmax()) == int(arrays["top_classes"][0, 0])
    assert abs(float(probs[arrays["top_classes"][0, 0]]) - float(arrays["top_probs"][0, 0])) < 1e-4


def test_evaluate_finds_every_planted_artifact(demo_run, capsys):
    assert main(["evaluate", str(demo_run)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    planted = {name: entry for name, entry in result["classes"].items() if entry["planted"]}
    assert len(planted) == 6
    fixed = 0
    for name, entry in planted.items():
        for artifact, figures in entry["artifacts"].items():
            if ARTIFACTS.get(artifact).posed:
                continue  # Euclidean SpRAy is not made for it: tests/precompute/test_demo_posed.py
            fixed += 1
            assert figures["best_f1"] >= 0.9, (name, artifact)
            # the default view isolates each artifact, both of the class with two included
            assert figures["default_f1"] >= 0.9, (name, artifact, entry["default_clustering"])
    assert fixed == 6
    for entry in result["classes"].values():
        if not entry["planted"]:
            assert entry["best_f1"] is None and entry["default_f1"] is None


def test_evaluate_table_is_the_json_in_markdown(demo_run, capsys):
    """The README's table comes from this command, so it cannot drift from what a run measures."""
    assert main(["evaluate", str(demo_run), "--table"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    report = json.loads((demo_run / "demo_report.json").read_text())
    assert lines[0] == f"Held-out accuracy: {100 * report['holdout_accuracy']:.1f} %."
    mean_line = next(i for i, line in enumerate(lines) if line.startswith("Mean τ"))
    rows = [line.split("|")[1:-1] for line in lines[:mean_line]
            if line.startswith("| ") and not line.startswith(("| class", "| ↳"))]
    planted = {name: entry for name, entry in result["classes"].items() if entry["planted"]}
    assert [cells[0].strip() for cells in rows] == sorted(planted, key=lambda name: planted[name]["tau_rank"])
    for cells in rows:
        entry = planted[cells[0].strip()]
        label = entry["artifact"] if len(entry["artifacts"]) == 1 else "2 artifacts, together"
        assert cells[1].strip() == label and int(cells[2]) == entry["tau_rank"]
        assert int(cells[3]) == entry["separability_rank"]
        assert cells[4].strip() == f"{entry['best_f1']:.2f}"
        assert cells[5].strip() == f"{entry['default_f1']:.2f} ({entry['default_clustering']})"
    assert f"Mean τ is {result['mean_tau_planted']:.2f} for planted classes" in lines[mean_line]
