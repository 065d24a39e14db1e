"""The graph stage: the symmetrised binary kNN affinity of eq. (1)."""
from __future__ import annotations

import numpy as np
import scipy.sparse

__all__ = ["knn_affinity"]


def knn_affinity(indices: np.ndarray) -> scipy.sparse.csr_matrix:
    """Symmetrised binary kNN affinity, eq. (1): ``A <- (A + A^T) / 2``.

    Parameters
    ----------
    indices : ndarray of int, shape (n, k)
        Neighbours of each sample (self excluded), e.g. a distance stage's ``indices_``.

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
