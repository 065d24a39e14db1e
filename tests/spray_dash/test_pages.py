"""The pages' layouts, built in-process from a synthetic store: what a new user sees first."""
import json
import re
import shutil

import pytest
from dash import dcc, html
from flask import Flask

from spray_dash import ASSETS_DIR, data, ids

NOTE = "too few samples (n=5; τ needs at least 8)"


def components(tree, kind=None, class_name=None):
    """Every component of ``tree`` (itself included) of type ``kind`` whose classes include ``class_name``."""
    found = []
    for item in [tree, *tree._traverse()]:
        if kind is not None and not isinstance(item, kind):
            continue
        if class_name is not None and class_name not in str(getattr(item, "className", "") or "").split():
            continue
        found.append(item)
    return found


def fact(layout, label):
    """``(value, title)`` of the explorer header's fact called ``label``."""
    for card in components(layout, html.Div, "fact"):
        span, value = card.children
        if span.children == label:
            return value.children, getattr(card, "title", None)
    raise KeyError(label)


def css_rules(selector_part):
    """Declarations of the stylesheet's rules whose selector contains ``selector_part``."""
    css = (ASSETS_DIR / "style.css").read_text(encoding="utf-8")
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    return [body for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css) if selector_part in selectors]


@pytest.fixture
def pages(app):
    from spray_dash.pages import explorer, lab, leaderboard

    return leaderboard, explorer, lab


def test_tau_strip_bars_show_no_text(app, pages):
    """A dcc.Link without children prints its href: every bar printed "/class/<name>" over its neighbours."""
    leaderboard, _, _ = pages
    with app.server.app_context():
        strip = leaderboard.layout()[ids.TAU_OVERVIEW]
    bars = components(strip, dcc.Link)
    assert len(bars) == 4
    for bar in bars:
        assert bar.children is not None, "a childless dcc.Link shows its href"
        texts = [c for c in [bar.children, *getattr(bar.children, "_traverse", lambda: [])()] if isinstance(c, str)]
        assert not texts and not getattr(bar.children, "children", None)
        assert bar.title.startswith("#") and "τ = " in bar.title


def test_grids_offer_their_page_size(app, pages):
    """AG Grid warnings #94/#95 and an empty page-size selector: the size must be one of the selector's."""
    leaderboard, _, lab = pages
    with app.server.app_context():
        grids = [leaderboard.layout()[ids.LEADERBOARD], lab.layout()[ids.LAB_EXPERIMENTS]]
    for grid in grids:
        options = grid.dashGridOptions
        assert options["pagination"] and options["paginationPageSize"] in options["paginationPageSizeSelector"]
    spectrum = next(c for c in grids[0].columnDefs if c["field"] == "spectrum")
    assert spectrum["cellDataType"] is False, "no inferred 'object' type without a formatter (warning #48)"


def test_tau_label_keeps_its_case(app, pages):
    """``text-transform: uppercase`` on the fact labels turned τ into a capital Tau, read as "T"."""
    _, explorer, _ = pages
    with app.server.app_context():
        layout = explorer.layout(name="class_0000")
    label = next(card.children[0] for card in components(layout, html.Div, "fact") if card.children[0].children == "τ")
    assert label.className == "symbol"
    assert any(re.search(r"text-transform:\s*none", body) for body in css_rules("span.symbol"))
    assert any("uppercase" in body for body in css_rules(".fact span")), "other labels stay in capitals"


def test_explorer_explains_its_default_k(app, pages):
    _, explorer, _ = pages
    with app.server.app_context():
        layout = explorer.layout(name="class_0000")
        view = data.class_view("c0000")
    note = layout[ids.SPECTRUM_NOTE].children
    k = int(view.summary["default_clustering"].rpartition("-k")[2])
    assert note.startswith(f"default k = {k}: the eigengap suggests {view.summary['eigengap_k']} group")
    assert fact(layout, "default")[1] == note


def test_explorer_sends_a_hover_caption_per_sample(app, pages):
    _, explorer, _ = pages
    with app.server.app_context():
        layout = explorer.layout(name="class_0001")
        view = data.class_view("c0001")
    captions = layout[ids.HOVER_CAPTIONS].data
    assert len(captions) == view.n
    assert captions[3].startswith(str(view.paths[3]).rsplit("/", 1)[1] + "\npredicted ")
    assert f"p(true)\u00a0=\u00a0{float(view.true_prob[3]):.3f}" in captions[3]


def test_overlay_keeps_the_relevance_visible(app, pages):
    """The overlay dims the image to greys under a strongly screened heatmap."""
    _, explorer, _ = pages
    with app.server.app_context():
        layout = explorer.layout(name="class_0000")
    assert layout[ids.GALLERY_OPACITY].value == explorer.OVERLAY_OPACITY >= 0.8
    image_rules = " ".join(css_rules(".mode-overlay .tile-image"))
    assert "grayscale(1)" in image_rules and "brightness(" in image_rules
    assert any("screen" in body for body in css_rules(".mode-overlay .tile-heatmap"))


def test_lab_placement_controls_start_disabled_for_the_original_place(app, pages):
    _, _, lab = pages
    with app.server.app_context():
        layout = lab.layout()
    assert layout[ids.LAB_PLACEMENT].value == "original"
    assert layout[ids.LAB_CORNER].disabled and layout[ids.LAB_X].disabled and layout[ids.LAB_Y].disabled


# -- a class too small for tau ------------------------------------------------------------------
@pytest.fixture
def small_class_run(app, synthetic_run, tmp_path):
    """The synthetic run with class_0001 stored as precompute stores a class too small for tau."""
    run = tmp_path / "run"
    shutil.copytree(synthetic_run, run, ignore=shutil.ignore_patterns("experiments"))
    path = run / "classes" / "c0001" / "summary.json"
    summary = json.loads(path.read_text(encoding="utf-8"))
    summary.update(tau=None, tau_note=NOTE)
    path.write_text(json.dumps(summary), encoding="utf-8")
    server = Flask("small-class")
    data.configure(server, run)
    yield server
    data.configure(app.server, synthetic_run)  # the session's app serves the synthetic run again


def test_a_class_without_tau_is_listed_last_and_never_crashes(small_class_run, pages):
    leaderboard, explorer, lab = pages
    with small_class_run.app_context():
        rows = data.leaderboard()
        board = leaderboard.layout()
        small = explorer.layout(name="class_0001")
        ranked = explorer.layout(name=rows[0]["name"])
        lab.layout()
    assert [row["name"] for row in rows][-1] == "class_0001"
    assert rows[-1]["tau"] is None and rows[-1]["rank"] is None and rows[-1]["tau_note"] == NOTE
    assert [row["rank"] for row in rows[:-1]] == [1, 2, 3] and all(row["tau_note"] is None for row in rows[:-1])

    bars = components(board[ids.TAU_OVERVIEW], dcc.Link)
    assert bars[-1].title == f"class_0001: {NOTE}" and "no-tau" in bars[-1].className.split()
    columns = {c["field"]: c for c in board[ids.LEADERBOARD].columnDefs}
    assert "too few samples" in columns["tau"]["valueFormatter"]["function"]
    assert columns["tau"]["comparator"] == columns["rank"]["comparator"] == {"function": "sprayNullsLast"}
    assert "sprayNullsLast" in (ASSETS_DIR / "dashAgGridFunctions.js").read_text(encoding="utf-8")

    assert fact(small, "τ") == ("too few samples", NOTE)
    assert fact(small, "rank") == ("—", NOTE)
    assert fact(ranked, "rank")[0] == "1 / 3"
