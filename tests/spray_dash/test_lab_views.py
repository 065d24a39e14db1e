"""The lab page's pure helpers and figures."""
import numpy as np
import pytest

from precompute.errors import ConfigError
from spray_dash.figures import box_from_relayout, delta_histogram, inspector_figure
from spray_dash.lab_views import (
    artifact_facts,
    deltas,
    example_items,
    experiment_rows,
    placement_from_inputs,
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
