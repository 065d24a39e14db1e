"""The artifact lab in a real headless Chromium: propose from a lasso, paste, remove, cut a box, bad uploads."""
import struct
import zlib

import pytest

from tests.e2e.conftest import needs_chromium
from tests.helpers.plot_geometry import lasso_artifact_carriers

pytestmark = needs_chromium


def summary_table(page):
    """{arm: [samples, Δrank, Δp, flips]} from the results table."""
    rows = page.eval_on_selector_all("#lab-summary tbody tr",
                                     "rs => rs.map(r => Array.from(r.cells).map(c => c.innerText))")
    return {row[0]: [float(v.rstrip("%")) for v in row[1:]] for row in rows}


def images_loaded(page, selector):
    return page.eval_on_selector_all(selector, "imgs => imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)")


def test_lasso_propose_paste_and_remove(page, server, e2e_run, artifacts_dir):
    selected = lasso_artifact_carriers(page, server.url, e2e_run, "star")

    page.click("#explorer-propose")
    page.wait_for_url("**/lab?*")
    page.wait_for_function("document.querySelector('#lab-preview')?.naturalWidth > 0")
    facts = page.inner_text("#lab-facts")
    assert "shared pixels" in facts and "star" in facts
    page.click("#lab-run-paste")
    page.wait_for_selector("#lab-summary", timeout=120_000)
    table = summary_table(page)
    assert table["artifact"][0] == 64
    assert table["artifact"][2] > table["control"][2] + 0.1, "the watermark raises p(star), the control does not"
    assert table["artifact"][1] > table["control"][1]
    page.wait_for_function("Array.from(document.querySelectorAll('.example img')).every(i => i.naturalWidth > 0)")
    assert page.locator(".example").count() == 8 and images_loaded(page, ".example img")
    assert "experiment=" in page.url
    page.screenshot(path=str(artifacts_dir / "lab-paste.png"), full_page=True)

    removal = page.locator("#lab-run-removal")
    assert removal.is_enabled() and str(int(selected.sum())) in removal.inner_text()
    removal.click()
    page.wait_for_selector("text=Removing", timeout=120_000)
    table = summary_table(page)
    assert table["inpainted"][2] < table["control"][2] - 0.1, "inpainting the watermark lowers p(star)"
    page.screenshot(path=str(artifacts_dir / "lab-removal.png"), full_page=True)
    assert page.locator("#lab-experiments .ag-row").count() >= 2
    assert page.console_errors == [] and page.console_warnings == []


def test_cut_a_box_from_a_sample(page, server, artifacts_dir):
    page.goto(server.url + "/class/triangle?color=kmeans_lead&k=2&cluster=1")
    page.wait_for_selector(".gallery-tile")
    page.locator(".gallery-tile").first.click()
    page.wait_for_selector("#inspector-graph .nsewdrag")
    box = page.locator("#inspector-graph .nsewdrag").bounding_box()
    # the puzzle patch sits near x=43..59, y=9..25 of the 64x64 input: draw a box around it
    to_px = lambda u, v: (box["x"] + u / 64 * box["width"], box["y"] + v / 64 * box["height"])
    page.mouse.move(*to_px(40, 6))
    page.mouse.down()
    page.mouse.move(*to_px(61, 28), steps=10)
    page.mouse.up()
    page.click("#inspector-cut")
    page.wait_for_url("**/lab?*")
    page.wait_for_function("document.querySelector('#lab-preview')?.naturalWidth > 0")
    facts = page.inner_text("#lab-facts")
    assert "box" in facts and "triangle" in facts
    width, height = (int(v) for v in facts.split("size")[1].split()[0].split("×"))
    assert 18 <= width <= 23 and 20 <= height <= 24
    page.screenshot(path=str(artifacts_dir / "lab-box.png"), full_page=True)
    assert page.console_errors == [] and page.console_warnings == []


def zero_sized_png():
    ihdr = struct.pack(">IIBBBBB", 0, 10, 8, 6, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


@pytest.mark.parametrize("name, payload, message", [
    ("notes.txt", b"this is not an image", "not a PNG or JPEG"),
    ("empty.png", zero_sized_png(), "zero-sized"),
    ("huge.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (6 * 1024 * 1024), "too large"),
], ids=["text", "zero-sized", "too-large"])
def test_bad_uploads_get_a_clear_message(page, server, name, payload, message):
    page.goto(server.url + "/lab")
    page.wait_for_selector("#lab-upload input[type=file]", state="attached")
    page.set_input_files("#lab-upload input[type=file]",
                         files=[{"name": name, "mimeType": "application/octet-stream", "buffer": payload}])
    page.wait_for_function(f"document.querySelector('#lab-upload-message').innerText.includes('{message}')")
    assert "⚠" in page.inner_text("#lab-upload-message")
    assert page.console_errors == [] and page.console_warnings == []
