"""The explorer's pure helpers: tau text, the default k's reason, hover captions."""
from types import SimpleNamespace

import numpy as np
import pytest

from precompute.analysis import default_lead_eigengap
from spray_dash.views import default_k_note, hover_captions, tau_text


def test_tau_text():
    assert tau_text(2.0912) == ("2.091", None)
    assert tau_text(0.0) == ("0.000", None)
    assert tau_text(None, "too few samples (n=5; τ needs at least 8)") == (
        "too few samples", "too few samples (n=5; τ needs at least 8)")
    assert tau_text(None)[0] == "too few samples" and tau_text(None)[1]


def test_default_k_note_says_why_k_is_two_when_the_eigengap_says_one():
    """"eigengap k 1" beside a default clustering with k = 2, unexplained, puzzled new users."""
    assert default_k_note(1, "kmeans_lead-k2") == (
        "default k = 2: the eigengap suggests 1 group (no group stands out); at least 2 clusters are shown")
    assert default_k_note(3, "kmeans_lead-k3") == "default k = 3: the eigengap suggests 3 groups"
    assert default_k_note(40, "kmeans_lead-k30") == (
        "default k = 30: the eigengap suggests 40 groups; 30 is the largest k stored")
    assert default_k_note(2, "kmeans-k2").endswith("(k-means, all eigenvectors (paper))")
    assert "'other'" in default_k_note(1, "ward-k5", rule="other")
    assert default_k_note(1, None) == "" and default_k_note(1, "nonsense") == ""


@pytest.mark.parametrize("eigengap_k", [0, 1, 2, 7, 30, 45])
def test_default_k_note_follows_precompute_rule(eigengap_k):
    names = [f"kmeans_lead-k{k}" for k in range(2, 31)]
    chosen = default_lead_eigengap(eigengap_k, names, 30)
    assert default_k_note(eigengap_k, chosen).startswith(f"default k = {chosen.rpartition('-k')[2]}: ")


def test_hover_captions_name_the_file_the_prediction_and_p_true():
    view = SimpleNamespace(n=2, paths=np.array(["star/a/0001.png", "star/0002.JPEG"]),
                           top_classes=np.array([[1, 0], [0, 1]]), top_probs=np.array([[0.97, 0.02], [0.6, 0.3]]),
                           true_prob=np.array([0.97, 0.3]))
    assert hover_captions(view, ["cat", "star"]) == [
        "0001.png\npredicted star (97%) · p(true)\u00a0=\u00a00.970",
        "0002.JPEG\npredicted cat (60%) · p(true)\u00a0=\u00a00.300",
    ]


# -- colour modes: one registry -------------------------------------------------------------------
def class_view(labels_by_name):
    """A minimal ClassView-like object with ``ward`` clusterings and predictions for 4 samples."""
    names = list(labels_by_name)

    def labels(family, k):
        name = f"{family}-k{k}"
        return np.asarray(labels_by_name[name]) if name in names else None

    return SimpleNamespace(families={"ward": [2, 3]}, labels=labels, true_rank=np.array([1, 2, 1, 1]),
                           true_prob=np.array([0.9, 0.1, 0.8, 0.7]))


VIEW = class_view({"ward-k2": [0, 1, 1, 0], "ward-k3": [0, 1, 2, 2]})


def test_colour_options_come_from_the_registry_in_order():
    from spray_dash.views import COLOR_MODES, color_options, plain_colors

    assert [o["value"] for o in color_options(VIEW)] == ["ward", "correct", "prob"]
    assert color_options(VIEW)[0]["label"] == "Ward, all eigenvectors"
    assert set(COLOR_MODES.names()) == {"cluster", "correct", "prob", "right_reason", "off_object", "split"}
    assert plain_colors() == ["correct", "prob", "right_reason", "off_object", "split"]
    assert plain_colors(VIEW) == ["correct", "prob"]  # a class without masks or a scan offers neither


def test_each_colour_mode_paints_and_groups_its_points():
    from spray_dash.figures import CORRECT_COLOR, WRONG_COLOR, cluster_color
    from spray_dash.selection import ViewState
    from spray_dash.views import coloring, current_clustering, groups

    clusters = ViewState(color="ward", k=3)
    assert coloring(VIEW, clusters) == ([cluster_color(c) for c in (0, 1, 2, 2)], None)
    assert [(g.label, g.indices.tolist()) for g in groups(VIEW, clusters)] == [
        ("cluster 0", [0]), ("cluster 1", [1]), ("cluster 2", [2, 3])]
    assert current_clustering(VIEW, clusters) == "ward-k3"

    correct = ViewState(color="correct")
    assert coloring(VIEW, correct) == ([CORRECT_COLOR, WRONG_COLOR, CORRECT_COLOR, CORRECT_COLOR], None)
    assert [(g.label, g.indices.tolist()) for g in groups(VIEW, correct)] == [("correct", [0, 2, 3]),
                                                                              ("wrong", [1])]
    assert current_clustering(VIEW, correct) is None

    colors, colorbar = coloring(VIEW, ViewState(color="prob"))
    assert colors == [0.9, 0.1, 0.8, 0.7] and colorbar["colorbar"]["title"]["text"] == "p(true)"
    assert groups(VIEW, ViewState(color="prob")) == []

    # a clustering that is not stored, or an unknown colouring, shows correctness and no groups
    assert coloring(VIEW, ViewState(color="ward", k=9))[0][1] == WRONG_COLOR
    assert coloring(VIEW, ViewState(color="nope"))[0][1] == WRONG_COLOR
    assert groups(VIEW, ViewState(color="nope")) == [] and current_clustering(VIEW, ViewState(color="nope")) is None


def test_a_new_colour_mode_is_one_registered_entry(monkeypatch):
    from precompute.errors import ConfigError
    from precompute.registry import Registry
    from spray_dash import views
    from spray_dash.selection import ViewState

    with pytest.raises(ConfigError, match="unknown colour mode"):
        views.COLOR_MODES.get("nope")
    modes = Registry("colour mode")
    for name in views.COLOR_MODES:
        modes.register(name)(views.COLOR_MODES.get(name))
    rank = views.ColorMode("rank", "true-class rank", 9, lambda view, state: (view.true_rank.tolist(), None),
                           lambda view, state: [])
    modes.register("rank")(rank)
    monkeypatch.setattr(views, "COLOR_MODES", modes)
    assert views.color_options(VIEW)[-1] == {"label": "true-class rank", "value": "rank"}
    assert views.color_mode(VIEW, "rank") is rank
    assert views.coloring(VIEW, ViewState(color="rank"))[0] == [1, 2, 1, 1]
    assert "rank" in views.plain_colors()
