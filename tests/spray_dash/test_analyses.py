"""Several analyses per class in the app: a τ column each on the leaderboard, the explorer's analysis
switch with its URL state, and the explorer's callbacks on an added analysis."""
import shutil

import numpy as np
import pytest

from precompute.analyses import add_analysis
from precompute.store import RunStore
from spray_dash import data, ids, views
from tests.spray_dash.conftest import post_callback


def post_single(client, output, inputs, state, changed=()):
    """POST a one-output callback as the browser does (its output is an object, not a list)."""
    def props(items):
        return [{"id": cid, "property": prop, "value": value} for cid, prop, value in items]

    payload = {"output": f"{output[0]}.{output[1]}", "outputs": {"id": output[0], "property": output[1]},
               "inputs": props(inputs), "state": props(state), "changedPropIds": list(changed)}
    response = client.post("/_dash-update-component", json=payload)
    assert response.status_code == 200, response.data
    return response.get_json()["response"][output[0]][output[1]]


@pytest.fixture(scope="module")
def run_with_cosine(synthetic_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("analyses") / "run"
    shutil.copytree(synthetic_run, out, ignore=shutil.ignore_patterns("experiments"))
    add_analysis(out, "cosine", progress=False, log=lambda message: None)
    last = RunStore(out).finished_ids()[-1]  # one class with a GW analysis too (its prototype is a medoid)
    add_analysis(out, "gw", classes=[last], progress=False, log=lambda message: None)
    return out


@pytest.fixture
def served(app, synthetic_run, run_with_cosine):
    data.configure(app.server, run_with_cosine)
    yield RunStore(run_with_cosine)
    data.configure(app.server, synthetic_run)


def test_leaderboard_has_a_tau_column_per_added_analysis(app, served):
    from spray_dash.pages import leaderboard

    with app.server.app_context():
        rows = data.leaderboard()
        fields = [column["field"] for column in leaderboard.columns(rows)]
    assert "analysis_tau_cosine" in fields and fields.index("tau") < fields.index("analysis_tau_cosine")
    for row in rows:
        assert row["analysis_tau_cosine"] == pytest.approx(served.summary(row["id"], "cosine")["tau"], abs=1e-5)


def test_explorer_view_of_an_added_analysis(app, served):
    cid = served.finished_ids()[0]
    with app.server.app_context():
        primary, cosine = data.class_view(cid), data.class_view(cid, analysis="cosine")
    assert primary.analyses == cosine.analyses == ["euclidean", "cosine"]
    assert (primary.analysis, cosine.analysis) == ("euclidean", "cosine")
    np.testing.assert_array_equal(primary.paths, cosine.paths)
    stored = served.arrays(cid, "cosine")
    np.testing.assert_array_equal(cosine.spectral, stored["eigenvectors"])
    np.testing.assert_array_equal(cosine.maps["tsne"], stored["maps"][0])
    assert cosine.summary["tau"] == served.summary(cid, "cosine")["tau"]
    assert [o["value"] for o in views.analysis_options(cosine)] == ["euclidean", "cosine"]
    assert views.analysis_query(primary) == "" and views.analysis_query(cosine) == "&analysis=cosine"
    assert views.requested_analysis(primary.analyses, "cosine") == "cosine"
    assert views.requested_analysis(primary.analyses, "gw") is None  # a stale URL shows the primary analysis


def test_explorer_page_switches_analysis_and_keeps_it_in_the_url(app, client, served):
    cid = served.finished_ids()[0]
    name = served.summary(cid)["name"]
    page = client.get(f"/class/{name}?analysis=cosine")
    assert page.status_code == 200
    with app.server.app_context():
        from spray_dash.pages import explorer

        layout = str(explorer.layout(name=name, analysis="cosine"))
        assert "'data': 'cosine'" in layout.replace('"', "'") or "data='cosine'" in layout
    href = post_single(client, (ids.NAVIGATE_ANALYSIS, "href"), inputs=[(ids.ANALYSIS_SELECT, "value", "cosine")],
                       state=[(ids.ANALYSIS, "data", "euclidean"), (ids.CLASS_ID, "data", cid)],
                       changed=[f"{ids.ANALYSIS_SELECT}.value"])
    assert href == f"/class/{name}?analysis=cosine"
    view = {"map": "tsne", "dims": "1,2", "color": "kmeans", "k": 2}
    url = post_single(client, (ids.URL_SYNC, "data"),
                      inputs=[(ids.VIEW_STATE, "data", view), (ids.SELECTION, "data", {"token": None}),
                              (ids.GALLERY_PAGE, "data", 0)],
                      state=[(ids.CLASS_ID, "data", cid), (ids.ANALYSIS, "data", "cosine")])
    assert url.startswith(f"/class/{name}?map=tsne") and url.endswith("&analysis=cosine")


def test_cluster_buttons_follow_the_added_analysis(app, client, served):
    cid = served.finished_ids()[0]
    outputs = [(ids.EMBEDDING, "figure"), (ids.CLUSTER_BUTTONS, "children"), (ids.K_SELECT, "options"),
               (ids.K_SELECT, "value"), (ids.K_SELECT, "disabled"), (ids.SPECTRAL_DIMS, "style"),
               (ids.VIEW_STATE, "data")]
    counts = {}
    for analysis in ("euclidean", "cosine"):
        status, body = post_callback(
            client, ".." + "...".join(f"{cid}.{prop}" for cid, prop in outputs) + "..", outputs,
            inputs=[(ids.MAP_SELECT, "value", "tsne"), (ids.SPECTRAL_X, "value", 1), (ids.SPECTRAL_Y, "value", 2),
                    (ids.COLOR_SELECT, "value", "ward"), (ids.K_SELECT, "value", 5)],
            state=[(ids.CLASS_ID, "data", cid), (ids.ANALYSIS, "data", analysis), (ids.SELECTION, "data", None)])
        assert status == 200, body
        buttons = body["response"][ids.CLUSTER_BUTTONS]["children"]
        counts[analysis] = [int(b["props"]["children"][2]["props"]["children"]) for b in buttons]
        arrays = served.arrays(cid, analysis)
        names = [str(n) for n in arrays["clustering_names"]]
        assert counts[analysis] == np.bincount(arrays["clustering_labels"][names.index("ward-k5")]).tolist()


def test_export_carries_the_cluster_labels_of_the_analysis_shown(app, client, served):
    import csv
    import io

    from spray_dash.selection import encode_mask

    cid = served.finished_ids()[0]
    n = served.summary(cid)["n"]
    token = encode_mask(list(range(n)), n)
    found = {}
    for analysis in ("euclidean", "cosine"):
        query = f"?sel={token}&clustering=ward-k5" + ("" if analysis == "euclidean" else "&analysis=cosine")
        response = client.get(f"/export/{cid}.csv{query}")
        assert response.status_code == 200
        rows = [row for row in csv.reader(io.StringIO(response.get_data(as_text=True))) if row and
                not row[0].startswith("#")]
        column = rows[0].index("cluster")
        found[analysis] = [int(row[column]) for row in rows[1:]]
        arrays = served.arrays(cid, analysis)
        names = [str(name) for name in arrays["clustering_names"]]
        assert found[analysis] == arrays["clustering_labels"][names.index("ward-k5")].tolist()
    assert client.get(f"/export/{cid}.csv?sel={token}&clustering=ward-k5&analysis=gw").status_code == 404


def test_a_gw_selection_has_its_medoid_as_prototype(app, client, served):
    """Under GW (shapes at any place) the prototype is the selection's medoid, not the smeared mean."""
    from PIL import Image
    import io

    from spray_dash.routes import prototype_url
    from spray_dash.selection import encode_mask, selection_medoid

    cid = served.finished_ids()[-1]
    arrays = served.arrays(cid, "gw")
    n = len(arrays["knn_indices"])
    labels = arrays["clustering_labels"][0]
    chosen = np.flatnonzero(labels == labels[0])
    token = encode_mask(chosen, n)
    medoid = selection_medoid(arrays["knn_indices"], arrays["knn_distances"], chosen)
    assert medoid in chosen
    with app.server.app_context():
        expected = data.medoid_heatmap_image(cid, tuple(int(i) for i in chosen), "gw")
        mean = data.mean_heatmap_image(cid, tuple(int(i) for i in chosen))
    response = client.get(prototype_url(cid, token, "gw"))
    assert response.status_code == 200 and response.data == expected != mean
    assert client.get(prototype_url(cid, token)).data == mean
    # the medoid's own heatmap, coloured as every heatmap is
    shown = np.asarray(Image.open(io.BytesIO(response.data)).convert("RGB"), dtype=np.int16)
    heatmap = np.asarray(served.heatmaps(cid)[medoid], dtype=np.float64)
    from precompute.thumbs import heatmap_rgb

    reference = heatmap_rgb(heatmap).astype(np.int16)
    factor = shown.shape[0] // reference.shape[0]
    assert np.abs(shown[::factor, ::factor] - reference).mean() < 6  # lossy WebP
    other = next(cid2 for cid2 in served.finished_ids() if "gw" not in served.analysis_names(cid2))
    assert client.get(prototype_url(other, encode_mask(np.arange(3), n), "gw")).status_code == 404
