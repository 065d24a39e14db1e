"""UMAP in numpy: the ``"umap"`` map, without umap-learn's numba compilation in every process.

Follows McInnes, Healy & Melville (2018) and umap-learn's defaults, one piece a
function, each tested against a plain loop written from the paper's definitions in
``tests/precompute/stages/test_umap_numpy.py``, and the whole map against umap-learn
(``"umap-learn"``, :class:`precompute.stages.maps.UMAPLearnMap`) by trustworthiness:

* :func:`smooth_knn_dist` and :func:`fuzzy_simplicial_set`: the fuzzy kNN graph;
* :func:`spectral_layout`: the initial layout, a connected component at a time;
* :func:`umap_ab` and :func:`optimize_layout`: the curve and the stochastic gradient descent.

Why it exists (``benchmarks/RESULTS.md``, "UMAP: numpy or umap-learn"): umap-learn's
numba compiles for about 13.5 s of CPU once in every process, which is 29-44 % of the
CPU time of analysing the demo's 10 classes and of a few classes of 1,300 maps. Once compiled,
the two cost about the same per class (numpy 0.4 s less at 1,300 maps, 0.06 s more at
200), so for runs of many classes the choice hardly matters; the trustworthiness of
the two maps differs by less than 0.005.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Tuple

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from .base import MapStage, fallback_map
from .maps import MAPS, dense_knn

__all__ = ["smooth_knn_dist", "fuzzy_simplicial_set", "umap_ab", "spectral_layout", "optimize_layout", "UMAPMap"]


def smooth_knn_dist(distances: np.ndarray, n_neighbors: int, n_iter: int = 64,
                    tol: float = 1e-5) -> Tuple[np.ndarray, np.ndarray]:
    """UMAP's local metric: ``rho`` and ``sigma`` of every point, all rows at once.

    ``rho_i`` is the distance to the nearest neighbour at a positive distance (local
    connectivity 1). ``sigma_i`` is found by bisection so that
    ``sum_j exp(-max(0, d_ij - rho_i) / sigma_i) = log2(n_neighbors)`` over the
    neighbours; ``n_neighbors`` counts the point itself, as in UMAP, so ``distances``
    has ``n_neighbors - 1`` columns. Like UMAP, ``sigma_i`` is kept at least 1e-3 of
    the mean neighbour distance (with the point's own 0 counted in the mean).

    Parameters
    ----------
    distances : ndarray of shape (n, n_neighbors - 1)
        Distances to the nearest neighbours, self excluded.
    n_neighbors : int

    Returns
    -------
    sigma, rho : ndarrays of float64, shape (n,)
    """
    distances = np.asarray(distances, dtype=np.float64)
    n = len(distances)
    positive = np.where(distances > 0, distances, np.inf)
    rho = positive.min(axis=1)
    rho[~np.isfinite(rho)] = 0.0
    excess = distances - rho[:, None]
    beyond = excess > 0
    excess = np.where(beyond, excess, 0.0)
    target = np.log2(n_neighbors)
    lo = np.zeros(n)
    hi = np.full(n, np.inf)
    mid = np.ones(n)
    todo = np.ones(n, dtype=bool)
    for _ in range(n_iter):
        psum = np.where(beyond, np.exp(-excess / mid[:, None]), 1.0).sum(axis=1)
        todo &= np.abs(psum - target) >= tol
        if not todo.any():
            break
        over = todo & (psum > target)
        under = todo & ~over
        hi = np.where(over, mid, hi)
        lo = np.where(under, mid, lo)
        halfway = (lo + hi) / 2.0
        mid = np.where(over, halfway, mid)
        mid = np.where(under, np.where(np.isinf(hi), mid * 2.0, halfway), mid)
    row_mean = distances.sum(axis=1) / (distances.shape[1] + 1)
    all_mean = distances.sum() / max(1, n * (distances.shape[1] + 1))
    floor = 1e-3 * np.where(rho > 0, row_mean, all_mean)
    return np.maximum(mid, floor), rho


def fuzzy_simplicial_set(indices: np.ndarray, distances: np.ndarray, n_neighbors: int) -> scipy.sparse.csr_matrix:
    """UMAP's graph: memberships ``exp(-(d - rho) / sigma)``, joined by the fuzzy union.

    Parameters
    ----------
    indices, distances : ndarrays of shape (n, n_neighbors - 1)
        Each point's nearest neighbours, self excluded.
    n_neighbors : int
        Counting the point itself, as in UMAP.

    Returns
    -------
    csr_matrix of float64, shape (n, n)
        Symmetric, ``W = P + P^T - P o P^T``.
    """
    n, k = indices.shape
    sigma, rho = smooth_knn_dist(distances, n_neighbors)
    excess = distances - rho[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where((excess <= 0) | (sigma[:, None] == 0), 1.0, np.exp(-excess / sigma[:, None]))
    rows = np.repeat(np.arange(n), k)
    P = scipy.sparse.csr_matrix((weights.ravel(), (rows, indices.ravel())), shape=(n, n))
    W = (P + P.T - P.multiply(P.T)).tocsr()
    W.eliminate_zeros()
    return W


@lru_cache(maxsize=16)
def umap_ab(spread: float = 1.0, min_dist: float = 0.1) -> Tuple[float, float]:
    """UMAP's curve ``1 / (1 + a d^(2b))`` fitted to its target membership of distance.

    The target is 1 below ``min_dist`` and ``exp(-(d - min_dist) / spread)`` beyond,
    fitted by least squares on 300 points of ``[0, 3 spread]``
    (``a = 1.577, b = 0.895`` for the defaults).
    """
    from scipy.optimize import curve_fit

    xv = np.linspace(0, spread * 3, 300)
    yv = np.where(xv < min_dist, 1.0, np.exp(-(xv - min_dist) / spread))
    (a, b), _ = curve_fit(lambda x, a, b: 1.0 / (1.0 + a * x ** (2 * b)), xv, yv)
    return float(a), float(b)


def _spectral_coords(W: scipy.sparse.spmatrix, dim: int, seed: int) -> Optional[np.ndarray]:
    """Eigenvectors 2..dim+1 of ``D^-1/2 W D^-1/2`` (largest first), or None if too small."""
    n = W.shape[0]
    if n <= dim + 1:
        return None
    degree = np.asarray(W.sum(axis=1)).ravel()
    inv_sqrt = 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0))
    M = scipy.sparse.diags(inv_sqrt) @ W @ scipy.sparse.diags(inv_sqrt)
    if n <= 64:
        _, vectors = scipy.linalg.eigh(M.toarray())
        return vectors[:, ::-1][:, 1:dim + 1]
    v0 = np.random.default_rng(seed).uniform(0.5, 1.5, size=n)
    try:
        values, vectors = scipy.sparse.linalg.eigsh(M, k=dim + 1, which="LA", v0=v0, tol=1e-4, maxiter=5 * n)
    except scipy.sparse.linalg.ArpackNoConvergence:
        return None
    order = np.argsort(-values)
    return vectors[:, order[1:dim + 1]]


def spectral_layout(W: scipy.sparse.spmatrix, data: np.ndarray, dim: int, rng: np.random.Generator,
                    seed: int) -> np.ndarray:
    """UMAP's spectral initialisation, a connected component at a time.

    One component: the leading non-trivial eigenvectors of the normalised graph. Several:
    each component gets its own spectral layout, scaled into a disc of 0.4 times the
    distance between component positions (so components never overlap); those positions are +-unit vectors for up to ``2 dim``
    components, else the PCA of the components' centroids in ``data``. Components too
    small for eigenvectors (or whose solver fails) are placed uniformly at random.
    """
    from scipy.sparse.csgraph import connected_components

    n = W.shape[0]
    n_comp, labels = connected_components(W, directed=False)
    if n_comp == 1:
        coords = _spectral_coords(W, dim, seed)
        return coords if coords is not None else rng.uniform(-10, 10, size=(n, dim))
    if n_comp <= 2 * dim:
        half = int(np.ceil(n_comp / 2))
        base = np.hstack([np.eye(half), np.zeros((half, max(0, dim - half)))])[:, :dim]
        meta = np.vstack([base, -base])[:n_comp]
    else:
        centroids = np.stack([data[labels == c].mean(axis=0) for c in range(n_comp)])
        centred = centroids - centroids.mean(axis=0)
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        meta = u[:, :dim] * s[:dim]
        if meta.shape[1] < dim:
            meta = np.pad(meta, ((0, 0), (0, dim - meta.shape[1])))
        meta = meta / max(np.abs(meta).max(), 1e-12)
    gaps = np.sqrt(((meta[:, None, :] - meta[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(gaps, np.inf)
    reach = 0.4 * float(gaps.min()) if np.isfinite(gaps.min()) and gaps.min() > 0 else 1.0
    coords = np.empty((n, dim))
    W = W.tocsr()
    for c in range(n_comp):
        members = np.flatnonzero(labels == c)
        part = None
        if len(members) >= max(2 * dim, 3):
            part = _spectral_coords(W[members][:, members], dim, seed)
        if part is None:
            part = rng.uniform(-1, 1, size=(len(members), dim))
        part = part * (reach / max(np.sqrt((part**2).sum(axis=1)).max(), 1e-12))  # a disc of radius reach
        coords[members] = part + meta[c]
    return coords


def optimize_layout(Y: np.ndarray, head: np.ndarray, tail: np.ndarray, weights: np.ndarray, n_epochs: int,
                    a: float, b: float, rng: np.random.Generator, learning_rate: float = 1.0,
                    negative_sample_rate: int = 5, repulsion_strength: float = 1.0,
                    clip: float = 4.0) -> np.ndarray:
    """UMAP's stochastic gradient descent, one vectorised step per epoch.

    Edge ``(i, j)`` of weight ``w`` is sampled every ``max(w) / w`` epochs, as in UMAP.
    A sample pulls ``i`` and ``j`` together by UMAP's attractive gradient
    ``-2ab d^(2b-2) / (1 + a d^(2b)) (y_i - y_j)``, and each endpoint is pushed away
    from ``negative_sample_rate`` uniformly drawn points by the repulsive gradient
    ``2 gamma b / ((0.001 + d^2)(1 + a d^(2b))) (y_i - y_k)`` (coincident points: the
    clip value). Every gradient coordinate is clipped to ``[-clip, clip]``; the
    learning rate falls linearly to 0 over the epochs.

    UMAP's reference code applies the samples one after another; here all samples of
    an epoch are evaluated at the positions at its start and applied together, as GPU
    implementations (e.g. cuML) do. A sampled undirected edge counts in both
    directions, as UMAP's symmetric edge list does.

    Parameters
    ----------
    Y : ndarray of shape (n, 2)
        Initial layout; not modified.
    head, tail : ndarrays of int, shape (m,)
        Undirected edges, each listed once.
    weights : ndarray of shape (m,)
        Membership strength of each edge, positive.
    n_epochs : int
    a, b : float
        From :func:`umap_ab`.
    rng : numpy Generator

    Returns
    -------
    ndarray of float32, shape (n, 2)
    """
    n = len(Y)
    x = np.ascontiguousarray(Y[:, 0], dtype=np.float32)
    y = np.ascontiguousarray(Y[:, 1], dtype=np.float32)
    head = np.asarray(head, dtype=np.intp)
    tail = np.asarray(tail, dtype=np.intp)
    every = weights.max() / np.asarray(weights, dtype=np.float64)  # epochs per sample
    next_sample = every.copy()
    every_neg = every / negative_sample_rate
    next_neg = every_neg.copy()
    a32, b32 = np.float32(a), np.float32(b)
    attract = np.float32(-2.0 * a * b)
    repel = np.float32(2.0 * repulsion_strength * b)
    points = np.arange(n)
    for epoch in range(n_epochs):
        alpha = learning_rate * (1.0 - epoch / n_epochs)
        active = np.flatnonzero(next_sample <= epoch)
        if not active.size:
            continue
        h, t = head[active], tail[active]
        # attraction, both directions of each sampled edge: 2 alpha
        dx = x[h] - x[t]
        dy = y[h] - y[t]
        d2 = dx * dx + dy * dy
        apart = d2 > 0
        d2s = np.where(apart, d2, np.float32(1.0))
        pw = d2s ** (b32 - 1)
        coef = np.where(apart, attract * pw / (1 + a32 * pw * d2s), np.float32(0.0))
        gx = np.clip(coef * dx, -clip, clip)
        gy = np.clip(coef * dy, -clip, clip)
        step = 2.0 * alpha
        move_x = (np.bincount(h, gx, n) - np.bincount(t, gx, n)) * step
        move_y = (np.bincount(h, gy, n) - np.bincount(t, gy, n)) * step
        next_sample[active] += every[active]
        # repulsion: each endpoint of a sampled edge meets its negative samples
        due = np.floor((epoch - next_neg[active]) / every_neg[active])
        due = np.maximum(due, 0.0)
        next_neg[active] += due * every_neg[active]
        due = due.astype(np.intp)
        counts = np.bincount(h, due, n).astype(np.intp) + np.bincount(t, due, n).astype(np.intp)
        total = int(counts.sum())
        if total:
            others = rng.integers(0, n, size=total)
            rx = np.repeat(x, counts) - x[others]
            ry = np.repeat(y, counts) - y[others]
            r2 = rx * rx + ry * ry
            coef = repel / ((np.float32(0.001) + r2) * (1 + a32 * r2 ** b32))
            gx = np.clip(coef * rx, -clip, clip)
            gy = np.clip(coef * ry, -clip, clip)
            same = r2 == 0  # UMAP: a point drawn as its own negative is skipped,
            if same.any():  # a distinct point at the same place pushes by the clip value
                own = np.repeat(points, counts) == others
                gx[same] = np.where(own[same], 0.0, clip)
                gy[same] = np.where(own[same], 0.0, clip)
            busy = counts > 0
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[busy]
            move_x[busy] += np.add.reduceat(gx, starts) * alpha
            move_y[busy] += np.add.reduceat(gy, starts) * alpha
        x += move_x.astype(np.float32)
        y += move_y.astype(np.float32)
    return np.stack([x, y], axis=1)


@MAPS.register("umap")
class UMAPMap(MapStage):
    """UMAP of the spectral embedding, in vectorised numpy (no numba compile per process).

    Follows umap-learn's defaults: exact kNN (``n_neighbors`` counting the point
    itself, :func:`~precompute.stages.maps.dense_knn`), :func:`fuzzy_simplicial_set`,
    :func:`spectral_layout` scaled to ``[0, 10]``, edges below ``max / n_epochs``
    pruned, ``a, b`` from :func:`umap_ab`, and :func:`optimize_layout` for 500 epochs
    (200 above 10,000 points). Classes under 6 samples get
    :func:`~precompute.stages.base.fallback_map`.

    Parameters
    ----------
    n_neighbors : int
    min_dist, spread : float
    n_epochs : int or None
    learning_rate : float
    negative_sample_rate : int
    random_state : int

    Attributes
    ----------
    graph_ : csr_matrix of shape (n, n), or None
        The fuzzy graph after pruning (None for a class under 6 samples).
    embedding_ : ndarray of float32, shape (n, 2)
    """

    def __init__(self, n_neighbors: int = 15, min_dist: float = 0.1, spread: float = 1.0,
                 n_epochs: Optional[int] = None, learning_rate: float = 1.0, negative_sample_rate: int = 5,
                 random_state: int = 0):
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.spread = spread
        self.n_epochs = n_epochs
        self.learning_rate = learning_rate
        self.negative_sample_rate = negative_sample_rate
        self.random_state = random_state

    def fit(self, X: np.ndarray) -> "UMAPMap":
        """X : ndarray of shape (n, q)."""
        if len(X) < 6:
            self.graph_ = None
            self.embedding_ = fallback_map(X)
            return self
        X = np.asarray(X, dtype=np.float64)
        n = len(X)
        seed = self.random_state
        k = min(self.n_neighbors, n - 1)  # counting the point itself
        n_epochs = self.n_epochs or (500 if n <= 10_000 else 200)
        rng = np.random.default_rng(seed)
        indices, distances = dense_knn(X, k - 1)
        W = fuzzy_simplicial_set(indices, distances, k)
        W.data[W.data < W.data.max() / n_epochs] = 0.0
        W.eliminate_zeros()
        Y = spectral_layout(W, X, 2, rng, seed)
        Y = Y * (10.0 / max(np.abs(Y).max(), 1e-12)) + rng.normal(scale=1e-4, size=Y.shape)
        span = Y.max(axis=0) - Y.min(axis=0)
        Y = 10.0 * (Y - Y.min(axis=0)) / np.where(span > 0, span, 1.0)
        upper = scipy.sparse.triu(W, k=1).tocoo()
        a, b = umap_ab(self.spread, self.min_dist)
        self.graph_ = W
        self.embedding_ = optimize_layout(Y, upper.row, upper.col, upper.data, n_epochs, a, b, rng,
                                          self.learning_rate, self.negative_sample_rate).astype(np.float32)
        return self
