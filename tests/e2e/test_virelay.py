"""ViRelAy projects imported as run stores, served by the real app in a real headless Chromium.

Two stores: the demo exported to ViRelAy and imported back (``export-virelay`` then
``import-virelay``), and a project written as CoRelAy writes one (WordNet-id categories,
``kmeans-02``, DBSCAN with noise, HDBSCAN, a 1,000-label map, no model). Each shows its
classes on the leaderboard and opens a class explorer, with a console free of errors
and warnings.
"""
from urllib.parse import quote

import pytest

from precompute.interop import export_virelay, import_virelay
from precompute.store import RunStore
from tests.e2e.conftest import Server, needs_chromium
from tests.precompute.interop.projects import CLASSES, write_corelay_project

pytestmark = needs_chromium

PLOT_READY = "document.querySelector('#embedding .js-plotly-plot')?._fullData?.[0]?.x?.length > 0"
THUMBS_READY = ("Array.from(document.querySelectorAll('.gallery-tile img')).length > 0 && "
                "Array.from(document.querySelectorAll('.gallery-tile img')).every(i => i.complete && i.naturalWidth > 0)")


@pytest.fixture(scope="module")
def imported_runs(demo_run, tmp_path_factory, artifacts_dir):
    """``{"demo": run, "corelay": run}``, each served by its own ``python app.py RUN``."""
    folder = tmp_path_factory.mktemp("virelay-e2e")
    export_virelay(demo_run, folder / "demo-project")
    import_virelay(folder / "demo-project" / "project.yaml", folder / "demo")
    write_corelay_project(folder / "corelay-project")
    import_virelay(folder / "corelay-project" / "project.yaml", folder / "corelay")
    servers = {name: Server(folder / name) for name in ("demo", "corelay")}
    yield {name: (folder / name, server) for name, server in servers.items()}
    for server in servers.values():
        server.stop()


def leaderboard_names(page):
    page.wait_for_selector("#leaderboard .ag-row")
    return page.eval_on_selector_all("#leaderboard .ag-center-cols-container .ag-row [col-id=name]",
                                     "cells => cells.map(c => c.innerText)")


@pytest.mark.parametrize("store", ["demo", "corelay"])
def test_an_imported_project_shows_its_classes_and_opens_an_explorer(page, imported_runs, artifacts_dir, store):
    run, server = imported_runs[store]
    records = RunStore(run).classes()
    page.goto(server.url + "/")
    names = leaderboard_names(page)
    assert sorted(names) == sorted(r.name for r in records)
    page.screenshot(path=str(artifacts_dir / f"virelay-{store}-leaderboard.png"), full_page=True)
    top = max(records, key=lambda r: r.summary["tau"]).name
    page.click(f"#leaderboard a.class-link:text-is('{top}')")
    page.wait_for_url(f"**/class/{quote(top)}*")
    page.wait_for_function(PLOT_READY)
    page.goto(f"{server.url}/class/{quote(top)}?cluster=0")  # a cluster selected: its gallery of thumbnails
    page.wait_for_function(PLOT_READY)
    page.wait_for_function(THUMBS_READY)
    page.screenshot(path=str(artifacts_dir / f"virelay-{store}-explorer.png"), full_page=True)
    assert page.console_errors == [] and page.console_warnings == []


def test_a_corelay_clustering_colours_the_map(page, imported_runs):
    """A clustering family only CoRelAy has (DBSCAN, noise as its own cluster) is offered and drawn."""
    run, server = imported_runs["corelay"]
    name = CLASSES[0][1]
    page.goto(f"{server.url}/class/{quote(name)}?map=tsne&color=dbscan_eps_0_5&k=4")
    page.wait_for_function(PLOT_READY)
    colors = page.evaluate("() => new Set(document.querySelector('#embedding .js-plotly-plot')"
                           "._fullData[0].marker.color).size")
    store = RunStore(run)
    arrays = store.arrays(store.id_for_name(name))
    labels = arrays["clustering_labels"][list(arrays["clustering_names"]).index("dbscan_eps_0_5-k4")]
    assert colors == len(set(labels.tolist()))
    assert page.console_errors == [] and page.console_warnings == []
