"""SpRAy's per-class analysis (Algorithm 1 of Anders et al.), one stage a module.

The heatmaps of one class flow through::

    distance (pool, kNN) -> graph (kNN affinity) -> spectral (L_sym, eigengap)
        -> cluster (kmeans, ward, kmeans_lead) -> separability (Fisher, tau) -> maps (umap, tsne)

=================  ===========================================================  ========================
module             stages                                                       registry
=================  ===========================================================  ========================
``base``           :class:`Stage`, :class:`MapStage`: the one protocol
``distance``       :func:`sum_pool`, :class:`EuclideanKNN`, :class:`CosineKNN`  :data:`DISTANCES`
``transport``      :class:`WassersteinKNN`, :class:`GromovWassersteinKNN` (POT)  :data:`DISTANCES`
``clouds``         :func:`relevance_clouds`, their invariant descriptors
``candidates``     candidate pairs, neighbour descent, kNN from solved pairs
``graph``          :func:`knn_affinity`
``spectral``       :class:`SpectralEmbedding`, :func:`eigengap_clusters`
``cluster``        :class:`KMeansAll`, :class:`WardAll`, :class:`KMeansLeading`  :data:`CLUSTERINGS`,
                                                                                :data:`DEFAULT_RULES`
``separability``   :func:`fisher_separability`, :func:`fisher_design`, :class:`Tau`
``maps``           :class:`TSNEMap`, :class:`UMAPLearnMap`                     :data:`MAPS`
``umap_numpy``     :class:`UMAPMap` (``"umap"``)                                :data:`MAPS`
``concurrency``    imports ahead, a stage on a second thread, one BLAS thread
=================  ===========================================================  ========================

The protocol (:mod:`precompute.stages.base`), as in scikit-learn: parameters in
``__init__`` (``random_state`` for randomised stages), ``fit(...)`` returns ``self``,
learned state ends in ``_``. A new distance, clustering or map is one registered
class. :func:`precompute.analysis.analyse_heatmaps` runs the stages for one class.
"""
from __future__ import annotations

from .base import MapStage, Stage, fallback_map
from .cluster import (
    CLUSTERINGS,
    DEFAULT_RULES,
    Clustering,
    KMeansAll,
    KMeansLeading,
    WardAll,
    default_lead_eigengap,
    leading_dimensions,
    relabel_by_size,
)
from .distance import DISTANCES, CosineKNN, EuclideanKNN, KNNDistance, sum_pool
from .graph import knn_affinity
from .transport import GromovWassersteinKNN, TransportKNN, WassersteinKNN
from .maps import MAPS, TSNEMap, UMAPLearnMap, dense_knn
from .separability import (
    MIN_TAU_SAMPLES,
    TAU_FAMILY,
    FisherDesign,
    Tau,
    fisher_design,
    fisher_separability,
)
from .spectral import SpectralEmbedding, eigengap_clusters
from .umap_numpy import UMAPMap

__all__ = [
    "Stage",
    "MapStage",
    "fallback_map",
    "DISTANCES",
    "TransportKNN",
    "WassersteinKNN",
    "GromovWassersteinKNN",
    "CLUSTERINGS",
    "DEFAULT_RULES",
    "MAPS",
    "sum_pool",
    "KNNDistance",
    "EuclideanKNN",
    "CosineKNN",
    "knn_affinity",
    "SpectralEmbedding",
    "eigengap_clusters",
    "Clustering",
    "KMeansAll",
    "WardAll",
    "KMeansLeading",
    "relabel_by_size",
    "leading_dimensions",
    "default_lead_eigengap",
    "TAU_FAMILY",
    "MIN_TAU_SAMPLES",
    "FisherDesign",
    "fisher_design",
    "fisher_separability",
    "Tau",
    "dense_knn",
    "TSNEMap",
    "UMAPLearnMap",
    "UMAPMap",
]
