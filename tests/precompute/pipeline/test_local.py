"""The local engine end to end: ``run`` then ``evaluate`` through the CLI, on tiny data and tiny models."""
import csv
import io
import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from precompute.cli import main
from precompute.models import build_model
from precompute.store import RunStore
from tests.helpers.tiny_data import make_image_folder
from tests.helpers.tiny_models import write_model_file

FAST = ["--quiet", "--workers", "0", "--maps", "tsne"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory):
    torch.manual_seed(0)
    model = torchvision.models.get_model("resnet18", weights=None, num_classes=3)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def resnet_run(dataset, resnet_weights, tmp_path_factory):
    data, _ = dataset
    out = tmp_path_factory.mktemp("runs") / "resnet"
    status = main(["run", "--data", str(data), "--model", "resnet18", "--weights", str(resnet_weights),
                   "--out", str(out), "--image-size", "32", "--batch-size", "5", *FAST])
    assert status == 0
    return out


def test_run_writes_every_class(resnet_run, resnet_weights):
    store = RunStore(resnet_run)
    assert store.finished_ids() == ["c0000", "c0001", "c0002"]
    manifest = store.manifest
    assert manifest["model"]["spec"] == "resnet18"
    assert manifest["model"]["canonizers"] == ["ResNetCanonizer"]
    assert manifest["model"]["normalization"] == "imagenet"
    assert manifest["storage"]["bytes_per_image"] > 32 * 32 * 2
    assert manifest["software"]["zennit"] == "0.5.1"
    summary = store.summary("c0001")
    assert summary["name"] == "bee" and summary["n"] == 12
    assert summary["neighbors_used"] == 10 and summary["eigenvectors_used"] == 11
    arrays = store.arrays("c0001")
    assert arrays["paths"].tolist() == [f"bee/{i:03d}.png" for i in range(12)]
    assert arrays["eigenvectors"].shape == (12, 11)
    assert arrays["top_classes"].shape == (12, 3)
    ranks = arrays["true_rank"]
    expected = np.array([list(top).index(1) + 1 for top in arrays["top_classes"]])
    np.testing.assert_array_equal(ranks, expected)
    heatmaps = store.heatmaps("c0001")
    assert heatmaps.shape == (12, 32, 32) and heatmaps.dtype == np.float16
    np.testing.assert_allclose(arrays["relevance_sum"], heatmaps.astype(np.float32).sum(axis=(1, 2)), rtol=1e-3)
    thumb = Image.open(io.BytesIO(store.thumbnail("c0001", "heatmap", 3)))
    assert thumb.format == "WEBP" and thumb.size == (32, 32)


