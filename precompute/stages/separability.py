"""Fisher separability of clusterings, and tau: how strongly a class splits (eqs. 6-8).

:func:`fisher_separability` scores one clustering of the spectral embedding;
:func:`fisher_design` says on which dimensions and cluster counts that score is
meaningful for a class of ``n`` samples; :class:`Tau` scores every clustering of a
class and averages the ``kmeans`` family's scores into tau, the class's rank.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import scipy.linalg

from .base import Stage

__all__ = ["TAU_FAMILY", "MIN_TAU_SAMPLES", "fisher_separability", "FisherDesign", "fisher_design", "Tau",
           "default_separability"]

TAU_FAMILY = "kmeans"
"""The clustering family tau averages over (k-means on all q eigenvectors, the paper's recipe)."""


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


MIN_TAU_SAMPLES = 8
"""Smallest class with a tau: Fisher separability needs at least 2 dimensions, each
estimated from at least two residual samples (see :func:`fisher_design`)."""


@dataclass(frozen=True)
class FisherDesign:
    """Where Fisher separability is measured for a class of ``n`` samples.

    Attributes
    ----------
    dimensions : int
        d, the leading eigenvectors (columns 0..d-1 of the spectral embedding) used.
    ks : tuple of int
        Cluster counts whose Fisher separability is defined; tau averages over these.
    note : str
        Empty when tau is defined; else why it is not ("too few samples ...").
    """

    dimensions: int
    ks: Tuple[int, ...]
    note: str = ""


def fisher_design(n: int, q: int, ks: Sequence[int]) -> FisherDesign:
    """Dimensions and cluster counts on which Fisher separability is meaningful.

    The criterion divides by the within-cluster scatter ``S_w``, a d x d matrix
    estimated from ``n - k`` residual degrees of freedom. When ``n - k`` approaches d,
    ``S_w`` becomes singular and the criterion grows without bound whatever the data
    (a class of 20 gave tau = 1.5e9 with d = 19). So:

    * d = min(q, n // 4): the leading eigenvectors, at most a quarter of the samples;
    * only k with ``n - k >= 2 d`` count (at least two residual samples a dimension);
    * a class under :data:`MIN_TAU_SAMPLES` samples gets no tau ("too few samples").

    For classes of at least ``4 q`` samples (128 with q = 32, as in the paper's ImageNet
    classes of ~1,300 and the demo's 200), this is the paper's recipe unchanged: all q
    eigenvectors and every k of 2..30.

    Parameters
    ----------
    n : int
        Samples in the class.
    q : int
        Eigenvectors of the spectral embedding.
    ks : sequence of int
        Cluster counts of the stored clusterings.

    Returns
    -------
    FisherDesign
    """
    dimensions = int(min(q, n // 4))
    if n < MIN_TAU_SAMPLES or dimensions < 2:
        return FisherDesign(dimensions=max(dimensions, 0), ks=(),
                            note=f"too few samples (n={n}; tau needs at least {MIN_TAU_SAMPLES})")
    valid = tuple(int(k) for k in ks if n - k >= 2 * dimensions)
    if not valid:
        counts = f"the cluster counts {min(ks)}..{max(ks)}" if len(ks) else "any cluster count asked for"
        return FisherDesign(dimensions=dimensions, ks=(), note=f"too few samples (n={n}) for {counts}")
    return FisherDesign(dimensions=dimensions, ks=valid)


class Tau(Stage):
    """Fisher separability of every clustering of a class, and tau, their mean over one family.

    Tau is the mean Fisher separability of the ``family`` clusterings (k-means on all
    eigenvectors, k = 2..30 in the paper) on the design of :func:`fisher_design`.

    Parameters
    ----------
    family : str
        The clustering family tau averages over.

    Attributes
    ----------
    design_ : FisherDesign
        For the class's ``n``, q and cluster counts.
    fisher_ : ndarray of float64, shape (m,)
        Fisher separability of each clustering on the design's leading dimensions; NaN
        where its k is outside the design.
    mask_ : ndarray of bool, shape (m,)
        The clusterings tau averages: of ``family``, with k in the design.
    tau_ : float or None
        None for a class too small for it (``note_`` says why).
    note_ : str
        Empty when ``tau_`` is defined.
    """

    def __init__(self, family: str = TAU_FAMILY):
        self.family = family

    def fit(self, embedding: np.ndarray, labels: Sequence[np.ndarray], n_clusters: Sequence[int],
            families: Sequence[str]) -> "Tau":
        """Score the clusterings.

        Parameters
        ----------
        embedding : ndarray of shape (n, q)
            The spectral embedding, columns in ascending order of eigenvalue.
        labels : sequence of m ndarrays of int, shape (n,)
            One clustering each.
        n_clusters : sequence of m int
            The k each clustering was asked for.
        families : sequence of m str
            The family of each clustering.
        """
        n, q = embedding.shape
        design = fisher_design(n, q, sorted(set(int(k) for k in n_clusters)))
        space = embedding[:, :design.dimensions]
        self.design_ = design
        self.fisher_ = np.array([fisher_separability(space, lab) if k in design.ks else np.nan
                                 for lab, k in zip(labels, n_clusters)], dtype=np.float64)
        self.mask_ = np.array([family == self.family and k in design.ks
                               for family, k in zip(families, n_clusters)], dtype=bool)
        self.tau_: Optional[float] = float(self.fisher_[self.mask_].mean()) if self.mask_.any() else None
        self.note_ = "" if self.tau_ is not None else design.note
        return self


def default_separability(names: Sequence[str], fisher: np.ndarray, default: Optional[str]) -> Optional[float]:
    """The class's second truth-free score beside tau: the Fisher separability of its default clustering.

    tau averages the separability of k-means clusterings over k = 2..30, most of which cut
    the class where it has no structure; the default clustering is the one the user sees
    first (its k from the eigengap), so a class whose artifact group splits off cleanly there
    scores high even when tau, diluted by the other k, does not.

    Parameters
    ----------
    names : sequence of str
        Clustering names (m,).
    fisher : ndarray of float, shape (m,)
        :attr:`Tau.fisher_` of those clusterings (NaN where not scored).
    default : str or None
        The default clustering's name.

    Returns
    -------
    float or None
        None without a default clustering or a finite score for it.
    """
    names = [str(name) for name in names]
    if default not in names:
        return None
    value = float(np.asarray(fisher, dtype=np.float64)[names.index(default)])
    return value if np.isfinite(value) else None
