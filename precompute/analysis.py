"""SpRAy's per-class analysis (Algorithm 1 of Anders et al.): its configuration and its orchestrator.

Heatmaps of one class go through the stages of :mod:`precompute.stages`, one module
each::

    pool -> kNN distances -> symmetric kNN affinity -> L_sym spectrum -> clusterings -> Fisher/tau -> 2-D maps

:class:`AnalysisConfig` chooses them by name from their registries (:data:`DISTANCES`,
:data:`CLUSTERINGS`, :data:`MAPS`, :data:`DEFAULT_RULES`); :func:`analyse_heatmaps` runs
them for one class and returns the arrays that :mod:`precompute.store` writes. The
stages' public names are re-exported here, as they were when they lived in this module.

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
UMAP in numpy (:mod:`precompute.stages.umap_numpy`), because umap-learn's numba
compiles for about 13.5 s of CPU in every process, a third of a small run's analysis
(``"umap-learn"`` keeps the library available; the measurement is in
``benchmarks/RESULTS.md``).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .errors import ConfigError
from .stages import (
    CLUSTERINGS,
    DEFAULT_RULES,
    DISTANCES,
    MAPS,
    MIN_TAU_SAMPLES,
    TAU_FAMILY,
    CosineKNN,
    EuclideanKNN,
    FisherDesign,
    KMeansAll,
    KMeansLeading,
    SpectralEmbedding,
    Tau,
    TSNEMap,
    UMAPLearnMap,
    UMAPMap,
    WardAll,
    default_lead_eigengap,
    dense_knn,
    eigengap_clusters,
    fisher_design,
    fisher_separability,
    knn_affinity,
    leading_dimensions,
    sum_pool,
)
from .stages.concurrency import BackgroundFit, ImportAhead, single_thread
from .stages.separability import default_separability
from .stages.umap_numpy import fuzzy_simplicial_set, optimize_layout, smooth_knn_dist, spectral_layout, umap_ab
from .store import clustering_name
from .threads import usable_cores

__all__ = [
    "assemble_result",
    "AnalysisConfig", "DISTANCES", "CLUSTERINGS", "MAPS", "DEFAULT_RULES", "TAU_FAMILY", "sum_pool",
    "EuclideanKNN", "CosineKNN", "knn_affinity", "SpectralEmbedding", "eigengap_clusters", "KMeansAll",
    "WardAll", "KMeansLeading", "leading_dimensions", "default_lead_eigengap", "fisher_separability",
    "fisher_design", "FisherDesign", "MIN_TAU_SAMPLES", "Tau", "dense_knn", "smooth_knn_dist",
    "fuzzy_simplicial_set", "umap_ab", "spectral_layout", "optimize_layout", "UMAPMap", "UMAPLearnMap",
    "TSNEMap", "analyse_heatmaps", "AnalysisResult",
]


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
        Seed of every randomised stage (their ``random_state``).
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

    @classmethod
    def from_dict(cls, stored: dict) -> "AnalysisConfig":
        """The configuration of :meth:`to_dict` (a run manifest's ``analysis``); unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: tuple(value) if isinstance(value, list) else value
                      for key, value in (stored or {}).items() if key in names})

    def to_dict(self) -> dict:
        out = asdict(self)
        out["clusterings"] = list(self.clusterings)
        out["maps"] = list(self.maps)
        return out


@dataclass
class AnalysisResult:
    """Output of :func:`analyse_heatmaps`: arrays for ``analysis.npz`` and summary fields."""

    arrays: Dict[str, np.ndarray]
    summary: Dict[str, object]
    timings: Dict[str, float] = field(default_factory=dict)


class _StageClock:
    """Seconds per stage: each call ends the running stage and starts the named one ("" ends the last)."""

    def __init__(self, on_stage: Optional[Callable[[str], None]]):
        self.timings: Dict[str, float] = {}
        self.current = ""
        self.started = time.perf_counter()
        self.on_stage = on_stage

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        if self.current:
            self.timings[self.current] = now - self.started
        self.started = now
        self.current = name
        if self.on_stage and name:
            self.on_stage(name)


