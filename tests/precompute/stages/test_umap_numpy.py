"""The numpy UMAP (``"umap"``): each piece against a plain loop from the paper's definitions, the whole map against umap-learn."""
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph
from scipy.spatial.distance import cdist
from sklearn.manifold import trustworthiness

from precompute.stages.maps import MAPS, UMAPLearnMap, dense_knn
from precompute.stages.umap_numpy import (
    UMAPMap,
    fuzzy_simplicial_set,
    optimize_layout,
    smooth_knn_dist,
    spectral_layout,
    umap_ab,
)

from .references import knn_preservation


# ---------------------------------------------------------------------------------------------
# plain references, written from the UMAP paper's definitions
# ---------------------------------------------------------------------------------------------
def reference_smooth_knn_dist(distances, n_neighbors, n_iter=64, tol=1e-5):
    """One row at a time: bisection for sigma, then UMAP's floor on sigma."""
    target = np.log2(n_neighbors)
    sigmas, rhos = [], []
    for row in distances:
        positive = row[row > 0]
        rho = positive.min() if positive.size else 0.0
        lo, hi, mid = 0.0, np.inf, 1.0
        for _ in range(n_iter):
            total = 0.0
            for d in row:
                total += np.exp(-(d - rho) / mid) if d - rho > 0 else 1.0
            if abs(total - target) < tol:
                break
            if total > target:
                hi = mid
                mid = (lo + hi) / 2
            else:
                lo = mid
                mid = mid * 2 if hi == np.inf else (lo + hi) / 2
        mean_with_self = row.sum() / (len(row) + 1)
        all_mean = distances.sum() / (distances.size + len(distances))
        mid = max(mid, 1e-3 * (mean_with_self if rho > 0 else all_mean))
        sigmas.append(mid)
        rhos.append(rho)
    return np.array(sigmas), np.array(rhos)


def reference_fuzzy_set(indices, distances, n_neighbors):
    n = len(indices)
    sigma, rho = reference_smooth_knn_dist(distances, n_neighbors)
    P = np.zeros((n, n))
    for i in range(n):
        for j, d in zip(indices[i], distances[i]):
            P[i, j] = 1.0 if d - rho[i] <= 0 else np.exp(-(d - rho[i]) / sigma[i])
    return P + P.T - P * P.T


def reference_optimize(Y, head, tail, weights, n_epochs, a, b, rng, learning_rate=1.0, negative_sample_rate=5,
                       repulsion_strength=1.0, clip=4.0):
    """UMAP's epoch schedule and gradients with Python loops; the whole epoch uses its starting positions."""
    Y = Y.astype(np.float64).copy()
    n = len(Y)
    every = weights.max() / weights
    next_sample = every.copy()
    every_neg = every / negative_sample_rate
    next_neg = every_neg.copy()
    for epoch in range(n_epochs):
        alpha = learning_rate * (1 - epoch / n_epochs)
        move = np.zeros_like(Y)
        negatives = np.zeros(n, dtype=int)
        for e in range(len(head)):
            if next_sample[e] > epoch:
                continue
            i, j = head[e], tail[e]
            diff = Y[i] - Y[j]
            d2 = diff @ diff
            coef = -2 * a * b * d2 ** (b - 1) / (1 + a * d2**b) if d2 > 0 else 0.0
            grad = np.clip(coef * diff, -clip, clip)
            move[i] += 2 * alpha * grad  # the edge in both directions
            move[j] -= 2 * alpha * grad
            next_sample[e] += every[e]
            due = max(0, int(np.floor((epoch - next_neg[e]) / every_neg[e])))
            next_neg[e] += due * every_neg[e]
            negatives[i] += due
            negatives[j] += due
        if negatives.sum():
            others = iter(rng.integers(0, n, size=int(negatives.sum())))
            for i in range(n):
                for _ in range(negatives[i]):
                    k = next(others)
                    diff = Y[i] - Y[k]
                    d2 = diff @ diff
                    if d2 > 0:
                        coef = 2 * repulsion_strength * b / ((0.001 + d2) * (1 + a * d2**b))
                        move[i] += alpha * np.clip(coef * diff, -clip, clip)
                    elif k != i:
                        move[i] += alpha * clip
        Y += move
    return Y


# ---------------------------------------------------------------------------------------------
# pieces
# ---------------------------------------------------------------------------------------------
def test_smooth_knn_dist_matches_loop(points):
    _, dist = dense_knn(points, 14)
    dist[3, :2] = 0.0  # duplicates: rho is the nearest positive distance
    sigma, rho = smooth_knn_dist(dist, 15)
    ref_sigma, ref_rho = reference_smooth_knn_dist(dist, 15)
    np.testing.assert_allclose(rho, ref_rho)
    np.testing.assert_allclose(sigma, ref_sigma, rtol=1e-9)
    # the defining equation holds
    total = np.where(dist - rho[:, None] > 0, np.exp(-(dist - rho[:, None]) / sigma[:, None]), 1.0).sum(axis=1)
    np.testing.assert_allclose(total, np.log2(15), atol=1e-4)


def test_fuzzy_union_matches_dense_reference(points):
    idx, dist = dense_knn(points, 9)
    W = fuzzy_simplicial_set(idx, dist, 10)
    np.testing.assert_allclose(W.toarray(), reference_fuzzy_set(idx, dist, 10), atol=1e-12)
    assert abs(W - W.T).max() == 0
    assert W.diagonal().max() == 0
    assert 0 < W.data.min() and W.data.max() <= 1


def test_ab_parameters_match_umap_defaults():
    a, b = umap_ab(1.0, 0.1)
    assert a == pytest.approx(1.577, abs=2e-3) and b == pytest.approx(0.8951, abs=1e-3)


