"""Find elsewhere in a real headless Chromium: lasso -> results grouped by class -> a result opens in its class."""
import re

from tests.e2e.conftest import needs_chromium
from tests.helpers.plot_geometry import lasso_artifact_carriers

pytestmark = needs_chromium


def test_find_elsewhere_from_a_lasso(page, server, e2e_run, artifacts_dir):
    selected = lasso_artifact_carriers(page, server.url, e2e_run, "star")
    page.wait_for_function("document.querySelector('#explorer-similar')?.href.includes('concept=')")
    page.click("#explorer-similar")
    page.wait_for_url("**/similar?concept=*")
    page.wait_for_selector("#similar-results .similar-group")
    summary = page.inner_text("#similar-summary")
    assert summary.startswith(f"{int(selected.sum())} samples of star")
    groups = page.eval_on_selector_all(".similar-group", "gs => gs.map(g => g.dataset.class)")
    assert groups and "star" not in groups and len(groups) == len(set(groups))
    scores = [float(s) for s in page.eval_on_selector_all(".similar-tile .tile-caption b", "bs => bs.map(b => b.innerText)")]
    assert len(scores) == 60 and max(scores) <= 1.0 + 1e-6
    page.wait_for_function("Array.from(document.querySelectorAll('.similar-tile img')).every(i => i.naturalWidth > 0)")
    page.screenshot(path=str(artifacts_dir / "similar.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#similar-export")
    lines = download.value.path().read_text().splitlines()
    assert lines[0] == "rank,class,path,score,run" and len(lines) == 61
    first = page.locator(".similar-tile").first
    cls = first.locator(".tile-caption span").inner_text()
    first.click()
    page.wait_for_url(re.compile(rf".*/class/{cls}\?.*sel=.*"))
    page.wait_for_function("document.querySelector('#selection-summary b')?.innerText === '1'")
    assert page.console_errors == [] and page.console_warnings == []


def test_search_by_an_uploaded_heatmap(page, server, e2e_run, tmp_path):
    import numpy as np

    from precompute.store import RunStore

    store = RunStore(e2e_run)
    cid = store.id_for_name("heart")
    np.save(tmp_path / "mine.npy", store.heatmaps(cid)[3].astype(np.float32))
    (tmp_path / "junk.npy").write_bytes(b"junk")
    page.goto(server.url + "/similar")
    page.set_input_files("#similar-upload input[type=file]", str(tmp_path / "junk.npy"))
    page.wait_for_selector("#similar-upload-results .error")
    assert "not a .npy array" in page.inner_text("#similar-upload-results")
    page.set_input_files("#similar-upload input[type=file]", str(tmp_path / "mine.npy"))
    page.wait_for_selector("#similar-upload-summary")
    first = page.locator("#similar-upload-results .similar-tile").first
    assert first.get_attribute("data-index") == "3"
    assert first.locator(".tile-caption span").inner_text() == "heart"
    assert float(first.locator(".tile-caption b").inner_text()) > 0.999
    assert page.console_errors == [] and page.console_warnings == []
