"""Right-reason score and perturbation scan in a real headless Chromium, on the demo
(its masks and its perturbation scan of the star class are made by ``build_demo_store``)."""
import numpy as np

from precompute.store import RunStore
from tests.e2e.conftest import needs_chromium

pytestmark = needs_chromium


def _cell_text(page, name, column):
    return page.inner_text(f"#leaderboard .ag-row:has([col-id=name] a:text-is('{name}')) [col-id={column}]")


def test_leaderboard_columns_and_sort(page, server, e2e_run, artifacts_dir):
    store = RunStore(e2e_run)
    page.goto(server.url + "/")
    page.wait_for_selector("#leaderboard .ag-row")
    page.wait_for_selector("#leaderboard .ag-header-cell[col-id=right_reason]")
    star = store.summary(store.id_for_name("star"))
    assert _cell_text(page, "star", "right_reason") == f"{star['right_reason']:.2f}"
    assert _cell_text(page, "star", "off_object_sensitivity") == f"{star['off_object_sensitivity']:.0%}"
    assert _cell_text(page, "ring", "off_object_sensitivity") == "—"  # not scanned
    page.click("#leaderboard .ag-header-cell[col-id=right_reason] .ag-header-cell-label")  # ascending: lowest first
    page.wait_for_function("document.querySelector('#leaderboard .ag-header-cell[col-id=right_reason]')"
                           ".getAttribute('aria-sort') === 'ascending'")
    first = page.eval_on_selector("#leaderboard .ag-center-cols-container .ag-row[row-index='0'] [col-id=name]",
                                  "cell => cell.innerText")
    lowest = min(store.classes(), key=lambda record: record.summary["right_reason"]).name
    assert first == lowest
    page.screenshot(path=str(artifacts_dir / "leaderboard-right-reason.png"), full_page=True)
    assert page.console_errors == [] and page.console_warnings == []


def test_colour_by_score_mask_outline_and_occlusion_map(page, server, e2e_run, artifacts_dir):
    store = RunStore(e2e_run)
    cid = store.id_for_name("star")
    page.goto(f"{server.url}/class/star?color=right_reason")
    page.wait_for_selector("#embedding .js-plotly-plot")
    page.wait_for_function("document.querySelector('#embedding .js-plotly-plot')?._fullData?.[0]?.marker?.colorbar"
                           "?.title?.text === 'right reason'")
    colors = page.evaluate("Array.from(document.querySelector('#embedding .js-plotly-plot')._fullData[0].marker.color)")
    score = store.class_masks(cid)["right_reason"]
    finite = np.isfinite(score)
    assert np.allclose(np.array(colors, dtype=float)[finite], score[finite], atol=1e-3)
    page.reload()  # the colouring is in the URL
    page.wait_for_function("document.querySelector('#embedding .js-plotly-plot')?._fullData?.[0]?.marker?.colorbar"
                           "?.title?.text === 'right reason'")
    page.goto(f"{server.url}/class/star?cluster=0")
    page.wait_for_selector(".gallery-tile .tile-mask")
    tile = page.locator(".gallery-tile").first
    mask = tile.locator(".tile-mask")
    page.wait_for_function("Array.from(document.querySelectorAll('.tile-mask')).every(i => i.naturalWidth > 0)")
    assert mask.evaluate("m => getComputedStyle(m).opacity") == "0"
    tile.hover()
    page.wait_for_function("getComputedStyle(document.querySelector('.gallery-tile .tile-mask')).opacity === '1'")
    index = int(tile.get_attribute("data-index"))
    tile.click()
    page.wait_for_selector("#sensitivity-graph .js-plotly-plot")
    z = page.evaluate("Array.from(document.querySelector('#sensitivity-graph .js-plotly-plot')._fullData[0].z, "
                      "row => Array.from(row))")
    np.testing.assert_allclose(np.array(z), store.class_perturbation(cid)["maps"][index], atol=1e-3)
    assert "right-reason score" in page.inner_text("#inspector")
    page.screenshot(path=str(artifacts_dir / "explorer-occlusion.png"), full_page=True)
    assert page.console_errors == [] and page.console_warnings == []
