"""The spectral embedding against dense eigh and scikit-learn; the eigengap on constructed spectra."""
import numpy as np
import pytest

from precompute.stages.distance import EuclideanKNN
from precompute.stages.graph import knn_affinity
from precompute.stages.spectral import SpectralEmbedding, eigengap_clusters

from .references import reference_lsym


@pytest.mark.parametrize("dense_below", [10_000, 0], ids=["dense-eigh", "eigsh"])
def test_spectral_embedding_matches_dense_eigh(random_points, dense_below):
    A = knn_affinity(EuclideanKNN(8).fit(random_points).indices_)
    emb = SpectralEmbedding(12, random_state=1, dense_below=dense_below)
    assert emb.fit(A) is emb
    values, vectors = np.linalg.eigh(reference_lsym(A.toarray()))
    np.testing.assert_allclose(emb.eigenvalues_, values[:12], atol=1e-8)
    assert np.all(np.diff(emb.eigenvalues_) >= -1e-12), "ascending order"
    # Same invariant subspace, column by column where eigenvalues are simple.
    ours = emb.embedding_.astype(np.float64)
    for j in range(12):
        gaps = np.abs(values[:13] - values[j])
        gaps[j] = np.inf
        if gaps.min() > 1e-6:
            assert abs(abs(ours[:, j] @ vectors[:, j]) - 1) < 1e-4
        assert ours[np.abs(ours[:, j]).argmax(), j] > 0, "sign: largest-magnitude entry positive"


def test_spectral_embedding_matches_sklearn(random_points):
    from sklearn.manifold import spectral_embedding

    A = knn_affinity(EuclideanKNN(8).fit(random_points).indices_)
    emb = SpectralEmbedding(6).fit(A)
    theirs = spectral_embedding(A, n_components=6, norm_laplacian=True, drop_first=False, random_state=0,
                                eigen_solver="arpack")
    # sklearn returns D^-1/2 u; undo the scaling and compare directions.
    degree = np.asarray(A.sum(axis=1)).ravel()
    theirs = theirs * np.sqrt(degree)[:, None]
    theirs /= np.linalg.norm(theirs, axis=0)
    for j in range(1, 6):
        assert abs(abs(emb.embedding_[:, j] @ theirs[:, j]) - 1) < 1e-3


def test_trivial_eigenvector_first():
    rng = np.random.default_rng(3)
    A = knn_affinity(EuclideanKNN(5).fit(rng.normal(size=(60, 4))).indices_)
    emb = SpectralEmbedding(5).fit(A)
    degree = np.asarray(A.sum(axis=1)).ravel()
    trivial = np.sqrt(degree) / np.linalg.norm(np.sqrt(degree))
    assert emb.eigenvalues_[0] == pytest.approx(0.0, abs=1e-10)
    assert abs(emb.embedding_[:, 0] @ trivial) == pytest.approx(1.0, abs=1e-5)


def test_tiny_graph_keeps_n_minus_1_components():
    A = knn_affinity(EuclideanKNN(3).fit(np.random.default_rng(0).normal(size=(6, 3))).indices_)
    emb = SpectralEmbedding(32).fit(A)
    assert emb.embedding_.shape == (6, 5) and emb.eigenvalues_.shape == (5,)


def test_eigengap_counts_near_zero_eigenvalues():
    # three nearly disconnected groups, then a linearly rising continuum
    spectrum = np.concatenate([[0.0, 1e-4, 2e-4], 0.01 * np.arange(1, 30)])
    assert eigengap_clusters(spectrum) == 3
    # A plain continuum: delta = 0.1 x the spacing 0.01, so the first jump,
    # log((0.01 + 0.001) / 0.001) = log 11, is the largest, and every later one smaller.
    assert eigengap_clusters(0.01 * np.arange(0, 32)) == 1


@pytest.mark.parametrize("groups", [1, 2, 5, 8])
def test_eigengap_finds_the_size_of_a_constructed_near_zero_group(groups):
    spectrum = np.concatenate([1e-4 * np.arange(groups), 0.2 + 0.01 * np.arange(32 - groups)])
    assert eigengap_clusters(spectrum) == groups


def test_eigengap_is_relative_not_absolute():
    # Spacings' median is 0.05, so delta = 0.005. The largest absolute gap (0.3 -> 0.9, after 7
    # eigenvalues) is a jump of log(0.905 / 0.305) = 1.09; the relative one after 2 eigenvalues,
    # log(0.105 / 0.007) = 2.71, is larger.
    spectrum = np.array([0.0, 0.002, 0.1, 0.15, 0.2, 0.25, 0.3, 0.9, 0.95, 1.0])
    assert int(np.argmax(np.diff(spectrum))) + 1 == 7
    assert eigengap_clusters(spectrum) == 2


def test_eigengap_respects_k_max():
    spectrum = np.concatenate([1e-4 * np.arange(8), 0.2 + 0.01 * np.arange(24)])
    assert eigengap_clusters(spectrum, k_max=30) == 8
    # with k_max = 5 only the first 6 eigenvalues count: spacing 1e-4, delta 1e-5, first jump log 11
    assert eigengap_clusters(spectrum, k_max=5) == 1
    assert eigengap_clusters(np.array([0.0]), k_max=5) == 1
