"""Each analysis stage against a slow, plain reference on small inputs."""
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from precompute.analysis import (
    AnalysisConfig,
    CosineKNN,
    EuclideanKNN,
    SpectralEmbedding,
    analyse_heatmaps,
    eigengap_clusters,
    fisher_separability,
    knn_affinity,
    sum_pool,
)
from precompute.errors import ConfigError
from precompute.evaluate import cluster_f1
from precompute.synthetic import synthetic_heatmaps

FAST = dict(maps=("tsne",))  # UMAP's numba compile is paid by the demo tests once


def reference_knn(X, k, metric="euclidean"):
    D = cdist(X.astype(np.float64), X.astype(np.float64), metric=metric)
    np.fill_diagonal(D, np.inf)
    idx = np.argsort(D, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(D, idx, axis=1)


def reference_affinity(indices):
    n = len(indices)
    A = np.zeros((n, n))
    for i, row in enumerate(indices):
        for j in row:
            A[i, j] = 1.0
    return (A + A.T) / 2


def reference_lsym(A):
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


@pytest.fixture(scope="module")
def random_points():
    return np.random.default_rng(0).normal(size=(120, 40)).astype(np.float32)


@pytest.mark.parametrize("block_rows", [7, 2048])
def test_euclidean_knn_matches_cdist(random_points, block_rows):
    knn = EuclideanKNN(10)
    knn.block_rows = block_rows
    knn.fit(random_points)
    idx, dist = reference_knn(random_points, 10)
    np.testing.assert_array_equal(knn.indices_, idx)
    np.testing.assert_allclose(knn.distances_, dist, rtol=1e-4)


def test_cosine_knn_matches_cdist(random_points):
    knn = CosineKNN(5).fit(random_points)
    idx, _ = reference_knn(random_points, 5, metric="cosine")
    np.testing.assert_array_equal(knn.indices_, idx)


@pytest.mark.parametrize("workers,block_rows", [(1, None), (3, None), (2, 13)])
def test_knn_from_float16_slabs_matches_cdist(monkeypatch, workers, block_rows):
    """Many uneven slabs of float16 columns, non-finite values as 0, threads and row blocks."""
    import precompute.analysis as analysis

    rng = np.random.default_rng(1)
    maps = rng.normal(size=(70, 12, 11)).astype(np.float16)
    maps[4, 3, 3] = np.nan
    maps[9, 0, :] = np.inf
    maps[11, 5, 5] = -np.inf
    monkeypatch.setattr(analysis, "CHUNK_BYTES", 4 * 70 * 9)  # 9 columns per slab: 15 slabs
    knn = EuclideanKNN(6)
    knn.workers, knn.block_rows = workers, block_rows
    knn.fit(maps.reshape(70, -1))
    clean = np.nan_to_num(maps.astype(np.float32), nan=0, posinf=0, neginf=0).reshape(70, -1)
    idx, dist = reference_knn(clean, 6)
    np.testing.assert_array_equal(knn.indices_, idx)
    np.testing.assert_allclose(knn.distances_, dist, rtol=1e-4)


def test_gram_is_bit_identical_for_any_thread_count(monkeypatch):
    import precompute.analysis as analysis

    X = np.random.default_rng(2).normal(size=(90, 2000)).astype(np.float16)
    monkeypatch.setattr(analysis, "CHUNK_BYTES", 4 * 90 * 64)
    grams = []
    for workers in (1, 2, 4):
        knn = EuclideanKNN(5)
        knn.workers = workers
        grams.append(knn._gram(X, 0, 90, with_norms=True))
    for gram, sq in grams[1:]:
        np.testing.assert_array_equal(gram, grams[0][0])
        np.testing.assert_array_equal(sq, grams[0][1])


def test_distance_stage_never_copies_the_whole_class(monkeypatch):
    """Peak extra memory is a few slabs, not a float32 copy of the float16 heatmaps."""
    import tracemalloc

    import precompute.analysis as analysis

    maps = np.random.default_rng(3).normal(size=(100, 128, 128)).astype(np.float16)
    whole_float32 = maps.size * 4
    monkeypatch.setattr(analysis, "CHUNK_BYTES", whole_float32 // 32)
    tracemalloc.start()
    try:
        EuclideanKNN(10).fit(maps.reshape(100, -1))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < whole_float32 / 4, f"peak {peak} bytes vs a float32 copy of {whole_float32}"


def test_cosine_knn_with_zero_maps():
    X = np.random.default_rng(4).normal(size=(30, 20)).astype(np.float32)
    X[[2, 7]] = 0.0
    knn = CosineKNN(4).fit(X)
    unit = X / np.where(np.linalg.norm(X, axis=1, keepdims=True) > 0, np.linalg.norm(X, axis=1, keepdims=True), 1)
    idx, dist = reference_knn(unit, 4)
    np.testing.assert_allclose(knn.distances_, dist, rtol=1e-4, atol=1e-4)


def test_knn_needs_more_samples_than_neighbours():
    with pytest.raises(ConfigError):
        EuclideanKNN(10).fit(np.zeros((10, 3), np.float32))


def test_symmetrised_affinity_values(random_points):
    indices = EuclideanKNN(6).fit(random_points).indices_
    A = knn_affinity(indices)
    dense = A.toarray()
    np.testing.assert_array_equal(dense, reference_affinity(indices))
    assert set(np.unique(dense)) <= {0.0, 0.5, 1.0}
    assert 0.5 in dense and 1.0 in dense
    mutual = np.array([[j in indices[i] and i in indices[j] for j in range(len(dense))] for i in range(len(dense))])
    np.testing.assert_array_equal(dense == 1.0, mutual)


@pytest.mark.parametrize("dense_below", [10_000, 0], ids=["dense-eigh", "eigsh"])
def test_spectral_embedding_matches_dense_eigh(random_points, dense_below):
    A = knn_affinity(EuclideanKNN(8).fit(random_points).indices_)
    emb = SpectralEmbedding(12, seed=1)
    emb.dense_below = dense_below
    emb.fit(A)
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


@pytest.mark.parametrize("k", [2, 3, 7])
def test_fisher_separability_matches_equations(k):
    rng = np.random.default_rng(k)
    X = rng.normal(size=(90, 6))
    labels = rng.integers(0, k, size=90)
    X[labels == 0] += 2.0
    assert fisher_separability(X, labels) == pytest.approx(reference_fisher(X, labels), rel=1e-6)


def test_fisher_single_cluster_and_identical_points_are_finite():
    X = np.ones((20, 4))
    assert fisher_separability(X, np.zeros(20, int)) == 0.0
    value = fisher_separability(X, np.arange(20) % 2)
    assert np.isfinite(value)


def test_sum_pool_matches_loop():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 10, 13)).astype(np.float32)
    pooled = sum_pool(maps, 4).reshape(3, 4, 4)
    rows = np.linspace(0, 10, 5).round().astype(int)
    cols = np.linspace(0, 13, 5).round().astype(int)
    for i in range(4):
        for j in range(4):
            expected = maps[:, rows[i]:rows[i + 1], cols[j]:cols[j + 1]].sum(axis=(1, 2))
            np.testing.assert_allclose(pooled[:, i, j], expected, rtol=1e-5)
    np.testing.assert_allclose(pooled.sum(axis=(1, 2)), maps.sum(axis=(1, 2)), rtol=1e-5)
    assert sum_pool(maps, None).shape == (3, 130)


