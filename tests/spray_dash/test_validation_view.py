"""Training and validation in the app, on the test demo (analysed with its held-out split):
the leaderboard's column, the split colouring and the validation tiles."""
import numpy as np
import pytest

from precompute.store import RunStore
from spray_dash import data, explorer_components, views
from spray_dash.selection import ViewState


@pytest.fixture
def demo_app(app, demo_run, synthetic_run):
    data.configure(app.server, demo_run)
    yield RunStore(demo_run)
    data.configure(app.server, synthetic_run)


def test_leaderboard_counts_validation_images_in_the_suspect_cluster(demo_app, client):
    from spray_dash.pages import leaderboard  # registers a page: only once the app exists

    rows = {row["name"]: row for row in data.leaderboard()}
    star = demo_app.summary(demo_app.id_for_name("star"))
    assert rows["star"]["validation_in_suspect"] == star["validation_suspect"]["n_validation"]
    assert rows["star"]["n_validation"] == star["n_validation"] > 0
    assert "validation_in_suspect" in [column["field"] for column in leaderboard.columns(list(rows.values()))]
    assert client.get("/").status_code == 200


def test_split_colouring_groups_and_tiles(demo_app):
    cid = demo_app.id_for_name("star")
    view = data.class_view(cid)
    assert "split" in views.plain_colors(view)
    state = ViewState(color="split")
    colors, colorbar = views.coloring(view, state)
    groups = views.groups(view, state)
    assert [group.label for group in groups] == ["training", "validation"] and colorbar is None
    validation = groups[1].indices
    np.testing.assert_array_equal(validation, np.flatnonzero(view.split == 1))
    assert len({colors[i] for i in validation}) == 1 and colors[validation[0]] != colors[groups[0].indices[0]]
    item = views.gallery_items(view, [int(validation[0])], data.label_names())[0]
    assert item.validation and item.path.startswith("../holdout/star/")
    tile = str(explorer_components.gallery_tile(item))
    assert "tile-split" in tile and "(validation)" in explorer_components.tile_title(item)
    assert not views.gallery_items(view, [0], data.label_names())[0].validation
