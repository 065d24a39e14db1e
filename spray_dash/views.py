"""Pure helpers of the class explorer: what to draw for a class and a view state.

Input is a :class:`spray_dash.data.ClassView` (stored arrays) and a
:class:`spray_dash.selection.ViewState`; output is plain data for the page. The ways
of colouring the map are one registry, :data:`COLOR_MODES`: a new colour mode is one
registered :class:`ColorMode`, nothing else changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlencode
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from precompute.errors import StoreError
from precompute.registry import Registry
from precompute.store import clustering_name, parse_clustering_name

from .figures import (
    CORRECT_COLOR,
    SPLIT_COLORS,
    WRONG_COLOR,
    cluster_color,
    cluster_colors,
    correctness_colors,
    probability_colors,
    score_colors,
)
from .routes import thumb_url
from .selection import ViewState

__all__ = [
    "FAMILY_LABELS",
    "ColorMode",
    "COLOR_MODES",
    "color_modes",
    "color_mode",
    "plain_colors",
    "current_clustering",
    "map_options",
    "color_options",
    "k_options",
    "spectral_dimension_options",
    "coordinates",
    "coloring",
    "Group",
    "groups",
    "GalleryItem",
    "gallery_items",
    "default_view",
    "tau_text",
    "default_k_note",
    "hover_captions",
]

MAP_LABELS = {"umap": "UMAP", "tsne": "t-SNE", "spectral": "Spectral dimensions"}
FAMILY_LABELS = {
    "kmeans": "k-means, all eigenvectors (paper)",
    "ward": "Ward, all eigenvectors",
    "kmeans_lead": "k-means, leading eigenvectors",
}


def default_view(view) -> Tuple[str, int]:
    """``(family, k)`` of the class's default clustering chosen by precompute."""
    family, k = _parse_clustering(view.summary.get("default_clustering")) or ("", 0)
    if family not in view.families:
        family = next(iter(view.families))
    return family, k if k in view.families[family] else view.families[family][0]


def _parse_clustering(name) -> Optional[Tuple[str, int]]:
    """``(family, k)`` of a stored clustering name, or None if it is not one."""
    try:
        return parse_clustering_name(str(name or ""))
    except StoreError:
        return None


def requested_analysis(names: Sequence[str], requested: Optional[str]) -> Optional[str]:
    """The analysis a URL's ``analysis=`` asks for, if the class has it; else None (the primary one)."""
    return requested if requested in list(names)[1:] else None


def analysis_options(view) -> List[dict]:
    """Dropdown options of the class's analyses (by distance), each with its tau."""
    return [{"label": f"{name} · τ {tau_text(tau)[0]}", "value": name} for name, tau in view.analysis_taus.items()]


def analysis_query(view, first: bool = False) -> str:
    """``&analysis=NAME`` (``?...`` when ``first``) for an analysis other than the primary one, else ""."""
    if view.analysis == view.analyses[0]:
        return ""
    return ("?" if first else "&") + urlencode({"analysis": view.analysis})


def map_options(view) -> List[dict]:
    """Dropdown options of the 2-D views: stored maps, then spectral dimensions."""
    options = [{"label": MAP_LABELS.get(name, name), "value": name} for name in view.maps]
    options.append({"label": MAP_LABELS["spectral"], "value": "spectral"})
    return options


def color_options(view) -> List[dict]:
    """Dropdown options of the colourings: every colour mode's choices, in the registry's order."""
    return [option for mode in color_modes() for option in mode.choices(view)]


def k_options(view, family: str) -> List[dict]:
    """Dropdown options of k for a clustering family."""
    return [{"label": f"k = {k}", "value": k} for k in view.families.get(family, [])]


def spectral_dimension_options(view) -> List[dict]:
    """Spectral dimensions, most informative (smallest non-trivial eigenvalue) first."""
    return [{"label": f"φ{j}  (λ={view.eigenvalues[j]:.3f})", "value": j} for j in range(view.spectral.shape[1])]


def coordinates(view, state: ViewState) -> Tuple[np.ndarray, Tuple[str, str]]:
    """The (n, 2) coordinates and axis titles of the chosen 2-D view."""
    if state.map == "spectral" or state.map not in view.maps:
        x, y = state.dims
        return view.spectral[:, [x, y]], (f"φ{x}", f"φ{y}")
    label = MAP_LABELS.get(state.map, state.map)
    return view.maps[state.map], (f"{label} 1", f"{label} 2")


@dataclass
class Group:
    """A quick-select group: a cluster, or correct/wrong predictions."""

    key: int
    label: str
    color: str
    indices: np.ndarray


