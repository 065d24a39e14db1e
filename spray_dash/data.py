"""Read-only access to the run store for the app: the only module of the app that reads disk.

Everything goes through :class:`precompute.store.RunStore` (the schema module) and
is memoised with flask-caching, so a class is read from disk once and then served
from memory; nothing here recomputes what precompute stored.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from flask_caching import Cache

from precompute.errors import StoreError
from precompute.store import RunStore, parse_clustering_name
from precompute.thumbs import encode_rgb, heatmap_rgb

__all__ = [
    "cache",
    "configure",
    "store",
    "leaderboard",
    "class_id_for_name",
    "ClassView",
    "class_view",
    "thumbnail",
    "mean_heatmap_image",
    "label_names",
    "run_info",
]

cache = Cache()
_state: Dict[str, object] = {}


def configure(server, run_dir: Path, cache_config: Optional[dict] = None) -> RunStore:
    """Open ``run_dir`` for the app served by ``server`` (a Flask app) and set up the cache."""
    opened = RunStore(run_dir)
    config = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 0, "CACHE_THRESHOLD": 256}
    config.update(cache_config or {})
    cache.init_app(server, config=config)
    with server.app_context():
        cache.clear()
    _state["store"] = opened
    return opened


def store() -> RunStore:
    """The open run store."""
    try:
        return _state["store"]  # type: ignore[return-value]
    except KeyError:
        raise RuntimeError("spray_dash.data.configure() was not called") from None


@cache.memoize()
def label_names() -> List[str]:
    """Name of every model output index."""
    return store().label_names()


@cache.memoize()
def run_info() -> dict:
    """Facts about the run for page headers."""
    manifest = store().manifest
    model = manifest.get("model", {})
    return {
        "root": str(store().root),
        "model": model.get("spec"),
        "composite": model.get("composite"),
        "image_size": model.get("image_size"),
        "created": manifest.get("created"),
        "classes_total": len(manifest.get("classes", [])),
        "neighbors": manifest.get("analysis", {}).get("neighbors"),
        "eigenvectors": manifest.get("analysis", {}).get("eigenvectors"),
        "demo": "demo" in manifest,
    }


@cache.memoize()
def leaderboard() -> List[dict]:
    """One row per finished class, ranked by tau (rank 1 = most separable).

    Each row has ``id``, ``name``, ``rank``, ``tau``, ``n``, ``accuracy``,
    ``mean_true_prob``, ``eigengap_k``, ``spectrum`` (the first 16 eigenvalues) and
    ``default_clustering``.
    """
    rows = []
    for record in store().classes():
        summary = record.summary
        rows.append({
            "id": record.id,
            "name": record.name,
            "tau": float(summary.get("tau") or 0.0),
            "n": int(summary.get("n", 0)),
            "accuracy": float(summary.get("accuracy") or 0.0),
            "mean_true_prob": float(summary.get("mean_true_prob") or 0.0),
            "eigengap_k": int(summary.get("eigengap_k", 0)),
            "spectrum": [round(float(v), 4) for v in summary.get("eigenvalues", [])[:16]],
            "default_clustering": summary.get("default_clustering"),
        })
    rows.sort(key=lambda row: (-row["tau"], row["name"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
        # ranked at full precision; sent at what a person reads (a third less JSON at 1,000 classes)
        for key in ("tau", "accuracy", "mean_true_prob"):
            row[key] = round(row[key], 5)
    return rows


@cache.memoize()
def _name_index() -> Dict[str, str]:
    return {entry["name"]: entry["id"] for entry in store().manifest.get("classes", [])}


def class_id_for_name(name: str) -> Optional[str]:
    """Id of the finished class called ``name``, or None."""
    cid = _name_index().get(name)
    return cid if cid is not None and store().has_class(cid) else None


@dataclass
class ClassView:
    """What the class explorer shows of one class (all from the store, nothing recomputed).

    Attributes
    ----------
    id, name : str
    n : int
    summary : dict
    maps : dict of str -> ndarray of float32 (n, 2)
    spectral : ndarray of float32 (n, q)
    eigenvalues : ndarray of float64 (q,)
    clustering_names : list of str
    clustering_labels : ndarray of int16 (m, n)
    families : dict of str -> list of int
        The k values stored per clustering family.
    paths : ndarray of str (n,)
    top_classes : ndarray of int32 (n, t)
    top_probs : ndarray of float32 (n, t)
    true_rank : ndarray of int32 (n,)
    true_prob : ndarray of float32 (n,)
    label : int
    """

    id: str
    name: str
    n: int
    summary: dict
    maps: Dict[str, np.ndarray]
    spectral: np.ndarray
    eigenvalues: np.ndarray
    clustering_names: List[str]
    clustering_labels: np.ndarray
    families: Dict[str, List[int]]
    paths: np.ndarray
    top_classes: np.ndarray
    top_probs: np.ndarray
    true_rank: np.ndarray
    true_prob: np.ndarray
    label: int

    def labels(self, family: str, k: int) -> Optional[np.ndarray]:
        """Cluster labels (n,) of clustering ``family`` at ``k``, or None if not stored."""
        name = f"{family}-k{k}"
        if name not in self.clustering_names:
            return None
        return self.clustering_labels[self.clustering_names.index(name)]


@cache.memoize()
def class_view(cid: str) -> ClassView:
    """The explorer data of class ``cid`` (raises :class:`StoreError` if unknown)."""
    st = store()
    summary = st.summary(cid)
    arrays = st.arrays(cid)
    names = [str(name) for name in arrays["clustering_names"]]
    families: Dict[str, List[int]] = {}
    for name in names:
        family, k = parse_clustering_name(name)
        families.setdefault(family, []).append(k)
    maps = {str(name): arrays["maps"][i] for i, name in enumerate(arrays["map_names"])}
    return ClassView(
        id=cid,
        name=summary["name"],
        n=int(summary["n"]),
        summary=summary,
        maps=maps,
        spectral=arrays["eigenvectors"],
        eigenvalues=arrays["eigenvalues"],
        clustering_names=names,
        clustering_labels=arrays["clustering_labels"],
        families={family: sorted(ks) for family, ks in families.items()},
        paths=arrays["paths"],
        top_classes=arrays["top_classes"],
        top_probs=arrays["top_probs"],
        true_rank=arrays["true_rank"],
        true_prob=arrays["true_prob"],
        label=int(summary["label"]),
    )


@cache.memoize()
def _thumb_offsets(cid: str, kind: str) -> np.ndarray:
    return store().arrays(cid)[f"thumb_offsets_{kind}"]


def thumbnail(cid: str, kind: str, index: int) -> bytes:
    """Encoded thumbnail bytes; raises :class:`StoreError` for unknown classes, kinds or indices."""
    if not store().has_class(cid):
        raise StoreError(f"unknown class {cid!r}")
    if kind not in ("image", "heatmap"):
        raise StoreError(f"unknown thumbnail kind {kind!r}")
    return store().thumbnail(cid, kind, index, offsets=_thumb_offsets(cid, kind))


@cache.memoize()
def mean_heatmap_image(cid: str, indices: Sequence[int], size: int = 256) -> bytes:
    """The selection's prototype: the mean of its stored heatmaps, coloured like the thumbnails.

    ``indices`` must be a sorted tuple (it is part of the cache key).
    """
    heatmaps = store().heatmaps(cid)
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= len(heatmaps):
        raise StoreError(f"class {cid}: bad selection")
    total = np.zeros(heatmaps.shape[1:], dtype=np.float64)
    for start in range(0, len(idx), 256):  # bounded memory for big classes
        total += heatmaps[idx[start:start + 256]].astype(np.float32).sum(axis=0)
    mean = total / len(idx)
    rgb = heatmap_rgb(mean)
    from PIL import Image

    image = Image.fromarray(rgb)
    if max(image.size) < size:  # small heatmaps: enlarge crisply for display
        factor = max(1, size // max(image.size))
        image = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    return encode_rgb(np.asarray(image), size=None, quality=92)


# -- the artifact lab (experiments change while the app runs, so they are not memoised) ----------
def artifact_entries() -> List[dict]:
    """The run's artifact library and the lab's drafts (see :meth:`RunStore.artifact_entries`)."""
    return store().artifact_entries()


def experiments() -> List[dict]:
    """Saved experiment records, newest first."""
    return store().experiments()


@cache.memoize()
def experiment(exp_id: str) -> dict:
    """One experiment record (immutable once saved, so memoised)."""
    return store().experiment(exp_id)


def class_names() -> List[dict]:
    """``{"id", "name"}`` of every finished class, by name."""
    return sorted(({"id": row["id"], "name": row["name"]} for row in leaderboard()), key=lambda row: row["name"])
