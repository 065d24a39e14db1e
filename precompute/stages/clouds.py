"""Relevance clouds: a heatmap as a weighted point cloud, and cheap descriptors of the clouds.

What the transport distances (:mod:`precompute.stages.transport`) compare. A heatmap's
positive relevance is sum-pooled to at most ``GRID_MAX`` x ``GRID_MAX`` cells; its cells
are taken from the largest down until ``CLOUD_SHARE`` (99 %, the paper's rule) of the
positive mass is reached, capped at a number of points; each is a point at its cell
centre (in units of the grid's longer side) weighted by its relevance (the weights sum
to 1). A heatmap without positive relevance is one point at the centre. docs/distances.md
explains the choices.
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import numpy as np

from ..errors import ConfigError
from .distance import sum_pool

__all__ = ["GRID_MAX", "CLOUD_SHARE", "RelevanceClouds", "grid_maps", "relevance_clouds", "intra_distances",
           "shape_descriptors", "mass_descriptors"]

GRID_MAX = 16
"""Longest grid side the clouds are taken on; larger heatmaps are sum-pooled to it first."""

CLOUD_SHARE = 0.99
"""Share of the positive relevance the cloud's points hold (the paper's rule)."""


@dataclasses.dataclass
class RelevanceClouds:
    """The relevance clouds of ``n`` heatmaps, padded to a common point count ``m``.

    Attributes
    ----------
    coords : ndarray of float64, shape (n, m, 2)
        Point positions (row, column) in units of the grid's longer side.
    weights : ndarray of float64, shape (n, m)
        Relevance of each point; a cloud's weights sum to 1, padding points weigh 0.
    sizes : ndarray of int, shape (n,)
        Points of each cloud (its first ``sizes[i]`` entries).
    """

    coords: np.ndarray
    weights: np.ndarray
    sizes: np.ndarray

    def cloud(self, i: int) -> Tuple[np.ndarray, np.ndarray]:
        """``(coords (m_i, 2), weights (m_i,))`` of cloud ``i``, without padding."""
        m = int(self.sizes[i])
        return self.coords[i, :m], self.weights[i, :m]

    def __len__(self) -> int:
        return len(self.sizes)


def grid_maps(X: np.ndarray, shape: Tuple[int, int], grid_max: int = GRID_MAX) -> np.ndarray:
    """Flattened maps as float32 grids of at most ``grid_max`` cells a side (sum-pooled).

    Parameters
    ----------
    X : ndarray of shape (n, H*W)
    shape : (H, W)
    grid_max : int

    Returns
    -------
    ndarray of float32, shape (n, h, w)
        ``h = H`` and ``w = W`` when both are at most ``grid_max``; else a square
        ``grid_max`` grid.
    """
    height, width = shape
    n = len(X)
    maps = np.asarray(X).reshape(n, height, width)
    if max(height, width) <= grid_max:
        return np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    side = min(grid_max, height, width)
    return sum_pool(maps, side).reshape(n, side, side)


def relevance_clouds(maps: np.ndarray, max_points: int, share: float = CLOUD_SHARE) -> RelevanceClouds:
    """Each map's relevance cloud: its largest cells until ``share`` of the positive mass.

    Parameters
    ----------
    maps : ndarray of shape (n, h, w)
        Relevance on a grid; negative values are ignored.
    max_points : int
        Most points a cloud keeps (the largest cells).
    share : float
        Stop once the kept cells hold this share of the positive relevance.

    Returns
    -------
    RelevanceClouds
    """
    if max_points < 1:
        raise ConfigError(f"a relevance cloud needs at least 1 point, got {max_points}")
    n, height, width = maps.shape
    side = float(max(height, width))
    positive = np.clip(np.nan_to_num(np.asarray(maps, dtype=np.float64).reshape(n, -1)), 0.0, None)
    m = min(max_points, height * width)
    order = np.argsort(-positive, axis=1, kind="stable")[:, :m]
    top = np.take_along_axis(positive, order, axis=1)
    totals = positive.sum(axis=1)
    coords = np.zeros((n, m, 2))
    weights = np.zeros((n, m))
    sizes = np.ones(n, dtype=int)
    rows, cols = np.divmod(order, width)
    for i in range(n):
        if totals[i] <= 0:
            coords[i, 0] = (height / 2.0 / side, width / 2.0 / side)
            weights[i, 0] = 1.0
            continue
        # the first cell count whose cumulative mass reaches the share (within the cap)
        reached = np.searchsorted(np.cumsum(top[i]), share * totals[i] * (1 - 1e-12))
        size = int(min(m, reached + 1, np.count_nonzero(top[i] > 0)))
        coords[i, :size, 0] = (rows[i, :size] + 0.5) / side
        coords[i, :size, 1] = (cols[i, :size] + 0.5) / side
        weights[i, :size] = top[i, :size] / top[i, :size].sum()
        sizes[i] = size
    return RelevanceClouds(coords, weights, sizes)


def _pairwise(coords: np.ndarray) -> np.ndarray:
    diff = coords[:, None, :] - coords[None, :, :]
    return np.sqrt((diff ** 2).sum(-1))


def intra_distances(coords: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A cloud's Euclidean distance matrix divided by its weighted mean distance (scale-free).

    Parameters
    ----------
    coords : ndarray of shape (m, 2)
    weights : ndarray of shape (m,), summing to 1

    Returns
    -------
    ndarray of float64, shape (m, m)
        Unscaled when the mean is 0 (one point).
    """
    distances = _pairwise(coords)
    mean = float(weights @ distances @ weights)
    return distances / mean if mean > 0 else distances


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, levels: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    cumulative /= cumulative[-1]
    index = np.minimum(np.searchsorted(cumulative, levels), len(order) - 1)
    return values[order][index]


