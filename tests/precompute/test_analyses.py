"""Several analyses per class: adding one from the stored heatmaps, reading it, the old schema."""
import json

import numpy as np
import pytest

from precompute.analyses import add_analysis, parse_distances
from precompute.errors import ConfigError, StoreError
from precompute.store import ANALYSIS_RESULT_ARRAYS, SCHEMA_VERSION, RunStore, RunWriter
from precompute.synthetic import write_synthetic_store


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("analyses") / "run"
    write_synthetic_store(out, n_classes=3, n_per_class=60, size=16, planted_every=2, maps=(), seed=2)
    return out


def _files(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_added_analysis_is_stored_beside_the_primary_one(run, tmp_path):
    copy = tmp_path / "run"
    import shutil

    shutil.copytree(run, copy)
    before = _files(copy / "classes")
    lines = []
    done = add_analysis(copy, "cosine", progress=False, log=lines.append)
    store = RunStore(copy)
    assert done == store.finished_ids() and len(lines) == len(done)
    for cid in done:
        assert store.analysis_names(cid) == ["euclidean", "cosine"]
        primary, added = store.arrays(cid), store.arrays(cid, analysis="cosine")
        assert set(primary) == set(added)
        np.testing.assert_array_equal(primary["paths"], added["paths"])  # the samples are the class's
        assert not np.array_equal(primary["knn_indices"], added["knn_indices"])  # another graph
        summary = store.summary(cid, analysis="cosine")
        assert summary["analysis"] == "cosine" and summary["config"]["distance"] == "cosine"
        assert summary["default_clustering"] in [str(n) for n in added["clustering_names"]]
        assert store.summary(cid)["tau"] == store.summary(cid, analysis="euclidean")["tau"]
    # nothing of the primary analysis was rewritten but the summaries
    changed = {p for p, stamp in before.items() if _files(copy / "classes")[p] != stamp}
    assert {p.name for p in changed} == {"summary.json"}
    assert RunStore(copy).manifest["schema_version"] == SCHEMA_VERSION


def test_cosine_analysis_equals_a_run_made_with_cosine(run, tmp_path):
    """The added analysis is what analyse_heatmaps gives with that distance on the stored heatmaps."""
    import dataclasses
    import shutil

    from precompute.analysis import AnalysisConfig, analyse_heatmaps

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    store = RunStore(copy)
    cid = store.finished_ids()[0]
    add_analysis(copy, "cosine", classes=[store.summary(cid)["name"]], progress=False, log=lambda m: None)
    config = dataclasses.replace(AnalysisConfig.from_dict(store.manifest["analysis"]), distance="cosine")
    expected = analyse_heatmaps(np.asarray(store.heatmaps(cid), np.float32), config)
    stored = RunStore(copy).arrays(cid, analysis="cosine")
    for name in ANALYSIS_RESULT_ARRAYS:
        np.testing.assert_array_equal(stored[name], expected.arrays[name], err_msg=name)
    assert RunStore(copy).analysis_names(store.finished_ids()[1]) == ["euclidean"]  # only the class asked for


def test_an_interrupted_analyse_resumes_and_force_recomputes(run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    ids = RunStore(copy).finished_ids()
    assert add_analysis(copy, "cosine", classes=ids[:1], progress=False, log=lambda m: None) == ids[:1]
    assert add_analysis(copy, "cosine", progress=False, log=lambda m: None) == ids[1:]
    assert add_analysis(copy, "cosine", progress=False, log=lambda m: None) == []
    assert add_analysis(copy, "cosine", force=True, progress=False, log=lambda m: None) == ids


def test_bad_requests_are_one_line_errors(run):
    store = RunStore(run)
    cid = store.finished_ids()[0]
    for call, pattern in [
        (lambda: add_analysis(run, "euclidean", progress=False), "primary analysis already"),
        (lambda: add_analysis(run, "manhattan", progress=False), "manhattan"),
        (lambda: parse_distances("euclidean,cosine,euclidean"), "twice"),
        (lambda: parse_distances(" , "), "at least one"),
    ]:
        with pytest.raises(ConfigError, match=pattern) as caught:
            call()
        assert "\n" not in str(caught.value)
    with pytest.raises(StoreError, match="no 'cosine' analysis.*analyse RUN --distance cosine"):
        store.arrays(cid, analysis="cosine")
    with pytest.raises(StoreError, match="primary analysis"):
        RunWriter(run).write_class_analysis(cid, "euclidean", store.arrays(cid), {})
    arrays = {name: store.arrays(cid)[name] for name in ANALYSIS_RESULT_ARRAYS}
    arrays["eigenvectors"] = arrays["eigenvectors"][:-1]
    with pytest.raises(StoreError, match="samples"):
        RunWriter(run).write_class_analysis(cid, "cosine", arrays, {})
    assert parse_distances("euclidean, cosine") == ["euclidean", "cosine"]


def test_a_schema_1_run_is_read_and_gains_analyses(run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["schema_version"] = 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    store = RunStore(copy)
    cid = store.finished_ids()[0]
    assert store.analysis_names(cid) == ["euclidean"] and store.summary(cid)["tau"] is not None
    add_analysis(copy, "cosine", classes=[cid], progress=False, log=lambda m: None)
    assert RunStore(copy).manifest["schema_version"] == 2


def test_analyse_and_evaluate_through_the_cli(run, tmp_path, capsys):
    import shutil

    from precompute.cli import main

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert main(["analyse", str(copy), "--distance", "cosine", "--quiet"]) == 0
    assert "cosine: 3 classes analysed" in capsys.readouterr().err
    assert main(["evaluate", str(copy)]) == 0
    primary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["evaluate", str(copy), "--analysis", "cosine"]) == 0
    cosine = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (primary["analysis"], cosine["analysis"]) == ("euclidean", "cosine")
    assert set(primary) == set(cosine)
    for name, entry in primary["classes"].items():  # the same report, per analysis
        assert set(entry) == set(cosine["classes"][name])
        assert cosine["classes"][name]["tau"] == pytest.approx(RunStore(copy).summary(
            RunStore(copy).id_for_name(name), "cosine")["tau"])
    assert main(["evaluate", str(copy), "--analysis", "gw"]) == 2
    err = capsys.readouterr().err
    assert "no 'gw' analysis" in err and "analyse" in err and len(err.strip().splitlines()) == 1
    assert main(["analyse", str(tmp_path / "nope"), "--distance", "cosine"]) == 2


def test_transport_analyses_through_the_cli(run, tmp_path, capsys):
    """``analyse --distance gw`` from the stored heatmaps; ``evaluate --analysis gw`` as for any."""
    import shutil

    from precompute.cli import main
    from precompute.stages import GromovWassersteinKNN

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert main(["analyse", str(copy), "--distance", "gw", "--quiet"]) == 0
    assert "gw: 3 classes analysed" in capsys.readouterr().err
    store = RunStore(copy)
    cid = store.finished_ids()[0]
    assert store.analysis_names(cid) == ["euclidean", "gw"]
    heatmaps = np.asarray(store.heatmaps(cid), dtype=np.float32)
    config = store.summary(cid, "gw")["config"]
    direct = GromovWassersteinKNN(n_neighbors=config["neighbors"], random_state=config["seed"]).fit(
        heatmaps.reshape(len(heatmaps), -1), shape=heatmaps.shape[1:])
    np.testing.assert_array_equal(store.arrays(cid, "gw")["knn_indices"], direct.indices_)
    assert main(["evaluate", str(copy)]) == 0
    primary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["evaluate", str(copy), "--analysis", "gw"]) == 0
    gw = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert gw["analysis"] == "gw" and set(gw) == set(primary)
    for name, entry in primary["classes"].items():
        assert set(entry) == set(gw["classes"][name])
        assert gw["classes"][name]["tau"] == pytest.approx(store.summary(store.id_for_name(name), "gw")["tau"])
