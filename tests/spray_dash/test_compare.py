"""Several runs served at once: the compare page's view models, the leaderboard's columns for the
other runs, thumbnails of another run, and the page's callback driven as the browser drives it."""
import json
import shutil

import numpy as np
import pytest

from precompute.store import RunStore
from precompute.synthetic import write_synthetic_store
from spray_dash import compare_views as cv
from spray_dash import data, ids
from spray_dash.selection import encode_mask
from tests.spray_dash.conftest import callback_key, post_callback


# -- pure view models -----------------------------------------------------------------------------
def test_best_match_is_the_cluster_with_the_highest_f1():
    rng = np.random.default_rng(0)
    names = ["kmeans-k2", "kmeans-k4", "ward-k3"]
    labels = np.stack([rng.integers(0, k, 60) for k in (2, 4, 3)])
    selected = np.zeros(60, dtype=bool)
    selected[labels[1] == 2] = True  # exactly cluster 2 of kmeans-k4 ...
    selected[np.flatnonzero(labels[1] != 2)[:3]] = True  # ... and three samples outside it
    match = cv.best_match(selected, names, labels)
    # brute force over every cluster, with sets
    chosen = set(np.flatnonzero(selected))
    scores = {(name, c): 2 * len(chosen & set(np.flatnonzero(row == c))) / (len(chosen) + (row == c).sum())
              for name, row in zip(names, labels) for c in np.unique(row)}
    best = max(scores, key=scores.get)
    assert (match.clustering, match.cluster) == best == ("kmeans-k4", 2)
    assert match.f1 == pytest.approx(scores[best])
    assert match.overlap == pytest.approx((labels[1] == 2).sum() / len(chosen))
    assert match.purity == 1.0 and match.label == "kmeans-k4/cluster-2"
    only = cv.best_match(selected, names, labels, only=["ward-k3"])
    assert only.clustering == "ward-k3" and only.f1 == pytest.approx(
        max(v for (name, _), v in scores.items() if name == "ward-k3"))
    assert cv.best_match(np.zeros(60, dtype=bool), names, labels) is None


def test_shared_samples_match_paths_whatever_the_order():
    here, there = cv.shared_samples(["a", "b", "c", "d"], ["d", "x", "b", "a"])
    assert here.tolist() == [0, 1, 3] and there.tolist() == [3, 2, 0]
    assert cv.shared_samples(["a"], ["b"])[0].size == 0


def test_runs_leaderboard_adds_tau_rank_and_rank_change_of_each_other_run():
    rows = [{"name": "a", "rank": 1, "tau": 3.0}, {"name": "b", "rank": 2, "tau": 2.0},
            {"name": "c", "rank": None, "tau": None}]
    other = [{"name": "b", "rank": 1, "tau": 5.0}, {"name": "a", "rank": 2, "tau": 1.0}]
    out = cv.runs_leaderboard(rows, {"resnet": other})
    assert [(r["tau_run0"], r["rank_run0"], r["rank_change_run0"]) for r in out] == [
        (1.0, 2, -1), (5.0, 1, 1), (None, None, None)]
    assert "tau_run0" not in rows[0]  # the input rows are not changed
    assert [cv.rank_change_text(v) for v in (1, -2, 0, None)] == ["▲1", "▼2", "=", "—"]
    group = cv.run_columns(["resnet"])[0]
    assert group["headerName"] == "resnet" and [c["field"] for c in group["children"]] == [
        "tau_run0", "rank_run0", "rank_change_run0"]


def test_parse_runs_keeps_served_runs_in_order():
    assert cv.parse_runs("b,x,a,b", ["a", "b", "c"]) == ["b", "a"]
    assert cv.parse_runs("", ["a", "b"]) == ["a", "b"]
    assert cv.parse_runs("nope", ["a", "b"]) == ["a", "b"]


