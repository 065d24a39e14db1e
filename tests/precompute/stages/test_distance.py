"""Pooling and the kNN distance stages against scipy's cdist and plain loops."""
import numpy as np
import pytest

import precompute.stages.distance as distance
from precompute.errors import ConfigError
from precompute.stages.distance import DISTANCES, CosineKNN, EuclideanKNN, sum_pool

from .references import reference_knn


@pytest.mark.parametrize("block_rows", [7, 2048])
def test_euclidean_knn_matches_cdist(random_points, block_rows):
    knn = EuclideanKNN(10, block_rows=block_rows)
    assert knn.fit(random_points) is knn
    idx, dist = reference_knn(random_points, 10)
    np.testing.assert_array_equal(knn.indices_, idx)
    np.testing.assert_allclose(knn.distances_, dist, rtol=1e-4)
    assert knn.indices_.dtype == np.int32 and knn.distances_.dtype == np.float32


def test_cosine_knn_matches_cdist(random_points):
    knn = CosineKNN(5).fit(random_points)
    idx, _ = reference_knn(random_points, 5, metric="cosine")
    np.testing.assert_array_equal(knn.indices_, idx)


@pytest.mark.parametrize("workers,block_rows", [(1, None), (3, None), (2, 13)])
def test_knn_from_float16_slabs_matches_cdist(monkeypatch, workers, block_rows):
    """Many uneven slabs of float16 columns, non-finite values as 0, threads and row blocks."""
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(70, 12, 11)).astype(np.float16)
    maps[4, 3, 3] = np.nan
    maps[9, 0, :] = np.inf
    maps[11, 5, 5] = -np.inf
    monkeypatch.setattr(distance, "CHUNK_BYTES", 4 * 70 * 9)  # 9 columns per slab: 15 slabs
    knn = EuclideanKNN(6, workers=workers, block_rows=block_rows)
    knn.fit(maps.reshape(70, -1))
    clean = np.nan_to_num(maps.astype(np.float32), nan=0, posinf=0, neginf=0).reshape(70, -1)
    idx, dist = reference_knn(clean, 6)
    np.testing.assert_array_equal(knn.indices_, idx)
    np.testing.assert_allclose(knn.distances_, dist, rtol=1e-4)


def test_gram_is_bit_identical_for_any_thread_count(monkeypatch):
    X = np.random.default_rng(2).normal(size=(90, 2000)).astype(np.float16)
    monkeypatch.setattr(distance, "CHUNK_BYTES", 4 * 90 * 64)
    grams = []
    for workers in (1, 2, 4):
        knn = EuclideanKNN(5, workers=workers)
        grams.append(knn._gram(X, 0, 90, with_norms=True))
    for gram, sq in grams[1:]:
        np.testing.assert_array_equal(gram, grams[0][0])
        np.testing.assert_array_equal(sq, grams[0][1])


def test_distance_stage_never_copies_the_whole_class(monkeypatch):
    """Peak extra memory is a few slabs, not a float32 copy of the float16 heatmaps."""
    import tracemalloc

    maps = np.random.default_rng(3).normal(size=(100, 128, 128)).astype(np.float16)
    whole_float32 = maps.size * 4
    monkeypatch.setattr(distance, "CHUNK_BYTES", whole_float32 // 32)
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


def test_sum_pool_rejects_a_grid_finer_than_the_maps():
    with pytest.raises(ConfigError, match="larger than the heatmaps"):
        sum_pool(np.zeros((2, 6, 8), np.float32), 7)


def test_registry_names_the_distances():
    assert DISTANCES.get("euclidean") is EuclideanKNN and DISTANCES.get("cosine") is CosineKNN
