"""The map stage: 2-D maps of the spectral embedding for the app's scatter plots.

A map is a :class:`~precompute.stages.base.MapStage` in :data:`MAPS`, constructed
with its parameters and ``random_state`` and fitted on the ``(n, q)`` embedding; it
sets ``embedding_`` of shape ``(n, 2)``. Registered here: ``"tsne"`` (openTSNE) and
``"umap-learn"`` (the umap-learn library); ``"umap"``, UMAP in numpy, lives in
:mod:`precompute.stages.umap_numpy`. Every map is given the exact neighbours of
:func:`dense_knn`.
"""
from __future__ import annotations

import warnings
from typing import Tuple

import numpy as np

from ..registry import Registry
from .base import MapStage, fallback_map

__all__ = ["MAPS", "dense_knn", "UMAPLearnMap", "TSNEMap"]

MAPS: Registry = Registry("2-D map")


def dense_knn(X: np.ndarray, k: int, block_bytes: int = 64 << 20) -> Tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of a small dense embedding (self excluded).

    Parameters
    ----------
    X : ndarray of shape (n, d)
    k : int
        At most ``n - 1``.
    block_bytes : int
        Size of one float64 block of distances.

    Returns
    -------
    indices : ndarray of intp, shape (n, k)
        Nearest first; equal distances by index.
    distances : ndarray of float64, shape (n, k)
    """
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    sq = np.einsum("ij,ij->i", X, X)
    indices = np.empty((n, k), dtype=np.intp)
    dist2 = np.empty((n, k), dtype=np.float64)
    rows = max(1, block_bytes // (8 * n))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        block = X[start:stop] @ X.T
        block *= -2.0
        block += sq[start:stop, None]
        block += sq[None, :]
        np.maximum(block, 0.0, out=block)
        block[np.arange(stop - start), np.arange(start, stop)] = np.inf
        part = np.argpartition(block, k - 1, axis=1)[:, :k] if k < n else np.argsort(block, axis=1)[:, :k]
        part_d = np.take_along_axis(block, part, axis=1)
        order = np.lexsort((part, part_d), axis=1)
        indices[start:stop] = np.take_along_axis(part, order, axis=1)
        dist2[start:stop] = np.take_along_axis(part_d, order, axis=1)
    return indices, np.sqrt(dist2)


@MAPS.register("umap-learn")
class UMAPLearnMap(MapStage):
    """UMAP by the umap-learn library (numba): ~10 s of compilation once per process.

    umap-learn's defaults (``min_dist`` 0.1, spread 1); the exact kNN of
    :func:`dense_knn` is passed in (``precomputed_knn``), which skips umap-learn's own
    neighbour search. One thread (``n_jobs=1``, as ``random_state`` requires anyway).
    Classes under 6 samples get :func:`~precompute.stages.base.fallback_map`.

    Parameters
    ----------
    n_neighbors : int
        Counting the point itself, as in UMAP; at most ``n - 1``.
    min_dist : float
    random_state : int

    Attributes
    ----------
    embedding_ : ndarray of float32, shape (n, 2)
    """

    imports = ("umap",)

    def __init__(self, n_neighbors: int = 15, min_dist: float = 0.1, random_state: int = 0):
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.random_state = random_state

    def fit(self, X: np.ndarray) -> "UMAPLearnMap":
        """X : ndarray of shape (n, q)."""
        n = X.shape[0]
        if n < 6:
            self.embedding_ = fallback_map(X)
            return self
        import umap

        k = min(self.n_neighbors, n - 1)
        indices, distances = dense_knn(X, k - 1)
        own = np.arange(n)[:, None]
        knn = (np.hstack([own, indices]), np.hstack([np.zeros((n, 1)), distances]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = umap.UMAP(n_neighbors=k, min_dist=self.min_dist, random_state=self.random_state, n_jobs=1,
                              precomputed_knn=(knn[0], knn[1], None))
            self.embedding_ = model.fit_transform(np.asarray(X, dtype=np.float32)).astype(np.float32)
        return self


@MAPS.register("tsne")
class TSNEMap(MapStage):
    """t-SNE (openTSNE, Barnes-Hut) of the spectral embedding, at openTSNE's standard settings.

    Runs on a second thread beside the clustering stages (``background``), since its
    gradient loops release the GIL.

    Perplexity 30 (at most ``(n - 1) / 3``), affinities on the exact ``3 x perplexity``
    nearest neighbours (:func:`dense_knn`; openTSNE would use approximate Annoy
    neighbours above 1,000 points), PCA initialisation, learning rate ``n / 12`` during
    250 iterations of early exaggeration 12, then ``n`` for 500 iterations, momentum
    0.8, Barnes-Hut ``theta = 0.5``: openTSNE's own choice below 10,000 points, and
    faster there than its FFT interpolation (4x at 1,300 points). One thread: the other
    core runs the clusterings and UMAP meanwhile. Classes under 8 samples get
    :func:`~precompute.stages.base.fallback_map`.

    Parameters
    ----------
    perplexity : float
    theta : float
    n_jobs : int
    random_state : int

    Attributes
    ----------
    embedding_ : ndarray of float32, shape (n, 2)
    """

    background = True
    imports = ("openTSNE", "openTSNE.affinity", "openTSNE.nearest_neighbors")

    def __init__(self, perplexity: float = 30.0, theta: float = 0.5, n_jobs: int = 1, random_state: int = 0):
        self.perplexity = perplexity
        self.theta = theta
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: np.ndarray) -> "TSNEMap":
        """X : ndarray of shape (n, q)."""
        n = X.shape[0]
        if n < 8:
            self.embedding_ = fallback_map(X)
            return self
        from openTSNE import TSNE
        from openTSNE.affinity import PerplexityBasedNN
        from openTSNE.nearest_neighbors import PrecomputedNeighbors

        X = np.asarray(X, dtype=np.float64)
        perplexity = float(min(self.perplexity, (n - 1) / 3.0))
        indices, distances = dense_knn(X, min(n - 1, int(3 * perplexity)))
        # Passing the neighbours also keeps openTSNE from importing pynndescent (and numba).
        affinities = PerplexityBasedNN(knn_index=PrecomputedNeighbors(indices, distances), perplexity=perplexity,
                                       n_jobs=self.n_jobs)
        model = TSNE(perplexity=perplexity, theta=self.theta, negative_gradient_method="bh",
                     random_state=self.random_state, n_jobs=self.n_jobs, verbose=False)
        self.embedding_ = np.asarray(model.fit(X, affinities=affinities), dtype=np.float32)
        return self