def analyse_heatmaps(heatmaps: np.ndarray, config: AnalysisConfig = AnalysisConfig(),
                     on_stage: Optional[Callable[[str], None]] = None, progress: bool = False) -> AnalysisResult:
    """Run Algorithm 1's analysis on the heatmaps of one class.

    Parameters
    ----------
    heatmaps : ndarray of shape (n, H, W)
        Channel-summed relevance maps; non-finite values are treated as 0.
    config : AnalysisConfig
    on_stage : callable, optional
        Called with each stage's name before it runs (for progress display).
    progress : bool
        A progress bar inside the distance stage where it has one (the transport
        distances' pairs).

    Returns
    -------
    AnalysisResult
        ``arrays`` holds ``eigenvalues``, ``eigenvectors``, ``knn_indices``,
        ``knn_distances``, ``clustering_names``, ``clustering_labels``, ``fisher``,
        ``map_names`` and ``maps``; ``summary`` holds ``tau`` (None for a class too
        small for it, with ``tau_note`` saying why; see :func:`fisher_design`),
        ``eigengap_k``, ``default_clustering``, ``neighbors_used``, ``eigenvectors_used``,
        ``fisher_dimensions`` and ``fisher_kmeans`` (per k). ``fisher`` is NaN for the
        clusterings whose k is outside :func:`fisher_design`'s range.

    Raises
    ------
    ConfigError
        If the class has fewer than 4 samples (too few for a graph).
    """
    config.validate()
    stage = _StageClock(on_stage)
    heatmaps = heatmaps if isinstance(heatmaps, np.ndarray) else np.asarray(heatmaps)
    n = len(heatmaps)
    if n < 4:
        raise ConfigError(f"{n} samples are too few for a spectral analysis (need at least 4)")
    distance = DISTANCES.get(config.distance)
    families = [(name, CLUSTERINGS.get(name)) for name in config.clusterings]
    map_classes = {name: MAPS.get(name) for name in config.maps}
    modules = ["threadpoolctl", *distance.imports, *(m for _, cls in families for m in cls.imports),
               *(m for cls in map_classes.values() for m in cls.imports)]
    ahead = ImportAhead(list(dict.fromkeys(modules)))
    stage("distance")
    # Read in float32 chunks (non-finite -> 0): never a float32 copy of the whole class.
    X = heatmaps.reshape(n, -1) if config.pool is None else sum_pool(heatmaps, config.pool)
    neighbors = min(config.neighbors, n - 2)  # small classes: fewer neighbours (noted in the summary)
    if getattr(distance, "spatial", False):  # Wasserstein, GW: clouds on the maps' grid
        ahead.join()  # the solver forks processes: no import may be under way on another thread
        grid = heatmaps.shape[1:] if config.pool is None else (config.pool, config.pool)
        knn = distance(n_neighbors=neighbors, progress=progress, random_state=config.seed).fit(X, shape=grid)
    else:
        knn = distance(n_neighbors=neighbors).fit(X)
    del X
    ahead.join()  # before threadpoolctl below looks for the OpenMP runtimes those imports load
    # After the one big product, every stage works on n x q arrays: one thread each, since
    # BLAS and OpenMP threads that spin on a shared 2-core machine cost more than they save.
    with single_thread():
        stage("spectral")
        spectral = SpectralEmbedding(config.eigenvectors, random_state=config.seed).fit(knn_affinity(knn.indices_))
        embedding = spectral.embedding_
        eigengap_k = eigengap_clusters(spectral.eigenvalues_, config.k_max)
        ks = [k for k in range(config.k_min, config.k_max + 1) if k < n]
        maps = {name: cls(random_state=config.seed) for name, cls in map_classes.items()}
        two_cores = usable_cores() > 1
        background = {name: BackgroundFit(m, embedding) for name, m in maps.items() if m.background and two_cores}
        names: List[str] = []
        labels: List[np.ndarray] = []
        counts: List[int] = []
        of_family: List[str] = []
        for family, cls in families:
            stage(f"cluster:{family}")
            clustering = cls(n_clusters=ks, random_state=config.seed).fit(embedding, eigengap_k)
            for k, row in zip(clustering.n_clusters_, clustering.labels_):
                names.append(clustering_name(family, k))
                labels.append(row)
                counts.append(k)
                of_family.append(family)
        stage("fisher")
        tau = Tau(TAU_FAMILY).fit(embedding, labels, counts, of_family)
        for name, fitted in maps.items():
            if name not in background:
                stage(f"map:{name}")
                fitted.fit(embedding)
        for name, job in background.items():
            stage(f"map:{name}")  # the clock measures the wait for the second thread
            job.join()
    stage("")
    timings = stage.timings
    for name, job in background.items():
        timings[f"wait:{name}"] = timings.pop(f"map:{name}")
        timings[f"map:{name}"] = job.seconds  # overlaps the clustering stages
    default = DEFAULT_RULES.get(config.default_rule)(eigengap_k, names, config.k_max)
    return assemble_result(eigenvalues=spectral.eigenvalues_, embedding=embedding, knn=knn, names=names,
                           labels=labels, tau=tau, maps={name: maps[name].embedding_ for name in config.maps},
                           eigengap_k=eigengap_k, default=default, neighbors=neighbors, timings=timings)


