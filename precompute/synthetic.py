"""Synthetic relevance maps with planted groups, for tests and benchmarks.

Each map holds a positive "object" blob at a random place and scale, a few weak
negative blobs and noise, like LRP maps of an object classifier. A planted group
adds its own fixed pattern (a corner square, a border band), like the artifacts the
paper found, so a good analysis must isolate it; a posed group (``"posed-mark"``) adds
the same small mark at a random place, angle, scale and mirroring in each map, which
only a pose-invariant distance (Gromov-Wasserstein) can group.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np

__all__ = ["PLANTED_PATTERNS", "POSED_PATTERNS", "SyntheticClass", "synthetic_heatmaps", "write_synthetic_store"]


def _corner(size: int) -> np.ndarray:
    pattern = np.zeros((size, size), np.float32)
    side = max(2, size // 8)
    pattern[size - side - size // 32: size - size // 32, size // 32: size // 32 + side] = 1.0
    return pattern


def _border(size: int) -> np.ndarray:
    pattern = np.zeros((size, size), np.float32)
    band = max(1, size // 14)
    pattern[:band] = 0.6
    pattern[-band:] = 0.6
    return pattern


PLANTED_PATTERNS = {"corner": _corner, "border": _border}

# an asymmetric hook (a long bar, a short foot, a dot): its mirror image and its rotations differ
_MARK = np.array([[0.0, y] for y in np.linspace(-1.0, 1.0, 9)] + [[x, -1.0] for x in np.linspace(0.25, 0.75, 3)]
                 + [[0.6, 0.8]])


def _posed_mark(size: int, rng: np.random.Generator) -> np.ndarray:
    """The hook mark at a random place, angle (any), scale (0.7 to 1.4) and mirroring."""
    angle = rng.uniform(0, 2 * np.pi)
    scale = size * 0.09 * rng.uniform(0.7, 1.4)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = _MARK * np.array([1.0 if rng.random() < 0.5 else -1.0, 1.0])
    points = points @ rotation.T * scale
    margin = np.abs(points).max() + 1
    centre = rng.uniform(margin, size - 1 - margin, 2)
    pattern = np.zeros((size, size), np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    spread = max(0.6, size / 64)
    for y, x in points + centre:
        pattern += np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * spread**2))
    return pattern / pattern.max()


POSED_PATTERNS = {"posed-mark": _posed_mark}
"""Planted patterns drawn anew for each map (random place, angle, scale and mirroring)."""


@dataclass
class SyntheticClass:
    """Heatmaps of one synthetic class.

    Attributes
    ----------
    heatmaps : ndarray of float32, shape (n, size, size)
    planted : ndarray of str, shape (n,)
        Name of the planted pattern of each map, '' for clean maps.
    """

    heatmaps: np.ndarray
    planted: np.ndarray


def synthetic_heatmaps(n: int = 1300, size: int = 224, *, groups: Optional[Dict[str, float]] = None,
                       seed: int = 0, strength: float = 3.0) -> SyntheticClass:
    """Generate ``n`` maps with planted groups.

    Parameters
    ----------
    n : int
        Number of maps.
    size : int
        Side length.
    groups : dict of str -> float, optional
        Planted pattern name (see :data:`PLANTED_PATTERNS` and :data:`POSED_PATTERNS`)
        -> fraction of maps; by default ``{"corner": 0.15}``. Groups do not overlap.
    seed : int
    strength : float
        Relevance of a planted pattern relative to the object blob's peak.

    Returns
    -------
    SyntheticClass
    """
    groups = {"corner": 0.15} if groups is None else groups
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    heatmaps = np.empty((n, size, size), np.float32)
    for i in range(n):
        cx, cy = rng.uniform(0.25, 0.75, 2)
        sigma = rng.uniform(0.06, 0.16)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        for _ in range(2):
            nx, ny = rng.uniform(0.1, 0.9, 2)
            blob -= 0.3 * np.exp(-((xx - nx) ** 2 + (yy - ny) ** 2) / (2 * 0.05**2))
        heatmaps[i] = blob + rng.normal(0, 0.05, (size, size))
    planted = np.full(n, "", dtype=object)
    order = rng.permutation(n)
    start = 0
    for name, fraction in groups.items():
        count = int(round(fraction * n))
        members = order[start: start + count]
        start += count
        if name in POSED_PATTERNS:
            for member in members:
                heatmaps[member] += strength * POSED_PATTERNS[name](size, rng) * np.float32(rng.uniform(0.8, 1.2))
        else:
            pattern = PLANTED_PATTERNS[name](size)
            heatmaps[members] += strength * pattern * rng.uniform(0.8, 1.2, (count, 1, 1)).astype(np.float32)
        planted[members] = name
    return SyntheticClass(heatmaps=heatmaps, planted=planted.astype(str))


def _synthetic_image(heatmap: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An RGB picture whose bright regions follow the positive relevance (for thumbnails)."""
    positive = np.clip(heatmap, 0, None)
    positive = positive / (positive.max() or 1.0)
    base = rng.integers(30, 90, size=3)
    tint = rng.integers(120, 255, size=3)
    image = base[None, None, :] + positive[..., None] * (tint - base)[None, None, :]
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_synthetic_store(out, *, n_classes: int = 8, n_per_class: int = 200, size: int = 32,
                          planted_every: int = 3, seed: int = 0, maps: Sequence[str] = ("umap", "tsne"),
                          thumb_pool: int = 0, analysis_pool: int = 0, progress: bool = False):
    """Write a complete run store of synthetic classes, without a model.

    Every ``planted_every``-th class gets a planted corner group (20 %). Predictions are
    drawn at random (about 80 % top-1 correct). Used by dashboard tests and the
    1,000-class app benchmark (``benchmarks/app_scale.py``).

    Parameters
    ----------
    out : path
        Run directory to create.
    n_classes, n_per_class, size : int
        Store shape; heatmaps are ``size`` x ``size``.
    planted_every : int
        0 plants nothing.
    seed : int
    maps : sequence of str
        2-D maps to compute.
    thumb_pool : int
        If > 0, encode only this many distinct thumbnails per class and repeat them
        (fast stores for scale tests); 0 encodes every sample.
    analysis_pool : int
        If > 0, generate and analyse only the first ``analysis_pool`` classes; class
        ``label`` >= ``analysis_pool`` reuses the heatmaps, analysis arrays, summary
        statistics and thumbnails of class ``label % analysis_pool`` (its source, named in
        its summary as ``analysis_source``), so its planted group follows the source's.
        Each class still has its own name, label, paths and predictions. A 1,000 x 1,300
        store then builds in minutes instead of about an hour. 0 analyses every class.
    progress : bool

    Returns
    -------
    RunStore
    """
    from pathlib import Path

    from .analysis import AnalysisConfig, analyse_heatmaps
    from .store import (
        ClassAnalysis,
        ClassEntry,
        ClassSummary,
        DataInfo,
        Manifest,
        ModelInfo,
        RunStore,
        RunWriter,
        StorageInfo,
        ThumbnailInfo,
        class_id,
        write_truth_rows,
    )
    from .thumbs import heatmap_thumbnail, image_thumbnail

    out = Path(out)
    names = [f"class_{i:04d}" for i in range(n_classes)]
    config = AnalysisConfig(maps=tuple(maps), seed=seed)
    writer = RunWriter.create(out, Manifest(
        data=DataInfo(root="data", label_names=names),
        classes=[ClassEntry(id=class_id(i), name=name, label=i, n_files=n_per_class) for i, name in enumerate(names)],
        model=ModelInfo(spec="synthetic", weights=None, num_classes=n_classes, normalization="none",
                        image_size=size, composite="none", canonizers=[]),
        analysis=config.to_dict(),
        thumbnails=ThumbnailInfo(size=size, format="webp"),
        storage=StorageInfo(heatmap_dtype="float16"),
        synthetic={"seed": seed, "planted_every": planted_every, "thumb_pool": thumb_pool,
                   "analysis_pool": analysis_pool},
    ), force=True)
    iterator = range(n_classes)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="synthetic classes")
    sources: Dict[int, tuple] = {}  # source label -> (data, heatmaps, result, images, heatmap thumbs)
    for label in iterator:
        rng = np.random.default_rng([seed, label])
        data_seed = int(rng.integers(1 << 31))  # drawn for every class, so predictions do not depend on the pool
        source = label % analysis_pool if analysis_pool > 0 else label
        if source in sources:
            data, heatmaps, result, images, maps_ = sources[source]
        else:
            planted = planted_every and label % planted_every == 0
            data = synthetic_heatmaps(n_per_class, size, groups={"corner": 0.2} if planted else {}, seed=data_seed)
            heatmaps = data.heatmaps.astype(np.float16)
            result = analyse_heatmaps(heatmaps.astype(np.float32), config)
            images = maps_ = None
        n = n_per_class
        logits = rng.normal(size=(n, n_classes)).astype(np.float32)
        logits[np.arange(n), label] += np.where(rng.random(n) < 0.8, 4.0, -1.0)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        order = np.argsort(-probs, axis=1, kind="stable")
        k = min(5, n_classes)
        true_rank = np.argmax(order == label, axis=1) + 1
        arrays = dict(result.arrays)
        arrays.update(
            paths=np.array([f"{names[label]}/{i:05d}.png" for i in range(n)]),
            top_classes=order[:, :k].astype(np.int32),
            top_probs=np.take_along_axis(probs, order[:, :k], axis=1).astype(np.float32),
            true_prob=probs[np.arange(n), label].astype(np.float32),
            true_rank=true_rank.astype(np.int32),
            relevance_sum=heatmaps.astype(np.float32).sum(axis=(1, 2)),
        )
        distinct = n if thumb_pool <= 0 else min(n, thumb_pool)
        if images is None:
            images = [image_thumbnail(_synthetic_image(data.heatmaps[i], rng), size) for i in range(distinct)]
            maps_ = [heatmap_thumbnail(data.heatmaps[i], size) for i in range(distinct)]
            if analysis_pool > 0:
                sources[source] = (data, heatmaps, result, images, maps_)
        summary = ClassSummary(
            id=class_id(label), name=names[label], label=label, n=n, n_files=n, n_skipped=0,
            accuracy=float(np.mean(true_rank == 1)), top5_accuracy=float(np.mean(true_rank <= 5)),
            mean_true_prob=float(arrays["true_prob"].mean()),
            eigenvalues=[float(v) for v in result.arrays["eigenvalues"]],
            heatmap_shape=[size, size], seconds=result.timings,
        ).updated({"planted_fraction": float(np.mean(data.planted != "")), **result.summary})
        if source != label:
            summary = summary.updated({"analysis_source": class_id(source)})
        writer.write_class(class_id(label), ClassAnalysis(
            summary=summary, arrays=arrays, heatmaps=heatmaps,
            thumbs={"image": [images[i % distinct] for i in range(n)], "heatmap": [maps_[i % distinct] for i in range(n)]},
        ))
        write_truth_rows(writer.truth_path(), ((arrays["paths"][i], names[label], data.planted[i]) for i in range(n)),
                         append=label > 0)
    writer.write_report({"finished": "synthetic", "classes_finished": n_classes})
    return RunStore(out)
