"""Training and validation together in a real headless Chromium, on the demo analysed with its held-out split."""
from precompute.store import RunStore
from tests.e2e.conftest import needs_chromium

pytestmark = needs_chromium


def test_suspect_column_and_split_colouring(page, server, e2e_run, artifacts_dir):
    store = RunStore(e2e_run)
    star = store.summary(store.id_for_name("star"))
    page.goto(server.url + "/")
    page.wait_for_selector("#leaderboard .ag-header-cell[col-id=validation_in_suspect]")
    cell = page.inner_text("#leaderboard .ag-row:has([col-id=name] a:text-is('star')) [col-id=validation_in_suspect]")
    assert cell == f"{star['validation_suspect']['n_validation']} of {star['n_validation']}"
    page.goto(f"{server.url}/class/star?color=split")
    page.wait_for_selector(".cluster-button")
    labels = page.eval_on_selector_all(".cluster-button span:nth-child(2)", "spans => spans.map(s => s.innerText)")
    counts = page.eval_on_selector_all(".cluster-button b", "bs => bs.map(b => Number(b.innerText))")
    assert labels == ["training", "validation"] and counts == [star["n"] - star["n_validation"], star["n_validation"]]
    page.locator(".cluster-button").nth(1).click()
    page.wait_for_function(f"document.querySelector('#selection-summary b')?.innerText === '{star['n_validation']}'")
    page.wait_for_selector(".gallery-tile .tile-split")
    assert page.locator(".gallery-tile .tile-split").count() == min(48, star["n_validation"])
    page.reload()  # the colouring and the selected group are in the URL
    page.wait_for_function(f"document.querySelector('#selection-summary b')?.innerText === '{star['n_validation']}'")
    page.screenshot(path=str(artifacts_dir / "explorer-validation.png"), full_page=True)
    assert page.console_errors == [] and page.console_warnings == []
