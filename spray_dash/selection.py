"""Pure functions for selections, URL state and exports (no Dash, no disk).

A selection is a set of sample indices of one class. In URLs and image routes it
travels as a *mask token*: the zlib-compressed bit mask, base64url-encoded, which is
about 200 characters for any selection of 1,300 samples, so links stay short and
image routes stay stateless and cacheable.
"""
from __future__ import annotations

import base64
import csv
import io
import json
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence
from urllib.parse import urlencode

import numpy as np

__all__ = [
    "selection_medoid",
    "encode_mask",
    "decode_mask",
    "indices_from_selected_data",
    "ViewState",
    "parse_view_state",
    "view_query",
    "export_rows",
    "EXPORT_COLUMNS",
    "export_csv",
    "export_json",
    "page_slice",
]

MAX_TOKEN_CHARS = 8192


def encode_mask(indices: Iterable[int], n: int) -> str:
    """Encode sample indices (< ``n``) as a mask token."""
    mask = np.zeros(n, dtype=bool)
    idx = np.fromiter((int(i) for i in indices), dtype=np.int64)
    if idx.size:
        mask[idx] = True
    packed = zlib.compress(np.packbits(mask).tobytes(), 9)
    return base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")


def decode_mask(token: str, n: int) -> Optional[np.ndarray]:
    """Sorted indices of a mask token for a class of ``n`` samples; None if the token is malformed."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        return None
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)), bufsize=(n + 7) // 8 + 16)
    except (ValueError, zlib.error):
        return None
    if len(raw) != (n + 7) // 8:
        return None
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    if bits[n:].any():
        return None
    return np.flatnonzero(bits[:n]).astype(np.int64)


def indices_from_selected_data(selected: Optional[Mapping[str, Any]], n: int) -> Optional[np.ndarray]:
    """Sample indices of a Plotly ``selectedData`` (lasso/box) or ``clickData`` payload.

    Points carry the sample index in ``customdata`` (a number or a one-element list);
    out-of-range values are dropped. Returns None when nothing was selected.
    """
    if not selected or not selected.get("points"):
        return None
    out = set()
    for point in selected["points"]:
        value = point.get("customdata")
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        try:
            index = int(value)
        except (TypeError, ValueError):
            continue
        if 0 <= index < n:
            out.add(index)
    return np.array(sorted(out), dtype=np.int64)


@dataclass
class ViewState:
    """What the class explorer shows; round-trips through the URL query.

    Attributes
    ----------
    map : str
        ``umap``, ``tsne`` or ``spectral``.
    dims : tuple of int
        Spectral dimensions shown when ``map == "spectral"``.
    color : str
        A clustering family, or a colour mode of :data:`spray_dash.views.COLOR_MODES` (``correct``, ``prob``, ...).
    k : int or None
        Cluster count of the colouring clustering.
    cluster : int or None
        Selected cluster of the colouring clustering.
    sel : str or None
        Mask token of an explicit selection (wins over ``cluster``).
    page : int
        Gallery page, from 0.
    """

    map: str = "umap"
    dims: tuple = (1, 2)
    color: str = ""
    k: Optional[int] = None
    cluster: Optional[int] = None
    sel: Optional[str] = None
    page: int = 0
    extra: Dict[str, str] = field(default_factory=dict)


def _int(value: Any, low: int, high: int) -> Optional[int]:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if low <= number <= high else None


def parse_view_state(query: Mapping[str, Any], *, maps: Sequence[str], families: Mapping[str, Sequence[int]],
                     q: int, n: int, default_family: str, default_k: int,
                     colors: Sequence[str] = ()) -> ViewState:
    """Read a view from URL query values, falling back to defaults for anything invalid.

    ``colors`` are the colourings besides the clustering ``families`` (the explorer
    passes :func:`spray_dash.views.plain_colors`). Never raises: hostile or stale links
    give the default view instead of an error.
    """
    state = ViewState(color=default_family, k=default_k)
    choices = list(maps) + ["spectral"]
    if query.get("map") in choices:
        state.map = str(query["map"])
    elif state.map not in choices:
        state.map = choices[0]
    dims = str(query.get("dims", "")).split(",")
    if len(dims) == 2:
        x, y = _int(dims[0], 0, q - 1), _int(dims[1], 0, q - 1)
        if x is not None and y is not None and x != y:
            state.dims = (x, y)
    state.dims = tuple(d for d in state.dims if d < q) if all(d < q for d in state.dims) else (0, min(1, q - 1))
    color = query.get("color")
    if color in families or color in colors:
        state.color = str(color)
    if state.color in families:
        k = _int(query.get("k"), 2, 10_000)
        state.k = k if k in families[state.color] else (default_k if default_k in families[state.color]
                                                          else families[state.color][0])
        cluster = _int(query.get("cluster"), 0, state.k - 1)
        state.cluster = cluster
    else:
        state.k = None
        # a quick-select group of a plain colouring (correct/wrong, training/validation); the
        # explorer selects nothing for a key its colouring has no group for
        state.cluster = _int(query.get("cluster"), 0, 1_000)
    sel = query.get("sel")
    if isinstance(sel, str) and decode_mask(sel, n) is not None:
        state.sel = sel
        state.cluster = None
    page = _int(query.get("page"), 0, 1_000_000)
    state.page = page or 0
    return state


def view_query(state: ViewState) -> str:
    """The URL query string (with leading ``?``) of a view."""
    params: Dict[str, Any] = {"map": state.map}
    if state.map == "spectral":
        params["dims"] = f"{state.dims[0]},{state.dims[1]}"
    params["color"] = state.color
    if state.k is not None:
        params["k"] = state.k
    if state.sel:
        params["sel"] = state.sel
    elif state.cluster is not None:
        params["cluster"] = state.cluster
    if state.page:
        params["page"] = state.page
    return "?" + urlencode(params)


def page_slice(count: int, page: int, per_page: int) -> tuple:
    """``(start, stop, page, pages)`` of a gallery page, with ``page`` clamped into range."""
    pages = max(1, -(-count // per_page))
    page = min(max(0, int(page)), pages - 1)
    start = page * per_page
    return start, min(count, start + per_page), page, pages


def export_rows(indices: Sequence[int], *, class_name: str, paths: Sequence[str], label_names: Sequence[str],
                top_classes: np.ndarray, top_probs: np.ndarray, true_rank: np.ndarray, true_prob: np.ndarray,
                clustering: Optional[str], cluster_labels: Optional[np.ndarray]) -> List[Dict[str, Any]]:
    """One dict per selected sample: index, path, class, cluster, predictions."""
    rows = []
    for i in indices:
        i = int(i)
        top1 = int(top_classes[i, 0])
        rows.append({
            "index": i,
            "path": str(paths[i]),
            "class": class_name,
            "clustering": clustering or "",
            "cluster": int(cluster_labels[i]) if cluster_labels is not None else "",
            "true_rank": int(true_rank[i]),
            "true_prob": round(float(true_prob[i]), 6),
            "top1": label_names[top1] if top1 < len(label_names) else str(top1),
            "top1_prob": round(float(top_probs[i, 0]), 6),
            "top5": [label_names[c] if c < len(label_names) else str(c) for c in top_classes[i]],
        })
    return rows


EXPORT_COLUMNS = ["index", "path", "class", "clustering", "cluster", "true_rank", "true_prob", "top1", "top1_prob",
                  "top5", "run"]


def export_csv(rows: Sequence[Mapping[str, Any]], *, run: str) -> str:
    """CSV text of :func:`export_rows` output (top-5 joined by ``|``).

    ``run`` names the run in the last column: its name, never a path on the server.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "top5": "|".join(row["top5"]), "run": run})
    return buffer.getvalue()


