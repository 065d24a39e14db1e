"""The run store: round trips, atomic class writes, resume rules, schema version."""
import json

import numpy as np
import pytest

from precompute.errors import DiskFullError, StoreError
from precompute.store import (
    CLASS_ARRAYS,
    SCHEMA_VERSION,
    ClassAnalysis,
    ExperimentWriter,
    RunStore,
    RunWriter,
    class_id,
    clustering_name,
    parse_clustering_name,
)

MANIFEST = {
    "data": {"root": "/data", "label_names": ["a", "b"]},
    "classes": [{"id": "c0000", "name": "a", "label": 0, "n_files": 5}],
    "model": {"spec": "vgg11"},
    "analysis": {"neighbors": 10},
}


def fake_class(n=5, seed=0, name="a", label=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for key, description in CLASS_ARRAYS.items():
        if key.startswith("thumb_offsets"):
            continue
        arrays[key] = rng.normal(size=(n, 2)).astype(np.float32)
    arrays["paths"] = np.array([f"{name}/{i}.png" for i in range(n)])
    arrays["clustering_names"] = np.array(["kmeans-k2", "ward-k2"])
    arrays["clustering_labels"] = rng.integers(0, 2, size=(2, n)).astype(np.int16)
    thumbs = {"image": [bytes([i]) * (i + 1) for i in range(n)], "heatmap": [b"h%d" % i for i in range(n)]}
    summary = {"name": name, "label": label, "n": n, "tau": 1.5, "default_clustering": "ward-k2"}
    return ClassAnalysis(summary=summary, arrays=arrays,
                         heatmaps=rng.normal(size=(n, 4, 4)).astype(np.float32), thumbs=thumbs)


@pytest.fixture
def writer(tmp_path):
    return RunWriter.create(tmp_path / "run", MANIFEST)


def test_round_trip(writer):
    analysis = fake_class()
    writer.write_class("c0000", analysis)
    store = RunStore(writer.root)
    assert store.finished_ids() == ["c0000"]
    assert store.summary("c0000")["tau"] == 1.5
    assert store.summary("c0000")["bytes"] > 0
    arrays = store.arrays("c0000")
    np.testing.assert_array_equal(arrays["paths"], analysis.arrays["paths"])
    np.testing.assert_array_equal(arrays["clustering_labels"], analysis.arrays["clustering_labels"])
    heatmaps = store.heatmaps("c0000")
    assert heatmaps.dtype == np.float16 and heatmaps.shape == (5, 4, 4)
    np.testing.assert_array_equal(heatmaps, analysis.heatmaps.astype(np.float16))
    with pytest.raises(ValueError):
        heatmaps[0, 0, 0] = 1  # read-only memory map
    for i in range(5):
        assert store.thumbnail("c0000", "image", i) == analysis.thumbs["image"][i]
        assert store.thumbnail("c0000", "heatmap", i) == analysis.thumbs["heatmap"][i]
    records = store.classes()
    assert [(r.id, r.name, r.label) for r in records] == [("c0000", "a", 0)]


@pytest.mark.parametrize("index", [-1, 5, 10**9])
def test_thumbnail_out_of_range(writer, index):
    writer.write_class("c0000", fake_class())
    with pytest.raises(StoreError):
        writer.thumbnail("c0000", "image", index)


def test_unknown_thumbnail_kind_and_class(writer):
    writer.write_class("c0000", fake_class())
    with pytest.raises(StoreError):
        writer.thumbnail("c0000", "../manifest", 0)
    with pytest.raises(StoreError):
        writer.summary("c0001")
    with pytest.raises(StoreError):
        writer.summary("../c0000")


def test_failed_write_leaves_nothing_visible(writer, monkeypatch):
    def broken_savez(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(DiskFullError, match="out of disk space"):
        writer.write_class("c0000", fake_class())
    assert writer.finished_ids() == []
    assert not any(path.name.startswith(".tmp") for path in writer.classes_dir.iterdir())


def test_other_write_errors_pass_through(writer, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(np, "savez", denied)
    with pytest.raises(PermissionError):
        writer.write_class("c0000", fake_class())
    assert writer.finished_ids() == []


def test_rewrite_replaces_a_class_whole(writer):
    writer.write_class("c0000", fake_class(n=5, seed=0))
    writer.write_class("c0000", fake_class(n=7, seed=1))
    assert writer.summary("c0000")["n"] == 7
    assert writer.arrays("c0000")["paths"].shape == (7,)
    assert [p.name for p in writer.classes_dir.iterdir()] == ["c0000"]


def test_stale_temporaries_are_ignored_and_removed(writer):
    stale = writer.classes_dir / ".tmp-c0001-99"
    stale.mkdir()
    (stale / "summary.json").write_text("{}")
    half = writer.classes_dir / "c0002"
    half.mkdir()  # a folder without summary.json is not a finished class
    assert writer.finished_ids() == []
    reopened = RunWriter.create(writer.root, MANIFEST)
    assert not stale.exists()
    assert reopened.finished_ids() == []


def test_resume_refuses_other_parameters(writer):
    other = {**MANIFEST, "analysis": {"neighbors": 5}}
    with pytest.raises(StoreError, match="analysis"):
        RunWriter.create(writer.root, other)
    RunWriter.create(writer.root, other, force=True)
    assert RunStore(writer.root).manifest["analysis"] == {"neighbors": 5}


def test_resume_adds_new_classes_to_the_manifest(writer):
    more = {**MANIFEST, "classes": [{"id": "c0001", "name": "b", "label": 1, "n_files": 3}]}
    reopened = RunWriter.create(writer.root, more)
    assert [c["id"] for c in reopened.manifest["classes"]] == ["c0000", "c0001"]


def test_schema_version_is_checked(writer):
    path = writer.root / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="schema version"):
        RunStore(writer.root)


def test_missing_run_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="not a SpRAy run"):
        RunStore(tmp_path)


def test_nan_never_reaches_json(writer):
    analysis = fake_class()
    analysis.summary["tau"] = float("nan")
    writer.write_class("c0000", analysis)
    assert writer.summary("c0000")["tau"] is None


def test_experiments_are_written_atomically_and_validated(writer):
    experiments = ExperimentWriter(writer)
    experiments.save_experiment({"id": "exp-1", "created": "2026"}, {"a.webp": b"x"})
    assert writer.experiments()[0]["id"] == "exp-1"
    assert writer.experiment_file("exp-1", "a.webp") == b"x"
    for bad in ("../evil", "artifacts", "", "a/b"):
        with pytest.raises(StoreError):
            experiments.save_experiment({"id": bad}, {})
    with pytest.raises(StoreError):
        experiments.save_experiment({"id": "exp-2"}, {"../x.png": b""})
    with pytest.raises(StoreError):
        experiments.save_experiment({"id": "exp-1"}, {})
    for name in ("../manifest.json", "record.json", "a.exe"):
        with pytest.raises(StoreError):
            writer.experiment_file("exp-1", name)
    assert not any(p.name.startswith(".tmp") for p in writer.experiments_dir.iterdir())


def test_artifact_drafts(writer):
    entry = ExperimentWriter(writer).save_artifact_draft({"name": "box", "class": "a", "position": [1, 2]}, b"png")
    assert entry["id"].startswith("art-") and writer.artifact_entry(entry["id"])["name"] == "box"
    assert writer.artifact_png(entry["id"]) == b"png"
    with pytest.raises(StoreError):
        writer.artifact_entry("art-nope")


def test_names():
    assert class_id(7) == "c0007"
    assert clustering_name("ward", 3) == "ward-k3"
    assert parse_clustering_name("kmeans_lead-k12") == ("kmeans_lead", 12)
    with pytest.raises(StoreError):
        parse_clustering_name("ward")


# -- typed records --------------------------------------------------------------------------------
def test_records_round_trip_a_v1_manifest_key_for_key(tmp_path):
    from precompute.store import Manifest

    stored = {
        "schema_version": 1, "created": "2024-01-01T00:00:00+00:00", "software": {"numpy": "1"},
        "data": {"root": "data", "label_names": ["a", "b"]},
        "classes": [{"id": "c0000", "name": "a", "label": 0, "n_files": 5}],
        "model": {"spec": "vgg16", "weights": None, "weights_sha256": None, "num_classes": 2,
                  "normalization": "none", "image_size": 64, "composite": "epsilon_plus_flat", "canonizers": []},
        "analysis": {"neighbors": 10}, "thumbnails": {"size": 64, "format": "webp"},
        "storage": {"heatmap_dtype": "float16", "bytes_per_image": 10.5},
        "run": {"engine": "local"}, "demo": {"seed": 0}, "future_section": {"x": 1},
    }
    record = Manifest.from_dict(stored)
    assert record.model.normalization == "none" and record.classes[0].n_files == 5
    assert record.extra == {"future_section": {"x": 1}}
    assert record.to_dict() == stored


def test_records_fill_documented_defaults_for_missing_keys(writer):
    from precompute.store import DEFAULT_NORMALIZATION, ClassSummary, Manifest

    assert DEFAULT_NORMALIZATION == "imagenet"  # RunConfig.normalize's default
    manifest = writer.manifest_record()  # MANIFEST above has no model.normalization
    assert isinstance(manifest, Manifest)
    assert manifest.model.spec == "vgg11" and manifest.model.normalization == DEFAULT_NORMALIZATION
    assert manifest.data.label_names == ["a", "b"] and manifest.thumbnails.size == 128
    writer.write_class("c0000", fake_class())
    summary = writer.class_summary("c0000")
    assert isinstance(summary, ClassSummary)
    assert summary.tau == 1.5 and summary.default_clustering == "ward-k2" and summary.n == 5
    assert summary.eigengap_k is None and summary.bytes > 0 and summary["n"] == 5
    assert writer.classes()[0].summary_record() == summary


def test_a_typed_summary_is_written_as_its_dict(writer):
    from precompute.store import ClassSummary

    summary = ClassSummary(id="c0000", name="a", label=0, n=5, tau=float("nan")).updated(
        {"default_clustering": "ward-k2", "planted_fraction": 0.2})
    analysis = fake_class()
    analysis.summary = summary
    writer.write_class("c0000", analysis)
    stored = writer.summary("c0000")
    assert stored == {**summary.to_dict(), "bytes": stored["bytes"]}
    assert stored["tau"] is None and stored["planted_fraction"] == 0.2 and "tau_note" not in stored


def _variant(vid, name=None):
    from precompute.store import Variant

    return Variant(id=vid, name=name or vid, method="pclarc", created=f"2026-12-03T00:00:0{len(vid) % 10}",
                   layer="classifier.3:input", origin={"id": "c0000", "name": "a", "label": 0},
                   report={"clean_accuracy": {"before": 0.9, "after": 0.89}})


def test_variants_are_written_atomically_listed_and_read_back(writer, monkeypatch):
    from precompute.store import ExperimentWriter, RunStore

    saver = ExperimentWriter(writer)
    folder = saver.save_variant(_variant("p-1"), {"projection.pt": b"x", "cleaning.csv": b"path\n"})
    assert sorted(p.name for p in folder.iterdir()) == ["cleaning.csv", "projection.pt", "variant.json"]
    store = RunStore(writer.root)  # a fresh reader, as after an app restart
    [record] = store.variants()
    assert record.id == "p-1" and record.files == ["cleaning.csv", "projection.pt"]
    assert record.report["clean_accuracy"]["after"] == 0.89
    assert store.variant("p-1").layer == "classifier.3:input"
    assert store.variant_path("p-1", "cleaning.csv").read_bytes() == b"path\n"
    with pytest.raises(StoreError, match="exists already"):
        saver.save_variant(_variant("p-2", name="p-1"), {})
    with pytest.raises(StoreError, match="unknown model variant"):
        store.variant("nope")
    with pytest.raises(StoreError):
        store.variant_path("p-1", "../manifest.json")
    with pytest.raises(StoreError):
        saver.save_variant(_variant("../evil"), {})

    def fail(path, data):  # dies while writing the files: nothing is listed, nothing is left
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("precompute.store.writer.write_bytes_durable", fail)
    with pytest.raises(OSError):
        saver.save_variant(_variant("p-3"), {"weights.pt": b"w"})
    assert [v.id for v in RunStore(writer.root).variants()] == ["p-1"]
    assert sorted(p.name for p in store.variants_dir.iterdir()) == ["p-1"]
