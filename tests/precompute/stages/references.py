"""Slow, plain references for the stage tests, written from the papers' definitions."""
import numpy as np
from scipy.spatial.distance import cdist

from precompute.stages import dense_knn


def reference_knn(X, k, metric="euclidean"):
    """k nearest neighbours by a full distance matrix (self excluded, ties by index)."""
    D = cdist(X.astype(np.float64), X.astype(np.float64), metric=metric)
    np.fill_diagonal(D, np.inf)
    idx = np.argsort(D, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(D, idx, axis=1)


def reference_affinity(indices):
    """Eq. (1) with loops: binary directed kNN graph, then (A + A^T) / 2."""
    n = len(indices)
    A = np.zeros((n, n))
    for i, row in enumerate(indices):
        for j in row:
            A[i, j] = 1.0
    return (A + A.T) / 2


def reference_lsym(A):
    """L_sym = I - D^-1/2 A D^-1/2, dense."""
    d = A.sum(axis=1)
    Dm = np.diag(1 / np.sqrt(d))
    return np.eye(len(A)) - Dm @ A @ Dm


def reference_fisher(X, labels):
    """Eqs. (6)-(8) written out literally."""
    mu = X.mean(axis=0)
    d = X.shape[1]
    S_w = np.zeros((d, d))
    S_b = np.zeros((d, d))
    for c in np.unique(labels):
        members = X[labels == c]
        mu_k = members.mean(axis=0)
        for x in members:
            S_w += np.outer(x - mu_k, x - mu_k)
        S_b += np.outer(mu_k - mu, mu_k - mu)
    return float(np.max(np.linalg.eigvals(np.linalg.solve(S_w, S_b)).real))


def knn_preservation(X, Y, k=10):
    """Mean share of each point's k nearest neighbours in X that stay among its k nearest in Y."""
    a, _ = dense_knn(X, k)
    b, _ = dense_knn(Y, k)
    return float(np.mean([len(np.intersect1d(a[i], b[i])) / k for i in range(len(X))]))
