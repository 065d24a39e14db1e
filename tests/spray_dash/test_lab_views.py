"""The lab page's pure helpers and figures."""
import numpy as np
import pytest

from precompute.errors import ConfigError
from spray_dash.figures import box_from_relayout, delta_histogram, inspector_figure
from spray_dash.lab_views import (
    artifact_coverage,
    artifact_facts,
    decode_rgba,
    deltas,
    example_items,
    experiment_rows,
    placement_controls_disabled,
    placement_from_inputs,
    placement_options,
    preview_background,
    summary_rows,
)

RECORD = {
    "id": "paste-1", "kind": "paste", "created": "2026-11-23T09:00:00+00:00",
    "origin": {"id": "c0001", "name": "star", "label": 1}, "artifact": {"name": "watermark"},
    "summary": {"n": 2, "mean_delta_rank": 2.5, "mean_delta_prob": 0.3, "flip_rate": 0.5,
                "control": {"mean_delta_rank": 0.0, "mean_delta_prob": 0.01, "flip_rate": 0.0}},
    "rows": [{"prob_before": 0.1, "prob_after": 0.5, "prob_control": 0.1},
             {"prob_before": 0.2, "prob_after": 0.4, "prob_control": 0.22}],
    "examples": [{"k": 0, "class": "ring", "index": 4, "prob_before": 0.1, "prob_after": 0.5}],
}


def test_summary_rows_are_table_3():
    rows = summary_rows(RECORD)
    assert [r["arm"] for r in rows] == ["artifact", "control"]
    assert rows[0]["mean_delta_prob"] == 0.3 and rows[1]["mean_delta_rank"] == 0.0
    assert summary_rows({**RECORD, "kind": "removal"})[0]["arm"] == "inpainted"


def test_deltas_and_histogram():
    changes = deltas(RECORD)
    np.testing.assert_allclose(changes["artifact"], [0.4, 0.2])
    np.testing.assert_allclose(changes["control"], [0.0, 0.02], atol=1e-12)
    fig = delta_histogram(changes["artifact"], changes["control"])
    assert [t.name for t in fig.data] == ["artifact", "control"]


def test_example_urls_and_grid_rows():
    item = example_items(RECORD)[0]
    assert item["after_heat"] == "/experiment/paste-1/ex0-after-heat.webp"
    row = experiment_rows([RECORD])[0]
    assert row["origin"] == "star" and row["control_delta_prob"] == 0.01 and row["artifact"] == "watermark"


def test_placement_from_inputs():
    placement = placement_from_inputs("corner", "tr", None, None, 2, 0.5)
    assert (placement.mode, placement.corner, placement.scale, placement.opacity) == ("corner", "tr", 2.0, 0.5)
    assert placement_from_inputs(None, None, None, None, None, None).mode == "original"
    with pytest.raises(ConfigError):
        placement_from_inputs("corner", "middle", 0, 0, 1, 1)
    with pytest.raises(ConfigError):
        placement_from_inputs("xy", "bl", 0, 0, 1, 1.5)


def test_artifact_facts():
    facts = dict(artifact_facts({"source": "proposal", "class": "star", "size": [17, 7], "position": [2, 55],
                                 "method": "shared pixels", "relevance_share": 0.64}))
    assert facts == {"source": "proposal", "class": "star", "size": "17×7", "position": "2, 55",
                     "found by": "shared pixels", "relevance inside": "64%"}
    assert artifact_facts(None) == []


def test_facts_warn_about_an_artifact_covering_most_of_the_image():
    """A whole-image proposal, pasted, replaced each target: the lab says so."""
    entry = {"source": "proposal", "class": "circle", "size": [64, 64], "position": [0, 0]}
    assert dict(artifact_facts(entry, 0.1))["covers"] == "10% of the image"
    assert "warning" not in dict(artifact_facts(entry, 0.5))
    warning = dict(artifact_facts(entry, 1.0))["warning"]
    assert "more than 50% of the image" in warning and "replaces most of each target" in warning


def rounded_corners(size=64, radius=12, color=(255, 255, 255)):
    """The demo's white rounded corners: opaque only outside a rounded rectangle."""
    yy, xx = np.mgrid[:size, :size]
    dx = np.maximum(0, np.maximum(radius - xx, xx - (size - 1 - radius)))
    dy = np.maximum(0, np.maximum(radius - yy, yy - (size - 1 - radius)))
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = color
    rgba[..., 3] = np.where(dx ** 2 + dy ** 2 > radius ** 2, 255, 0)
    return rgba