def test_default_cluster_is_the_suspect_else_the_smallest():
    names = ["kmeans_lead-k3"]
    labels = np.array([[0, 0, 0, 1, 1, 2, 2, 2, 2]])
    summary = {"default_clustering": "kmeans_lead-k3"}
    assert cv.default_cluster(names, labels, summary) == "kmeans_lead-k3/cluster-1"
    assert cv.default_cluster(names, labels, {**summary, "validation_suspect": {"cluster": 2}}) == \
        "kmeans_lead-k3/cluster-2"
    assert cv.default_cluster(names, labels, {}) is None
    assert [o["value"] for o in cv.cluster_options(names, labels, summary)] == [
        f"kmeans_lead-k3/cluster-{c}" for c in range(3)]
    assert cv.cluster_indices("kmeans_lead-k3/cluster-1", names, labels).tolist() == [3, 4]
    assert cv.cluster_indices("kmeans_lead-k3/cluster-7", names, labels) is None
    assert cv.cluster_indices("nonsense", names, labels) is None


# -- two runs served --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def second_run(tmp_path_factory):
    """Another run of the synthetic data (same paths; another seed and other planted classes: other clusters and ranks)."""
    out = tmp_path_factory.mktemp("second") / "other-model"
    write_synthetic_store(out, n_classes=4, n_per_class=90, size=24, planted_every=3, maps=("tsne",), seed=1)
    return out


@pytest.fixture
def two_runs(app, synthetic_run, second_run):
    data.configure(app.server, [synthetic_run, second_run])
    yield synthetic_run, second_run
    data.configure(app.server, synthetic_run)  # the session's app serves the synthetic run again


def test_runs_are_named_by_folder_and_a_name_clash_is_refused(app, synthetic_run, tmp_path, two_runs):
    with app.server.app_context():
        assert data.run_names() == ["run", "other-model"]
        assert data.leaderboard("other-model") != data.leaderboard()
    clash = tmp_path / "x" / "run"
    shutil.copytree(synthetic_run, clash, ignore=shutil.ignore_patterns("experiments"))
    with pytest.raises(Exception, match="two runs are called 'run'"):
        data.configure(app.server, [synthetic_run, clash])


def test_leaderboard_shows_each_run_side_by_side(app, client, two_runs):
    from spray_dash.pages import leaderboard

    with app.server.app_context():
        rows, columns = leaderboard.with_other_runs(data.leaderboard())
        other = {row["name"]: row for row in data.leaderboard("other-model")}
    assert [group.get("headerName") for group in columns if "children" in group] == ["other-model"]
    assert columns[-1]["cellRenderer"] == "CompareLink"
    for row in rows:
        assert row["tau_run0"] == other[row["name"]]["tau"]
        assert row["rank_change_run0"] == row["rank"] - other[row["name"]]["rank"]
    assert any(row["rank_change_run0"] != 0 for row in rows)  # the seeds rank the classes differently


def test_thumbnails_of_another_run_and_unknown_runs(client, two_runs):
    first, second = two_runs
    mine = client.get("/thumb/c0000/heatmap/3.webp")
    theirs = client.get("/thumb/c0000/heatmap/3.webp?run=other-model")
    assert mine.status_code == theirs.status_code == 200
    assert theirs.data == RunStore(second).thumbnail("c0000", "heatmap", 3)
    assert theirs.data != mine.data and theirs.headers["ETag"] != mine.headers["ETag"]
    assert client.get("/thumb/c0000/heatmap/3.webp?run=../run").status_code == 404
    assert client.get("/thumb/c0000/heatmap/3.webp?run=nope").status_code == 404


OUTPUTS = [(ids.COMPARE_CLUSTER, "options"), (ids.COMPARE_CLUSTER, "value"), (ids.COMPARE_SELECTION, "data"),
           (ids.COMPARE_NOTE, "children"), (ids.COMPARE_TABLE, "children"), (ids.COMPARE_MAPS, "children"),
           (ids.COMPARE_HEATMAPS, "children"), (ids.COMPARE_URL_SYNC, "data")]


