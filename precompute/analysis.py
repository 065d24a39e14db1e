"""SpRAy's per-class analysis (Algorithm 1 of Anders et al.), as small named stages.

Heatmaps of one class go through::

    pool -> kNN distances -> symmetric kNN affinity -> L_sym spectrum -> clusterings -> Fisher/tau -> 2-D maps

Every stage is a small class with ``fit`` and trailing-underscore results, chosen by
name from a registry (:data:`DISTANCES`, :data:`CLUSTERINGS`, :data:`MAPS`), so a new
distance, clustering or map is one registered class. :func:`analyse_heatmaps` runs
them all and returns the arrays that :mod:`precompute.store` writes.

Conventions
-----------
* Eigenvalues of ``L_sym = I - D^-1/2 A D^-1/2`` are sorted **ascending**; column ``j``
  of the embedding belongs to eigenvalue ``j``, so column 0 is the trivial one
  (eigenvalue 0, proportional to ``sqrt(degree)``). The sign of each eigenvector is
  fixed so that its largest-magnitude entry is positive.
* A clustering is named ``<family>-k<k>``; labels are renumbered by cluster size,
  0 = largest.

Speed (one class of 1,300 maps of 224x224 in a fresh process on 2 cores: see
``benchmarks/analysis_vs_corelay.py``): the distances are one chunked ``syrk`` pass
over the float16 maps, scikit-learn and openTSNE are imported on a second thread
meanwhile, t-SNE runs on a second thread beside the clusterings, and ``"umap"`` is
UMAP in numpy, because umap-learn's numba compiles for ~10 s in every process
(``"umap-learn"`` keeps the library available).
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from .errors import ConfigError
from .registry import Registry
from .store import clustering_name

__all__ = [
    "AnalysisConfig",
    "DISTANCES",
    "CLUSTERINGS",
    "MAPS",
    "DEFAULT_RULES",
    "sum_pool",
    "EuclideanKNN",
    "CosineKNN",
    "knn_affinity",
    "SpectralEmbedding",
    "eigengap_clusters",
    "fisher_separability",
    "dense_knn",
    "smooth_knn_dist",
    "fuzzy_simplicial_set",
    "umap_ab",
    "spectral_layout",
    "optimize_layout",
    "UMAPMap",
    "UMAPLearnMap",
    "TSNEMap",
    "analyse_heatmaps",
    "AnalysisResult",
]

DISTANCES: Registry = Registry("distance")
CLUSTERINGS: Registry = Registry("clustering")
MAPS: Registry = Registry("2-D map")
DEFAULT_RULES: Registry = Registry("default-clustering rule")

TAU_FAMILY = "kmeans"


@dataclass(frozen=True)
class AnalysisConfig:
    """Parameters of the per-class analysis; stored in the run manifest.

    Attributes
    ----------
    neighbors : int
        k of the kNN graph (paper: 10).
    eigenvectors : int
        q, the number of smallest eigenpairs of L_sym kept (paper: 32).
    pool : int or None
        Sum-pool heatmaps to a ``pool`` x ``pool`` grid first; None keeps full resolution (paper).
    distance : str
        Name in :data:`DISTANCES`.
    k_min, k_max : int
        Cluster counts of every stored clustering family (paper: 2..30).
    clusterings : tuple of str
        Names in :data:`CLUSTERINGS`; ``"kmeans"`` (all eigenvectors) is needed for tau.
    maps : tuple of str
        Names in :data:`MAPS`.
    default_rule : str
        Name in :data:`DEFAULT_RULES`: how the clustering shown first is chosen.
    seed : int
        Seed of every randomised stage.
    """

    neighbors: int = 10
    eigenvectors: int = 32
    pool: Optional[int] = None
    distance: str = "euclidean"
    k_min: int = 2
    k_max: int = 30
    clusterings: Tuple[str, ...] = ("kmeans", "ward", "kmeans_lead")
    maps: Tuple[str, ...] = ("umap", "tsne")
    default_rule: str = "lead_eigengap"
    seed: int = 0

    def validate(self) -> "AnalysisConfig":
        """Check values and names; return self."""
        if self.neighbors < 1:
            raise ConfigError(f"--neighbors must be at least 1, got {self.neighbors}")
        if self.eigenvectors < 2:
            raise ConfigError(f"--eigenvectors must be at least 2, got {self.eigenvectors}")
        if self.pool is not None and self.pool < 1:
            raise ConfigError(f"--pool must be a positive grid size, got {self.pool}")
        if not 2 <= self.k_min <= self.k_max:
            raise ConfigError(f"cluster counts must satisfy 2 <= k_min <= k_max, got {self.k_min}..{self.k_max}")
        DISTANCES.get(self.distance)
        for name in self.clusterings:
            CLUSTERINGS.get(name)
        for name in self.maps:
            MAPS.get(name)
        DEFAULT_RULES.get(self.default_rule)
        if TAU_FAMILY not in self.clusterings:
            raise ConfigError(f"the clusterings must include {TAU_FAMILY!r}: tau is defined on it")
        return self

    def to_dict(self) -> dict:
        out = asdict(self)
        out["clusterings"] = list(self.clusterings)
        out["maps"] = list(self.maps)
        return out


# ---------------------------------------------------------------------------------------------
# pooling and distances
# ---------------------------------------------------------------------------------------------
CHUNK_BYTES = 32 << 20
"""Size of one float32 working chunk of heatmaps; bounds the distance stage's extra memory."""