def test_light_artifacts_are_previewed_on_a_dark_background():
    """White rounded corners vanished on the light checkerboard."""
    assert preview_background(rounded_corners()) == "dark"
    assert preview_background(rounded_corners(color=(20, 20, 30))) == "light"
    yellow = np.zeros((7, 17, 4), np.uint8)
    yellow[..., :3], yellow[..., 3] = (250, 220, 40), 255
    assert preview_background(yellow) == "dark"
    assert preview_background(np.zeros((4, 4, 4), np.uint8)) == "light"  # nothing visible


def test_artifact_coverage_counts_visible_pixels_of_the_model_input():
    from precompute.lab import rgba_to_png

    corners = rounded_corners()
    np.testing.assert_array_equal(decode_rgba(rgba_to_png(corners)), corners)
    assert artifact_coverage(corners, (64, 64)) == pytest.approx((corners[..., 3] > 25).mean())
    assert artifact_coverage(corners, (64, 64)) < 0.2, "a 64×64 box, but mostly transparent"
    assert artifact_coverage(np.full((32, 32, 4), 255, np.uint8), (64, 64)) == 0.25
    assert artifact_coverage(np.full((32, 32, 4), 255, np.uint8), None) == 1.0


def test_only_the_controls_of_the_chosen_placement_are_enabled():
    """Corner, x and y stayed enabled for "where it was found", where none of them applies."""
    assert placement_controls_disabled("original") == (True, True, True)
    assert placement_controls_disabled("random") == (True, True, True)
    assert placement_controls_disabled("corner") == (False, True, True)
    assert placement_controls_disabled("xy") == (True, False, False)
    assert [o["disabled"] for o in placement_options(False)] == [True, False, False, False]
    assert not any(o["disabled"] for o in placement_options(True))


def test_box_from_relayout():
    drawn = {"shapes": [{"type": "rect", "x0": 1, "y0": 2, "x1": 30.5, "y1": 40}]}
    assert box_from_relayout(drawn) == (1.0, 2.0, 30.5, 40.0)
    edited = {"shapes[0].x0": 3, "shapes[0].y0": 4, "shapes[0].x1": 5, "shapes[0].y1": 6}
    assert box_from_relayout(edited) == (3.0, 4.0, 5.0, 6.0)
    assert box_from_relayout(None) is None and box_from_relayout({"xaxis.range[0]": 1}) is None


def test_inspector_figure_uses_model_pixels():
    fig = inspector_figure("/thumb/c0001/image/3.webp", "/thumb/c0001/heatmap/3.webp", 64, 48)
    assert fig.layout.dragmode == "drawrect"
    assert list(fig.layout.xaxis.range) == [0, 64] and list(fig.layout.yaxis.range) == [48, 0]
    assert fig.layout.images[0].source == "/thumb/c0001/image/3.webp" and fig.layout.images[0].sizex == 64


def test_experiment_kinds_are_one_registry():
    """Each kind knows its button, how to build its spec, its treated arm and its title."""
    from precompute.errors import SprayError
    from precompute.lab import PasteSpec, RemovalSpec, run_paste_experiment, run_removal_experiment
    from spray_dash import ids
    from spray_dash.lab_views import EXPERIMENT_KINDS, LabInputs, experiment_kinds, experiment_title, kind_for_button

    assert [kind.name for kind in experiment_kinds()] == ["paste", "removal"]
    paste, removal = kind_for_button(ids.LAB_RUN_PASTE), kind_for_button(ids.LAB_RUN_REMOVAL)
    assert (paste.name, removal.name) == ("paste", "removal") and kind_for_button("nope") is None
    assert (paste.runner, removal.runner) == (run_paste_experiment, run_removal_experiment)

    inputs = LabInputs(origin_id="c0001", placement=placement_from_inputs("corner", "tr", 0, 0, 1, 1), n=16, seed=3,
                       targets=["c0002"], selection=("c0001", np.array([4, 9])))
    spec = paste.build(inputs)
    assert isinstance(spec, PasteSpec) and (spec.n, spec.seed, spec.target_ids) == (16, 3, ["c0002"])
    spec = removal.build(inputs)
    assert isinstance(spec, RemovalSpec) and (spec.class_id, spec.indices) == ("c0001", [4, 9])
    with pytest.raises(SprayError, match="between 1 and 5000"):
        paste.build(LabInputs(**{**inputs.__dict__, "n": 0}))
    with pytest.raises(SprayError, match="select affected samples"):
        removal.build(LabInputs(**{**inputs.__dict__, "selection": None}))

    assert removal.button(None) == ("Removal test: select affected samples in the explorer first", True)
    assert removal.button(("c0001", np.arange(7))) == ("Run removal test on 7 selected samples", False)
    assert experiment_title(RECORD) == "Pasting watermark onto other classes"
    assert experiment_title({**RECORD, "kind": "removal"}) == "Removing watermark from star samples"
    assert EXPERIMENT_KINDS.get("removal").arm == "inpainted"