def test_eigengap_counts_near_zero_eigenvalues():
    # three nearly disconnected groups, then a linearly rising continuum
    spectrum = np.concatenate([[0.0, 1e-4, 2e-4], 0.01 * np.arange(1, 30)])
    assert eigengap_clusters(spectrum) == 3
    # a plain continuum: no near-zero group stands out beyond the trivial one
    assert eigengap_clusters(0.01 * np.arange(0, 32)) in (1, 2)


@pytest.fixture(scope="module")
def planted():
    data = synthetic_heatmaps(400, 32, groups={"corner": 0.2}, seed=5)
    result = analyse_heatmaps(data.heatmaps, AnalysisConfig(**FAST))
    return data, result


def test_tau_is_mean_fisher_of_kmeans_clusterings(planted):
    data, result = planted
    names = list(result.arrays["clustering_names"])
    labels = result.arrays["clustering_labels"]
    embedding = result.arrays["eigenvectors"].astype(np.float64)
    kmeans = [i for i, name in enumerate(names) if name.startswith("kmeans-k")]
    assert [names[i] for i in kmeans] == [f"kmeans-k{k}" for k in range(2, 31)]
    direct = np.mean([reference_fisher(embedding, labels[i]) for i in kmeans])
    assert result.summary["tau"] == pytest.approx(direct, rel=1e-5)


def test_analysis_stores_every_family_and_k(planted):
    _, result = planted
    names = set(result.arrays["clustering_names"])
    for family in ("kmeans", "ward", "kmeans_lead"):
        assert {f"{family}-k{k}" for k in range(2, 31)} <= names
    labels = result.arrays["clustering_labels"]
    for name, lab in zip(result.arrays["clustering_names"], labels):
        k = int(name.rsplit("-k", 1)[1])
        counts = np.bincount(lab)
        assert len(counts) <= k
        assert np.all(np.diff(counts) <= 0), f"{name}: cluster 0 must be the largest"
    assert result.arrays["maps"].shape == (1, 400, 2)
    assert result.arrays["eigenvectors"].shape == (400, 32)