def test_evaluate_prints_json_on_last_line(resnet_run, dataset, capsys):
    _, truth = dataset
    assert main(["evaluate", str(resnet_run), "--truth", str(truth)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) >= {"classes", "mean_tau_planted", "mean_tau_clean"}
    bee, ant = result["classes"]["bee"], result["classes"]["ant"]
    assert bee["planted"] and not ant["planted"]
    # The F1s, recomputed here from the stored labels and the truth file, by sets.
    arrays = RunStore(resnet_run).arrays("c0001")
    with open(truth, newline="") as handle:
        planted = {row["path"] for row in csv.DictReader(handle) if row["artifact"]}
    marked = {i for i, path in enumerate(arrays["paths"]) if str(path) in planted}
    assert len(marked) == 6

    def best_single_cluster_f1(labels):
        scores = []
        for cluster in set(labels.tolist()):
            members = {i for i, label in enumerate(labels.tolist()) if label == cluster}
            hits = len(members & marked)
            scores.append(0.0 if not hits else 2 / (len(members) / hits + len(marked) / hits))
        return max(scores)

    names = [str(name) for name in arrays["clustering_names"]]
    labels = arrays["clustering_labels"]
    assert bee["default_f1"] == pytest.approx(best_single_cluster_f1(labels[names.index(bee["default_clustering"])]))
    assert bee["best_f1"] == pytest.approx(max(best_single_cluster_f1(lab) for lab in labels))
    assert 0 < bee["default_f1"] and 0 < bee["best_f1"] <= 1
    assert bee["best_clustering"].split("/")[1].startswith("cluster-")
    assert bee["default_clustering"] == RunStore(resnet_run).summary("c0001")["default_clustering"]
    assert ant["best_f1"] is None and ant["default_f1"] is None
    assert sorted(c["tau_rank"] for c in result["classes"].values()) == [1, 2, 3]
    assert result["mean_tau_planted"] == bee["tau"]


def test_rerun_resumes_and_force_recomputes(resnet_run, dataset, resnet_weights, capsys):
    data, _ = dataset
    before = {cid: (resnet_run / "classes" / cid / "summary.json").stat().st_mtime_ns for cid in ("c0000", "c0001")}
    args = ["run", "--data", str(data), "--model", "resnet18", "--weights", str(resnet_weights),
            "--out", str(resnet_run), "--image-size", "32", "--batch-size", "5", *FAST]
    assert main(args) == 0
    assert "3 of 3 classes are finished" in capsys.readouterr().err
    after = {cid: (resnet_run / "classes" / cid / "summary.json").stat().st_mtime_ns for cid in before}
    assert before == after
    assert main(args[:-len(FAST)] + FAST + ["--force", "--classes", "ant"]) == 0
    assert (resnet_run / "classes" / "c0000" / "summary.json").stat().st_mtime_ns != before["c0000"]


def test_other_parameters_into_the_same_run_are_refused(resnet_run, dataset, resnet_weights, capsys):
    data, _ = dataset
    status = main(["run", "--data", str(data), "--model", "resnet18", "--weights", str(resnet_weights),
                   "--out", str(resnet_run), "--image-size", "32", "--neighbors", "5", *FAST])
    assert status == 2
    assert "other analysis" in capsys.readouterr().err


def test_file_function_model_and_identical_reruns(dataset, tmp_path):
    data, _ = dataset
    model_file = write_model_file(tmp_path)
    weights = tmp_path / "w.pt"
    torch.save(build_model(f"{model_file}:build", 3).state_dict(), weights)
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["run", "--data", str(data), "--model", f"{model_file}:build", "--weights", str(weights),
                     "--out", str(out), "--image-size", "24", "--normalize", "none", "--classes", "bee,cat",
                     *FAST]) == 0
        outs.append(RunStore(out))
    assert outs[0].finished_ids() == ["c0001", "c0002"]
    first, second = outs[0].arrays("c0002"), outs[1].arrays("c0002")
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def test_bad_model_spec_fails_before_any_work(dataset, tmp_path, capsys):
    data, _ = dataset
    out = tmp_path / "never"
    status = main(["run", "--data", str(data), "--model", "resnet18", "--weights", str(tmp_path / "missing.pt"),
                   "--out", str(out), *FAST])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "missing.pt" in err and "Traceback" not in err
    assert not out.exists()


def test_unknown_composite_fails_before_any_work(dataset, resnet_weights, tmp_path, capsys):
    data, _ = dataset
    out = tmp_path / "never"
    status = main(["run", "--data", str(data), "--model", "resnet18", "--weights", str(resnet_weights),
                   "--out", str(out), "--composite", "epsilon_magic", *FAST])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown composite 'epsilon_magic'; known: ") and "Traceback" not in err
    assert not out.exists(), "the run directory is not created for a run that cannot start"


def test_run_with_a_transport_distance_first_and_another_added(dataset, resnet_weights, tmp_path):
    """``run --distance gw,wasserstein``: GW is the primary analysis, Wasserstein is added from the stored maps."""
    data, _ = dataset
    out = tmp_path / "gw"
    assert main(["run", "--data", str(data), "--model", "resnet18", "--weights", str(resnet_weights), "--out",
                 str(out), "--image-size", "32", "--batch-size", "5", "--distance", "gw,wasserstein", *FAST]) == 0
    store = RunStore(out)
    assert store.primary_analysis == "gw" and store.manifest["analysis"]["distance"] == "gw"
    for cid in store.finished_ids():
        assert store.analysis_names(cid) == ["gw", "wasserstein"]
        gw, wasserstein = store.arrays(cid), store.arrays(cid, "wasserstein")
        n = len(gw["paths"])
        assert gw["knn_indices"].shape == wasserstein["knn_indices"].shape == (n, min(10, n - 2))
        assert not np.array_equal(gw["knn_indices"], wasserstein["knn_indices"])
        assert store.summary(cid, "wasserstein")["config"]["distance"] == "wasserstein"