# ---------------------------------------------------------------------------------------------
# colour modes: one registered entry per way of colouring the map
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColorMode:
    """One way of colouring the explorer's map.

    Attributes
    ----------
    name : str
        Registry key.
    label : str
        Dropdown label (a clustering mode labels each family with :data:`FAMILY_LABELS`).
    order : int
        Position among the dropdown's options.
    paint : callable
        ``paint(view, state) -> (colors, colorbar)``: one colour per point and, for a
        continuous scale, its colour bar (the legend of continuous modes).
    groups : callable
        ``groups(view, state) -> list of Group``: the quick-select buttons, which are the
        legend of categorical modes (swatch, label, count).
    clustering : bool
        True if the mode colours by a stored clustering: its choices are the class's
        clustering families and the view has a k.
    available : callable
        ``available(view) -> bool``: whether the class has what the mode shows (a mode
        over an optional file, such as the masks, is offered only where it exists).
    """

    name: str
    label: str
    order: int
    paint: Callable[..., Tuple[list, Optional[dict]]]
    groups: Callable[..., List[Group]]
    clustering: bool = False
    available: Callable[..., bool] = lambda view: True

    def choices(self, view) -> List[dict]:
        """Dropdown options this mode offers for ``view`` (value = the URL's ``color``)."""
        if not self.available(view):
            return []
        if self.clustering:
            return [{"label": FAMILY_LABELS.get(name, name), "value": name} for name in view.families]
        return [{"label": self.label, "value": self.name}]


COLOR_MODES: Registry = Registry("colour mode")


def _register(mode: ColorMode) -> ColorMode:
    return COLOR_MODES.register(mode.name)(mode)


def color_modes() -> List[ColorMode]:
    """Every registered colour mode, in dropdown order."""
    return sorted((COLOR_MODES.get(name) for name in COLOR_MODES), key=lambda mode: mode.order)


def color_mode(view, color: Optional[str]) -> Optional[ColorMode]:
    """The mode that offers the colouring ``color`` for ``view`` (a family, or a mode's name), or None."""
    return next((mode for mode in color_modes()
                 if any(option["value"] == color for option in mode.choices(view))), None)


def plain_colors(view=None) -> List[str]:
    """The colourings that need no stored clustering; with ``view``, only those that class offers
    (a class without masks has no right-reason colouring, so such a URL falls back to the default)."""
    return [mode.name for mode in color_modes() if not mode.clustering and (view is None or mode.available(view))]


def _cluster_labels(view, state: ViewState) -> Optional[np.ndarray]:
    return view.labels(state.color, state.k) if state.k is not None else None


def _paint_clusters(view, state: ViewState):
    labels = _cluster_labels(view, state)
    return cluster_colors(labels) if labels is not None else correctness_colors(view.true_rank)


def _cluster_groups(view, state: ViewState) -> List[Group]:
    labels = _cluster_labels(view, state)
    if labels is None:
        return []
    return [Group(int(c), f"cluster {c}", cluster_color(c), np.flatnonzero(labels == c))
            for c in range(int(labels.max()) + 1)]


def _correctness_groups(view, state: ViewState) -> List[Group]:
    correct = view.true_rank == 1
    return [Group(0, "correct", CORRECT_COLOR, np.flatnonzero(correct)),
            Group(1, "wrong", WRONG_COLOR, np.flatnonzero(~correct))]


_register(ColorMode("cluster", "clusters", 0, _paint_clusters, _cluster_groups, clustering=True))
_register(ColorMode("correct", "prediction correct?", 1,
                    lambda view, state: correctness_colors(view.true_rank), _correctness_groups))
_register(ColorMode("prob", "p(true label)", 2,
                    lambda view, state: probability_colors(view.true_prob), lambda view, state: []))
def _split_groups(view, state: ViewState) -> List[Group]:
    split = np.asarray(view.split)
    return [Group(0, "training", SPLIT_COLORS[0], np.flatnonzero(split == 0)),
            Group(1, "validation", SPLIT_COLORS[1], np.flatnonzero(split == 1))]


_register(ColorMode("split", "training / validation", 5,
                    lambda view, state: ([SPLIT_COLORS[int(s)] for s in view.split], None), _split_groups,
                    available=lambda view: getattr(view, "split", None) is not None))
_register(ColorMode("right_reason", "right-reason score", 3,
                    lambda view, state: score_colors(view.right_reason, "right reason"), lambda view, state: [],
                    available=lambda view: getattr(view, "right_reason", None) is not None))
_register(ColorMode("off_object", "off-object sensitivity", 4,
                    lambda view, state: score_colors(view.off_object, "off-object", reverse=True),
                    lambda view, state: [], available=lambda view: getattr(view, "off_object", None) is not None))


def coloring(view, state: ViewState):
    """``(colors, colorbar)`` of the chosen colouring; unknown colourings show correctness."""
    mode = color_mode(view, state.color) or COLOR_MODES.get("correct")
    return mode.paint(view, state)