def _finite_float32(block: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy of ``block`` with NaN and +-inf replaced by 0."""
    out = np.array(block, dtype=np.float32, order="C")
    bad = ~np.isfinite(out)
    if bad.any():
        out[bad] = 0.0
    return out


def sum_pool(heatmaps: np.ndarray, grid: Optional[int]) -> np.ndarray:
    """Flatten heatmaps, optionally sum-pooled onto a ``grid`` x ``grid`` grid.

    Non-finite values count as 0. The maps are converted to float32 a few at a time, so
    a float16 memory map is never copied whole when pooling.

    Parameters
    ----------
    heatmaps : ndarray of shape (n, H, W)
    grid : int or None
        Output grid side; cells cover nearly equal pixel ranges when H or W is not a
        multiple of ``grid``. None flattens without pooling (a full float32 copy).

    Returns
    -------
    ndarray of float32, shape (n, grid*grid) or (n, H*W)
    """
    n, height, width = heatmaps.shape
    if grid is None:
        return _finite_float32(heatmaps).reshape(n, height * width)
    if grid > min(height, width):
        raise ConfigError(f"--pool {grid} is larger than the heatmaps ({height}x{width})")
    rows = np.linspace(0, height, grid + 1).round().astype(int)[:-1]
    cols = np.linspace(0, width, grid + 1).round().astype(int)[:-1]
    out = np.empty((n, grid * grid), dtype=np.float32)
    step = max(1, CHUNK_BYTES // max(1, 4 * height * width))
    for start in range(0, n, step):
        block = _finite_float32(heatmaps[start:start + step])
        pooled = np.add.reduceat(np.add.reduceat(block, rows, axis=1), cols, axis=2)
        out[start:start + step] = pooled.reshape(len(block), grid * grid)
    return out


class _KNNBase:
    """Exact k nearest neighbours from the Gram matrix, built by BLAS products of chunks.

    The heatmaps are read ``CHUNK_BYTES`` of float32 at a time (a slab of feature
    columns, converted from any float dtype, non-finite values set to 0), and each slab
    adds its ``X_c X_c^T`` to the Gram matrix (BLAS ``syrk``): one pass over the data,
    without a float32 copy of the whole class. Slabs are handed to ``workers`` threads
    with single-threaded BLAS as the threads come free, so a core that another process
    slows down simply takes fewer slabs (BLAS's own threads split the work evenly and
    wait for the slowest); the products are added in slab order, so the result does not
    depend on the timing. Squared distances follow as ``|x_i|^2 + |x_j|^2 - 2 x_i.x_j``.
    Classes whose ``n x n`` blocks would exceed ``max_block_bytes`` are done in row
    blocks (each re-reads the data).

    Attributes
    ----------
    indices_ : ndarray of int32, shape (n, k)
        Neighbours of each sample, nearest first (ties by index), self excluded.
    distances_ : ndarray of float32, shape (n, k)
    """

    block_rows: Optional[int] = None  # rows of one distance block; None: as many as max_block_bytes allows
    max_block_bytes = 256 << 20
    workers: Optional[int] = None  # threads; None: the usable cores, at most 4

    def __init__(self, n_neighbors: int = 10):
        self.n_neighbors = n_neighbors

    def _row_scale(self, sq: np.ndarray) -> Optional[np.ndarray]:
        """Per-sample factor applied to the rows before distances (None: no scaling)."""
        return None

    def _gram(self, X: np.ndarray, start: int, stop: int, with_norms: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Rows ``start:stop`` of ``X X^T`` (float32) and, if asked, every row's squared norm (float64).

        Threads take slabs as they come free, but the slabs' products are added in slab
        order, so the result is bit-identical to a serial pass whatever the timing.
        """
        import threading

        from threadpoolctl import threadpool_limits

        n, d = X.shape
        cols = max(1, CHUNK_BYTES // (4 * n))
        n_slabs = -(-d // cols)
        whole = stop - start == n
        gram = np.zeros((stop - start, n), dtype=np.float32)
        sq = np.zeros(n, dtype=np.float64)
        workers = max(1, min(self.workers or min(4, _usable_cores()), n_slabs))
        window = 2 * workers  # products waiting to be added, at most
        state = {"next": 0, "added": 0}
        pending: Dict[int, Tuple[np.ndarray, Optional[np.ndarray]]] = {}
        errors: List[BaseException] = []
        turn = threading.Condition()

        def work() -> None:
            while True:
                with turn:
                    while state["next"] < n_slabs and state["next"] - state["added"] >= window and not errors:
                        turn.wait()
                    if state["next"] >= n_slabs or errors:
                        return
                    index = state["next"]
                    state["next"] += 1
                try:
                    slab = _finite_float32(X[:, index * cols:(index + 1) * cols])
                    norms = np.einsum("ij,ij->i", slab, slab, dtype=np.float64) if with_norms else None
                    product = slab @ slab.T if whole else slab[start:stop] @ slab.T  # A @ A.T: BLAS syrk
                except BaseException as error:  # re-raised in the calling thread
                    with turn:
                        errors.append(error)
                        turn.notify_all()
                    return
                with turn:
                    pending[index] = (product, norms)
                    while state["added"] in pending:
                        done, done_norms = pending.pop(state["added"])
                        np.add(gram, done, out=gram)
                        if done_norms is not None:
                            np.add(sq, done_norms, out=sq)
                        state["added"] += 1
                    turn.notify_all()

        with threadpool_limits(limits=1):
            threads = [threading.Thread(target=work, daemon=True) for _ in range(workers - 1)]
            for thread in threads:
                thread.start()
            work()
            for thread in threads:
                thread.join()
        if errors:
            raise errors[0]
        return gram, (sq if with_norms else None)

    def fit(self, X: np.ndarray) -> "_KNNBase":
        """X : array-like of shape (n, d), any float dtype (a float16 memory map is fine).

        Requires ``n > n_neighbors``.
        """
        n, d = X.shape
        k = self.n_neighbors
        if n <= k:
            raise ConfigError(f"{n} samples cannot have {k} neighbours each")
        block_rows = self.block_rows or max(1, self.max_block_bytes // (4 * n))
        block_rows = min(n, block_rows)
        sq = None
        scale = None
        sq32 = None
        indices = np.empty((n, k), dtype=np.int32)
        sq_dist = np.empty((n, k), dtype=np.float32)
        for start in range(0, n, block_rows):
            stop = min(n, start + block_rows)
            block, norms = self._gram(X, start, stop, with_norms=sq is None)
            if sq is None:
                sq = norms
                scale = self._row_scale(sq)
                sq32 = (sq if scale is None else sq * scale**2).astype(np.float32)
            block *= -2.0
            if scale is not None:
                block *= scale[start:stop, None].astype(np.float32)
                block *= scale[None, :].astype(np.float32)
            block += sq32[start:stop, None]
            block += sq32[None, :]
            np.maximum(block, 0.0, out=block)
            block[np.arange(stop - start), np.arange(start, stop)] = np.inf
            part = np.argpartition(block, k - 1, axis=1)[:, :k]
            part_d = np.take_along_axis(block, part, axis=1)
            # nearest first; equal distances by index, so the order is deterministic
            order = np.lexsort((part, part_d), axis=1)
            indices[start:stop] = np.take_along_axis(part, order, axis=1)
            sq_dist[start:stop] = np.take_along_axis(part_d, order, axis=1)
        self.indices_ = indices
        self.distances_ = np.sqrt(sq_dist)
        return self


@DISTANCES.register("euclidean")
class EuclideanKNN(_KNNBase):
    """Euclidean kNN on the flattened heatmaps (the paper's choice)."""


@DISTANCES.register("cosine")
class CosineKNN(_KNNBase):
    """kNN by cosine distance: Euclidean on unit-normalised heatmaps (scale-invariant).

    All-zero heatmaps stay zero (distance 1 to every unit vector).
    """

    def _row_scale(self, sq: np.ndarray) -> np.ndarray:
        norms = np.sqrt(sq)
        return 1.0 / np.where(norms > 0, norms, 1.0)


def knn_affinity(indices: np.ndarray) -> scipy.sparse.csr_matrix:
    """Symmetrised binary kNN affinity, eq. (1): ``A <- (A + A^T) / 2``.

    Parameters
    ----------
    indices : ndarray of int, shape (n, k)
        Neighbours of each sample (self excluded).

    Returns
    -------
    csr_matrix of float64, shape (n, n)
        1 where two samples are each other's neighbours, 0.5 where only one is.
    """
    n, k = indices.shape
    rows = np.repeat(np.arange(n), k)
    directed = scipy.sparse.csr_matrix((np.ones(n * k), (rows, indices.ravel())), shape=(n, n))
    directed.data[:] = 1.0  # duplicate neighbours would otherwise sum
    return ((directed + directed.T) * 0.5).tocsr()


# ---------------------------------------------------------------------------------------------
# spectral embedding
# ---------------------------------------------------------------------------------------------
class SpectralEmbedding:
    """Smallest eigenpairs of the normalised Laplacian ``L_sym = I - D^-1/2 A D^-1/2``.

    Computed as the largest eigenpairs of ``D^-1/2 A D^-1/2`` with ``eigsh`` (dense
    ``eigh`` for small graphs), which needs no shift-invert factorisation.

    Parameters
    ----------
    n_components : int
        q; reduced to ``n - 1`` for tiny classes.
    seed : int
        Seed of ARPACK's start vector, for reproducible output.

    Attributes
    ----------
    eigenvalues_ : ndarray of float64, shape (q,)
        Ascending; the first is 0 for a connected graph.
    embedding_ : ndarray of float32, shape (n, q)
        Eigenvectors as columns, in the order of ``eigenvalues_``.
    """

    dense_below = 600

    def __init__(self, n_components: int = 32, seed: int = 0):
        self.n_components = n_components
        self.seed = seed

    def fit(self, affinity: scipy.sparse.spmatrix) -> "SpectralEmbedding":
        n = affinity.shape[0]
        q = min(self.n_components, n - 1)
        degree = np.asarray(affinity.sum(axis=1)).ravel()
        inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0)), 0.0)
        scaled = scipy.sparse.diags(inv_sqrt) @ affinity @ scipy.sparse.diags(inv_sqrt)
        if n <= self.dense_below:
            values, vectors = scipy.linalg.eigh(scaled.toarray(), subset_by_index=[n - q, n - 1])
        else:
            v0 = np.random.default_rng(self.seed).uniform(0.5, 1.5, size=n)
            values, vectors = scipy.sparse.linalg.eigsh(scaled, k=q, which="LA", v0=v0)
        order = np.argsort(-values, kind="stable")
        eigenvalues = np.clip(1.0 - values[order], 0.0, 2.0)
        vectors = vectors[:, order]
        peak = np.argmax(np.abs(vectors), axis=0)
        vectors *= np.sign(vectors[peak, np.arange(q)])
        self.eigenvalues_ = eigenvalues
        self.embedding_ = vectors.astype(np.float32)
        return self


def eigengap_clusters(eigenvalues: np.ndarray, k_max: int = 30) -> int:
    """Cluster count suggested by the largest *relative* eigengap.

    Returns the count ``c`` of eigenvalues before the largest jump of
    ``log(lambda + delta)``, over ``c = 1 .. min(k_max, q-1)``; 1 means that no
    group stands out. ``delta`` is a tenth of the median spacing of those eigenvalues.

    Why relative: heatmaps of a clean class form a continuum (object position, scale)
    whose Laplacian spectrum rises roughly linearly, so *absolute* gaps are about equal
    everywhere and their maximum falls at random. A nearly disconnected group (an
    artifact) instead adds an eigenvalue near 0, i.e. a large jump on a log scale.
    """
    eigenvalues = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    limit = min(k_max, len(eigenvalues) - 1)
    if limit < 1:
        return 1
    head = eigenvalues[: limit + 1]
    spacing = np.diff(head)
    delta = 0.1 * float(np.median(spacing)) if spacing.size else 0.0
    delta = max(delta, 1e-12)
    jumps = np.diff(np.log(head + delta))
    return int(np.argmax(jumps)) + 1


# ---------------------------------------------------------------------------------------------
# clusterings
# ---------------------------------------------------------------------------------------------
def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber labels so that 0 is the largest cluster (ties by first appearance)."""
    uniq, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    mapping = np.empty(uniq.max() + 1 if len(uniq) else 0, dtype=np.int16)
    mapping[uniq[order]] = np.arange(len(uniq), dtype=np.int16)
    return mapping[labels]


@dataclass
class ClusteringContext:
    """What a clustering family may use beside the embedding."""

    eigenvalues: np.ndarray
    eigengap_k: int
    seed: int


KMEANS_INITS = 3
"""k-means++ restarts per fit. Measured on 1,300 synthetic maps over 6 seeds: tau's
standard deviation is 18 % of its mean with 1 restart, 6 % with 3 and 6.5 % with 10
(which costs 3x as much); on a clean class 6 %, 1.4 % and 2.4 %."""


def _kmeans(data: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    with warnings.catch_warnings():
        # duplicate points (e.g. identical heatmaps) give fewer distinct clusters than k
        warnings.simplefilter("ignore")
        return KMeans(n_clusters=k, n_init=KMEANS_INITS, random_state=seed).fit(data).labels_


@CLUSTERINGS.register("kmeans")
class KMeansAll:
    """k-means on all q eigenvectors: the paper's recipe, which tau is defined on."""

    imports = ("sklearn.cluster",)

    def fit(self, embedding: np.ndarray, ks: Sequence[int], context: ClusteringContext) -> Dict[int, np.ndarray]:
        return {k: _kmeans(embedding, k, context.seed) for k in ks}


@CLUSTERINGS.register("ward")
class WardAll:
    """Agglomerative clustering (Ward linkage) of all q eigenvectors; one tree, cut at every k."""

    imports = ("scipy.cluster.hierarchy",)

    def fit(self, embedding: np.ndarray, ks: Sequence[int], context: ClusteringContext) -> Dict[int, np.ndarray]:
        from scipy.cluster.hierarchy import fcluster, linkage

        tree = linkage(embedding.astype(np.float64), method="ward")
        return {k: fcluster(tree, t=k, criterion="maxclust") - 1 for k in ks}


def leading_dimensions(eigengap_k: int, q: int) -> int:
    """m, the number of leading eigenvectors used by ``kmeans_lead``: the eigengap's count, at least 2."""
    return int(min(q, max(2, eigengap_k)))


@CLUSTERINGS.register("kmeans_lead")
class KMeansLeading:
    """k-means on the leading m eigenvectors (m from the eigengap), rows scaled to unit length.

    This is Ng, Jordan & Weiss' spectral clustering: with L_sym the rows must be
    normalised, and the few leading eigenvectors carry the cluster structure that the
    remaining, noisier ones dilute.
    """

    imports = ("sklearn.cluster",)

    def fit(self, embedding: np.ndarray, ks: Sequence[int], context: ClusteringContext) -> Dict[int, np.ndarray]:
        m = leading_dimensions(context.eigengap_k, embedding.shape[1])
        lead = embedding[:, :m].astype(np.float64)
        norms = np.linalg.norm(lead, axis=1, keepdims=True)
        lead = lead / np.where(norms > 0, norms, 1.0)
        return {k: _kmeans(lead, k, context.seed) for k in ks}


# ---------------------------------------------------------------------------------------------
# Fisher separability and tau
# ---------------------------------------------------------------------------------------------
def fisher_separability(embedding: np.ndarray, labels: np.ndarray) -> float:
    """Largest generalised eigenvalue of ``S_b v = lambda S_w v`` (eqs. 6-8).

    ``S_w`` sums the within-cluster scatter over all samples (eq. 6) and ``S_b`` the
    outer products of the cluster means' offsets, unweighted by cluster size (eq. 7).
    A ridge of ``1e-9 * trace(S_w) / d`` keeps a singular ``S_w`` (e.g. identical
    points) finite.

    Parameters
    ----------
    embedding : ndarray of shape (n, d)
    labels : ndarray of int, shape (n,)

    Returns
    -------
    float
        0.0 for a single cluster.
    """
    X = np.asarray(embedding, dtype=np.float64)
    labels = np.asarray(labels)
    uniq, inverse = np.unique(labels, return_inverse=True)
    if len(uniq) < 2:
        return 0.0
    d = X.shape[1]
    counts = np.bincount(inverse).astype(np.float64)
    means = np.zeros((len(uniq), d))
    np.add.at(means, inverse, X)
    means /= counts[:, None]
    centred = X - means[inverse]
    s_w = centred.T @ centred
    offsets = means - X.mean(axis=0)
    s_b = offsets.T @ offsets
    ridge = 1e-9 * max(np.trace(s_w), np.trace(s_b), 1e-300) / d
    s_w[np.diag_indices(d)] += ridge
    value = scipy.linalg.eigh(s_b, s_w, eigvals_only=True, subset_by_index=[d - 1, d - 1])[0]
    return float(max(value, 0.0))


# ---------------------------------------------------------------------------------------------
# 2-D maps
# ---------------------------------------------------------------------------------------------
def dense_knn(X: np.ndarray, k: int, block_bytes: int = 64 << 20) -> Tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of a small dense embedding (self excluded).

    Parameters
    ----------
    X : ndarray of shape (n, d)
    k : int
        At most ``n - 1``.

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
class UMAPMap:
    """UMAP of the spectral embedding, in vectorised numpy (no numba compile per process).

    Follows McInnes, Healy & Melville (2018) and umap-learn's defaults: exact kNN
    (``n_neighbors`` counting the point itself), :func:`fuzzy_simplicial_set`,
    :func:`spectral_layout` scaled to ``[0, 10]``, edges below ``max / n_epochs`` pruned,
    ``a, b`` from :func:`umap_ab`, and :func:`optimize_layout` for 500 epochs (200 above
    10,000 points). Validated against umap-learn by trustworthiness and kNN
    preservation in ``tests/precompute/test_umap_numpy.py``.

    Parameters
    ----------
    n_neighbors : int
    min_dist, spread : float
    n_epochs : int or None
    learning_rate : float
    negative_sample_rate : int

    Attributes
    ----------
    graph_ : csr_matrix of shape (n, n)
        The fuzzy graph after pruning.
    embedding_ : ndarray of float32, shape (n, 2)
    """

    def __init__(self, n_neighbors: int = 15, min_dist: float = 0.1, spread: float = 1.0,
                 n_epochs: Optional[int] = None, learning_rate: float = 1.0, negative_sample_rate: int = 5):
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.spread = spread
        self.n_epochs = n_epochs
        self.learning_rate = learning_rate
        self.negative_sample_rate = negative_sample_rate

    def fit(self, X: np.ndarray, seed: int = 0) -> "UMAPMap":
        X = np.asarray(X, dtype=np.float64)
        n = len(X)
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
                                          self.learning_rate, self.negative_sample_rate)
        return self

    def fit_transform(self, embedding: np.ndarray, seed: int = 0) -> np.ndarray:
        """embedding : ndarray of shape (n, q). Returns float32 (n, 2)."""
        if len(embedding) < 6:
            return _fallback_map(embedding)
        return self.fit(embedding, seed).embedding_.astype(np.float32)


