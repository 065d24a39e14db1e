"""Pure helpers of the class explorer: what to draw for a class and a view state.

Input is a :class:`spray_dash.data.ClassView` (stored arrays) and a
:class:`spray_dash.selection.ViewState`; output is plain data for the page.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .figures import CORRECT_COLOR, WRONG_COLOR, cluster_color, point_colors
from .routes import thumb_url
from .selection import ViewState

__all__ = [
    "FAMILY_LABELS",
    "map_options",
    "color_options",
    "k_options",
    "coordinates",
    "coloring",
    "Group",
    "groups",
    "GalleryItem",
    "gallery_items",
    "default_view",
]

MAP_LABELS = {"umap": "UMAP", "tsne": "t-SNE", "spectral": "Spectral dimensions"}
FAMILY_LABELS = {
    "kmeans": "k-means, all eigenvectors (paper)",
    "ward": "Ward, all eigenvectors",
    "kmeans_lead": "k-means, leading eigenvectors",
}


def default_view(view) -> Tuple[str, int]:
    """``(family, k)`` of the class's default clustering chosen by precompute."""
    family, _, k = str(view.summary.get("default_clustering", "kmeans-k2")).rpartition("-k")
    if family not in view.families:
        family = next(iter(view.families))
    k = int(k) if k.isdigit() and int(k) in view.families[family] else view.families[family][0]
    return family, k


def map_options(view) -> List[dict]:
    """Dropdown options of the 2-D views: stored maps, then spectral dimensions."""
    options = [{"label": MAP_LABELS.get(name, name), "value": name} for name in view.maps]
    options.append({"label": MAP_LABELS["spectral"], "value": "spectral"})
    return options


def color_options(view) -> List[dict]:
    """Dropdown options of the colourings: stored clustering families, correctness, probability."""
    options = [{"label": FAMILY_LABELS.get(name, name), "value": name} for name in view.families]
    options += [{"label": "prediction correct?", "value": "correct"},
                {"label": "p(true label)", "value": "prob"}]
    return options


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


def coloring(view, state: ViewState):
    """``(colors, colorbar)`` of the chosen colouring (see :func:`spray_dash.figures.point_colors`)."""
    if state.color in view.families and state.k is not None:
        labels = view.labels(state.color, state.k)
        if labels is not None:
            return point_colors("cluster", labels=labels)
    if state.color == "prob":
        return point_colors("prob", true_prob=view.true_prob)
    return point_colors("correct", true_rank=view.true_rank)


@dataclass
class Group:
    """A quick-select group: a cluster, or correct/wrong predictions."""

    key: int
    label: str
    color: str
    indices: np.ndarray


def groups(view, state: ViewState) -> List[Group]:
    """Quick-select groups of the current colouring, largest first for clusters."""
    if state.color in view.families and state.k is not None:
        labels = view.labels(state.color, state.k)
        if labels is None:
            return []
        return [Group(int(c), f"cluster {c}", cluster_color(c), np.flatnonzero(labels == c))
                for c in range(int(labels.max()) + 1)]
    if state.color == "correct":
        correct = view.true_rank == 1
        return [Group(0, "correct", CORRECT_COLOR, np.flatnonzero(correct)),
                Group(1, "wrong", WRONG_COLOR, np.flatnonzero(~correct))]
    return []


def current_clustering(state: ViewState) -> Optional[str]:
    """Stored name of the clustering that colours the view, if any."""
    if state.k is None or state.color in ("correct", "prob"):
        return None
    return f"{state.color}-k{state.k}"


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
        ))
    return items
