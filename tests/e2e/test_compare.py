"""Model against model in a real headless Chromium: the demo's VGG run and its ResNet run served together."""
import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from precompute.store import RunStore
from tests.e2e.conftest import Server, needs_chromium

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def compare_runs(request, e2e_run):
    """The demo run and its second model's run (``SPRAY_E2E_RUN``'s ``-resnet`` sibling when prebuilt)."""
    sibling = Path(str(e2e_run) + "-resnet")
    if os.environ.get("SPRAY_E2E_RUN") and (sibling / "manifest.json").is_file():
        return e2e_run, sibling
    return e2e_run, request.getfixturevalue("demo_compare_run")


@pytest.fixture(scope="module")
def compare_server(compare_runs, artifacts_dir):
    server = Server(*compare_runs)
    yield server
    server.stop()


def _best_f1(first: RunStore, second: RunStore, name: str, clustering: str, cluster: int) -> float:
    """Best F1 of the first run's cluster among the second run's clusterings, by brute force over paths."""
    a, b = first.arrays(first.id_for_name(name)), second.arrays(second.id_for_name(name))
    names = [str(n) for n in a["clustering_names"]]
    group = np.flatnonzero(a["clustering_labels"][names.index(clustering)] == cluster)
    where = {str(p): j for j, p in enumerate(b["paths"])}
    chosen = {where[str(a["paths"][i])] for i in group if str(a["paths"][i]) in where}
    return max(2 * len(chosen & set(np.flatnonzero(row == k))) / (len(chosen) + (row == k).sum())
               for row in b["clustering_labels"] for k in np.unique(row))


def test_leaderboard_and_compare_page(page, compare_server, compare_runs, artifacts_dir):
    first, second = (RunStore(run) for run in compare_runs)
    other = second.root.name
    star_there = second.summary(second.id_for_name("star"))
    page.goto(compare_server.url + "/")
    page.wait_for_selector("#leaderboard .ag-header-cell[col-id=tau_run0]")
    row = "#leaderboard .ag-row:has([col-id=name] a:text-is('star'))"
    assert page.inner_text(f"{row} [col-id=tau_run0]") == f"{star_there['tau']:.3f}"
    # the compare link is pinned right: AG Grid renders pinned cells in a row of their own, matched by row id
    page.click(f"#leaderboard .ag-pinned-right-cols-container .ag-row[row-id={first.id_for_name('star')}] "
               "[col-id=compare] a")
    page.wait_for_selector(f"#compare-table tr[data-run='{other}']")
    query = parse_qs(urlparse(page.url).query)
    assert query["class"] == ["star"] and query["runs"] == [f"{first.root.name},{other}"]
    clustering, _, cluster = query["cluster"][0].partition("/cluster-")
    best = _best_f1(first, second, "star", clustering, int(cluster))
    match = page.inner_text(f"#compare-table tr[data-run='{other}'] td.match >> nth=0")
    assert match.startswith(f"F1 {best:.2f}")
    assert best >= 0.9  # the watermark group of the VGG is a cluster of the ResNet too
    # the same samples' heatmaps side by side, from each run
    page.wait_for_function("[...document.querySelectorAll('#compare-heatmaps img')].length > 0 && "
                           "[...document.querySelectorAll('#compare-heatmaps img')].every(i => i.complete && "
                           "i.naturalWidth > 0)")
    runs_shown = page.eval_on_selector_all("#compare-heatmaps img.tile-heatmap", "imgs => imgs.map(i => i.dataset.run)")
    assert set(runs_shown) == {first.root.name, other}
    page.wait_for_function("document.querySelectorAll('.compare-map .js-plotly-plot .main-svg').length >= 2")
    assert page.locator(".compare-map .js-plotly-plot").count() == 2
    # another class, then a reload restores it from the URL
    page.click("#compare-class")
    page.get_by_role("option", name="circle", exact=True).click()
    page.wait_for_function("new URLSearchParams(location.search).get('class') === 'circle'")
    page.reload()
    page.wait_for_selector(f"#compare-table tr[data-run='{other}']")
    assert "circle: the group is" in page.inner_text("#compare-note")
    page.wait_for_function("document.querySelectorAll('.compare-map .js-plotly-plot .main-svg').length >= 2")
    page.screenshot(path=str(artifacts_dir / "compare.png"), full_page=True)
    assert page.console_errors == [] and page.console_warnings == []


def test_explorer_selection_is_compared(page, compare_server, compare_runs):
    page.goto(compare_server.url + "/class/star")
    page.wait_for_selector(".cluster-button")
    page.locator(".cluster-button").nth(1).click()
    page.wait_for_function("document.querySelector('#explorer-compare').getAttribute('href').includes('sel=')")
    page.click("#explorer-compare")
    page.wait_for_selector("#compare-table tr")
    assert "the explorer's selection" in page.inner_text("#compare-note")
    assert "sel=" in page.url
    assert page.console_errors == [] and page.console_warnings == []
