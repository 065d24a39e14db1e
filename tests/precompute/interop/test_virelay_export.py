"""``export-virelay`` on the session's demo store: ViRelAy 0.6.1's layout, names, shapes and order."""
import json

import h5py
import numpy as np
import pytest
import yaml

from precompute.cli import main
from precompute.errors import ConfigError
from precompute.interop import export_virelay
from precompute.store import RunStore


def test_the_project_has_every_file_in_virelays_layout(virelay_export, demo_run):
    folder, result = virelay_export
    store = RunStore(demo_run)
    project = yaml.safe_load((folder / "project.yaml").read_text())["project"]
    assert project["dataset"]["type"] == "hdf5" and project["analyses"][0]["sources"] == ["analysis.h5"]
    total = sum(len(store.heatmaps(cid)) for cid in store.finished_ids())
    assert result["classes"] == len(store.finished_ids()) and result["samples"] == total
    with h5py.File(folder / "input.h5") as inputs, h5py.File(folder / "attribution.h5") as attributions:
        assert inputs["data"].shape == (total, 64, 64, 3) and inputs["data"].dtype == np.uint8
        assert inputs["label"].dtype == np.uint16 and attributions["label"].dtype == np.uint16
        assert "index" not in attributions  # a per-file index makes ViRelAy scan it on every look-up
        assert attributions["attribution"].shape == (total, 3, 64, 64)
        assert attributions["prediction"].shape == (total, 10)
        labels = attributions["label"][:]
        cid = store.id_for_name("star")
        rows = np.flatnonzero(labels == store.class_info(cid)["label"])
        # channels sum to the stored heatmap exactly (channels 1 and 2 are zero)
        np.testing.assert_array_equal(attributions["attribution"][rows[0]:rows[-1] + 1].sum(axis=1),
                                      np.asarray(store.heatmaps(cid), np.float32))
        top = store.arrays(cid)["top_classes"][:, 0]
        np.testing.assert_array_equal(np.argmax(attributions["prediction"][rows[0]:rows[-1] + 1], axis=1), top)
    label_map = json.loads((folder / "label-map.json").read_text())
    assert [entry["name"] for entry in label_map] == store.label_names()
    assert all(entry["word_net_id"] == entry["name"] for entry in label_map)


def test_the_analysis_holds_every_class_in_corelays_order(virelay_export, demo_run):
    folder, result = virelay_export
    store = RunStore(demo_run)
    with h5py.File(folder / "analysis.h5") as analysis:
        assert sorted(analysis.keys()) == sorted(r.name for r in store.classes())
        names = None
        for record in store.classes():
            group, arrays = analysis[record.name], store.arrays(record.id)
            spectral = group["embedding/spectral"]
            # ours ascending with the trivial eigenvector first, CoRelAy's descending with it last
            np.testing.assert_array_equal(spectral.attrs["eigenvalue"], arrays["eigenvalues"][::-1])
            np.testing.assert_array_equal(spectral[:, -1], arrays["eigenvectors"][:, 0])
            assert group["embedding/umap"].shape == (len(arrays["paths"]), 2)
            assert group["embedding/tsne"].attrs["embedding"] == "spectral"
            kmeans5 = group["cluster/kmeans-05"]
            assert kmeans5.attrs["k"] == 5 and kmeans5.attrs["embedding"] == "spectral"
            position = list(arrays["clustering_names"]).index("kmeans-k5")
            np.testing.assert_array_equal(kmeans5[:], arrays["clustering_labels"][position])
            rows = group["index"][:]
            assert rows.dtype == np.uint32 and len(rows) == len(arrays["paths"])
            mine = (sorted(group["cluster"].keys()), sorted(group["embedding"].keys()))
            assert names is None or mine == names  # ViRelAy reads the names from the first category only
            names = mine
    assert len(result["clusterings"]) == 3 * 29 and result["dropped"] == []


def test_classes_are_chosen_by_name_and_a_folder_is_never_overwritten_by_surprise(demo_run, tmp_path):
    out = tmp_path / "two"
    result = export_virelay(demo_run, out, classes=["star", "heart"])
    with h5py.File(out / "analysis.h5") as analysis:
        assert sorted(analysis.keys()) == ["heart", "star"]
    store = RunStore(demo_run)
    assert result["samples"] == sum(len(store.heatmaps(store.id_for_name(name))) for name in ("star", "heart"))
    with pytest.raises(ConfigError, match="folder is not empty; pass --force"):
        export_virelay(demo_run, out, classes=["star"])
    export_virelay(demo_run, out, classes=["star"], force=True)
    with h5py.File(out / "analysis.h5") as analysis:
        assert list(analysis.keys()) == ["star"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="choose an empty or new folder"):
        export_virelay(demo_run, tmp_path / "mine", force=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_the_cli_reports_an_unknown_class_in_one_line(demo_run, tmp_path, capsys):
    assert main(["export-virelay", str(demo_run), str(tmp_path / "out"), "--classes", "star,nope"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --classes: no class 'nope' in {RunStore(demo_run).root}\n"
    assert not (tmp_path / "out").exists()