def assemble_result(*, eigenvalues: np.ndarray, embedding: np.ndarray, knn, names: List[str],
                    labels: List[np.ndarray], tau: Tau, maps: Dict[str, np.ndarray], eigengap_k: int,
                    default: Optional[str], neighbors: int, timings: Dict[str, float],
                    summary_extra: Optional[dict] = None) -> "AnalysisResult":
    """The stored arrays and summary of one class's analysis, from its fitted stages.

    Shared by :func:`analyse_heatmaps` and the completion of an imported analysis
    (:func:`precompute.interop.analyse_imported`), so both store the same keys.

    Parameters
    ----------
    eigenvalues : ndarray of float, shape (q,)
    embedding : ndarray of float, shape (n, q)
    knn : fitted distance stage (``indices_``, ``distances_`` of shape (n, k))
    names : list of str
        Clustering names (m,), with their ``labels`` (m arrays of shape (n,)).
    tau : Tau
        Fitted on those clusterings.
    maps : dict of str -> ndarray of shape (n, 2)
    eigengap_k, default, neighbors
        The eigengap's k, the default clustering's name and the k of the kNN graph used.
    timings : dict
    summary_extra : dict, optional
        More summary keys.
    """
    n, q = embedding.shape
    arrays = {
        "eigenvalues": np.asarray(eigenvalues, dtype=np.float64),
        "eigenvectors": np.asarray(embedding, dtype=np.float32),
        "knn_indices": knn.indices_,
        "knn_distances": knn.distances_.astype(np.float32),
        "clustering_names": np.array(names, dtype=str),
        "clustering_labels": np.stack(labels).astype(np.int16) if labels else np.zeros((0, n), np.int16),
        "fisher": tau.fisher_,
        "map_names": np.array(list(maps), dtype=str),
        "maps": (np.stack([np.asarray(m, np.float32) for m in maps.values()]) if maps
                 else np.zeros((0, n, 2), np.float32)),
    }
    summary = {
        "tau": tau.tau_,
        "eigengap_k": eigengap_k,
        "default_clustering": default,
        "default_separability": default_separability(names, tau.fisher_, default),
        "neighbors_used": neighbors,
        "eigenvectors_used": q,
        "leading_dimensions": leading_dimensions(eigengap_k, q),
        "fisher_kmeans": {name: float(f) for name, f, m in zip(names, tau.fisher_, tau.mask_) if m},
        "fisher_dimensions": tau.design_.dimensions,
        **(summary_extra or {}),
    }
    if tau.tau_ is None:
        summary["tau_note"] = tau.note_
    return AnalysisResult(arrays=arrays, summary=summary, timings=timings)