def test_default_clustering_isolates_planted_group(planted):
    data, result = planted
    names = list(result.arrays["clustering_names"])
    default = result.summary["default_clustering"]
    labels = result.arrays["clustering_labels"][names.index(default)]
    f1, _ = cluster_f1(labels, data.planted == "corner")
    assert f1 >= 0.95


def test_tau_higher_with_planted_group():
    clean = synthetic_heatmaps(300, 32, groups={}, seed=1)
    dirty = synthetic_heatmaps(300, 32, groups={"corner": 0.2}, seed=1)
    cfg = AnalysisConfig(maps=())
    assert analyse_heatmaps(dirty.heatmaps, cfg).summary["tau"] > analyse_heatmaps(clean.heatmaps, cfg).summary["tau"]


def test_analysis_is_deterministic():
    data = synthetic_heatmaps(150, 24, seed=2)
    cfg = AnalysisConfig(**FAST)
    first, second = analyse_heatmaps(data.heatmaps, cfg), analyse_heatmaps(data.heatmaps, cfg)
    for name in first.arrays:
        np.testing.assert_array_equal(first.arrays[name], second.arrays[name])


@pytest.mark.parametrize("kind", ["zeros", "identical", "nan"])
def test_degenerate_heatmaps_give_no_nan(kind):
    rng = np.random.default_rng(0)
    maps = np.zeros((40, 16, 16), np.float32)
    if kind == "identical":
        maps[:] = rng.normal(size=(16, 16))
    if kind == "nan":
        maps = rng.normal(size=(40, 16, 16)).astype(np.float32)
        maps[3, 2, 2] = np.nan
        maps[5] = np.inf
    result = analyse_heatmaps(maps, AnalysisConfig(**FAST))
    for name, array in result.arrays.items():
        if array.dtype.kind == "f":
            assert np.all(np.isfinite(array)), name
    assert np.isfinite(result.summary["tau"])


def test_small_class_uses_fewer_neighbours():
    maps = np.random.default_rng(0).normal(size=(8, 8, 8)).astype(np.float32)
    result = analyse_heatmaps(maps, AnalysisConfig(**FAST))
    assert result.summary["neighbors_used"] == 6
    assert result.summary["eigenvectors_used"] == 7
    assert max(int(n.rsplit("-k", 1)[1]) for n in result.arrays["clustering_names"]) == 7


def test_too_few_samples_is_a_clear_error():
    with pytest.raises(ConfigError, match="too few"):
        analyse_heatmaps(np.zeros((3, 4, 4), np.float32), AnalysisConfig(**FAST))


def test_config_rejects_unknown_names():
    with pytest.raises(ConfigError, match="unknown clustering"):
        AnalysisConfig(clusterings=("kmeans", "nope")).validate()
    with pytest.raises(ConfigError, match="tau"):
        AnalysisConfig(clusterings=("ward",)).validate()


def test_background_tsne_equals_a_direct_run(monkeypatch):
    """t-SNE on the second thread gives the map a direct call gives; its wait is timed."""
    import precompute.analysis as analysis
    from precompute.analysis import TSNEMap

    monkeypatch.setattr(analysis, "_usable_cores", lambda: 2)
    data = synthetic_heatmaps(120, 16, groups={"corner": 0.2}, seed=4)
    result = analyse_heatmaps(data.heatmaps, AnalysisConfig(maps=("umap", "tsne")))
    direct = TSNEMap().fit_transform(result.arrays["eigenvectors"], 0)
    np.testing.assert_array_equal(result.arrays["maps"][1], direct)
    assert list(result.arrays["map_names"]) == ["umap", "tsne"]
    assert {"map:tsne", "wait:tsne", "map:umap"} <= set(result.timings)


def test_background_map_errors_reach_the_caller(monkeypatch):
    import precompute.analysis as analysis

    class Broken:
        background = True

        def fit_transform(self, embedding, seed):
            raise RuntimeError("broken map")

    monkeypatch.setattr(analysis, "_usable_cores", lambda: 2)
    monkeypatch.setitem(analysis.MAPS._items, "broken", Broken)
    maps = np.random.default_rng(0).normal(size=(30, 8, 8)).astype(np.float32)
    with pytest.raises(RuntimeError, match="broken map"):
        analyse_heatmaps(maps, AnalysisConfig(maps=("broken",)))


def test_float16_memmap_gives_the_float32_result(tmp_path):
    """The store's float16 memory map and its float32 copy are analysed identically."""
    data = synthetic_heatmaps(90, 20, groups={"corner": 0.2}, seed=6)
    np.save(tmp_path / "h.npy", data.heatmaps.astype(np.float16))
    mapped = np.load(tmp_path / "h.npy", mmap_mode="r")
    cfg = AnalysisConfig(maps=())
    first, second = analyse_heatmaps(mapped, cfg), analyse_heatmaps(np.asarray(mapped, dtype=np.float32), cfg)
    for name in first.arrays:
        np.testing.assert_array_equal(first.arrays[name], second.arrays[name])
