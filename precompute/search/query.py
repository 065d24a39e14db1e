"""Build a run's similarity index and query it: the same relevance pattern in every class.

:func:`build_search_index` pools every stored heatmap (:func:`relevance_vectors`) into
``RUN/search/``; ``run`` does it when it finishes, ``python -m precompute index RUN``
again at any time. :func:`find_similar` answers a query by a selection's prototype (the
mean of its vectors), by one sample, or by a heatmap of one's own.
"""
from __future__ import annotations

import threading
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..errors import ConfigError
from ..store import RunStore, RunWriter, class_id
from .index import build_index, search
from .vectors import GRID, relevance_vectors

__all__ = ["build_search_index", "find_similar", "query_vector"]


def build_search_index(root, *, grid: int = GRID, force: bool = False,
                       progress: Optional[Callable[[int, int], None]] = None) -> Dict:
    """Pool every finished class's heatmaps into the run's search index; return its meta.

    An index of this run over the same classes and grid is kept unless ``force``.
    """
    from ..errors import StoreError

    writer = RunWriter(root)
    # a run redone with --force lists fewer classes; the other finished folders stay until rewritten
    listed = {entry["id"] for entry in writer.manifest.get("classes", [])}
    vectors, rows, classes = [], [], [cid for cid in writer.finished_ids() if cid in listed]
    if not force:
        try:
            meta = writer.search_index()[2]
            if meta.get("classes") == classes and meta.get("grid") == grid:
                return meta
        except StoreError:
            pass
    for number, cid in enumerate(classes):
        heatmaps = writer.heatmaps(cid)
        label = int(writer.class_info(cid)["label"])
        for start in range(0, len(heatmaps), 4096):  # bounded memory for large classes
            vectors.append(relevance_vectors(heatmaps[start:start + 4096], grid))
        rows.append(np.stack([np.full(len(heatmaps), label), np.arange(len(heatmaps))], axis=1))
        if progress:
            progress(number + 1, len(classes))
    d = grid * grid
    meta = {"grid": grid, "dimensions": d, "vectors": "pooled |relevance|, unit length", "classes": classes}
    writer.write_search_index(np.concatenate(vectors) if vectors else np.zeros((0, d), np.float32),
                              np.concatenate(rows) if rows else np.zeros((0, 2), np.int32), meta)
    return writer.search_index()[2]


_LOADED: Dict[str, tuple] = {}
_LOCK = threading.Lock()


def _loaded(store: RunStore):
    """``(index, vectors, rows, meta)`` of the run's search index, kept in memory while the files are unchanged
    (the app answers many queries; loading 1.28 million vectors takes longer than a query)."""
    from ..store import SEARCH_DIR, SEARCH_META

    stamp = store.root / SEARCH_DIR / SEARCH_META
    key = str(store.root)
    version = stamp.stat().st_mtime_ns if stamp.is_file() else None
    with _LOCK:
        cached = _LOADED.get(key)
        if cached is None or cached[0] != version:
            vectors, rows, meta = store.search_index()
            cached = _LOADED[key] = (version, build_index(vectors), vectors, rows, meta)
        return cached[1:]


def query_vector(store: RunStore, vectors: np.ndarray, rows: np.ndarray, cid: str,
                 indices: Sequence[int]) -> np.ndarray:
    """The unit-length mean of the vectors of samples ``indices`` of class ``cid`` (the selection's prototype)."""
    label = int(store.class_info(cid)["label"])
    mask = (rows[:, 0] == label) & np.isin(rows[:, 1], np.asarray(list(indices), int))
    if not mask.any():
        raise ConfigError(f"class {store.class_info(cid)['name']} has none of those samples in the index")
    mean = vectors[mask].mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return (mean / norm if norm > 0 else mean).astype(np.float32)


def find_similar(store: RunStore, *, cid: Optional[str] = None, indices: Sequence[int] = (),
                 heatmap: Optional[np.ndarray] = None, top: int = 50, other_classes: bool = False) -> List[Dict]:
    """The ``top`` samples of the run whose relevance lies where the query's does, best first.

    Parameters
    ----------
    store : RunStore
    cid, indices : str, sequence of int
        Query by the prototype of these samples of class ``cid`` (one index: that sample).
        The query samples themselves are left out of the results.
    heatmap : ndarray (H, W), optional
        Query by this heatmap instead.
    top : int
    other_classes : bool
        Only samples of classes other than ``cid``.

    Returns
    -------
    list of dict
        ``class``, ``class_id``, ``index``, ``path`` (relative to the data root), ``score``
        (cosine similarity of the pooled |relevance|).
    """
    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    index, vectors, rows, meta = _loaded(store)
    label = int(store.class_info(cid)["label"]) if cid is not None else None
    if heatmap is not None:
        query = relevance_vectors(np.asarray(heatmap)[None], int(meta["grid"]))[0]
        if not query.any():
            raise ConfigError("the heatmap holds no relevance (all zeros)")
        exclude = np.zeros(len(rows), bool)
    else:
        query = query_vector(store, vectors, rows, cid, indices)
        exclude = (rows[:, 0] == label) & np.isin(rows[:, 1], np.asarray(list(indices), int))
    if other_classes and label is not None:
        exclude |= rows[:, 0] == label
    wanted = min(len(rows), top + int(exclude.sum()))
    scores, ids = search(index, query, wanted)
    names = store.label_names()
    paths: Dict[int, np.ndarray] = {}
    results = []
    for score, row in zip(scores[0], ids[0]):
        if row < 0 or exclude[row]:
            continue
        label, i = (int(v) for v in rows[row])
        cls = class_id(label)
        if label not in paths:
            paths[label] = store.arrays(cls)["paths"]
        results.append({"class": names[label], "class_id": cls, "index": i, "path": str(paths[label][i]),
                        "score": float(score)})
        if len(results) == top:
            break
    return results
