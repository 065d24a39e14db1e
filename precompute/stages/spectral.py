"""The spectral stage: smallest eigenpairs of the normalised Laplacian, and the eigengap.

Conventions: eigenvalues of ``L_sym = I - D^-1/2 A D^-1/2`` are sorted **ascending**;
column ``j`` of the embedding belongs to eigenvalue ``j``, so column 0 is the trivial
one (eigenvalue 0, proportional to ``sqrt(degree)``). The sign of each eigenvector is
fixed so that its largest-magnitude entry is positive.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from .base import Stage

__all__ = ["SpectralEmbedding", "eigengap_clusters"]


class SpectralEmbedding(Stage):
    """Smallest eigenpairs of the normalised Laplacian ``L_sym = I - D^-1/2 A D^-1/2``.

    Computed as the largest eigenpairs of ``D^-1/2 A D^-1/2`` with ``eigsh`` (dense
    ``eigh`` for graphs of at most ``dense_below`` nodes), which needs no shift-invert
    factorisation.

    Parameters
    ----------
    n_components : int
        q; reduced to ``n - 1`` for tiny classes.
    random_state : int
        Seed of ARPACK's start vector, for reproducible output.
    dense_below : int
        Graphs of at most this many nodes use dense ``eigh``.

    Attributes
    ----------
    eigenvalues_ : ndarray of float64, shape (q,)
        Ascending; the first is 0 for a connected graph.
    embedding_ : ndarray of float32, shape (n, q)
        Eigenvectors as columns, in the order of ``eigenvalues_``.
    """

    def __init__(self, n_components: int = 32, random_state: int = 0, dense_below: int = 600):
        self.n_components = n_components
        self.random_state = random_state
        self.dense_below = dense_below

    def fit(self, affinity: scipy.sparse.spmatrix) -> "SpectralEmbedding":
        """affinity : sparse matrix of shape (n, n), symmetric and non-negative (:func:`knn_affinity`)."""
        n = affinity.shape[0]
        q = min(self.n_components, n - 1)
        degree = np.asarray(affinity.sum(axis=1)).ravel()
        inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0)), 0.0)
        scaled = scipy.sparse.diags(inv_sqrt) @ affinity @ scipy.sparse.diags(inv_sqrt)
        if n <= self.dense_below:
            values, vectors = scipy.linalg.eigh(scaled.toarray(), subset_by_index=[n - q, n - 1])
        else:
            v0 = np.random.default_rng(self.random_state).uniform(0.5, 1.5, size=n)
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

    Parameters
    ----------
    eigenvalues : ndarray of shape (q,)
        Ascending, as :attr:`SpectralEmbedding.eigenvalues_`.
    k_max : int

    Returns
    -------
    int
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
