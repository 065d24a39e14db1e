"""``import-virelay``: the round trip of our export, CoRelAy-made projects, the older layout, and broken projects."""
import json
import shutil

import h5py
import numpy as np
import pytest
import yaml

from precompute.cli import main
from precompute.errors import ConfigError, DataError
from precompute.interop import import_virelay
from precompute.store import RunStore
from tests.precompute.interop.projects import CLASSES, write_corelay_project

SAME_SUMMARY = ("tau", "default_clustering", "eigengap_k", "fisher_dimensions", "leading_dimensions", "accuracy",
                "top5_accuracy", "mean_true_prob", "eigenvalues", "fisher_kmeans")


def test_export_then_import_gives_the_same_analysis_back(demo_run, virelay_roundtrip):
    before, after = RunStore(demo_run), RunStore(virelay_roundtrip)
    assert after.finished_ids() == before.finished_ids()
    assert [r.name for r in after.classes()] == [r.name for r in before.classes()]
    for cid in before.finished_ids():
        old, new = before.arrays(cid), after.arrays(cid)
        for key in ("clustering_names", "clustering_labels", "map_names", "maps", "eigenvalues", "eigenvectors",
                    "fisher", "knn_indices", "knn_distances", "top_classes", "top_probs", "true_prob", "true_rank",
                    "relevance_sum"):
            np.testing.assert_array_equal(new[key], old[key], err_msg=f"{cid} {key}")
        np.testing.assert_array_equal(after.heatmaps(cid), before.heatmaps(cid))
        if "split" in old:  # run --val-data: the training/validation split travels too
            np.testing.assert_array_equal(new["split"], old["split"])
        old_summary, new_summary = before.summary(cid), after.summary(cid)
        assert {k: new_summary[k] for k in SAME_SUMMARY} == {k: old_summary[k] for k in SAME_SUMMARY}
        assert new_summary["computed"] == []  # everything came from the project
    manifest = after.manifest
    assert manifest["model"]["spec"] == "virelay:spray_demo_vgg" and manifest["model"]["weights"] is None
    assert any("no model" in note for note in manifest["virelay"]["notes"])
    assert after.search_index()[2]["count"] == sum(len(after.heatmaps(cid)) for cid in after.finished_ids())