def _compare(app, client, runs, name, cluster=None, token=None, changed=()):
    status, body = post_callback(client, callback_key(app, f"{ids.COMPARE_CLUSTER}.options"), OUTPUTS,
                                 inputs=[(ids.COMPARE_RUNS, "value", runs), (ids.COMPARE_CLASS, "value", name),
                                         (ids.COMPARE_CLUSTER, "value", cluster)],
                                 state=[(ids.COMPARE_SELECTION, "data", token)], changed=changed)
    assert status == 200, body
    return body["response"]


def _texts(component) -> str:
    return json.dumps(component)


def test_compare_finds_the_group_in_the_other_run(app, client, two_runs):
    first, second = two_runs
    a, b = RunStore(first).arrays("c0000"), RunStore(second).arrays("c0000")
    names = [str(n) for n in a["clustering_names"]]
    response = _compare(app, client, ["run", "other-model"], "class_0000")
    cluster = response[ids.COMPARE_CLUSTER]["value"]
    summary = RunStore(first).summary("c0000")
    assert cluster.startswith(summary["default_clustering"] + "/cluster-")
    c = int(cluster.rsplit("-", 1)[1])
    group = np.flatnonzero(a["clustering_labels"][names.index(summary["default_clustering"])] == c)
    # the best match in the other run, by brute force over its stored clusterings
    where = {str(p): j for j, p in enumerate(b["paths"])}
    chosen = {where[str(a["paths"][i])] for i in group}
    best = max(2 * len(chosen & set(np.flatnonzero(row == k))) / (len(chosen) + (row == k).sum())
               for row in b["clustering_labels"] for k in np.unique(row))
    table = _texts(response[ids.COMPARE_TABLE]["children"])
    assert f"F1 {best:.2f}" in table and "reference" in table
    heatmaps = _texts(response[ids.COMPARE_HEATMAPS]["children"])
    assert "?run=other-model" in heatmaps and "/thumb/c0000/heatmap/" in heatmaps
    maps = response[ids.COMPARE_MAPS]["children"]
    assert [panel["props"]["data-run"] for panel in maps] == ["run", "other-model"]
    url = response[ids.COMPARE_URL_SYNC]["data"]
    assert "runs=run%2Cother-model" in url and "class=class_0000" in url and "cluster=" in url


def test_compare_takes_the_explorers_selection_and_the_reference_order(app, client, two_runs):
    token = encode_mask([0, 1, 2, 3, 4], 90)
    response = _compare(app, client, ["other-model", "run"], "class_0001", cluster=None, token=token)
    assert response[ids.COMPARE_CLUSTER]["value"] == "selection"
    assert "the explorer's selection (5 samples) of other-model" in _texts(response[ids.COMPARE_NOTE]["children"])
    assert f"sel={token}" in response[ids.COMPARE_URL_SYNC]["data"]
    # choosing a cluster drops the selection
    changed = _compare(app, client, ["other-model", "run"], "class_0001", cluster="kmeans-k2/cluster-0",
                       token=token, changed=[f"{ids.COMPARE_CLUSTER}.value"])
    assert changed[ids.COMPARE_SELECTION]["data"] is None and "sel=" not in changed[ids.COMPARE_URL_SYNC]["data"]
    assert changed[ids.COMPARE_CLUSTER]["value"] == "kmeans-k2/cluster-0"


def test_compare_page_layout_and_a_single_run(app, two_runs, synthetic_run):
    from spray_dash.pages import compare

    with app.server.app_context():
        page = compare.layout(runs="other-model,run", **{"class": "class_0002"})
        unknown = compare.layout(runs="nope", **{"class": "no such class"})
    assert page[ids.COMPARE_RUNS].value == ["other-model", "run"] and page[ids.COMPARE_CLASS].value == "class_0002"
    assert unknown[ids.COMPARE_RUNS].value == ["run", "other-model"]
    assert unknown[ids.COMPARE_CLASS].value == data.leaderboard()[0]["name"]  # the reference's top class
    data.configure(app.server, synthetic_run)
    with app.server.app_context():
        single = compare.layout()
    assert "One run is served" in str(single)