def groups(view, state: ViewState) -> List[Group]:
    """Quick-select groups of the current colouring (clusters in label order, or correct/wrong)."""
    mode = color_mode(view, state.color)
    return mode.groups(view, state) if mode else []


def current_clustering(view, state: ViewState) -> Optional[str]:
    """Stored name of the clustering that colours the view, if any."""
    mode = color_mode(view, state.color)
    if mode is None or not mode.clustering or state.k is None:
        return None
    return clustering_name(state.color, state.k)


@dataclass
class GalleryItem:
    """One gallery tile."""

    index: int
    image_url: str
    heatmap_url: str
    top1: str
    top1_prob: float
    true_rank: int
    true_prob: float
    path: str
    mask_url: Optional[str] = None
    right_reason: Optional[float] = None
    off_object: Optional[float] = None
    validation: bool = False


def _finite(values: Optional[np.ndarray], i: int) -> Optional[float]:
    if values is None or not np.isfinite(values[i]):
        return None
    return float(values[i])


def gallery_items(view, indices: Sequence[int], label_names: Sequence[str]) -> List[GalleryItem]:
    """Tiles for the given sample indices, captioned as in the paper's Figure 4."""
    items = []
    for i in indices:
        i = int(i)
        top1 = int(view.top_classes[i, 0])
        items.append(GalleryItem(
            index=i,
            image_url=thumb_url(view.id, "image", i),
            heatmap_url=thumb_url(view.id, "heatmap", i),
            top1=label_names[top1] if top1 < len(label_names) else str(top1),
            top1_prob=float(view.top_probs[i, 0]),
            true_rank=int(view.true_rank[i]),
            true_prob=float(view.true_prob[i]),
            path=str(view.paths[i]),
            mask_url=thumb_url(view.id, "mask", i) if view.right_reason is not None else None,
            right_reason=_finite(view.right_reason, i),
            off_object=_finite(view.off_object, i),
            validation=getattr(view, "split", None) is not None and int(view.split[i]) == 1,
        ))
    return items


def tau_text(tau: Optional[float], note: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """``(text, tooltip)`` of a class's tau: ``"2.091"``, or "too few samples" with the reason.

    Parameters
    ----------
    tau : float or None
        None for a class too small for a meaningful tau.
    note : str, optional
        The summary's ``tau_note`` (why there is no tau).
    """
    if tau is None:
        return "too few samples", note or "too few samples for a meaningful τ"
    return f"{float(tau):.3f}", None


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def default_k_note(eigengap_k: Optional[int], default_clustering: Optional[str],
                   rule: str = "lead_eigengap") -> str:
    """Why the default view shows the k it shows, in a sentence.

    Precompute's ``lead_eigengap`` rule (``precompute.analysis.default_lead_eigengap``)
    picks ``kmeans_lead`` at ``max(2, eigengap k)``, capped at the largest stored k, so a
    spectrum whose eigengap suggests one group is still shown with two clusters.

    Parameters
    ----------
    eigengap_k : int or None
        Cluster count suggested by the largest relative eigengap.
    default_clustering : str or None
        Stored name of the default clustering, ``<family>-k<k>``.
    rule : str
        The run's default-clustering rule (``analysis.default_rule`` of the manifest).

    Returns
    -------
    str
        Empty if the default clustering is unknown.
    """
    parsed = _parse_clustering(default_clustering)
    if parsed is None:
        return ""
    family, k = parsed
    if rule != "lead_eigengap":
        return f"default {default_clustering}: chosen by the run's {rule!r} rule"
    if eigengap_k is None:
        return f"default k = {k}"
    suggested = _plural(int(eigengap_k), "group") if eigengap_k >= 1 else "no group"
    if eigengap_k < 2:
        text = (f"default k = {k}: the eigengap suggests {suggested} (no group stands out); "
                f"at least {k} clusters are shown")
    elif eigengap_k > k:
        text = f"default k = {k}: the eigengap suggests {suggested}; {k} is the largest k stored"
    else:
        text = f"default k = {k}: the eigengap suggests {suggested}"
    if family != "kmeans_lead":
        text += f" ({FAMILY_LABELS.get(family, family)})"
    return text


def hover_captions(view, label_names: Sequence[str]) -> List[str]:
    """One caption per sample for the map's hover preview: file name, top-1 prediction, p(true).

    Two lines: the file name, then e.g. "predicted star (97%) · p(true) = 0.970". Sent
    once with the page (a few tens of bytes a sample), so hovering needs no request.
    """
    captions = []
    for i in range(view.n):
        top1 = int(view.top_classes[i, 0])
        name = label_names[top1] if top1 < len(label_names) else str(top1)
        captions.append(f"{PurePosixPath(str(view.paths[i])).name}\npredicted {name} "
                        f"({float(view.top_probs[i, 0]):.0%}) · p(true)\u00a0=\u00a0{float(view.true_prob[i]):.3f}")
    return captions