@pytest.fixture(scope="module")
def corelay(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corelay")
    expected = write_corelay_project(folder / "project")
    return expected, import_virelay(expected["project"], folder / "run"), RunStore(folder / "run")


def test_a_corelay_project_keeps_its_embeddings_and_clusterings(corelay):
    expected, result, store = corelay
    assert [r.name for r in store.classes()] == [name for _, name in CLASSES]
    assert result["analysis"] == "spectral_analysis" and result["samples"] == 120
    for label, (wnid, name) in enumerate(CLASSES):
        record = store.classes()[label]
        arrays, mine = store.arrays(record.id), expected[wnid]
        # CoRelAy's spectrum (descending, trivial last) comes back ascending, column for column
        np.testing.assert_allclose(arrays["eigenvalues"], mine["eigenvalues"][::-1].astype(np.float32))
        np.testing.assert_allclose(np.abs(arrays["eigenvectors"]), np.abs(mine["embedding"][:, ::-1]))
        names = list(arrays["clustering_names"])
        for k, labels in mine["kmeans"].items():
            stored = arrays["clustering_labels"][names.index(f"kmeans-k{k}")]
            assert _same_partition(stored, labels)
        dbscan = arrays["clustering_labels"][names.index("dbscan_eps_0_5-k4")]
        assert _same_partition(dbscan, mine["dbscan"])  # noise (-1) is a cluster of its own
        assert {"hdbscan-k3", "train_split-k2", "agglomerative-k5"} <= set(names)
        assert list(arrays["map_names"]) == ["umap", "tsne"]
        summary = record.summary
        assert summary["tau"] > 0 and summary["default_clustering"] in names
        assert summary["computed"] == ["kmeans k=6..30", "ward k=2..30", "kmeans_lead k=2..30"]
        assert summary["virelay"]["category"] == wnid
        # logits went through a softmax; the true class got +5, so most are right
        assert 0.8 <= summary["accuracy"] <= 1.0 and arrays["top_probs"].shape == (40, 5)
        assert list(arrays["paths"][:2]) == [f"input.h5/{i:06d}" for i in mine["samples"][:2]]
    taus = [r.summary["tau"] for r in store.classes()]
    assert taus[0] == max(taus)  # the class with a planted corner splits most


def _same_partition(a, b) -> bool:
    pairs = set(zip(np.asarray(a).tolist(), np.asarray(b).tolist()))
    return len(pairs) == len(set(np.asarray(a).tolist())) == len(set(np.asarray(b).tolist()))


def test_the_older_documented_layout_and_a_project_without_spectral_embedding(tmp_path):
    """``<name>/root`` groups under ``clustering`` (ViRelAy's docs) import; a missing spectrum is computed."""
    expected = write_corelay_project(tmp_path / "p", n=20)
    with h5py.File(tmp_path / "p" / "analysis.h5", "a") as handle:
        for wnid, _ in CLASSES:
            group = handle[wnid]
            labels = group["cluster/kmeans-03"][:]
            del group["cluster"]
            del group["embedding/spectral"]
            group["clustering/my_clustering/root"] = labels
            group["clustering/my_clustering/#clusters"] = 3
            tsne = group["embedding/tsne"][:]
            del group["embedding/tsne"]
            group["embedding/tsne/root"] = tsne
    result = import_virelay(expected["project"], tmp_path / "run")
    store = RunStore(tmp_path / "run")
    arrays = store.arrays(store.finished_ids()[0])
    assert "my_clustering-k3" in list(arrays["clustering_names"])
    assert sorted(arrays["map_names"]) == ["tsne", "umap"]
    assert store.classes()[0].summary["computed"][0] == "spectral"
    assert any("no spectral embedding" in note for note in result["notes"])


def _broken(tmp_path, damage):
    expected = write_corelay_project(tmp_path / "p", n=12)
    damage(tmp_path / "p")
    return expected["project"]


def _h5(name, change):
    def damage(folder):
        with h5py.File(folder / name, "a") as handle:
            change(handle)
    return damage


BROKEN = {
    "yaml": (lambda f: (f / "project.yaml").write_text("project: [unclosed"), ConfigError, "project.yaml: not valid YAML"),
    "no dataset": (lambda f: (f / "project.yaml").write_text(yaml.safe_dump({"project": {"label_map": "x.json"}})),
                   ConfigError, "project.yaml: the project has no 'dataset'"),
    "label map": (lambda f: (f / "label-map.json").unlink(), DataError, "label-map.json: label map not found"),
    "garbage analysis": (lambda f: (f / "analysis.h5").write_bytes(b"not hdf5"), DataError,
                         "analysis.h5: analysis file is not a readable HDF5 file"),
    "missing attribution": (lambda f: (f / "attribution.h5").unlink(), DataError,
                            "attribution.h5: attribution file not found"),
    "no attribution key": (_h5("attribution.h5", lambda h: h.__delitem__("attribution")), DataError,
                           "attribution.h5: no 'attribution' in the attribution file"),
    "no index": (_h5("analysis.h5", lambda h: h[CLASSES[0][0]].__delitem__("index")), DataError,
                 f"analysis.h5: category '{CLASSES[0][0]}' has no 'index'"),
    "bad embedding": (_h5("analysis.h5", lambda h: (h[CLASSES[1][0]]["embedding"].__delitem__("umap"),
                                                    h[CLASSES[1][0]]["embedding"].create_dataset("umap", data=np.zeros((3, 2))))),
                      DataError, f"analysis.h5: category '{CLASSES[1][0]}': embedding 'umap' has shape"),
    "two categories, one label": (_h5("analysis.h5", lambda h: h.copy(h[CLASSES[0][0]], "00000000")), DataError,
                                  "are both label 0"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_project_gets_one_line_naming_the_file(tmp_path, capsys, case):
    damage, error, message = BROKEN[case]
    project = _broken(tmp_path, damage)
    with pytest.raises(error, match=message.replace("[", r"\[")):
        import_virelay(project, tmp_path / "run")
    assert main(["import-virelay", str(project), str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_an_unknown_analysis_and_a_busy_folder_are_refused(tmp_path):
    project = write_corelay_project(tmp_path / "p", n=12)["project"]
    with pytest.raises(ConfigError, match="--analysis 'nope': not in .*it has spectral_analysis"):
        import_virelay(project, tmp_path / "run", analysis="nope")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(ConfigError, match="folder is not empty; choose an empty or new folder"):
        import_virelay(project, tmp_path / "busy", force=True)
    import_virelay(project, tmp_path / "run")
    with pytest.raises(ConfigError, match="pass --force to replace that run store"):
        import_virelay(project, tmp_path / "run")
    import_virelay(project, tmp_path / "run", force=True)


def test_missing_predictions_are_marked_unknown(tmp_path):
    project = _broken(tmp_path, _h5("attribution.h5", lambda h: h.__delitem__("prediction")))
    result = import_virelay(project, tmp_path / "run")
    summary = RunStore(tmp_path / "run").classes()[0].summary
    assert summary["predictions"] == "unknown" and summary["accuracy"] is None
    assert any("no usable 'prediction'" in note for note in result["notes"])


def test_the_cli_prints_the_result_as_json(tmp_path, capsys):
    project = write_corelay_project(tmp_path / "p", n=12)["project"]
    assert main(["import-virelay", str(project), str(tmp_path / "run"), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.strip().splitlines()[-1])["classes"] == 3
    assert "serve it with: python app.py" in err and "note: the project has no model" not in err
    shutil.rmtree(tmp_path / "run")


def test_an_image_directory_dataset_gives_real_paths(tmp_path):
    """ViRelAy's other dataset type: images in class folders, sample i the i-th path in sorted order."""
    from PIL import Image

    expected = write_corelay_project(tmp_path / "p", n=12)
    folder = tmp_path / "p" / "images"
    with h5py.File(tmp_path / "p" / "input.h5") as handle:
        images, labels = handle["data"][:], handle["label"][:]
    for i, (image, label) in enumerate(zip(images, labels)):
        (folder / CLASSES[label][0]).mkdir(parents=True, exist_ok=True)
        rgb = (np.moveaxis(image, 0, -1) * 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / CLASSES[label][0] / f"{i:04d}.png")
    project = yaml.safe_load(expected["project"].read_text())
    project["project"]["dataset"] = {"name": "folders", "type": "image_directory", "path": "images",
                                     "label_index_regex": None, "label_word_net_id_regex": r".*/(n\d+)/.*",
                                     "input_width": 16, "input_height": 16, "up_sampling_method": "none",
                                     "down_sampling_method": "none"}
    expected["project"].write_text(yaml.safe_dump(project))
    import_virelay(expected["project"], tmp_path / "run")
    store = RunStore(tmp_path / "run")
    cid = store.finished_ids()[1]
    arrays = store.arrays(cid)
    assert arrays["paths"][0] == f"{CLASSES[1][0]}/0012.png"
    assert (store.data_root() / str(arrays["paths"][0])).is_file()
    assert store.thumbnail(cid, "image", 0)[:4] == b"RIFF"  # a WebP
