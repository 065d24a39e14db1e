"""Explorer callbacks driven through Dash's HTTP endpoint, as the browser drives them."""
import numpy as np

from precompute.store import RunStore
from spray_dash import ids
from spray_dash.selection import decode_mask, encode_mask
from tests.spray_dash.conftest import callback_key, post_callback

VIEW = {"map": "tsne", "dims": "1,2", "color": "ward", "k": 3}
EMBEDDING_OUTPUTS = [(ids.EMBEDDING, "figure"), (ids.CLUSTER_BUTTONS, "children"), (ids.K_SELECT, "options"),
                     (ids.K_SELECT, "value"), (ids.K_SELECT, "disabled"), (ids.SPECTRAL_DIMS, "style"),
                     (ids.VIEW_STATE, "data")]


def _output_key(outputs):
    return ".." + "...".join(f"{cid}.{prop}" for cid, prop in outputs) + ".."


def test_render_embedding_colours_by_the_chosen_clustering(client, synthetic_run):
    status, body = post_callback(
        client, _output_key(EMBEDDING_OUTPUTS), EMBEDDING_OUTPUTS,
        inputs=[(ids.MAP_SELECT, "value", "tsne"), (ids.SPECTRAL_X, "value", 1), (ids.SPECTRAL_Y, "value", 2),
                (ids.COLOR_SELECT, "value", "ward"), (ids.K_SELECT, "value", 3)],
        state=[(ids.CLASS_ID, "data", "c0000"), (ids.SELECTION, "data", {"token": None})])
    assert status == 200
    response = body["response"]
    figure = response[ids.EMBEDDING]["figure"]
    assert figure["layout"]["dragmode"] == "lasso"
    buttons = response[ids.CLUSTER_BUTTONS]["children"]
    labels = RunStore(synthetic_run).arrays("c0000")["clustering_labels"]
    names = list(RunStore(synthetic_run).arrays("c0000")["clustering_names"])
    counts = np.bincount(labels[names.index("ward-k3")])
    shown = [int(b["props"]["children"][2]["props"]["children"]) for b in buttons]
    assert shown == counts.tolist()
    assert response[ids.VIEW_STATE]["data"]["k"] == 3


def test_lasso_selection_becomes_a_mask(app, client, synthetic_run):
    outputs = [(ids.SELECTION, "data"), (ids.EMBEDDING, "figure"), (ids.GALLERY_PAGE, "data"),
               (ids.CLUSTER_BUTTONS, "children")]
    lasso = {"points": [{"customdata": i, "x": 0, "y": 0} for i in (3, 8, 21)]}
    status, body = post_callback(
        client, callback_key(app, f"{ids.SELECTION}.data"),
        outputs, inputs=[(ids.EMBEDDING, "selectedData", lasso),
                         ({"type": ids.CLUSTER_BUTTON, "index": 0}, "n_clicks", 0),
                         (ids.CLEAR_SELECTION, "n_clicks", 0)],
        state=[(ids.CLASS_ID, "data", "c0000"), (ids.VIEW_STATE, "data", VIEW)],
        changed=[f"{ids.EMBEDDING}.selectedData"])
    assert status == 200, body
    selection = body["response"][ids.SELECTION]["data"]
    n = RunStore(synthetic_run).summary("c0000")["n"]
    assert decode_mask(selection["token"], n).tolist() == [3, 8, 21] and selection["count"] == 3


def test_gallery_shows_the_selection(client):
    outputs = [(ids.GALLERY, "children"), (ids.GALLERY_PAGER, "children"), (ids.GALLERY_PREV, "disabled"),
               (ids.GALLERY_NEXT, "disabled"), (ids.PROTOTYPE, "children"), (ids.EXPORT, "children"),
               (ids.SELECTION_SUMMARY, "children")]
    chosen = list(range(0, 90, 1))[:60]
    token = encode_mask(chosen, 90)
    status, body = post_callback(
        client, _output_key(outputs), outputs,
        inputs=[(ids.SELECTION, "data", {"token": token, "count": 60, "cluster": None}),
                (ids.GALLERY_PAGE, "data", 1), (ids.VIEW_STATE, "data", VIEW)],
        state=[(ids.CLASS_ID, "data", "c0001")])
    assert status == 200
    response = body["response"]
    tiles = response[ids.GALLERY]["children"]
    assert [int(t["props"]["data-index"]) for t in tiles] == chosen[48:60], "page 2 of 48 per page"
    assert all(t["props"]["className"] == "gallery-tile" for t in tiles)
    assert response[ids.GALLERY_NEXT]["disabled"] is True and response[ids.GALLERY_PREV]["disabled"] is False
    links = response[ids.EXPORT]["children"]
    assert links[0]["props"]["href"].startswith(f"/export/c0001.csv?sel={token}")
