"""Pure figure builders: arrays in, ``go.Figure`` out (testable without a browser)."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

__all__ = [
    "CLUSTER_COLORS",
    "CORRECT_COLOR",
    "WRONG_COLOR",
    "cluster_color",
    "cluster_colors",
    "correctness_colors",
    "probability_colors",
    "embedding_figure",
    "spectrum_figure",
    "tau_overview_bars",
    "delta_histogram",
    "inspector_figure",
    "box_from_relayout",
]

CLUSTER_COLORS: List[str] = list(qualitative.D3) + list(qualitative.Dark24[10:]) + list(qualitative.Light24)
CORRECT_COLOR = "#2a9d8f"
WRONG_COLOR = "#e76f51"
_FONT = dict(family="Inter, system-ui, -apple-system, Segoe UI, sans-serif", size=12, color="#1f2933")


def cluster_color(cluster: int) -> str:
    """Colour of cluster ``cluster`` (cycles after 44 colours)."""
    return CLUSTER_COLORS[int(cluster) % len(CLUSTER_COLORS)]


def cluster_colors(labels: np.ndarray) -> Tuple[list, Optional[dict]]:
    """One categorical colour per point from its cluster label; no colour bar.

    Returns
    -------
    colors : list of str
        Hex strings, one per point.
    colorbar : None
    """
    return [cluster_color(c) for c in np.asarray(labels)], None


def correctness_colors(true_rank: np.ndarray) -> Tuple[list, Optional[dict]]:
    """Teal where the true label is the top-1 prediction (rank 1), orange elsewhere; no colour bar."""
    return [CORRECT_COLOR if r == 1 else WRONG_COLOR for r in np.asarray(true_rank)], None


def probability_colors(true_prob: np.ndarray) -> Tuple[list, Optional[dict]]:
    """p(true label) on a continuous Viridis scale from 0 to 1, with its colour bar.

    Returns
    -------
    colors : list of float
        One per point, rounded to 4 decimals.
    colorbar : dict
        Marker settings of the continuous scale (passed to :func:`embedding_figure`).
    """
    return np.asarray(true_prob, dtype=float).round(4).tolist(), {
        "colorscale": "Viridis", "cmin": 0.0, "cmax": 1.0,
        "colorbar": {"title": {"text": "p(true)", "side": "right"}, "thickness": 12, "len": 0.8},
    }


#: Colours of the training and the validation samples (``split`` 0 and 1).
SPLIT_COLORS = ("#8d99ae", "#e76f51")


def score_colors(scores: np.ndarray, title: str, *, reverse: bool = False) -> Tuple[list, Optional[dict]]:
    """A per-sample score in [0, 1] on a continuous scale, with its colour bar.

    ``reverse`` flips the scale for a score where high is bad (off-object sensitivity),
    so that suspicious samples are always drawn in the same (dark) colour. A sample
    without a score (NaN) gets None, which plotly draws without a colour.
    """
    values = [None if not np.isfinite(v) else round(float(v), 4) for v in np.asarray(scores, dtype=float)]
    return values, {
        "colorscale": "Cividis", "cmin": 0.0, "cmax": 1.0, "reversescale": reverse,
        "colorbar": {"title": {"text": title, "side": "right"}, "thickness": 12, "len": 0.8},
    }


def embedding_figure(coords: np.ndarray, colors: list, *, colorbar: Optional[dict] = None,
                     selected: Optional[Sequence[int]] = None, axis_titles: Tuple[str, str] = ("", ""),
                     revision: str = "", height: int = 560) -> go.Figure:
    """WebGL scatter of a 2-D map; each point's sample index is its ``customdata``.

    Parameters
    ----------
    coords : ndarray of shape (n, 2)
    colors : list of length n
        From a colour mode (:data:`spray_dash.views.COLOR_MODES`).
    colorbar : dict, optional
        Continuous-scale marker settings from a colour mode.
    selected : sequence of int, optional
        Sample indices to show as selected (others are dimmed).
    axis_titles : (str, str)
    revision : str
        ``uirevision``: zoom and pan survive updates with the same revision.
    """
    coords = np.asarray(coords, dtype=np.float64)
    n = len(coords)
    marker = {"size": 6, "color": colors, "line": {"width": 0}, "opacity": 0.9}
    if colorbar:
        marker.update(colorbar)
    trace = go.Scattergl(
        x=coords[:, 0].round(5), y=coords[:, 1].round(5), mode="markers",
        customdata=list(range(n)), marker=marker, hoverinfo="none",
        selected={"marker": {"opacity": 1.0, "size": 8}},
        unselected={"marker": {"opacity": 0.18}},
        name="samples", showlegend=False,
    )
    if selected is not None:
        trace.selectedpoints = [int(i) for i in selected]
    # Trace 1 rings the sample whose gallery tile was clicked (filled in by a Patch).
    focus = go.Scattergl(x=[], y=[], customdata=[], mode="markers", hoverinfo="skip", showlegend=False,
                         name="focus", marker={"size": 18, "color": "rgba(0,0,0,0)",
                                               "line": {"width": 3, "color": "#111827"}})
    fig = go.Figure([trace, focus])
    fig.update_layout(
        dragmode="lasso", uirevision=revision, height=height, font=_FONT,
        margin=dict(l=44, r=16, t=12, b=40), plot_bgcolor="#fbfbfd", paper_bgcolor="white",
        hovermode="closest", clickmode="event+select", newselection_mode="immediate",
        xaxis=dict(title=axis_titles[0], zeroline=False, showgrid=True, gridcolor="#eef0f4", showticklabels=False),
        yaxis=dict(title=axis_titles[1], zeroline=False, showgrid=True, gridcolor="#eef0f4", showticklabels=False),
    )
    return fig


def spectrum_figure(eigenvalues: np.ndarray, eigengap_k: int, *, height: int = 200) -> go.Figure:
    """The eigenvalue spectrum of L_sym with the eigengap marked.

    The eigengap's label sits above the plot area, beside its band and on the side with
    more room, so it never covers a tick label.

    Parameters
    ----------
    eigenvalues : ndarray of shape (q,), ascending
    eigengap_k : int
        Count of eigenvalues before the largest (relative) gap.
    """
    values = np.asarray(eigenvalues, dtype=float)
    index = np.arange(1, len(values) + 1)
    colors = ["#3d5a80" if i <= eigengap_k else "#98a6b8" for i in index]
    fig = go.Figure(go.Scatter(
        x=index, y=values, mode="lines+markers", line=dict(color="#98a6b8", width=1.5),
        marker=dict(color=colors, size=7), hovertemplate="λ<sub>%{x}</sub> = %{y:.4f}<extra></extra>",
        showlegend=False,
    ))
    top_margin = 10
    if 1 <= eigengap_k < len(values):
        fig.add_vrect(x0=eigengap_k + 0.1, x1=eigengap_k + 0.9, fillcolor="#ee6c4d", opacity=0.18, line_width=0)
        rightwards = eigengap_k <= len(values) / 2
        fig.add_annotation(x=eigengap_k + 0.1 if rightwards else eigengap_k + 0.9, xref="x",
                           xanchor="left" if rightwards else "right", y=1.0, yref="paper", yanchor="bottom",
                           text=f"eigengap → {eigengap_k} group" + ("s" if eigengap_k != 1 else ""),
                           showarrow=False, font=dict(size=11, color="#c44b2b"))
        top_margin = 24
    fig.update_layout(
        height=height, margin=dict(l=40, r=10, t=top_margin, b=30), font=_FONT, plot_bgcolor="white",
        xaxis=dict(title="eigenvalue index", dtick=4 if len(values) > 12 else 1, gridcolor="#eef0f4",
                   range=[0.4, len(values) + 0.6]),
        yaxis=dict(title="λ", gridcolor="#eef0f4", rangemode="tozero"),
    )
    return fig


def tau_overview_bars(taus: Sequence[Optional[float]], names: Sequence[str], *, highlight: int = 5,
                      max_bars: int = 200, notes: Optional[Sequence[Optional[str]]] = None) -> List[dict]:
    """All classes' tau as bars, sorted descending, for a chart drawn in HTML.

    The leaderboard draws this strip with plain elements, not Plotly: plotly.js is 4.8 MB
    that the browser would have to parse before the page answers a click. Beyond
    ``max_bars`` classes the top ``max_bars // 2`` keep a bar each and the rest share
    bars of equal rank ranges, so 1,000 classes cost 200 links, not 1,000.

    Parameters
    ----------
    taus : sequence of float or None
        One per class; None (or NaN) for a class without a tau (too few samples).
        Those come last, in the given order, as stubs.
    names : sequence of str
    highlight : int
        How many of the highest bars are marked ``top``.
    max_bars : int
    notes : sequence of str or None, optional
        Why a class has no tau (its ``tau_note``), one per class.

    Returns
    -------
    list of dict
        One per bar, rank order: ``rank`` and ``last_rank`` (the positions it covers, 1 =
        highest tau), ``name`` and ``tau`` of its first class (None without a tau),
        ``tau_last`` of its last, ``note`` (why the first class has no tau, else None),
        ``height`` (per cent of the tallest bar, at least 1 so every bar stays
        clickable) and ``top`` (among the ``highlight`` highest).
    """
    values = np.array([np.nan if t is None else float(t) for t in taus], dtype=float)
    missing = np.isnan(values)
    order = np.lexsort((-np.nan_to_num(values, nan=0.0), missing))  # ranked by tau, then the rest in order
    tallest = float(np.nanmax(values)) if (~missing).any() and np.nanmax(values) > 0 else 1.0
    n = len(order)
    if n <= max_bars:
        starts = list(range(n))
    else:
        single = max_bars // 2
        starts = list(range(single)) + [int(v) for v in np.linspace(single, n, max_bars - single, endpoint=False)]
    bounds = starts + [n]

    def tau_of(i):
        return None if missing[i] else float(values[i])

    bars = []
    for first, stop in zip(bounds[:-1], bounds[1:]):
        i, last = order[first], order[stop - 1]
        bars.append({"rank": first + 1, "last_rank": stop, "name": str(names[i]), "tau": tau_of(i),
                     "tau_last": tau_of(last),
                     "note": (str(notes[i]) if notes is not None and notes[i] else "too few samples")
                     if missing[i] else None,
                     "height": 1.0 if missing[i] else max(1.0, round(100.0 * max(float(values[i]), 0.0) / tallest, 2)),
                     "top": first < highlight and not missing[i]})
    return bars


def delta_histogram(artifact: Sequence[float], control: Sequence[float], *, label: str = "Δ p(origin)",
                    height: int = 260, names: Tuple[str, str] = ("artifact", "control")) -> go.Figure:
    """Overlaid histograms of per-sample changes: the artifact's and its control's (or any two ``names``)."""
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=list(artifact), name=names[0], marker_color="#ee6c4d", opacity=0.75, nbinsx=30))
    fig.add_trace(go.Histogram(x=list(control), name=names[1], marker_color="#98a6b8", opacity=0.75, nbinsx=30))
    fig.update_layout(
        barmode="overlay", height=height, margin=dict(l=40, r=10, t=10, b=36), font=_FONT, plot_bgcolor="white",
        xaxis=dict(title=label, gridcolor="#eef0f4", zeroline=True, zerolinecolor="#c9d1dc"),
        yaxis=dict(title="samples", gridcolor="#eef0f4"), legend=dict(orientation="h", y=1.08, x=0),
    )
    return fig


def inspector_figure(image_url: str, heatmap_url: str, width: int, height: int, *, overlay: float = 0.0,
                     box: Optional[Sequence[float]] = None, size: int = 300) -> go.Figure:
    """A sample shown at model-input coordinates, for drawing a box on it.

    The image is a layout image loaded by URL; axes run over the model's input pixels
    (y downwards), so a drawn rectangle's coordinates are pixel coordinates.
    """
    images = [dict(source=image_url, xref="x", yref="y", x=0, y=0, sizex=width, sizey=height, sizing="stretch",
                   layer="below")]
    if overlay > 0:
        images.append(dict(source=heatmap_url, xref="x", yref="y", x=0, y=0, sizex=width, sizey=height,
                           sizing="stretch", layer="below", opacity=overlay))
    fig = go.Figure(go.Scatter(x=[0, width], y=[0, height], mode="markers", marker=dict(opacity=0),
                               hoverinfo="skip", showlegend=False))
    fig.update_layout(
        images=images, dragmode="drawrect", height=size, width=size, margin=dict(l=2, r=2, t=2, b=2),
        xaxis=dict(range=[0, width], visible=False, constrain="domain"),
        yaxis=dict(range=[height, 0], visible=False, scaleanchor="x", constrain="domain"),
        newshape=dict(line=dict(color="#ee6c4d", width=2), fillcolor="rgba(238,108,77,0.15)"),
        plot_bgcolor="black", paper_bgcolor="white",
    )
    if box is not None:
        x0, y0, x1, y1 = box
        fig.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line=dict(color="#ee6c4d", width=2))
    return fig


#: Occlusion maps: red where covering a cell lowers p(true), blue where it raises it, and
#: transparent where it changes nothing, so the image shows through the cells that do not matter.
SENSITIVITY_SCALE = [[0.0, "rgba(33,102,172,0.85)"], [0.5, "rgba(255,255,255,0)"], [1.0, "rgba(178,24,43,0.9)"]]


def sensitivity_figure(image_url: str, sensitivity: np.ndarray, width: int, height: int, *,
                       size: int = 300) -> go.Figure:
    """The perturbation scan of one sample: its occlusion map over the image.

    Parameters
    ----------
    image_url : str
        The sample's thumbnail, drawn beneath at model-input coordinates.
    sensitivity : ndarray of float, shape (g, g)
        Drop of p(true label) when each cell is occluded (row 0 at the top).
    width, height : int
        The model input's size in pixels.
    """
    grid = sensitivity.shape[0]
    edges_x = np.linspace(0, width, grid + 1)
    edges_y = np.linspace(0, height, grid + 1)
    limit = max(float(np.abs(sensitivity).max()), 1e-6)
    fig = go.Figure(go.Heatmap(
        z=np.asarray(sensitivity, dtype=float).round(4), x=(edges_x[:-1] + edges_x[1:]) / 2,
        y=(edges_y[:-1] + edges_y[1:]) / 2, zmin=-limit, zmax=limit, colorscale=SENSITIVITY_SCALE,
        showscale=False, hovertemplate="occluding this cell: Δp = −%{z:.3f}<extra></extra>"))
    fig.update_layout(
        images=[dict(source=image_url, xref="x", yref="y", x=0, y=0, sizex=width, sizey=height, sizing="stretch",
                     layer="below")],
        height=size, width=size, margin=dict(l=2, r=2, t=2, b=2), plot_bgcolor="black", paper_bgcolor="white",
        xaxis=dict(range=[0, width], visible=False, constrain="domain"),
        yaxis=dict(range=[height, 0], visible=False, scaleanchor="x", constrain="domain"),
    )
    return fig


def box_from_relayout(relayout: Optional[dict]) -> Optional[Tuple[float, float, float, float]]:
    """The last rectangle drawn or edited on a figure, from its ``relayoutData``; None if none."""
    if not relayout:
        return None
    shapes = relayout.get("shapes")
    if isinstance(shapes, list) and shapes:
        last = shapes[-1]
        try:
            return tuple(float(last[key]) for key in ("x0", "y0", "x1", "y1"))
        except (KeyError, TypeError, ValueError):
            return None
    keys = {key.split(".", 1)[1]: value for key, value in relayout.items()
            if key.startswith("shapes[") and "." in key}
    try:
        return tuple(float(keys[key]) for key in ("x0", "y0", "x1", "y1"))
    except (KeyError, TypeError, ValueError):
        return None
