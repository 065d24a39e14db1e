"""Candidate pairs for distances too costly for all pairs, and the kNN graph from solved pairs.

The transport distances (:mod:`precompute.stages.transport`) solve only some pairs of a
class: the union of neighbour lists under cheap descriptors and random partners
(:func:`candidate_pairs`), then one round of neighbour descent
(:func:`neighbours_of_neighbours`); :func:`knn_from_pairs` builds each sample's k nearest
from what was solved.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from ..errors import ConfigError
from .distance import KNNDistance

__all__ = ["candidate_pairs", "all_pairs", "euclidean_neighbours", "neighbours_of_neighbours", "knn_from_pairs"]


def candidate_pairs(neighbour_lists: List[np.ndarray], n: int, random_candidates: int,
                    seed: int = 0) -> np.ndarray:
    """Unordered candidate pairs: the union of neighbour lists and random partners.

    Parameters
    ----------
    neighbour_lists : list of ndarray of int, each of shape (n, k_j)
        Each sample's neighbours under some descriptor (self excluded).
    n : int
    random_candidates : int
        Random partners of each sample.
    seed : int

    Returns
    -------
    ndarray of int64, shape (p, 2)
        Pairs ``(i, j)`` with ``i < j``, each once, sorted.
    """
    rng = np.random.default_rng(seed)
    parts = []
    for neighbours in neighbour_lists:
        rows = np.repeat(np.arange(n), neighbours.shape[1])
        parts.append(np.stack([rows, neighbours.ravel()], axis=1))
    if random_candidates > 0 and n > 1:
        rows = np.repeat(np.arange(n), random_candidates)
        offsets = rng.integers(1, n, size=len(rows))  # never the sample itself
        parts.append(np.stack([rows, (rows + offsets) % n], axis=1))
    pairs = np.concatenate(parts) if parts else np.empty((0, 2), dtype=np.int64)
    pairs = np.sort(pairs.astype(np.int64), axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0)


def all_pairs(n: int) -> np.ndarray:
    """Every unordered pair ``(i, j)``, ``i < j``, as an int64 array of shape (n(n-1)/2, 2)."""
    rows, cols = np.triu_indices(n, k=1)
    return np.stack([rows, cols], axis=1).astype(np.int64)


def euclidean_neighbours(X: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` exact Euclidean nearest neighbours of each row of ``X`` (n, d), self excluded.

    Returns
    -------
    ndarray of int32, shape (n, min(k, n-1))
    """
    return KNNDistance(n_neighbors=min(k, len(X) - 1), workers=1).fit(X).indices_


def neighbours_of_neighbours(indices: np.ndarray, width: int, solved: np.ndarray, n: int) -> np.ndarray:
    """Pairs between each sample and its ``width`` nearest neighbours' ``width`` nearest, not yet solved.

    Parameters
    ----------
    indices : ndarray of int, shape (n, k)
        The current kNN graph, nearest first.
    width : int
    solved : ndarray of int, shape (p, 2)
        Unordered pairs ``(i < j)`` already solved.
    n : int

    Returns
    -------
    ndarray of int64, shape (q, 2)
        New unordered pairs ``(i < j)``, each once, sorted.
    """
    near = indices[:, :width].astype(np.int64)
    second = near[near].reshape(n, -1)  # (n, width * width)
    rows = np.repeat(np.arange(n), second.shape[1])
    pairs = np.sort(np.stack([rows, second.ravel()], axis=1), axis=1)
    pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)
    known = np.isin(pairs[:, 0] * n + pairs[:, 1], solved[:, 0].astype(np.int64) * n + solved[:, 1])
    return pairs[~known]


def knn_from_pairs(pairs: np.ndarray, values: np.ndarray, n: int, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Each sample's ``k`` nearest among its solved pairs (nearest first, ties by index).

    Parameters
    ----------
    pairs : ndarray of int, shape (p, 2)
    values : ndarray, shape (p,)
    n, k : int

    Returns
    -------
    indices : ndarray of int32, shape (n, k)
    distances : ndarray of float32, shape (n, k)

    Raises
    ------
    ConfigError
        A sample with fewer than ``k`` solved partners.
    """
    rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0]])
    dist = np.concatenate([values, values])
    order = np.lexsort((cols, dist, rows))
    rows, cols, dist = rows[order], cols[order], dist[order]
    starts = np.searchsorted(rows, np.arange(n))
    counts = np.diff(np.append(starts, len(rows)))
    if counts.min(initial=k) < k:
        raise ConfigError(f"sample {int(np.argmin(counts))} has {int(counts.min())} candidate partners, fewer "
                          f"than {k} neighbours")
    take = starts[:, None] + np.arange(k)[None, :]
    return cols[take].astype(np.int32), dist[take].astype(np.float32)
