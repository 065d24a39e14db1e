"""Un-Hans in a real headless Chromium: lasso -> concept -> P-ClArC -> report; the variant survives a restart.

The test writes its variant into a copy of the e2e run (``SPRAY_E2E_RUN`` may be a store
the developer keeps), served by its own app, then by a second app on the same copy.
"""
import io
import re
import shutil
import zipfile

import pytest

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


def images_loaded(page, selector):
    page.wait_for_function(f"(() => {{ const imgs = Array.from(document.querySelectorAll({selector!r}));"
                           "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); })()",
                           timeout=120_000)


@pytest.fixture
def own_run(e2e_run, tmp_path):
    """A copy of the e2e run without its variants: what this test writes stays in the copy."""
    run = tmp_path / "run"
    shutil.copytree(e2e_run, run, ignore=shutil.ignore_patterns("variants", "experiments"))
    return run


def test_lasso_concept_pclarc_report_and_restart(page, own_run, artifacts_dir):
    app = Server(own_run)
    try:
        selected = lasso_artifact_carriers(page, app.url, own_run, "star")
        page.wait_for_function("document.querySelector('#explorer-unhans')?.href.includes('concept=')")
        page.click("#explorer-unhans")
        page.wait_for_url("**/unhans?concept=*")
        page.wait_for_selector(f"text=the selection it was opened with ({int(selected.sum())} samples)")
        # the form's defaults: P-ClArC, and the star class's library artifact where it was found
        assert page.is_checked("#unhans-method input[value=pclarc]")
        assert "watermark" in page.inner_text("#unhans-artifact")
        assert page.is_disabled("#unhans-x") and "the input of the last Linear" in page.inner_text("#unhans-layer-hint")
        page.fill("#unhans-name", "star-pclarc")
        page.click("#unhans-run")
        page.wait_for_selector("#unhans-summary", timeout=180_000)
        assert "done" in page.inner_text("#unhans-progress")
        # the layer that blank meant is named now
        assert re.search(r"blank: \S+:input", page.inner_text("#unhans-layer-hint"))
        table = report_table(page)
        paste_before, paste_after = (number(v) for v in table["paste test: mean Δp(origin)"])
        assert paste_before > 0.2 and paste_after < 0.3 * paste_before, table
        assert {"clean held-out accuracy", "accuracy, artifact pasted on every image", "τ of the origin class",
                "positive relevance on the artifact"} <= set(table)
        assert "variant=star-pclarc" in page.url
        images_loaded(page, "#unhans-cleaning img")
        page.click("#unhans-show-heatmaps")
        page.wait_for_function("document.querySelectorAll('#unhans-heatmaps .example img').length >= 3")
        images_loaded(page, "#unhans-heatmaps img")
        page.screenshot(path=str(artifacts_dir / "unhans-report.png"), full_page=True)

        [new] = RunStore(own_run).variants()
        assert (new.id, new.method, new.selection["n"]) == ("star-pclarc", "pclarc", int(selected.sum()))
        assert new.artifact and new.artifact["name"] == "watermark"
        with page.expect_download() as download:
            page.click("#unhans-cleaning-csv")
        assert download.value.path().read_text().startswith("path,class,score,in_selection")
        exported = page.request.get(f"{app.url}/variant/{new.id}.zip")
        with zipfile.ZipFile(io.BytesIO(exported.body())) as archive:
            assert {"star-pclarc/variant.json", "star-pclarc/projection.pt", "star-pclarc/concept.pt",
                    "star-pclarc/cleaning.csv", "star-pclarc/LOADING.txt"} == set(archive.namelist())
            assert str(own_run) not in archive.read("star-pclarc/LOADING.txt").decode()
        assert page.console_errors == [] and page.console_warnings == []
    finally:
        app.stop()

    restarted = Server(own_run)  # the app restarted: the variant and its report are still there
    try:
        page.goto(f"{restarted.url}/unhans?variant={new.id}")
        page.wait_for_selector("#unhans-summary")
        assert report_table(page) == table
        page.click("#unhans-variants")
        page.wait_for_selector(f"text={new.name}")
        page.keyboard.press("Escape")
        # a stored cluster, A-ClArC: the progress says what runs, Cancel stops it, and nothing is written
        page.check("#unhans-method input[value=aclarc]")
        page.click("#unhans-run")
        page.wait_for_function("/running · .+ · \\d+ %/.test(document.querySelector('#unhans-progress')?.innerText)",
                               timeout=60_000)
        page.click("#unhans-cancel")
        page.wait_for_selector("#unhans-message >> text=cancelled", timeout=60_000)
        assert [v.id for v in RunStore(own_run).variants()] == [new.id]
        assert page.console_errors == [] and page.console_warnings == []
    finally:
        restarted.stop()
