"""Right-reason scores and perturbation maps in the app: leaderboard columns, colour modes, the
gallery's mask outline, the inspector's occlusion map; and a run without them shows none of it."""
import shutil

import numpy as np
import pytest

from precompute.masks import outline_thumbnail, pack_masks
from precompute.perturb import cell_cover, off_object_share
from precompute.right_reason import right_reason_scores
from precompute.store import CLASS_MASKS, PERTURBATION, RunStore, RunWriter
from spray_dash import data, explorer_components, figures, views
from spray_dash.selection import ViewState


def _add_masks_and_scan(run, cid, grid=4):
    """Give class ``cid`` a centred square mask per sample and a random perturbation scan."""
    writer = RunWriter(run)
    heatmaps = np.asarray(writer.heatmaps(cid), dtype=np.float32)
    n, h, w = heatmaps.shape
    masks = np.zeros((n, h, w), bool)
    masks[:, h // 4:3 * h // 4, w // 4:3 * w // 4] = True
    score, chance = right_reason_scores(heatmaps, masks)
    outlines = [outline_thumbnail(m, 64) for m in masks]
    offsets = np.concatenate([[0], np.cumsum([len(o) for o in outlines])]).astype(np.int64)
    writer.write_class_part(cid, CLASS_MASKS, {
        "object_mask": pack_masks(masks), "right_reason": score, "chance": chance,
        "thumbs_mask": np.frombuffer(b"".join(outlines), np.uint8), "thumb_offsets_mask": offsets},
        {"right_reason": float(np.nanmean(score)), "right_reason_chance": float(chance.mean()),
         "masks": {"root": "/m", "share": 0.8, "scored": n}})
    maps = np.random.default_rng(0).normal(size=(n, grid, grid)).astype(np.float32)
    cover = cell_cover(masks, grid)
    off = off_object_share(maps, cover)
    writer.write_class_part(cid, PERTURBATION, {"maps": maps, "base_prob": np.ones(n, np.float32),
                                                "off_object": off, "reference_cover": cover},
                            {"off_object_sensitivity": float(np.nanmean(off)),
                             "perturbation": {"grid": grid, "fill": "image mean colour", "reference": "mask"}})
    return score, maps


@pytest.fixture
def scored_run(app, synthetic_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(synthetic_run, run, ignore=shutil.ignore_patterns("experiments", "variants", "search"))
    store = RunStore(run)
    cid = store.finished_ids()[0]
    score, maps = _add_masks_and_scan(run, cid)
    data.configure(app.server, run)
    yield store, cid, score, maps
    data.configure(app.server, synthetic_run)


def _leaderboard():
    from spray_dash.pages import leaderboard  # registers a page: only once the app exists

    return leaderboard


def test_a_run_without_masks_or_scan_shows_no_column_and_no_error(client):
    leaderboard = _leaderboard()
    rows = data.leaderboard()
    assert all(row["right_reason"] is None and row["off_object_sensitivity"] is None for row in rows)
    fields = {column["field"] for column in leaderboard.columns(rows)}
    assert not fields & {"right_reason", "off_object_sensitivity"}
    assert fields >= {column["field"] for column in leaderboard.COLUMNS}
    assert client.get("/").status_code == 200
    view = data.class_view(rows[0]["id"])
    values = [option["value"] for option in views.color_options(view)]
    assert "right_reason" not in values and "off_object" not in values
    assert "right_reason" not in views.plain_colors(view)
    item = views.gallery_items(view, [0], data.label_names())[0]
    assert item.mask_url is None and "tile-mask" not in str(explorer_components.gallery_tile(item))
    assert explorer_components.sensitivity_panel(view, item, 24, 24) is None
    assert client.get(f"/thumb/{view.id}/mask/0.webp").status_code == 404


def test_leaderboard_gets_both_columns_where_some_class_has_them(scored_run, client):
    leaderboard = _leaderboard()
    store, cid, score, _ = scored_run
    rows = {row["id"]: row for row in data.leaderboard()}
    assert rows[cid]["right_reason"] == pytest.approx(np.nanmean(score), abs=1e-5)
    assert 0 <= rows[cid]["off_object_sensitivity"] <= 1
    assert all(row["right_reason"] is None for key, row in rows.items() if key != cid)
    fields = [column["field"] for column in leaderboard.columns(list(rows.values()))]
    assert fields[-2:] == ["right_reason", "off_object_sensitivity"]
    assert client.get("/").status_code == 200


def test_colour_modes_gallery_outline_and_inspector_map(scored_run, client):
    store, cid, score, maps = scored_run
    view = data.class_view(cid)
    values = [option["value"] for option in views.color_options(view)]
    assert "right_reason" in values and "off_object" in values
    colors, colorbar = views.coloring(view, ViewState(color="right_reason"))
    finite = np.isfinite(score)
    assert np.allclose(np.array(colors, dtype=float)[finite], score[finite], atol=1e-4)
    assert colorbar["cmin"] == 0 and colorbar["cmax"] == 1
    item = views.gallery_items(view, [3], data.label_names())[0]
    assert item.mask_url == f"/thumb/{cid}/mask/3.webp"
    assert "tile-mask" in str(explorer_components.gallery_tile(item))
    response = client.get(item.mask_url)
    assert response.status_code == 200 and response.mimetype == "image/webp"
    assert response.data == store.thumbnail(cid, "mask", 3)
    panel = explorer_components.sensitivity_panel(view, item, 24, 24)
    graph = next(child for child in panel.children if getattr(child, "id", None) == "sensitivity-graph")
    np.testing.assert_allclose(np.array(graph.figure.data[0].z), maps[3].round(4))
    assert "4×4 grid" in str(panel)


def test_sensitivity_figure_puts_cells_on_model_input_pixels():
    sensitivity = np.zeros((2, 2))
    sensitivity[1, 0] = 0.5
    fig = figures.sensitivity_figure("/thumb/c0000/image/0.webp", sensitivity, 64, 64)
    heat = fig.data[0]
    assert list(heat.x) == [16, 48] and list(heat.y) == [16, 48]
    assert fig.layout.yaxis.range == (64, 0)  # row 0 at the top, as in the image
    assert heat.zmin == -0.5 and heat.zmax == 0.5