def test_spectral_layout_connected_matches_eigh():
    cloud = np.random.default_rng(4).normal(size=(150, 6))
    idx, dist = dense_knn(cloud, 9)
    W = fuzzy_simplicial_set(idx, dist, 10)
    assert scipy.sparse.csgraph.connected_components(W)[0] == 1
    Y = spectral_layout(W, cloud, 2, np.random.default_rng(0), 0)
    d = np.asarray(W.sum(axis=1)).ravel()
    M = W.toarray() / np.sqrt(np.outer(d, d))
    _, vectors = np.linalg.eigh(M)
    expected = vectors[:, ::-1][:, 1:3]
    # same 2-D subspace
    q1, _ = np.linalg.qr(Y)
    q2, _ = np.linalg.qr(expected)
    assert np.linalg.svd(q1.T @ q2, compute_uv=False).min() > 0.999


def test_spectral_layout_separates_components(points):
    idx, dist = dense_knn(points, 9)  # the three blobs are far apart: three components
    W = fuzzy_simplicial_set(idx, dist, 10)
    labels = scipy.sparse.csgraph.connected_components(W)[1]
    assert labels.max() == 2
    Y = spectral_layout(W, points, 2, np.random.default_rng(0), 0)
    idx_2d, _ = dense_knn(Y, 5)
    assert np.all(labels[idx_2d] == labels[:, None]), "components do not overlap"


@pytest.mark.parametrize("repulsion", [0.0, 1.0])
def test_optimize_layout_matches_loop_reference(points, repulsion):
    idx, dist = dense_knn(points, 9)
    W = fuzzy_simplicial_set(idx, dist, 10)
    upper = scipy.sparse.triu(W, k=1).tocoo()
    Y0 = np.random.default_rng(1).uniform(0, 10, size=(len(points), 2))
    Y0[5] = Y0[6]  # coincident points
    a, b = umap_ab()
    # Six epochs: beyond that, float32 against float64 rounding grows chaotically (strong
    # short-range repulsion), not because of any difference in the rules.
    ours = optimize_layout(Y0, upper.row, upper.col, upper.data, 6, a, b, np.random.default_rng(2),
                           repulsion_strength=repulsion)
    ref = reference_optimize(Y0, upper.row, upper.col, upper.data, 6, a, b, np.random.default_rng(2),
                             repulsion_strength=repulsion)
    np.testing.assert_allclose(ours, ref, atol=1e-3)
    assert not np.allclose(ours, Y0)


# ---------------------------------------------------------------------------------------------
# the whole map
# ---------------------------------------------------------------------------------------------
def test_umap_is_deterministic_and_trustworthy(spray_embedding):
    X, _ = spray_embedding
    first = MAPS.get("umap")(random_state=3).fit_transform(X)
    second = MAPS.get("umap")(random_state=3).fit_transform(X)
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.float32 and first.shape == (len(X), 2) and np.isfinite(first).all()
    assert not np.array_equal(first, MAPS.get("umap")(random_state=4).fit_transform(X))
    # Measured 0.994-0.996 over seeds; a random 2-D projection of X scores 0.70, its spectral columns 1-2 0.64.
    assert trustworthiness(X, first, n_neighbors=10) > 0.99


def test_umap_tiny_inputs():
    rng = np.random.default_rng(0)
    for n in (4, 7, 12):
        X = rng.normal(size=(n, 5)).astype(np.float32)
        Y = UMAPMap(random_state=0).fit_transform(X)
        assert Y.shape == (n, 2) and np.isfinite(Y).all()
        np.testing.assert_array_equal(Y, UMAPMap(random_state=0).fit_transform(X))
        # under 6 points: the spectral columns 1-2; from 6 on, a real layout
        assert np.array_equal(Y, X[:, 1:3]) == (n < 6)
    Y = UMAPMap(random_state=0).fit_transform(np.ones((20, 4), np.float32))  # identical points
    assert np.isfinite(Y).all()


# ---------------------------------------------------------------------------------------------
# against umap-learn: the same inputs, the same quality within a small margin
# ---------------------------------------------------------------------------------------------
def _digits():
    from sklearn.datasets import load_digits  # ships with scikit-learn, no download

    return load_digits().data[:600].astype(np.float64)


@pytest.mark.parametrize("case", ["spray", "digits"])
def test_numpy_umap_matches_umap_learn_quality(spray_embedding, case):
    pytest.importorskip("umap")
    X = spray_embedding[0] if case == "spray" else _digits()
    ours = UMAPMap(random_state=0).fit_transform(X)
    theirs = UMAPLearnMap(random_state=0).fit_transform(X)
    t_ours, t_theirs = trustworthiness(X, ours, n_neighbors=10), trustworthiness(X, theirs, n_neighbors=10)
    k_ours, k_theirs = knn_preservation(X, ours), knn_preservation(X, theirs)
    # Measured: differences of 0.001-0.002 (trustworthiness) and 0.01 (kNN) at most, within seed noise.
    assert t_ours >= t_theirs - 0.005, (t_ours, t_theirs)
    assert k_ours >= k_theirs - 0.03, (k_ours, k_theirs)
    assert t_ours > 0.95


def test_umap_keeps_the_planted_group_apart(spray_embedding):
    X, planted = spray_embedding
    Y = UMAPMap(random_state=0).fit_transform(X)
    inside = cdist(Y[planted], Y[planted]).max()
    between = cdist(Y[planted], Y[~planted]).min()
    assert between > 0.1 * inside, "the planted group forms its own island"
