"""The right-reason score: how much of the decisive relevance lies on the object.

After Nguyen et al., "Right for the Right Reason: Making Image Classification Robust"
(``shared/seeds/004``): the score is the degree to which the most decisive image
regions, given by an explainer, overlap the silhouette of the object. Here the
explainer is the run's LRP heatmap and the decisive region is made precise as

    S = the smallest set of pixels that holds :data:`TOP_RELEVANCE_SHARE` (80 %) of the
        heatmap's positive relevance (pixels taken from the most relevant down),

    score = |S ∩ mask| / |S|,  in [0, 1]; 1 = every decisive pixel lies on the object.

The same region serves the perturbation scan as the reference of a run without masks
(:mod:`precompute.perturb`). A heatmap without positive relevance has no score (NaN).
The score of a random explainer is the mask's area fraction, stored beside it as
``chance``, so that a small object is not mistaken for a wrong reason.
"""
from __future__ import annotations

import numpy as np

__all__ = ["TOP_RELEVANCE_SHARE", "top_relevance_region", "right_reason_scores"]

#: Share of the positive relevance the decisive region holds.
TOP_RELEVANCE_SHARE = 0.8


def top_relevance_region(heatmaps: np.ndarray, share: float = TOP_RELEVANCE_SHARE) -> np.ndarray:
    """The decisive region of each heatmap: the fewest pixels holding ``share`` of its positive relevance.

    Parameters
    ----------
    heatmaps : ndarray of float, shape (n, H, W)
    share : float
        In (0, 1].

    Returns
    -------
    ndarray of bool, shape (n, H, W)
        Empty for a heatmap without positive relevance.
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    n = len(heatmaps)
    flat = np.maximum(heatmaps.reshape(n, -1), 0)
    order = np.argsort(-flat, axis=1, kind="stable")
    ranked = np.take_along_axis(flat, order, axis=1)
    cumulative = np.cumsum(ranked, axis=1, dtype=np.float64)
    total = cumulative[:, -1:]
    # pixels needed: the first rank at which the cumulative sum reaches share * total
    needed = (cumulative < share * total).sum(axis=1) + 1
    needed[total[:, 0] <= 0] = 0
    region = np.zeros_like(flat, dtype=bool)
    ranks = np.arange(flat.shape[1])[None, :] < needed[:, None]
    np.put_along_axis(region, order, ranks, axis=1)
    return region.reshape(heatmaps.shape)


def right_reason_scores(heatmaps: np.ndarray, masks: np.ndarray, share: float = TOP_RELEVANCE_SHARE,
                        chunk: int = 256):
    """Right-reason score and chance level of each sample.

    Parameters
    ----------
    heatmaps : ndarray of float, shape (n, H, W)
    masks : ndarray of bool, shape (n, H, W)
        True on the object.
    share : float
        See :func:`top_relevance_region`.
    chunk : int
        Samples sorted at a time (memory: ``chunk * H * W * 24`` bytes).

    Returns
    -------
    score : ndarray of float32, shape (n,)
        ``|S ∩ mask| / |S|``; NaN where the heatmap has no positive relevance.
    chance : ndarray of float32, shape (n,)
        The mask's area fraction: the expected score of a random explainer.
    """
    heatmaps = np.asarray(heatmaps)
    masks = np.asarray(masks, dtype=bool)
    if heatmaps.shape != masks.shape:
        raise ValueError(f"heatmaps {heatmaps.shape} and masks {masks.shape} differ in shape")
    n = len(heatmaps)
    score = np.full(n, np.nan, dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        region = top_relevance_region(heatmaps[start:stop], share)
        size = region.sum(axis=(1, 2))
        inside = (region & masks[start:stop]).sum(axis=(1, 2))
        has = size > 0
        score[start:stop][has] = inside[has] / size[has]
    chance = masks.reshape(n, -1).mean(axis=1).astype(np.float32)
    return score, chance
