"""Figure builders: arrays in, figures out."""
import numpy as np
import pytest

from spray_dash.figures import (
    CORRECT_COLOR,
    WRONG_COLOR,
    cluster_color,
    cluster_colors,
    correctness_colors,
    embedding_figure,
    probability_colors,
    spectrum_figure,
    tau_overview_bars,
)


def test_embedding_figure_carries_sample_indices():
    coords = np.random.default_rng(0).normal(size=(30, 2))
    colors, _ = cluster_colors(np.arange(30) % 3)
    fig = embedding_figure(coords, colors, selected=[2, 5], revision="r")
    samples = fig.data[0]
    assert samples.type == "scattergl"
    assert list(samples.customdata) == list(range(30))
    np.testing.assert_allclose(samples.x, coords[:, 0], atol=1e-5)
    assert list(samples.selectedpoints) == [2, 5]
    assert fig.layout.dragmode == "lasso" and fig.layout.uirevision == "r"
    assert fig.data[1].name == "focus" and len(fig.data[1].x) == 0


def test_point_colours():
    colors, bar = cluster_colors(np.array([0, 1, 0]))
    assert colors == [cluster_color(0), cluster_color(1), cluster_color(0)] and bar is None
    colors, bar = correctness_colors(np.array([1, 3]))
    assert colors == [CORRECT_COLOR, WRONG_COLOR] and bar is None
    colors, bar = probability_colors(np.array([0.25, 1.0]))
    assert colors == [0.25, 1.0] and bar["cmin"] == 0 and bar["cmax"] == 1


def test_spectrum_marks_the_eigengap():
    values = np.array([0.0, 0.001, 0.2, 0.25, 0.3])
    fig = spectrum_figure(values, 2)
    assert list(fig.data[0].y) == values.tolist()
    marker_colors = fig.data[0].marker.color
    assert marker_colors[0] == marker_colors[1] != marker_colors[2]
    assert "2 groups" in fig.layout.annotations[0].text
    assert fig.layout.shapes[0].x0 == pytest.approx(2.1)


@pytest.mark.parametrize("eigengap_k", [1, 2, 16, 30])
def test_eigengap_label_stays_clear_of_the_tick_labels(eigengap_k):
    """The label sat inside the plot at the top, centred on the band: at k = 1 it covered the tick "0.8"."""
    fig = spectrum_figure(np.linspace(0, 0.8, 32), eigengap_k)
    label = fig.layout.annotations[0]
    assert (label.yref, label.yanchor) == ("paper", "bottom") and label.y >= 1, "above the plot area"
    assert fig.layout.margin.t >= 20, "with room for it"
    low, high = fig.layout.xaxis.range
    if label.xanchor == "left":  # it runs rightwards from inside the x range, never over the y axis' labels
        assert low <= label.x <= eigengap_k + 1
    else:
        assert label.xanchor == "right" and eigengap_k <= label.x <= high
    assert "1 group" in spectrum_figure(np.linspace(0, 0.8, 32), 1).layout.annotations[0].text


def test_tau_overview_is_sorted_and_scaled():
    bars = tau_overview_bars([0.5, 3.0, 1.0, float("nan")], ["a", "b", "c", "d"], highlight=1)
    assert [b["name"] for b in bars] == ["b", "c", "a", "d"]
    assert [b["rank"] for b in bars] == [1, 2, 3, 4]
    assert [b["top"] for b in bars] == [True, False, False, False]
    assert bars[0]["height"] == 100 and bars[1]["height"] == pytest.approx(100 / 3, abs=0.01)
    assert bars[3]["tau"] is None and bars[3]["height"] == 1.0  # NaN tau: still a clickable bar


def test_tau_overview_puts_classes_without_tau_last():
    """precompute stores tau = None for a class too small for it, with a note saying why."""
    bars = tau_overview_bars([None, 0.5, 3.0, None, 1.0], ["few", "a", "b", "fewer", "c"], highlight=5,
                             notes=["too few samples (n=5)", None, None, None, None])
    assert [b["name"] for b in bars] == ["b", "c", "a", "few", "fewer"]
    assert [b["tau"] for b in bars] == [3.0, 1.0, 0.5, None, None]
    assert [b["note"] for b in bars] == [None, None, None, "too few samples (n=5)", "too few samples"]
    assert [b["top"] for b in bars] == [True, True, True, False, False], "no tau, never among the top"
    assert bars[-1]["height"] == 1.0
    assert tau_overview_bars([None], ["x"])[0]["tau"] is None  # no class with a tau at all
    binned = tau_overview_bars([None] * 300 + list(np.linspace(2, 1, 300)), [f"c{i}" for i in range(600)])
    assert binned[0]["tau"] == 2.0 and binned[-1]["tau"] is None
    assert [b["tau"] is None for b in binned] == sorted(b["tau"] is None for b in binned)


def test_tau_overview_bins_many_classes_into_few_bars():
    taus = np.linspace(5, 0, 1000)
    bars = tau_overview_bars(taus, [f"c{i}" for i in range(1000)], max_bars=200)
    assert len(bars) == 200
    assert [b["rank"] for b in bars[:100]] == list(range(1, 101))
    assert all(b["last_rank"] == b["rank"] for b in bars[:100])
    # the binned bars cover ranks 101..1000 exactly once, in order
    covered = [r for b in bars[100:] for r in range(b["rank"], b["last_rank"] + 1)]
    assert covered == list(range(101, 1001))
    assert all(b["tau"] >= b["tau_last"] for b in bars)
