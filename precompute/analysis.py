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
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
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
def sum_pool(heatmaps: np.ndarray, grid: Optional[int]) -> np.ndarray:
    """Flatten heatmaps, optionally sum-pooled onto a ``grid`` x ``grid`` grid.

    Parameters
    ----------
    heatmaps : ndarray of shape (n, H, W)
    grid : int or None
        Output grid side; cells cover nearly equal pixel ranges when H or W is not a
        multiple of ``grid``. None flattens without pooling.

    Returns
    -------
    ndarray of float32, shape (n, grid*grid) or (n, H*W)
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    n, height, width = heatmaps.shape
    if grid is None:
        return heatmaps.reshape(n, height * width)
    if grid > min(height, width):
        raise ConfigError(f"--pool {grid} is larger than the heatmaps ({height}x{width})")
    rows = np.linspace(0, height, grid + 1).round().astype(int)[:-1]
    cols = np.linspace(0, width, grid + 1).round().astype(int)[:-1]
    pooled = np.add.reduceat(np.add.reduceat(heatmaps, rows, axis=1), cols, axis=2)
    return pooled.reshape(n, grid * grid)


class _KNNBase:
    """k nearest neighbours by a row-block matrix product (no Python loop over pairs).

    Attributes
    ----------
    indices_ : ndarray of int32, shape (n, k)
        Neighbours of each sample, nearest first, self excluded.
    distances_ : ndarray of float32, shape (n, k)
    """

    block_rows = 2048

    def __init__(self, n_neighbors: int = 10):
        self.n_neighbors = n_neighbors

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        return X

    def fit(self, X: np.ndarray) -> "_KNNBase":
        """X : ndarray of shape (n, d). Requires ``n > n_neighbors``."""
        X = self._prepare(np.ascontiguousarray(X, dtype=np.float32))
        n = X.shape[0]
        k = self.n_neighbors
        if n <= k:
            raise ConfigError(f"{n} samples cannot have {k} neighbours each")
        sq = np.einsum("ij,ij->i", X, X, dtype=np.float64).astype(np.float32)
        indices = np.empty((n, k), dtype=np.int32)
        sq_dist = np.empty((n, k), dtype=np.float32)
        for start in range(0, n, self.block_rows):
            stop = min(n, start + self.block_rows)
            block = X[start:stop] @ X.T  # the one BLAS product: (b, d) x (d, n)
            block *= -2.0
            block += sq[start:stop, None]
            block += sq[None, :]
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
    """kNN by cosine distance: Euclidean on unit-normalised heatmaps (scale-invariant)."""

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        return X / np.where(norms > 0, norms, 1.0)


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


def _kmeans(data: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    with warnings.catch_warnings():
        # duplicate points (e.g. identical heatmaps) give fewer distinct clusters than k
        warnings.simplefilter("ignore")
        return KMeans(n_clusters=k, n_init=3, random_state=seed).fit(data).labels_


@CLUSTERINGS.register("kmeans")
class KMeansAll:
    """k-means on all q eigenvectors: the paper's recipe, which tau is defined on."""

    def fit(self, embedding: np.ndarray, ks: Sequence[int], context: ClusteringContext) -> Dict[int, np.ndarray]:
        return {k: _kmeans(embedding, k, context.seed) for k in ks}


@CLUSTERINGS.register("ward")
class WardAll:
    """Agglomerative clustering (Ward linkage) of all q eigenvectors; one tree, cut at every k."""

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
@MAPS.register("umap")
class UMAPMap:
    """UMAP (umap-learn) of the spectral embedding."""

    def fit_transform(self, embedding: np.ndarray, seed: int) -> np.ndarray:
        n = embedding.shape[0]
        if n < 6:
            return _fallback_map(embedding)
        import umap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = umap.UMAP(n_neighbors=min(15, n - 1), min_dist=0.1, random_state=seed, n_jobs=1)
            return model.fit_transform(embedding).astype(np.float32)


@MAPS.register("tsne")
class TSNEMap:
    """t-SNE (openTSNE, FFT-accelerated) of the spectral embedding."""

    def fit_transform(self, embedding: np.ndarray, seed: int) -> np.ndarray:
        n = embedding.shape[0]
        if n < 8:
            return _fallback_map(embedding)
        from openTSNE import TSNE

        perplexity = float(min(30.0, (n - 1) / 3.0))
        model = TSNE(perplexity=perplexity, random_state=seed, n_jobs=1, verbose=False)
        return np.asarray(model.fit(embedding.astype(np.float64)), dtype=np.float32)


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
    n = len(heatmaps)
    if n < 4:
        raise ConfigError(f"{n} samples are too few for a spectral analysis (need at least 4)")
    stage("distance")
    X = sum_pool(np.nan_to_num(np.asarray(heatmaps, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0), config.pool)
    neighbors = min(config.neighbors, n - 2)  # small classes: fewer neighbours (noted in the summary)
    knn = DISTANCES.get(config.distance)(neighbors).fit(X)
    del X
    stage("spectral")
    affinity = knn_affinity(knn.indices_)
    spectral = SpectralEmbedding(config.eigenvectors, seed=config.seed).fit(affinity)
    embedding = spectral.embedding_
    q = embedding.shape[1]
    eigengap_k = eigengap_clusters(spectral.eigenvalues_, config.k_max)
    ks = [k for k in range(config.k_min, config.k_max + 1) if k < n]
    context = ClusteringContext(spectral.eigenvalues_, eigengap_k, config.seed)
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
    map_arrays = []
    for map_name in config.maps:
        stage(f"map:{map_name}")
        map_arrays.append(MAPS.get(map_name)().fit_transform(embedding, config.seed))
    stage("")
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
