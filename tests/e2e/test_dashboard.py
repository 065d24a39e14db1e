"""The dashboard in a real headless Chromium: leaderboard, explorer, lasso, gallery, export, URL state."""
import csv
import io
import json
from collections import Counter
from urllib.parse import unquote

import numpy as np

from precompute.evaluate import read_truth
from precompute.store import RunStore
from tests.e2e.conftest import needs_chromium, record_console
from tests.helpers.plot_geometry import lasso_around, read_scatter

pytestmark = needs_chromium


FIGURE_STATE_JS = """() => {
  const trace = document.querySelector('#embedding .js-plotly-plot')._fullData[0];
  return {x: Array.from(trace.x), y: Array.from(trace.y), colors: Array.from(trace.marker.color)};
}"""


def ranked_names(run_dir):
    store = RunStore(run_dir)
    return [r.name for r in sorted(store.classes(), key=lambda r: (-r.summary["tau"], r.name))]


def grid_rows(page):
    page.wait_for_selector("#leaderboard .ag-row")
    return page.eval_on_selector_all(
        "#leaderboard .ag-center-cols-container .ag-row",
        "rows => rows.map(r => [Number(r.getAttribute('row-index')), r.querySelector('[col-id=name]').innerText])")


def test_leaderboard_lists_classes_in_tau_order(page, server, e2e_run, artifacts_dir):
    page.goto(server.url + "/")
    rows = sorted(grid_rows(page))
    assert [name for _, name in rows] == ranked_names(e2e_run)
    page.fill("#leaderboard-search", ranked_names(e2e_run)[-1])
    page.wait_for_function("document.querySelectorAll('#leaderboard .ag-center-cols-container .ag-row').length == 1")
    page.fill("#leaderboard-search", "")
    page.screenshot(path=str(artifacts_dir / "leaderboard.png"), full_page=True)
    assert page.console_errors == [] and page.console_warnings == []


def test_tau_overview_bars_open_their_class_without_plotly(page, server, e2e_run):
    page.goto(server.url + "/")
    page.wait_for_selector("#tau-overview .tau-bar")
    titles = page.eval_on_selector_all("#tau-overview .tau-bar", "bars => bars.map(b => b.title)")
    names = ranked_names(e2e_run)
    assert [t.split(" ", 1)[1].split(":")[0] for t in titles] == names
    assert page.evaluate("typeof window.Plotly") == "undefined", "the leaderboard does not need plotly.js"
    page.click("#tau-overview .tau-bar >> nth=1")
    page.wait_for_url(f"**/class/{names[1]}*")
    page.wait_for_selector("#embedding .js-plotly-plot")
    assert page.console_errors == [] and page.console_warnings == []


def collect_gallery(page):
    """Sample indices of every gallery page, paging with the real buttons."""
    indices = []
    while True:
        page.wait_for_selector(".gallery-tile")
        indices += [int(v) for v in page.eval_on_selector_all(".gallery-tile", "ts => ts.map(t => t.dataset.index)")]
        if page.is_disabled("#gallery-next"):
            return indices
        first = page.get_attribute(".gallery-tile", "data-index")
        page.click("#gallery-next")
        page.wait_for_function(f"document.querySelector('.gallery-tile').dataset.index !== '{first}'")