def export_json(rows: Sequence[Mapping[str, Any]], *, run: str, class_id: str, class_name: str) -> str:
    """JSON text of a selection export; ``run`` is the run's name, never a path on the server."""
    return json.dumps({"run": run, "class_id": class_id, "class": class_name, "count": len(rows),
                       "samples": list(rows)}, indent=1)


def selection_medoid(knn_indices: np.ndarray, knn_distances: np.ndarray, indices: Sequence[int]) -> int:
    """The selection's most central sample in an analysis's kNN graph (its graph medoid).

    The selected sample with the most kNN edges (either way) to other selected samples;
    ties go to the smaller mean distance to its selected neighbours, then the smaller
    index. For analyses whose clusters share a shape but not a place (GW), where a mean
    heatmap smears the shape away, this sample is the prototype.

    Parameters
    ----------
    knn_indices : ndarray of int, shape (n, k)
    knn_distances : ndarray of float, shape (n, k)
    indices : sequence of int
        The selection (sample indices, non-empty).

    Returns
    -------
    int
        A sample index from ``indices``.
    """
    chosen = np.asarray(indices, dtype=np.int64)
    n = len(knn_indices)
    selected = np.zeros(n, dtype=bool)
    selected[chosen] = True
    inside = selected[knn_indices[chosen]]  # (m, k): which of each selected sample's neighbours are selected
    degree = inside.sum(axis=1).astype(np.int64)
    incoming = np.bincount(knn_indices[chosen][inside], minlength=n)[chosen]
    distances = np.where(inside, knn_distances[chosen], 0.0).sum(axis=1) / np.maximum(degree, 1)
    distances = np.where(degree > 0, distances, np.inf)
    order = np.lexsort((chosen, distances, -(degree + incoming)))
    return int(chosen[order[0]])
