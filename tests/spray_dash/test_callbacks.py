"""Explorer and lab callbacks driven through Dash's HTTP endpoint, as the browser drives them."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from precompute.lab import rgba_to_png
from precompute.store import ExperimentWriter, RunStore
from spray_dash import data, ids
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
        state=[(ids.CLASS_ID, "data", "c0000"), (ids.ANALYSIS, "data", None), (ids.SELECTION, "data", {"token": None})])
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
        state=[(ids.CLASS_ID, "data", "c0000"), (ids.ANALYSIS, "data", None), (ids.VIEW_STATE, "data", VIEW)],
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
        state=[(ids.CLASS_ID, "data", "c0001"), (ids.ANALYSIS, "data", None)])
    assert status == 200
    response = body["response"]
    tiles = response[ids.GALLERY]["children"]
    assert [int(t["props"]["data-index"]) for t in tiles] == chosen[48:60], "page 2 of 48 per page"
    assert all(t["props"]["className"] == "gallery-tile" for t in tiles)
    assert response[ids.GALLERY_NEXT]["disabled"] is True and response[ids.GALLERY_PREV]["disabled"] is False
    links = response[ids.EXPORT]["children"]
    assert links[0]["props"]["href"].startswith(f"/export/c0001.csv?sel={token}")


# -- the artifact lab ---------------------------------------------------------------------------
def callback_with(app, output: str) -> str:
    """The app's key of the one callback that has ``output`` (``id.prop``) among its outputs."""
    keys = [key for key in app.callback_map
            if any(part.split("@")[0] == output for part in key.strip(".").split("..."))]
    assert len(keys) == 1, keys
    return keys[0]


@pytest.fixture
def run_with_images(app, synthetic_run, tmp_path):
    """The synthetic run with the images of class_0003, all the same flat grey, served by the session's app."""
    run = tmp_path / "run"
    shutil.copytree(synthetic_run, run, ignore=shutil.ignore_patterns("experiments"))
    store = RunStore(run)
    for path in store.arrays("c0003")["paths"]:
        target = store.data_root() / str(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(target)
    data.configure(app.server, run)
    yield store
    data.configure(app.server, synthetic_run)


def test_placement_controls_follow_the_placement(app, client):
    outputs = [(ids.LAB_CORNER, "disabled"), (ids.LAB_X, "disabled"), (ids.LAB_Y, "disabled")]
    for mode, expected in (("original", [True, True, True]), ("corner", [False, True, True]),
                           ("xy", [True, False, False]), ("random", [True, True, True])):
        status, body = post_callback(client, callback_with(app, f"{ids.LAB_CORNER}.disabled"), outputs,
                                     inputs=[(ids.LAB_PLACEMENT, "value", mode)])
        assert status == 200
        assert [body["response"][cid][prop] for cid, prop in outputs] == expected, mode


def test_the_lab_says_why_no_artifact_was_proposed(app, client, run_with_images):
    """A region covering most of the image is refused, and "Propose again" shows why."""
    token = encode_mask(range(90), 90)
    draft = ExperimentWriter(run_with_images).save_artifact_draft(
        {"name": "class_0003-proposal", "class": "class_0003", "position": [0, 0], "size": [24, 24],
         "source": "proposal", "selection": f"c0003:{token}"}, rgba_to_png(np.full((24, 24, 4), 255, np.uint8)))
    outputs = [(ids.LAB_ARTIFACT, "options"), (ids.LAB_ARTIFACT, "value"), (ids.LAB_UPLOAD_MESSAGE, "children")]
    repropose = next(key for key in app.callback_map if ids.LAB_REPROPOSE in str(app.callback_map[key]["inputs"]))
    status, body = post_callback(
        client, repropose, outputs,
        inputs=[(ids.LAB_REPROPOSE, "n_clicks", 1)],
        state=[(ids.LAB_ARTIFACT, "value", draft["id"]), (ids.LAB_THRESHOLD, "value", 0.1),
               (ids.LAB_SHARED, "value", ["shared"])])
    assert status == 200, body
    message = json.dumps(body["response"][ids.LAB_UPLOAD_MESSAGE]["children"], ensure_ascii=False)
    assert "no artifact proposed" in message and "(the limit is 50%)" in message

    # the whole-image draft itself (e.g. proposed before the limit) is flagged where it is previewed
    response = _show_artifact(app, client, draft["id"])
    facts = {row["props"]["children"][0]["props"]["children"]: row["props"]["children"][1]["props"]["children"]
             for row in response[ids.LAB_FACTS]["children"]}
    assert facts["covers"] == "100% of the image" and "replaces most of each target" in facts["warning"]
    assert response[ids.LAB_PREVIEW_BOX]["className"] == "checkerboard dark", "white: on a dark background"
    assert response[ids.LAB_PLACEMENT]["value"] == "original"


def _show_artifact(app, client, artifact_id):
    """The lab's response to choosing an artifact: preview, facts, origin and placement."""
    outputs = [(ids.LAB_PREVIEW, "src"), (ids.LAB_FACTS, "children"), (ids.LAB_ADJUST, "style"),
               (ids.LAB_ORIGIN, "value"), (ids.LAB_PLACEMENT, "value"), (ids.LAB_PLACEMENT, "options"),
               (ids.LAB_PREVIEW_BOX, "className")]
    status, body = post_callback(client, callback_with(app, f"{ids.LAB_PREVIEW}.src"), outputs,
                                 inputs=[(ids.LAB_ARTIFACT, "value", artifact_id)],
                                 state=[(ids.LAB_ORIGIN, "value", None)])
    assert status == 200, body
    return body["response"]


def test_an_artifact_without_one_place_starts_at_random_places(app, client, run_with_images):
    """The demo's barcode is planted at a new place in each image: its library entry has no position
    and asks for random placement, so the lab starts there, with "where it was found" disabled."""
    draft = ExperimentWriter(run_with_images).save_artifact_draft(
        {"name": "barcode", "class": "class_0001", "position": None, "size": [12, 4], "placement": "random"},
        rgba_to_png(np.full((4, 12, 4), 255, np.uint8)))
    response = _show_artifact(app, client, draft["id"])
    assert response[ids.LAB_PLACEMENT]["value"] == "random"
    options = {option["value"]: option["disabled"] for option in response[ids.LAB_PLACEMENT]["options"]}
    assert options["original"] is True and options["random"] is False


def test_a_refused_proposal_is_explained_beside_the_button(app, client):
    """Errors of "Propose artifact" went to the Sample panel's message, far from the button."""
    outputs = [(ids.NAVIGATE_LAB, "href"), (ids.INSPECTOR_MESSAGE, "children"), (ids.PROPOSE_MESSAGE, "children")]
    status, body = post_callback(
        client, callback_with(app, f"{ids.PROPOSE_MESSAGE}.children"), outputs,
        inputs=[(ids.PROPOSE, "n_clicks", 1), (ids.INSPECTOR_CUT, "n_clicks", 0)],
        state=[(ids.SELECTION, "data", {"token": encode_mask(range(10), 90), "count": 10, "cluster": None}),
               (ids.INSPECTOR_GRAPH, "relayoutData", None), (ids.FOCUS, "data", None), (ids.CLASS_ID, "data", "c0001")],
        changed=[f"{ids.PROPOSE}.n_clicks"])
    assert status == 200, body
    response = body["response"]
    assert "⚠" in json.dumps(response[ids.PROPOSE_MESSAGE]["children"], ensure_ascii=False)
    assert ids.NAVIGATE_LAB not in response and ids.INSPECTOR_MESSAGE not in response
