"""SpRAy's per-class analysis completed around an imported one (from a ViRelAy/CoRelAy project).

An imported class brings what its project has: a spectral embedding, 2-D maps and
clusterings. :func:`analyse_imported` keeps all of them and adds, with the stages of
:mod:`precompute.stages` (nothing re-implemented), what the run store and the app need:

* the kNN of the heatmaps (``knn_indices``, ``knn_distances``): the distance stage;
* the spectral embedding, only where the project has none: graph and spectral stages;
* the eigengap, and every clustering family of :class:`~precompute.analysis.AnalysisConfig`
  at each k = 2..30 the project lacks (a project's ``kmeans-05`` counts as ``kmeans``
  at k = 5, so the k-means it has enter tau);
* Fisher separability of every clustering and tau (:class:`~precompute.stages.Tau`),
  and the default clustering (:data:`~precompute.stages.DEFAULT_RULES`);
* a UMAP map, only where the project has no 2-D map.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..analysis import AnalysisConfig, AnalysisResult, assemble_result
from ..errors import ConfigError
from ..stages import (
    CLUSTERINGS,
    DEFAULT_RULES,
    DISTANCES,
    MAPS,
    TAU_FAMILY,
    SpectralEmbedding,
    Tau,
    eigengap_clusters,
    knn_affinity,
    sum_pool,
)
from ..stages.concurrency import single_thread
from ..store import clustering_name, parse_clustering_name

__all__ = ["analyse_imported"]


def _sorted_names(names: List[str], families: Tuple[str, ...]) -> List[int]:
    """Positions of ``names`` ordered by family (the configured ones first) and then k."""
    def key(position: int):
        family, k = parse_clustering_name(names[position])
        rank = families.index(family) if family in families else len(families)
        return rank, family, k

    return sorted(range(len(names)), key=key)


MAP_ORDER = ("umap", "umap-learn", "tsne")
"""Maps the app offers first (its default view is ``umap``); others follow in the project's order."""


def _ordered_maps(maps: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    known = [name for name in MAP_ORDER if name in maps]
    return {name: maps[name] for name in known + [name for name in maps if name not in known]}


def analyse_imported(heatmaps: np.ndarray, *, spectrum: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                     clusterings: Optional[Dict[str, np.ndarray]] = None,
                     maps: Optional[Dict[str, np.ndarray]] = None,
                     config: AnalysisConfig = AnalysisConfig()) -> AnalysisResult:
    """The analysis arrays and summary of one imported class.

    Parameters
    ----------
    heatmaps : ndarray of shape (n, H, W)
        The class's channel-summed relevance maps.
    spectrum : (ndarray (q,), ndarray (n, q)), optional
        The project's eigenvalues and spectral embedding, already ascending
        (:func:`precompute.interop.virelay_format.ascending_spectrum`); None computes ours.
    clusterings : dict of str -> ndarray of int16 (n,), optional
        The project's clusterings, named ``<family>-k<k>``, labels 0..k-1.
    maps : dict of str -> ndarray of float32 (n, 2), optional
        The project's 2-D maps.
    config : AnalysisConfig
        Neighbours, eigenvectors (for a computed spectrum), k range, clustering families,
        default rule and seed.

    Returns
    -------
    AnalysisResult
        ``arrays`` as :func:`precompute.analysis.analyse_heatmaps` returns them; ``summary``
        has the same keys plus ``computed``: which parts SpRAy computed (``spectral``,
        ``clusterings``, ``maps``).

    Raises
    ------
    ConfigError
        If the class has fewer than 4 samples.
    """
    timings: Dict[str, float] = {}
    clock = time.perf_counter()
    heatmaps = np.asarray(heatmaps)
    n = len(heatmaps)
    if n < 4:
        raise ConfigError(f"{n} samples are too few for a spectral analysis (need at least 4)")
    neighbors = min(config.neighbors, n - 2)
    knn = DISTANCES.get(config.distance)(n_neighbors=neighbors).fit(sum_pool(heatmaps, config.pool))
    timings["distance"] = time.perf_counter() - clock
    computed: List[str] = []
    with single_thread():
        clock = time.perf_counter()
        if spectrum is None:
            fitted = SpectralEmbedding(config.eigenvectors, random_state=config.seed).fit(knn_affinity(knn.indices_))
            eigenvalues, embedding = fitted.eigenvalues_, fitted.embedding_
            computed.append("spectral")
        else:
            eigenvalues, embedding = np.asarray(spectrum[0], np.float64), np.asarray(spectrum[1], np.float32)
        eigengap_k = eigengap_clusters(eigenvalues, config.k_max)
        timings["spectral"] = time.perf_counter() - clock
        names, labels = list((clusterings or {}).keys()), [np.asarray(v, np.int16) for v in (clusterings or {}).values()]
        have = {parse_clustering_name(name) for name in names}
        ks = [k for k in range(config.k_min, config.k_max + 1) if k < n]
        for family in config.clusterings:
            missing = [k for k in ks if (family, k) not in have]
            if not missing:
                continue
            clock = time.perf_counter()
            fitted = CLUSTERINGS.get(family)(n_clusters=missing, random_state=config.seed).fit(embedding, eigengap_k)
            names += [clustering_name(family, k) for k in fitted.n_clusters_]
            labels += list(fitted.labels_)
            computed.append(f"{family} k={missing[0]}..{missing[-1]}" if len(missing) > 1 else f"{family} k={missing[0]}")
            timings[f"cluster:{family}"] = time.perf_counter() - clock
        order = _sorted_names(names, tuple(config.clusterings))
        names, labels = [names[i] for i in order], [labels[i] for i in order]
        parsed = [parse_clustering_name(name) for name in names]
        clock = time.perf_counter()
        tau = Tau(TAU_FAMILY).fit(embedding, labels, [k for _, k in parsed], [family for family, _ in parsed])
        timings["fisher"] = time.perf_counter() - clock
        maps = _ordered_maps(maps or {})
        if not maps:
            clock = time.perf_counter()
            maps["umap"] = MAPS.get("umap")(random_state=config.seed).fit(embedding).embedding_
            computed.append("umap")
            timings["map:umap"] = time.perf_counter() - clock
    default = DEFAULT_RULES.get(config.default_rule)(eigengap_k, names, config.k_max)
    return assemble_result(eigenvalues=eigenvalues, embedding=embedding, knn=knn, names=names, labels=labels,
                           tau=tau, maps=maps, eigengap_k=eigengap_k, default=default, neighbors=neighbors,
                           timings=timings, summary_extra={"computed": computed})
