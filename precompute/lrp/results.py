"""What attribution takes and returns: checked images and targets, heatmaps and logits, predictions.

:class:`AttributionResult` is what :meth:`precompute.lrp.Attributor.attribute` returns;
:func:`predictions_from_logits` turns its logits into top-k classes, probabilities and
the rank of the true class::

    predictions = predictions_from_logits(result.logits, targets, k=5)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError

__all__ = ["AttributionResult", "Predictions", "predictions_from_logits", "check_images", "check_targets"]


@dataclass
class AttributionResult:
    """Heatmaps and logits of one call to :meth:`Attributor.attribute`.

    Attributes
    ----------
    heatmaps : ndarray of shape (B, H, W), float32
        Relevance at the normalised input, summed over colour channels.
    logits : ndarray of shape (B, C), float32
        The model's outputs.
    """

    heatmaps: np.ndarray
    logits: np.ndarray


def check_images(images: torch.Tensor) -> torch.Tensor:
    """Return ``images`` if it is a float tensor of shape (B, C, H, W) in [0, 1] (raw, not normalised).

    Raises
    ------
    ConfigError
        Otherwise, saying what it got.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.dtype.is_floating_point:
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ConfigError(f"images must be a float tensor of shape (B, 3, H, W) in [0, 1], got {shape}")
    if images.numel():
        low, high = float(images.min()), float(images.max())
        if low < -1e-3 or high > 1 + 1e-3:
            raise ConfigError(
                f"images must be in [0, 1] (got {low:.3g}..{high:.3g}); pass raw images, "
                "the attributor normalises them itself"
            )
    return images


def check_targets(targets, batch: int) -> torch.Tensor:
    """``targets`` as a tensor, if it holds ``batch`` integers (their range is checked against the logits later).

    Raises
    ------
    ConfigError
        Otherwise, saying what it got.
    """
    targets = torch.as_tensor(targets)
    if targets.shape != (batch,) or targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise ConfigError(f"targets must be integers of shape ({batch},), got {targets.dtype} {tuple(targets.shape)}")
    return targets


@dataclass
class Predictions:
    """Top-k predictions and the rank of the true class.

    Attributes
    ----------
    top_classes : ndarray of shape (B, k), int64
        Class indices by decreasing logit; ties go to the lower class index.
    top_probs : ndarray of shape (B, k), float32
        Softmax probabilities of ``top_classes``.
    true_prob : ndarray of shape (B,), float32
        Softmax probability of the true class.
    true_rank : ndarray of shape (B,), int64
        Position of the true class in the same order, 1 meaning top-1.
    """

    top_classes: np.ndarray
    top_probs: np.ndarray
    true_prob: np.ndarray
    true_rank: np.ndarray


def predictions_from_logits(logits, targets, k: int = 5) -> Predictions:
    """Top-k classes, probabilities and the true class's rank from logits.

    Parameters
    ----------
    logits : array-like of shape (B, C)
        Numpy array or tensor.
    targets : array-like of shape (B,)
        True class indices in ``[0, C)``.
    k : int
        Number of top classes; clipped to C.

    Returns
    -------
    Predictions
        Numpy arrays; the order is a stable descending sort, so ranks and top-k agree
        on ties (the lower class index first).
    """
    logits = _to_numpy(logits).astype(np.float64, copy=False)
    targets = _to_numpy(targets)
    if logits.ndim != 2:
        raise ConfigError(f"logits must have shape (B, C), got {logits.shape}")
    num_samples, num_classes = logits.shape
    if targets.shape != (num_samples,) or not np.issubdtype(targets.dtype, np.integer):
        raise ConfigError(
            f"targets must be integers of shape ({num_samples},), got {targets.dtype} {targets.shape}"
        )
    targets = targets.astype(np.int64)
    if num_samples and (targets.min() < 0 or targets.max() >= num_classes):
        raise ConfigError(f"targets must lie in [0, {num_classes}), got {targets.min()}..{targets.max()}")
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    k = min(k, num_classes)

    order = np.argsort(-logits, axis=1, kind="stable")
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)

    rows = np.arange(num_samples)
    top_classes = order[:, :k].astype(np.int64)
    true_rank = 1 + np.argmax(order == targets[:, None], axis=1)
    return Predictions(
        top_classes=top_classes,
        top_probs=probs[rows[:, None], top_classes].astype(np.float32),
        true_prob=probs[rows, targets].astype(np.float32),
        true_rank=true_rank.astype(np.int64),
    )


def _to_numpy(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)