@MAPS.register("umap-learn")
class UMAPLearnMap:
    """UMAP by the umap-learn library (numba): ~10 s of compilation in every fresh process.

    Same settings as ``"umap"``; the exact kNN is passed in (``precomputed_knn``), which
    skips umap-learn's own neighbour search and its compilation.
    """

    imports = ("umap",)

    def fit_transform(self, embedding: np.ndarray, seed: int) -> np.ndarray:
        n = embedding.shape[0]
        if n < 6:
            return _fallback_map(embedding)
        import umap

        k = min(15, n - 1)
        indices, distances = dense_knn(embedding, k - 1)
        own = np.arange(n)[:, None]
        knn = (np.hstack([own, indices]), np.hstack([np.zeros((n, 1)), distances]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = umap.UMAP(n_neighbors=k, min_dist=0.1, random_state=seed, n_jobs=1,
                              precomputed_knn=(knn[0], knn[1], None))
            return model.fit_transform(np.asarray(embedding, dtype=np.float32)).astype(np.float32)


@MAPS.register("tsne")
class TSNEMap:
    """t-SNE (openTSNE, Barnes-Hut) of the spectral embedding, at openTSNE's standard settings.

    Runs on a second thread beside the clustering stages (``background``), since its
    gradient loops release the GIL.

    Perplexity 30 (at most ``(n - 1) / 3``), affinities on the exact ``3 x perplexity``
    nearest neighbours (:func:`dense_knn`; openTSNE would use approximate Annoy
    neighbours above 1,000 points), PCA initialisation, learning rate ``n / 12`` during
    250 iterations of early exaggeration 12, then ``n`` for 500 iterations, momentum
    0.8, Barnes-Hut ``theta = 0.5``: openTSNE's own choice below 10,000 points, and
    faster there than its FFT interpolation (4x at 1,300 points). One thread: the other
    core runs the clusterings and UMAP meanwhile.
    """

    background = True
    imports = ("openTSNE", "openTSNE.affinity", "openTSNE.nearest_neighbors")

    def __init__(self, perplexity: float = 30.0, theta: float = 0.5, n_jobs: int = 1):
        self.perplexity = perplexity
        self.theta = theta
        self.n_jobs = n_jobs

    def fit_transform(self, embedding: np.ndarray, seed: int) -> np.ndarray:
        n = embedding.shape[0]
        if n < 8:
            return _fallback_map(embedding)
        from openTSNE import TSNE
        from openTSNE.affinity import PerplexityBasedNN
        from openTSNE.nearest_neighbors import PrecomputedNeighbors

        X = np.asarray(embedding, dtype=np.float64)
        perplexity = float(min(self.perplexity, (n - 1) / 3.0))
        indices, distances = dense_knn(X, min(n - 1, int(3 * perplexity)))
        # Passing the neighbours also keeps openTSNE from importing pynndescent (and numba).
        affinities = PerplexityBasedNN(knn_index=PrecomputedNeighbors(indices, distances), perplexity=perplexity,
                                       n_jobs=self.n_jobs)
        model = TSNE(perplexity=perplexity, theta=self.theta, negative_gradient_method="bh", random_state=seed,
                     n_jobs=self.n_jobs, verbose=False)
        return np.asarray(model.fit(X, affinities=affinities), dtype=np.float32)


def _fallback_map(embedding: np.ndarray) -> np.ndarray:
    """Spectral dimensions 1 and 2 for classes too small for UMAP/t-SNE."""
    cols = embedding[:, 1:3] if embedding.shape[1] >= 3 else np.pad(embedding, ((0, 0), (0, 2)))[:, :2]
    return np.ascontiguousarray(cols, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# default clustering
# ---------------------------------------------------------------------------------------------
@DEFAULT_RULES.register("lead_eigengap")
def default_lead_eigengap(eigengap_k: int, available: Sequence[str], k_max: int) -> str:
    """``kmeans_lead`` at the eigengap's cluster count, at least 2.

    With ``m = k`` this is Ng-Jordan-Weiss spectral clustering with the number of
    clusters read off the spectrum: it never looks at labels or truth.
    """
    k = min(max(2, eigengap_k), k_max)
    name = clustering_name("kmeans_lead", k)
    return name if name in available else clustering_name(TAU_FAMILY, k)


# ---------------------------------------------------------------------------------------------
# the whole analysis
# ---------------------------------------------------------------------------------------------
def _single_thread():
    """Context limiting BLAS and OpenMP (k-means) to one thread."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


class _ImportAhead:
    """Import the stages' libraries (``imports`` of each stage class) on a second thread.

    scikit-learn and openTSNE take about a second to import; the distance stage,
    meanwhile, spends its time in BLAS without the GIL. Joined before the clusterings.
    """

    def __init__(self, modules: Sequence[str]):
        import importlib
        import threading

        def work() -> None:
            for module in modules:
                try:
                    importlib.import_module(module)
                except Exception:  # resurfaces where the stage imports it
                    pass

        self._thread = threading.Thread(target=work, daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join()


def _usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class _BackgroundMap:
    """A map stage computed on a second thread while the clusterings run on the first.

    Only for stages marked ``background = True``: their heavy loops release the GIL
    (openTSNE's Barnes-Hut gradient), so the two threads use two cores.
    """

    def __init__(self, stage_object, embedding: np.ndarray, seed: int):
        import threading

        self.result: Optional[np.ndarray] = None
        self.error: Optional[BaseException] = None
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._run, args=(stage_object, embedding, seed), daemon=True)
        self._thread.start()

    def _run(self, stage_object, embedding: np.ndarray, seed: int) -> None:
        started = time.perf_counter()
        try:
            self.result = stage_object.fit_transform(embedding, seed)
        except BaseException as error:  # re-raised by join() in the calling thread
            self.error = error
        self.seconds = time.perf_counter() - started

    def join(self) -> np.ndarray:
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.result


@dataclass
class AnalysisResult:
    """Output of :func:`analyse_heatmaps`: arrays for ``analysis.npz`` and summary fields."""

    arrays: Dict[str, np.ndarray]
    summary: Dict[str, object]
    timings: Dict[str, float] = field(default_factory=dict)


def analyse_heatmaps(heatmaps: np.ndarray, config: AnalysisConfig = AnalysisConfig(),
                     on_stage: Optional[Callable[[str], None]] = None) -> AnalysisResult:
    """Run Algorithm 1's analysis on the heatmaps of one class.

    Parameters
    ----------
    heatmaps : ndarray of shape (n, H, W)
        Channel-summed relevance maps; non-finite values are treated as 0.
    config : AnalysisConfig
    on_stage : callable, optional
        Called with each stage's name before it runs (for progress display).

    Returns
    -------
    AnalysisResult
        ``arrays`` holds ``eigenvalues``, ``eigenvectors``, ``knn_indices``,
        ``knn_distances``, ``clustering_names``, ``clustering_labels``, ``fisher``,
        ``map_names`` and ``maps``; ``summary`` holds ``tau``, ``eigengap_k``,
        ``default_clustering``, ``neighbors_used``, ``eigenvectors_used`` and
        ``fisher_kmeans`` (per k).

    Raises
    ------
    ConfigError
        If the class has fewer than 4 samples (too few for a graph).
    """
    config.validate()
    timings: Dict[str, float] = {}
    clock = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        if stage.current:
            timings[stage.current] = now - clock
        clock = now
        stage.current = name
        if on_stage and name:
            on_stage(name)

    stage.current = ""
    heatmaps = heatmaps if isinstance(heatmaps, np.ndarray) else np.asarray(heatmaps)
    n = len(heatmaps)
    if n < 4:
        raise ConfigError(f"{n} samples are too few for a spectral analysis (need at least 4)")
    stages = [CLUSTERINGS.get(name) for name in config.clusterings] + [MAPS.get(name) for name in config.maps]
    ahead = _ImportAhead(["threadpoolctl"] + [m for cls in stages for m in getattr(cls, "imports", ())])
    stage("distance")
    # Read in float32 chunks (non-finite -> 0): never a float32 copy of the whole class.
    X = heatmaps.reshape(n, -1) if config.pool is None else sum_pool(heatmaps, config.pool)
    neighbors = min(config.neighbors, n - 2)  # small classes: fewer neighbours (noted in the summary)
    knn = DISTANCES.get(config.distance)(neighbors).fit(X)
    del X
    ahead.join()  # before threadpoolctl below looks for the OpenMP runtimes those imports load
    # After the one big product, every stage works on n x q arrays: one thread each, since
    # BLAS and OpenMP threads that spin on a shared 2-core machine cost more than they save.
    with _single_thread():
        stage("spectral")
        affinity = knn_affinity(knn.indices_)
        spectral = SpectralEmbedding(config.eigenvectors, seed=config.seed).fit(affinity)
        embedding = spectral.embedding_
        q = embedding.shape[1]
        eigengap_k = eigengap_clusters(spectral.eigenvalues_, config.k_max)
        ks = [k for k in range(config.k_min, config.k_max + 1) if k < n]
        context = ClusteringContext(spectral.eigenvalues_, eigengap_k, config.seed)
        background: Dict[str, _BackgroundMap] = {}
        if _usable_cores() > 1:
            for map_name in config.maps:
                if getattr(MAPS.get(map_name), "background", False):
                    background[map_name] = _BackgroundMap(MAPS.get(map_name)(), embedding, config.seed)
        names: List[str] = []
        labels: List[np.ndarray] = []
        for family in config.clusterings:
            stage(f"cluster:{family}")
            for k, lab in CLUSTERINGS.get(family)().fit(embedding, ks, context).items():
                names.append(clustering_name(family, k))
                labels.append(_relabel_by_size(np.asarray(lab)))
        stage("fisher")
        fisher = np.array([fisher_separability(embedding, lab) for lab in labels], dtype=np.float64)
        tau_mask = np.array([name.startswith(TAU_FAMILY + "-k") for name in names])
        tau = float(fisher[tau_mask].mean()) if tau_mask.any() else 0.0
        maps_done: Dict[str, np.ndarray] = {}
        for map_name in config.maps:
            if map_name not in background:
                stage(f"map:{map_name}")
                maps_done[map_name] = MAPS.get(map_name)().fit_transform(embedding, config.seed)
        for map_name, job in background.items():
            stage(f"map:{map_name}")  # the clock measures the wait for the second thread
            maps_done[map_name] = job.join()
    stage("")
    for map_name, job in background.items():
        timings[f"wait:{map_name}"] = timings.pop(f"map:{map_name}")
        timings[f"map:{map_name}"] = job.seconds  # overlaps the clustering stages
    map_arrays = [maps_done[map_name] for map_name in config.maps]
    default = DEFAULT_RULES.get(config.default_rule)(eigengap_k, names, config.k_max)
    arrays = {
        "eigenvalues": spectral.eigenvalues_.astype(np.float64),
        "eigenvectors": embedding,
        "knn_indices": knn.indices_,
        "knn_distances": knn.distances_.astype(np.float32),
        "clustering_names": np.array(names, dtype=str),
        "clustering_labels": np.stack(labels).astype(np.int16) if labels else np.zeros((0, n), np.int16),
        "fisher": fisher,
        "map_names": np.array(list(config.maps), dtype=str),
        "maps": np.stack(map_arrays).astype(np.float32) if map_arrays else np.zeros((0, n, 2), np.float32),
    }
    summary = {
        "tau": tau,
        "eigengap_k": eigengap_k,
        "default_clustering": default,
        "neighbors_used": neighbors,
        "eigenvectors_used": q,
        "leading_dimensions": leading_dimensions(eigengap_k, q),
        "fisher_kmeans": {name: float(f) for name, f, m in zip(names, fisher, tau_mask) if m},
    }
    return AnalysisResult(arrays=arrays, summary=summary, timings=timings)