def shape_descriptors(clouds: RelevanceClouds, levels: int = 16) -> np.ndarray:
    """Invariant descriptors of the clouds, for GW candidate pairs.

    The quantiles of the weighted distribution of intra-cloud distances and of the
    points' eccentricities (mean distance to the rest). Euclidean distance between
    quantile vectors is the 1-D Wasserstein distance between those distributions, which
    bound GW from below (Mémoli 2011), so GW's neighbours are near in this space.

    Parameters
    ----------
    clouds : RelevanceClouds
    levels : int
        Quantiles of each distribution.

    Returns
    -------
    ndarray of float32, shape (n, 2 * levels)
    """
    at = (np.arange(levels) + 0.5) / levels
    out = np.empty((len(clouds), 2 * levels), dtype=np.float32)
    for i in range(len(clouds)):
        coords, weights = clouds.cloud(i)
        distances = intra_distances(coords, weights)
        pair_weights = np.outer(weights, weights)
        out[i, :levels] = _weighted_quantiles(distances.ravel(), pair_weights.ravel(), at)
        out[i, levels:] = _weighted_quantiles(distances @ weights, weights, at)
    return out


def mass_descriptors(maps: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Mass-normalised, Gaussian-blurred positive maps, for Wasserstein candidate pairs.

    Blurring makes maps whose mass lies a cell or two apart near in Euclidean distance,
    as they are in Wasserstein distance.

    Parameters
    ----------
    maps : ndarray of shape (n, h, w)
    sigma : float
        Blur in cells.

    Returns
    -------
    ndarray of float32, shape (n, h*w)
    """
    from scipy.ndimage import gaussian_filter

    positive = np.clip(np.nan_to_num(np.asarray(maps, dtype=np.float64)), 0.0, None)
    blurred = gaussian_filter(positive, sigma=(0, sigma, sigma), mode="constant")
    totals = blurred.reshape(len(maps), -1).sum(axis=1)
    blurred /= np.where(totals > 0, totals, 1.0)[:, None, None]
    return blurred.reshape(len(maps), -1).astype(np.float32)
