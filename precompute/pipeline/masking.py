"""``run --masks DIR``: check the masks before any work, then score each finished class's heatmaps against them.

Two stages around attribution, shared by both engines:

    check_run_masks(config, index)   in prepare, before the model loads: every image of the
                                     selected classes has a mask of its own size (one-line error)
    add_right_reason(job, config)    after the classes are written: per class, the object masks at
                                     heatmap resolution, the right-reason score of each sample
                                     (:mod:`precompute.right_reason`), outline thumbnails, into
                                     ``classes/<id>/masks.npz`` and the summary

Scoring reads the stored float16 heatmaps, so it also adds masks to a run finished
without them, without attributing again: run the same command with ``--masks``.
A class is scored again only when the masks folder changed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, List, Tuple

import numpy as np

from ..data import ImageFolderIndex
from ..errors import ConfigError
from ..masks import check_masks, load_masks, outline_thumbnail, pack_masks
from ..progress import progress_bar
from ..right_reason import TOP_RELEVANCE_SHARE, right_reason_scores
from ..store import CLASS_MASKS, RunWriter, class_id
from .config import RunConfig

__all__ = ["check_run_masks", "classes_to_score", "score_class", "add_right_reason"]


def _mask_groups(config: RunConfig, data_root: Path, paths: List[str]) -> List[Tuple[Path, Path, List[int], List[str]]]:
    """``(masks folder, image folder, positions, paths relative to that folder)`` of the training
    images (``config.masks``) and of the validation images (``config.val_masks``, with ``run --val-data``).

    A stored path is relative to the data root; a validation image's is ``../val/...``-like,
    so it is told apart by where it lies.
    """
    groups = [(Path(config.masks), Path(data_root), [], [])]
    if config.val_data is not None:
        groups.append((Path(config.val_masks), Path(config.val_data), [], []))
        val_prefix = os.path.normpath(os.path.abspath(config.val_data)) + os.sep
    for position, path in enumerate(paths):
        absolute = os.path.normpath(os.path.abspath(Path(data_root) / path))
        group = groups[1] if config.val_data is not None and absolute.startswith(val_prefix) else groups[0]
        group[2].append(position)
        group[3].append(Path(os.path.relpath(absolute, os.path.abspath(group[1]))).as_posix())
    return [group for group in groups if group[2]]


def check_run_masks(config: RunConfig, index: ImageFolderIndex, progress: bool = False) -> None:
    """Check that every image of the run's classes has a mask of its size (:func:`precompute.masks.check_masks`)."""
    if config.masks is None:
        return
    paths = [path for cls in index.classes for path in cls.paths]
    with progress_bar(total=len(paths), desc="checking masks", unit="img", disable=not progress,
                      leave=False, delay=0.5) as bar:
        for masks_root, image_root, _, relative in _mask_groups(config, index.root, paths):
            start = bar.n
            check_masks(masks_root, image_root, relative,
                        on_progress=lambda done, total: bar.update(start + done - bar.n))


def _masks_root(config: RunConfig) -> str:
    return str(Path(config.masks).resolve())


def classes_to_score(writer: RunWriter, config: RunConfig, index: ImageFolderIndex) -> List[str]:
    """Finished classes of this run's selection without right-reason scores from ``config.masks``."""
    if config.masks is None:
        return []
    wanted = {class_id(cls.label) for cls in index.classes}
    root = _masks_root(config)
    return [cid for cid in writer.finished_ids()
            if cid in wanted and (writer.summary(cid).get("masks") or {}).get("root") != root]


def score_class(writer: RunWriter, cid: str, config: RunConfig) -> dict:
    """Score class ``cid``'s stored heatmaps against its masks and write ``masks.npz``; return the summary keys."""
    paths = [str(path) for path in writer.arrays(cid)["paths"]]
    heatmaps = np.asarray(writer.heatmaps(cid), dtype=np.float32)
    masks = np.zeros(heatmaps.shape, dtype=bool)
    for masks_root, _, positions, relative in _mask_groups(config, writer.data_root(), paths):
        loaded = load_masks(masks_root, relative, config.image_size)
        if loaded.shape[1:] != heatmaps.shape[1:]:
            raise ConfigError(f"--masks: the masks of class {writer.summary(cid)['name']!r} come out "
                              f"{loaded.shape[1]}x{loaded.shape[2]} but its heatmaps are "
                              f"{heatmaps.shape[1]}x{heatmaps.shape[2]}")
        masks[positions] = loaded
    score, chance = right_reason_scores(heatmaps, masks)
    outlines = [outline_thumbnail(mask, config.thumb_size) for mask in masks]
    offsets = np.zeros(len(outlines) + 1, dtype=np.int64)
    np.cumsum([len(blob) for blob in outlines], out=offsets[1:])
    arrays = {
        "object_mask": pack_masks(masks),
        "right_reason": score,
        "chance": chance,
        "thumbs_mask": np.frombuffer(b"".join(outlines), dtype=np.uint8),
        "thumb_offsets_mask": offsets,
    }
    scored = int(np.isfinite(score).sum())
    summary = {
        "right_reason": float(np.nanmean(score)) if scored else None,
        "right_reason_chance": float(chance.mean()),
        "masks": {"root": _masks_root(config), "share": TOP_RELEVANCE_SHARE, "scored": scored},
    }
    writer.write_class_part(cid, CLASS_MASKS, arrays, summary)
    return summary


def add_right_reason(writer: RunWriter, config: RunConfig, index: ImageFolderIndex, *, progress: bool = False,
                     log: Callable[[str], None] = print) -> int:
    """Score every finished class of the run's selection that has no scores from these masks; return how many.

    Parameters
    ----------
    writer : RunWriter
    config : RunConfig
        ``config.masks`` (nothing happens without it), image and thumbnail sizes.
    index : ImageFolderIndex
        The run's classes (their masks were checked by :func:`check_run_masks`).
    progress : bool
    log : callable
    """
    todo = classes_to_score(writer, config, index)
    if not todo:
        return 0
    with progress_bar(total=len(todo), desc="right-reason", unit="class", disable=not progress) as bar:
        for cid in todo:
            summary = score_class(writer, cid, config)
            bar.update(1)
            if summary["right_reason"] is None:
                log(f"class {writer.summary(cid)['name']!r}: no heatmap has positive relevance; no right-reason score")
    return len(todo)
