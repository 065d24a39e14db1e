"""Un-Hans in a real headless Chromium: lasso -> concept -> P-ClArC -> report; the variant survives a restart."""
import re

from precompute.store import RunStore
from tests.e2e.conftest import Server, needs_chromium
from tests.helpers.plot_geometry import lasso_artifact_carriers

pytestmark = needs_chromium


def report_table(page):
    """{figure: (original, corrected)} from the report table, as shown."""
    rows = page.eval_on_selector_all("#unhans-summary tbody tr",
                                     "rs => rs.map(r => Array.from(r.cells).map(c => c.innerText))")
    return {row[0]: (row[1], row[2]) for row in rows}


def number(text):
    return float(re.sub(r"[^0-9.+-]", "", text))


def test_lasso_concept_pclarc_report_and_restart(page, server, e2e_run, artifacts_dir):
    before = {v.id for v in RunStore(e2e_run).variants()}
    selected = lasso_artifact_carriers(page, server.url, e2e_run, "star")

    page.wait_for_function("document.querySelector('#explorer-unhans')?.href.includes('concept=')")
    page.click("#explorer-unhans")
    page.wait_for_url("**/unhans?concept=*")
    page.wait_for_selector(f"text=the explorer's selection ({int(selected.sum())} samples)")
    page.click("#unhans-run")
    page.wait_for_selector("#unhans-summary", timeout=180_000)
    table = report_table(page)
    paste_before, paste_after = (number(v) for v in table["paste test: mean Δp(origin)"])
    assert paste_before > 0.2 and paste_after < 0.3 * paste_before, table
    assert {"clean held-out accuracy", "accuracy, artifact pasted on every image", "τ of the origin class",
            "positive relevance on the artifact"} <= set(table)
    assert "variant=" in page.url
    assert page.locator("#unhans-cleaning img").count() > 0
    page.wait_for_function("Array.from(document.querySelectorAll('#unhans-cleaning img')).every(i => i.naturalWidth > 0)")
    page.click("#unhans-show-heatmaps")
    page.wait_for_function("document.querySelectorAll('#unhans-heatmaps .example img').length >= 3", timeout=120_000)
    page.wait_for_function("Array.from(document.querySelectorAll('#unhans-heatmaps img')).every(i => i.naturalWidth > 0)")
    page.screenshot(path=str(artifacts_dir / "unhans-report.png"), full_page=True)

    [new] = [v for v in RunStore(e2e_run).variants() if v.id not in before]
    assert new.method == "pclarc" and new.selection["n"] == int(selected.sum())
    with page.expect_download() as download:
        page.click("text=cleaning list (CSV)")
    assert download.value.path().read_text().startswith("path,class,score,in_selection")
    assert page.console_errors == [] and page.console_warnings == []

    restarted = Server(e2e_run)  # the app restarted: the variant and its report are still there
    try:
        page.goto(f"{restarted.url}/unhans?variant={new.id}")
        page.wait_for_selector("#unhans-summary")
        assert report_table(page)["paste test: mean Δp(origin)"] == table["paste test: mean Δp(origin)"]
        page.click("#unhans-variants")
        page.wait_for_selector(f"text={new.name}")
    finally:
        restarted.stop()
