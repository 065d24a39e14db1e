"""Paste and removal experiments, run in batches with progress and cancel.

* :func:`run_paste_experiment` is the paper's Table 3 and Figure 7. It pastes an
  artifact onto N random samples of other classes and measures how the artifact's
  class of origin moves. A control patch (same alpha mask and placement, random
  colours) shows what any occlusion of that size does.
* :func:`run_removal_experiment` is Table 4. It inpaints the artifact region of
  affected samples (OpenCV's Telea inpainting) and measures how their true class moves.
  The control inpaints the same region shape at a random place.

Sign conventions, as in the paper's tables:
- ``delta_rank = rank_before - rank_after``, which is > 0 when the class moved up towards rank 1;
- ``delta_prob = prob_after - prob_before``.

Both functions return ``(record, files)`` for
:meth:`precompute.store.ExperimentWriter.save_experiment`; the record's rows, summary and
examples are built by :mod:`precompute.lab.records`.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ConfigError
from ..store import RunStore
from .artifacts import Artifact, rgba_to_png
from .records import (
    EXPORT_COLUMNS,
    Cancelled,
    add_examples,
    arm_rows,
    arms_summary,
    check_cancel,
    experiment_record,
    export_rows,
)

if TYPE_CHECKING:  # torch (about 500 MB) is imported when an experiment runs, not with the app
    from .session import ModelSession

__all__ = [
    "Cancelled",
    "Placement",
    "PasteSpec",
    "RemovalSpec",
    "resolve_positions",
    "sample_targets",
    "run_paste_experiment",
    "run_removal_experiment",
    "artifact_mask",
    "export_rows",
    "EXPORT_COLUMNS",
]

CORNERS = ("tl", "tr", "bl", "br")
Progress = Callable[[int, int], None]



@dataclass(frozen=True)
class Placement:
    """Where and how an artifact is pasted.

    Attributes
    ----------
    mode : str
        ``original`` (where it was found), ``corner``, ``xy`` or ``random``.
    corner : str
        ``tl``, ``tr``, ``bl`` or ``br`` for ``mode == "corner"``.
    x, y : int
        Top-left position for ``mode == "xy"``.
    scale : float
        Size factor of the patch.
    opacity : float
        In [0, 1].
    """

    mode: str = "original"
    corner: str = "bl"
    x: int = 0
    y: int = 0
    scale: float = 1.0
    opacity: float = 1.0

    @classmethod
    def parse(cls, text: str, *, scale: float = 1.0, opacity: float = 1.0) -> "Placement":
        """``original``, ``random``, ``corner`` (bottom-left), ``tl|tr|bl|br``, or ``x,y``."""
        text = str(text).strip().lower()
        if text in ("original", "random"):
            return cls(mode=text, scale=scale, opacity=opacity)
        if text == "corner":
            return cls(mode="corner", corner="bl", scale=scale, opacity=opacity)
        if text in CORNERS:
            return cls(mode="corner", corner=text, scale=scale, opacity=opacity)
        parts = text.split(",")
        if len(parts) == 2 and all(p.strip().lstrip("-").isdigit() for p in parts):
            return cls(mode="xy", x=int(parts[0]), y=int(parts[1]), scale=scale, opacity=opacity)
        raise ConfigError(f"position {text!r}: expected original, random, corner, tl/tr/bl/br or x,y")

    def validate(self) -> "Placement":
        if self.mode not in ("original", "corner", "xy", "random"):
            raise ConfigError(f"unknown placement mode {self.mode!r}")
        if self.mode == "corner" and self.corner not in CORNERS:
            raise ConfigError(f"corner must be one of {', '.join(CORNERS)}, got {self.corner!r}")
        if not 0.05 <= self.scale <= 8:
            raise ConfigError(f"scale must be in [0.05, 8], got {self.scale}")
        if not 0 <= self.opacity <= 1:
            raise ConfigError(f"opacity must be in [0, 1], got {self.opacity}")
        return self


def _scaled_size(artifact: Artifact, scale: float) -> Tuple[int, int]:
    width, height = artifact.size
    return max(1, round(width * scale)), max(1, round(height * scale))


def resolve_positions(placement: Placement, artifact: Artifact, image_size: Tuple[int, int], n: int,
                      rng: np.random.Generator) -> List[Tuple[int, int]]:
    """Top-left positions of ``n`` pastes.

    Parameters
    ----------
    placement : Placement
    artifact : Artifact
    image_size : (int, int)
        (width, height) of the model input.
    n : int
    rng : numpy Generator
        For ``random`` placements (the patch then lies fully inside the image).

    Raises
    ------
    ConfigError
        ``original`` for an artifact whose original position is unknown.
    """
    placement.validate()
    width, height = image_size
    pw, ph = _scaled_size(artifact, placement.scale)
    if placement.mode == "original":
        if artifact.position is None:
            raise ConfigError(f"artifact {artifact.name!r} has no known original position; choose another placement")
        return [tuple(artifact.position)] * n
    if placement.mode == "xy":
        return [(placement.x, placement.y)] * n
    if placement.mode == "corner":
        x = 0 if placement.corner[1] == "l" else width - pw
        y = 0 if placement.corner[0] == "t" else height - ph
        return [(x, y)] * n
    xs = rng.integers(0, max(1, width - pw + 1), size=n)
    ys = rng.integers(0, max(1, height - ph + 1), size=n)
    return [(int(x), int(y)) for x, y in zip(xs, ys)]


@dataclass
class PasteSpec:
    """Parameters of a paste (addition) experiment.

    Attributes
    ----------
    origin_id : str
        Class id of the artifact's class of origin.
    placement : Placement
    n : int
        Number of target samples.
    seed : int
        Seed of the target choice, random placements and the control's colours.
    target_ids : list of str or None
        Draw targets only from these classes (never the origin); None means all other classes.
    examples : int
        Before/after pairs kept with heatmaps w.r.t. the class of origin (Figure 7).
    """

    origin_id: str
    placement: Placement = field(default_factory=Placement)
    n: int = 64
    seed: int = 0
    target_ids: Optional[List[str]] = None
    examples: int = 8


@dataclass
class RemovalSpec:
    """Parameters of a removal experiment on affected samples of one class.

    Attributes
    ----------
    class_id : str
        Class whose samples carry the artifact (its class of origin).
    indices : list of int
        The affected samples.
    placement : Placement
        Where the artifact sits in them (usually ``original``).
    seed : int
        Seed of the control's region.
    radius : int
        Inpainting radius in pixels.
    examples : int
    """

    class_id: str
    indices: List[int]
    placement: Placement = field(default_factory=Placement)
    seed: int = 0
    radius: int = 3
    examples: int = 8


def sample_targets(store: RunStore, origin_id: str, n: int, seed: int,
                   target_ids: Optional[Sequence[str]] = None) -> List[Tuple[str, int]]:
    """``n`` distinct random samples ``(class id, index)`` of classes other than the origin.

    Raises
    ------
    ConfigError
        If ``n`` < 1, or no class other than the origin is available.
    """
    if n < 1:
        raise ConfigError(f"the number of targets must be at least 1, got {n}")
    available = [cid for cid in store.finished_ids() if cid != origin_id]
    if target_ids:
        unknown = [cid for cid in target_ids if cid not in available]
        if unknown:
            raise ConfigError(f"target classes not available: {', '.join(unknown)} (the origin never counts)")
        available = [cid for cid in available if cid in set(target_ids)]
    if not available:
        raise ConfigError("no other class to paste onto")
    sizes = np.array([store.summary(cid)["n"] for cid in available])
    pool = int(sizes.sum())
    # seeded random order (not sorted), so the first examples come from different classes
    picks = np.random.default_rng(seed).choice(pool, size=min(n, pool), replace=False)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    which = np.searchsorted(starts, picks, side="right") - 1
    return [(available[c], int(p - starts[c])) for c, p in zip(which, picks)]


def run_paste_experiment(store: RunStore, session: ModelSession, artifact: Artifact, spec: PasteSpec, *,
                         progress: Optional[Progress] = None, cancel: Optional[threading.Event] = None):
    """Paste ``artifact`` onto random samples of other classes (Table 3, Figure 7).

    Returns
    -------
    record : dict
        ``summary`` holds ``origin``, ``n``, ``mean_delta_rank``, ``mean_delta_prob``,
        ``flip_rate`` and ``control`` (the same for the control patch); ``rows`` one
        entry per target; ``examples`` the Figure-7 pairs.
    files : dict of str -> bytes
        ``artifact.png`` and the example thumbnails.

    Raises
    ------
    Cancelled
        If ``cancel`` was set; nothing is returned then.
    """
    import torch

    from .compositing import control_patch, paste
    from .session import model_inputs, to_tensor

    started = time.perf_counter()
    origin = store.class_info(spec.origin_id)
    cls = int(origin["label"])
    targets = sample_targets(store, spec.origin_id, spec.n, spec.seed, spec.target_ids)
    rng = np.random.default_rng([spec.seed, 1])
    generator = torch.Generator().manual_seed(spec.seed)
    control = control_patch(artifact.tensor(), generator)
    patch = artifact.tensor()
    paths = {cid: store.arrays(cid)["paths"] for cid in {cid for cid, _ in targets}}
    label_names = store.label_names()
    rows: List[Dict[str, object]] = []
    files: Dict[str, bytes] = {"artifact.png": rgba_to_png(artifact.rgba)}
    examples: List[Dict[str, object]] = []
    batch = session.batch_size
    positions: List[Tuple[int, int]] = []
    for start in range(0, len(targets), batch):
        check_cancel(cancel)
        chunk = targets[start:start + batch]
        images = to_tensor(model_inputs(store, [paths[cid][index] for cid, index in chunk]))
        if not positions:
            positions = resolve_positions(spec.placement, artifact, (images.shape[3], images.shape[2]),
                                          len(targets), rng)
        where = positions[start:start + len(chunk)]
        pasted = paste(images, patch, where, opacity=spec.placement.opacity, scale=spec.placement.scale)
        controlled = paste(images, control, where, opacity=spec.placement.opacity, scale=spec.placement.scale)
        arms = arm_rows(session, (images, pasted, controlled), cls, label_names)
        for j, (cid, index) in enumerate(chunk):
            rows.append({
                "class_id": cid, "class": store.class_info(cid)["name"], "index": index,
                "path": str(paths[cid][index]), "x": where[j][0], "y": where[j][1], **arms[j],
            })
        add_examples(session, images, pasted, rows[start:], cls, spec.examples, examples, files)
        if progress:
            progress(min(len(targets), start + len(chunk)), len(targets))
    summary = {"origin": origin["name"], **arms_summary(rows, cls, label_names)}
    return experiment_record("paste", spec, {"id": spec.origin_id, "name": origin["name"], "label": cls}, artifact, summary,
                   rows, examples, session, started), files


def _inpaint(images: np.ndarray, mask: np.ndarray, radius: int) -> np.ndarray:
    """Inpaint ``mask`` (H, W) bool in every uint8 image (B, H, W, 3) with OpenCV's Telea method."""
    import cv2

    mask8 = mask.astype(np.uint8)
    return np.stack([cv2.inpaint(np.ascontiguousarray(img), mask8, radius, cv2.INPAINT_TELEA) for img in images])


