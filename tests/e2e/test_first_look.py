"""What a new user sees first (issue 17), in a real headless Chromium.

Each test screenshots its page into ``test-artifacts/`` and checks what can be checked
of the look: no link text in the tau strip, page-size selectors with a value, a
lower-case τ, an eigengap label clear of the tick labels, a hover caption that names the
sample, a visible overlay, a visible white artifact, placement controls that only apply
when they are enabled, and a console free of errors and warnings.
"""
import numpy as np

from precompute.store import RunStore
from tests.e2e.conftest import needs_chromium
from tests.helpers.plot_geometry import read_scatter

pytestmark = needs_chromium

BOXES_JS = """(selector) => Array.from(document.querySelectorAll(selector)).map(e => {
  const r = e.getBoundingClientRect();
  return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, text: e.textContent};
})"""


def overlaps(a, b):
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def top_class(run_dir):
    store = RunStore(run_dir)
    return max(store.classes(), key=lambda record: (record.summary["tau"] or 0.0)).name


def page_size(page, grid):
    return page.inner_text(f"#{grid} .ag-paging-page-size .ag-picker-field-display").strip()


def assert_quiet_console(page):
    assert page.console_errors == []
    assert page.console_warnings == []


def test_leaderboard_first_look(page, server, artifacts_dir):
    page.goto(server.url + "/")
    page.wait_for_selector("#leaderboard .ag-row [col-id=spectrum] svg")
    bars = page.eval_on_selector_all("#tau-overview .tau-bar", "bs => bs.map(b => [b.innerText, b.title])")
    assert bars and all(text == "" for text, _ in bars), "a bar prints no href over its neighbours"
    assert all(title.startswith("#") and "τ = " in title for _, title in bars), "each bar keeps its title"
    assert page_size(page, "leaderboard") == "25"
    spectrum = page.eval_on_selector_all(
        "#leaderboard .ag-center-cols-container [col-id=spectrum]",
        "cells => cells.map(c => [c.innerText, c.scrollWidth <= c.clientWidth])")
    assert spectrum and all(text == "" and fits for text, fits in spectrum), "the glyph fits: no '..'"
    page.screenshot(path=str(artifacts_dir / "first-look-leaderboard.png"), full_page=True)
    assert_quiet_console(page)


def test_explorer_first_look(page, server, e2e_run, artifacts_dir):
    page.goto(f"{server.url}/class/{top_class(e2e_run)}?cluster=1")
    page.wait_for_function("document.querySelector('#embedding .js-plotly-plot')?._fullData?.[0]?.x?.length > 0")
    page.wait_for_selector("#spectrum .annotation-text")

    labels = page.eval_on_selector_all(".class-head .fact span", "spans => spans.map(s => s.innerText)")
    assert labels[0] == "τ" and "RANK" in labels, "τ stays lower-case among labels in capitals"

    label = page.evaluate(BOXES_JS, "#spectrum .annotation-text")[0]
    ticks = page.evaluate(BOXES_JS, "#spectrum .ytick text, #spectrum .xtick text")
    assert ticks and not [tick["text"] for tick in ticks if overlaps(label, tick)], label
    assert page.inner_text("#spectrum-note").startswith("default k = ")

    scatter = read_scatter(page, "embedding")
    pixels = scatter["pixels"]
    gaps = np.linalg.norm(pixels[:, None] - pixels[None], axis=2) + np.eye(len(pixels)) * 1e9
    loner = int(np.argmin(-gaps.min(axis=1)))  # the point farthest from any other: the one hovered
    x, y = pixels[loner]
    page.mouse.move(x - 30, y - 30)
    page.mouse.move(x, y, steps=5)
    page.wait_for_function("document.querySelector('#tooltip-caption')?.innerText.includes('p(true)\u00a0=\u00a0')")
    caption = page.inner_text("#tooltip-caption")
    store = RunStore(e2e_run)
    path = str(store.arrays(store.id_for_name(top_class(e2e_run)))["paths"][int(scatter["ids"][loner])])
    assert caption.startswith(path.rsplit("/", 1)[-1] + "\npredicted "), caption
    page.screenshot(path=str(artifacts_dir / "first-look-explorer-hover.png"))
    page.mouse.move(5, 5)

    page.wait_for_selector(".gallery-tile")
    page.click("#gallery-mode label:has-text('overlay')")
    page.wait_for_selector("#gallery.mode-overlay")
    style = page.eval_on_selector(".gallery-tile", """tile => ({
        image: getComputedStyle(tile.querySelector('.tile-image')).filter,
        heatmap: Number(getComputedStyle(tile.querySelector('.tile-heatmap')).opacity),
        blend: getComputedStyle(tile.querySelector('.tile-heatmap')).mixBlendMode})""")
    assert "grayscale(1)" in style["image"] and style["heatmap"] >= 0.8 and style["blend"] == "screen", style
    page.evaluate("window.scrollTo(0, 0)")  # else the sticky top bar lands mid-page in the full-page shot
    page.screenshot(path=str(artifacts_dir / "first-look-explorer.png"), full_page=True)
    assert_quiet_console(page)


def choose(page, dropdown, label):
    page.click(f"#{dropdown}")
    page.get_by_role("option", name=label, exact=True).click()
    page.wait_for_function(f"document.querySelector('#{dropdown}').innerText.trim() === '{label}'")


def test_lab_first_look(page, server, artifacts_dir):
    page.goto(server.url + "/lab?artifact=lib-rounded-corners&origin=circle")
    page.wait_for_function("document.querySelector('#lab-preview')?.naturalWidth > 0")
    page.wait_for_selector("#lab-preview-box.dark")  # white corners on a dark checkerboard
    page.wait_for_selector("#lab-experiments .ag-paging-page-size")
    assert page_size(page, "lab-experiments") == "10"

    assert page.inner_text("#lab-placement").strip() == "where it was found"
    assert page.is_disabled("#lab-corner") and page.is_disabled("#lab-x") and page.is_disabled("#lab-y")
    page.locator(".artifact-preview").screenshot(path=str(artifacts_dir / "first-look-lab-preview.png"))
    page.screenshot(path=str(artifacts_dir / "first-look-lab.png"), full_page=True)
    choose(page, "lab-placement", "corner")
    page.wait_for_function("!document.querySelector('#lab-corner').disabled")
    assert page.is_disabled("#lab-x") and page.is_disabled("#lab-y")
    choose(page, "lab-placement", "position")
    page.wait_for_function("!document.querySelector('#lab-x').disabled && !document.querySelector('#lab-y').disabled")
    assert page.is_disabled("#lab-corner")
    choose(page, "lab-placement", "where it was found")
    page.wait_for_function("document.querySelector('#lab-x').disabled"
                           " && document.querySelector('#lab-corner').disabled")
    assert_quiet_console(page)