def test_lasso_a_planted_cluster_export_and_restore(page, browser, server, e2e_run, artifacts_dir):
    top = ranked_names(e2e_run)[0]
    page.goto(server.url + "/")
    page.click(f"#leaderboard a.class-link:text-is('{top}')")
    page.wait_for_url(f"**/class/{top}*")
    page.wait_for_selector("#embedding .js-plotly-plot .nsewdrag")
    page.wait_for_function("document.querySelector('#embedding .js-plotly-plot')._fullData[0].x.length > 0")
    scatter = read_scatter(page, "embedding")
    store = RunStore(e2e_run)
    cid = store.id_for_name(top)
    paths = store.arrays(cid)["paths"]
    assert sorted(scatter["ids"].tolist()) == list(range(len(paths))), "customdata holds every sample index"

    truth = read_truth(e2e_run / "truth.csv")
    carried = [truth[str(p)][1] for p in paths]
    assert any(carried), "the top class carries a planted artifact"
    # one artifact's group: a class with two (the demo's diamond) has two groups apart
    kind = Counter(name for name in carried if name).most_common(1)[0][0]
    planted = np.array([name == kind for name in carried])
    group = scatter["pixels"][planted[scatter["ids"]]]
    # the group's main body: a few artifact samples may sit among the clean ones
    distance = np.linalg.norm(group - np.median(group, axis=0), axis=1)
    group = group[distance <= np.quantile(distance, 0.9)]
    polygon, selected = lasso_around(page, group, scatter["pixels"])
    expected = sorted(scatter["ids"][selected].tolist())
    f1 = 2 * np.sum(planted[expected]) / (len(expected) + planted.sum())
    assert f1 >= 0.9, "the lasso encloses the planted group"

    page.wait_for_function(f"document.querySelector('#selection-summary b')?.innerText === '{len(expected)}'")
    page.wait_for_function("window.location.search.includes('sel=')")
    url = page.url
    original_state = page.evaluate(FIGURE_STATE_JS)
    assert sorted(collect_gallery(page)) == expected
    paged_url = page.url
    last_page = sorted(int(v) for v in page.eval_on_selector_all(".gallery-tile", "ts => ts.map(t => t.dataset.index)"))
    page.wait_for_function("document.querySelector('.prototype-img')?.naturalWidth > 0")
    page.screenshot(path=str(artifacts_dir / "explorer-lasso.png"), full_page=True)

    with page.expect_download() as download:
        page.click("#export-csv")
    rows = list(csv.DictReader(io.StringIO(open(download.value.path()).read())))
    assert sorted(int(r["index"]) for r in rows) == expected
    assert {r["path"] for r in rows} == {str(paths[i]) for i in expected}
    assert {r["run"] for r in rows} == {e2e_run.name}
    with page.expect_download() as download:
        page.click("#export-json")
    body = open(download.value.path(), encoding="utf-8").read()
    assert json.loads(body)["run"] == e2e_run.name and str(e2e_run.resolve()) not in body, "no server path"

    assert unquote(url.split("/class/")[1]).startswith(top)
    restored = browser.new_page(viewport={"width": 1440, "height": 1000})
    record_console(restored)
    if len(expected) > 48:  # the copied link also restores the gallery page
        restored.goto(paged_url)
        restored.wait_for_selector(".gallery-tile")
        shown = sorted(int(v) for v in restored.eval_on_selector_all(".gallery-tile", "ts => ts.map(t => t.dataset.index)"))
        assert shown == last_page
    restored.goto(url)
    restored.wait_for_function(f"document.querySelector('#selection-summary b')?.innerText === '{len(expected)}'")
    restored.wait_for_function("document.querySelector('#embedding .js-plotly-plot')?._fullData?.[0]?.x?.length > 0")
    assert restored.evaluate(FIGURE_STATE_JS) == original_state, "same map and colouring"
    assert sorted(collect_gallery(restored)) == expected
    restored.screenshot(path=str(artifacts_dir / "explorer-restored.png"), full_page=True)
    restored_errors, restored_warnings = restored.console_errors, restored.console_warnings
    restored.close()
    assert page.console_errors == [] and page.console_warnings == []
    assert restored_errors == [] and restored_warnings == []


def test_cluster_buttons_colouring_and_url(page, server, e2e_run, artifacts_dir):
    top = ranked_names(e2e_run)[0]
    page.goto(f"{server.url}/class/{top}?map=spectral&dims=1,2&color=ward&k=4")
    page.wait_for_selector(".cluster-button")
    assert page.locator(".cluster-button").count() == 4
    counts = [int(t) for t in page.eval_on_selector_all(".cluster-button b", "bs => bs.map(b => b.innerText)")]
    page.locator(".cluster-button").nth(1).click()
    page.wait_for_function(f"document.querySelector('#selection-summary b')?.innerText === '{counts[1]}'")
    page.wait_for_function("window.location.search.includes('cluster=1')")
    assert "color=ward" in page.url and "k=4" in page.url and "map=spectral" in page.url
    page.locator(".gallery-tile").first.click()
    page.wait_for_function("document.querySelector('#embedding .js-plotly-plot')._fullData[1].x.length === 1")
    page.click("text=overlay")
    page.wait_for_selector("#gallery.mode-overlay")
    page.screenshot(path=str(artifacts_dir / "explorer-cluster.png"), full_page=True)
    assert page.console_errors == [] and page.console_warnings == []


def test_unknown_class_is_a_friendly_page(page, server):
    page.goto(server.url + "/class/no-such-class?k=zz")
    page.wait_for_selector("text=Unknown class")
    page.goto(server.url + "/no/such/page")
    page.wait_for_selector("text=Nothing here")
    assert page.console_errors == [] and page.console_warnings == []