def artifact_mask(artifact: Artifact, position: Tuple[int, int], scale: float, height: int, width: int) -> np.ndarray:
    """Full-image mask (H, W) bool of the artifact's visible pixels (alpha > 10 %) pasted at ``position``."""
    from PIL import Image

    alpha = artifact.rgba[..., 3]
    if scale != 1.0:
        pw, ph = _scaled_size(artifact, scale)
        alpha = np.asarray(Image.fromarray(alpha).resize((pw, ph), Image.Resampling.BILINEAR))
    mask = np.zeros((height, width), bool)
    x, y = position
    ys, xs = slice(max(0, y), min(height, y + alpha.shape[0])), slice(max(0, x), min(width, x + alpha.shape[1]))
    if ys.stop > ys.start and xs.stop > xs.start:  # else the patch lies wholly outside the image
        mask[ys, xs] = alpha[ys.start - y: ys.stop - y, xs.start - x: xs.stop - x] > 25
    return mask


def _control_mask(mask: np.ndarray, rng: np.random.Generator, tries: int = 32) -> np.ndarray:
    """The artifact's mask (H, W) shifted (with wrap-around) to where it overlaps itself least.

    A control that covered part of the artifact would remove part of the effect it is
    compared with; of ``tries`` random shifts the first with no overlap wins.
    """
    height, width = mask.shape
    best, best_overlap = mask, None
    for _ in range(tries):
        shift = (int(rng.integers(-height, height)), int(rng.integers(-width, width)))
        shifted = np.roll(mask, shift, axis=(0, 1))
        overlap = int(np.count_nonzero(shifted & mask))
        if best_overlap is None or overlap < best_overlap:
            best, best_overlap = shifted, overlap
        if overlap == 0:
            break
    return best


def run_removal_experiment(store: RunStore, session: ModelSession, artifact: Artifact, spec: RemovalSpec, *,
                           progress: Optional[Progress] = None, cancel: Optional[threading.Event] = None):
    """Inpaint the artifact away in affected samples and measure their true class (Table 4).

    Returns
    -------
    record, files
        As :func:`run_paste_experiment`; ``summary`` holds ``class``, ``n``,
        ``mean_delta_rank``, ``mean_delta_prob`` and ``control`` (the same region shape
        inpainted elsewhere, where it does not overlap the artifact).
    """
    from .session import model_inputs, to_tensor

    started = time.perf_counter()
    info = store.class_info(spec.class_id)
    cls = int(info["label"])
    paths = store.arrays(spec.class_id)["paths"]
    indices = sorted({int(i) for i in spec.indices})
    if not indices:
        raise ConfigError("choose at least one affected sample for the removal test")
    if indices[0] < 0 or indices[-1] >= len(paths):
        raise ConfigError(f"class {info['name']} has no sample {indices[-1]}")
    label_names = store.label_names()
    rng = np.random.default_rng([spec.seed, 2])
    rows: List[Dict[str, object]] = []
    files: Dict[str, bytes] = {"artifact.png": rgba_to_png(artifact.rgba)}
    examples: List[Dict[str, object]] = []
    mask = control_mask = None
    for start in range(0, len(indices), session.batch_size):
        check_cancel(cancel)
        chunk = indices[start:start + session.batch_size]
        raw = model_inputs(store, [paths[i] for i in chunk])
        height, width = raw.shape[1:3]
        if mask is None:
            position = resolve_positions(spec.placement, artifact, (width, height), 1, rng)[0]
            mask = artifact_mask(artifact, position, spec.placement.scale, height, width)
            if not mask.any():
                raise ConfigError("the artifact has no visible pixels at that placement")
            control_mask = _control_mask(mask, rng)
        images = to_tensor(raw)
        removed = to_tensor(_inpaint(raw, mask, spec.radius))
        control = to_tensor(_inpaint(raw, control_mask, spec.radius))
        arms = arm_rows(session, (images, removed, control), cls, label_names)
        for j, index in enumerate(chunk):
            rows.append({"class_id": spec.class_id, "class": info["name"], "index": index, "path": str(paths[index]),
                         **arms[j]})
        add_examples(session, images, removed, rows[start:], cls, spec.examples, examples, files)
        if progress:
            progress(min(len(indices), start + len(chunk)), len(indices))
    summary = {"class": info["name"], **arms_summary(rows, cls, label_names), "mask_pixels": int(mask.sum())}
    return experiment_record("removal", spec, {"id": spec.class_id, "name": info["name"], "label": cls}, artifact, summary,
                   rows, examples, session, started), files
