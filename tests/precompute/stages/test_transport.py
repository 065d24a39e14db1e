"""Wasserstein and Gromov-Wasserstein distances: clouds, exactness against POT, invariance, candidates."""
import numpy as np
import ot
import pytest

from precompute.analysis import AnalysisConfig, analyse_heatmaps
from precompute.errors import ConfigError
from precompute.stages import DISTANCES, EuclideanKNN
from precompute.stages.candidates import candidate_pairs, knn_from_pairs, neighbours_of_neighbours
from precompute.stages.clouds import intra_distances, relevance_clouds, shape_descriptors
from precompute.stages.transport import GromovWassersteinKNN, WassersteinKNN, pair_distances
from precompute.synthetic import synthetic_heatmaps

HOOK = [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (4, 1), (4, 2), (1, 2)]


def hook_map(rng, size=16, row=3, col=5):
    """An asymmetric hook of distinct random values on an empty grid."""
    grid = np.zeros((size, size))
    for (r, c), value in zip(HOOK, rng.uniform(1.0, 2.0, len(HOOK))):
        grid[row + r, col + c] = value
    return grid


def test_registered_by_name():
    assert DISTANCES.get("wasserstein") is WassersteinKNN and DISTANCES.get("gw") is GromovWassersteinKNN


def test_cloud_takes_the_largest_cells_until_99_percent():
    rng = np.random.default_rng(0)
    maps = rng.random((5, 8, 8)) ** 6 - 0.1  # a few large cells, some negative ones
    maps[4] = -1.0  # no positive relevance at all
    clouds = relevance_clouds(maps, max_points=64)
    for i in range(4):
        positive = np.sort(np.clip(maps[i], 0, None).ravel())[::-1]
        size = int(clouds.sizes[i])
        assert positive[:size].sum() >= 0.99 * positive.sum() > positive[:size - 1].sum()
        coords, weights = clouds.cloud(i)
        assert weights.sum() == pytest.approx(1.0) and (weights > 0).all()
        assert np.allclose(weights, positive[:size] / positive[:size].sum())
    assert clouds.sizes[4] == 1 and np.allclose(clouds.cloud(4)[0], [[0.5, 0.5]])
    capped = relevance_clouds(maps, max_points=3)
    assert capped.sizes[:4].max() <= 3
    with pytest.raises(ConfigError):
        relevance_clouds(maps, max_points=0)


def _reference_gw(clouds, i, j):
    """POT's exact GW, called directly on the two clouds (the test's own reference)."""
    (xi, pi), (xj, pj) = clouds.cloud(i), clouds.cloud(j)
    Ci, Cj = ot.dist(xi, xi, metric="euclidean"), ot.dist(xj, xj, metric="euclidean")
    Ci, Cj = Ci / (pi @ Ci @ pi), Cj / (pj @ Cj @ pj)
    return np.sqrt(max(ot.gromov.gromov_wasserstein2(Ci, Cj, pi, pj, loss_fun="square_loss"), 0.0))


def test_candidate_pair_gw_equals_pot_all_pairs_on_the_pairs_it_solves():
    data = synthetic_heatmaps(24, 16, groups={"posed-mark": 0.5}, seed=1)
    X = data.heatmaps.reshape(24, -1)
    knn = GromovWassersteinKNN(n_neighbors=3, candidates=4, euclidean_candidates=1, random_candidates=1).fit(
        X, shape=(16, 16))
    n_all = 24 * 23 // 2
    assert 0 < len(knn.pairs_) < n_all  # candidates, not all pairs
    reference = np.zeros((24, 24))
    for i in range(24):
        for j in range(i + 1, 24):
            reference[i, j] = reference[j, i] = _reference_gw(knn.clouds_, i, j)
    for (i, j), value in zip(knn.pairs_, knn.pair_distances_):
        assert value == pytest.approx(reference[i, j], abs=1e-9)
    # each sample's neighbours are its nearest among the partners it was solved with
    partners = {i: set() for i in range(24)}
    for i, j in knn.pairs_:
        partners[i].add(j)
        partners[j].add(i)
    for i in range(24):
        nearest = sorted(partners[i], key=lambda j: (reference[i, j], j))[:3]
        assert list(knn.indices_[i]) == nearest
        assert np.allclose(knn.distances_[i], reference[i, nearest], atol=1e-6)


def test_gw_is_blind_to_shift_rotation_and_mirroring_and_euclidean_is_not():
    rng = np.random.default_rng(2)
    base = hook_map(rng)
    copies = [base, np.roll(base, (6, 4), axis=(0, 1)), np.rot90(base), np.fliplr(base),
              np.rot90(np.flipud(base), 3)]
    other = np.zeros((16, 16))
    other[5:8, 5:8] = rng.uniform(1.0, 2.0, (3, 3))  # a compact square: another shape
    maps = np.stack(copies + [other])
    clouds = relevance_clouds(maps, max_points=32)
    pairs = np.array([(0, j) for j in range(1, 6)])
    gw = pair_distances(clouds, pairs, "gw")
    assert gw[:4].max() < 1e-6 < 0.1 < gw[4]
    euclidean = np.linalg.norm(maps[1:5] - maps[0], axis=(1, 2))
    assert euclidean.min() > 0.5 * np.linalg.norm(maps[0])


def test_gw_is_blind_to_scale():
    rng = np.random.default_rng(3)
    small = hook_map(rng, size=32)
    large = np.zeros((32, 32))
    for r, c in HOOK:  # the same hook, twice as large (its points twice as far apart)
        large[10 + 2 * r, 8 + 2 * c] = small[3 + r, 5 + c]
    square = np.zeros((32, 32))
    square[10:13, 10:13] = 1.5
    clouds = relevance_clouds(np.stack([small, large, square]), max_points=32)
    scaled, other = pair_distances(clouds, np.array([(0, 1), (0, 2)]), "gw")
    assert scaled < 1e-6 < 0.1 < other


def test_distances_are_symmetric_with_a_zero_diagonal():
    data = synthetic_heatmaps(6, 16, seed=4)
    clouds = relevance_clouds(data.heatmaps, max_points=16)
    for kind in ("gw", "wasserstein"):
        forward = pair_distances(clouds, np.array([(i, j) for i in range(6) for j in range(6)]), kind)
        matrix = forward.reshape(6, 6)
        np.testing.assert_allclose(matrix, matrix.T, atol=1e-9)
        np.testing.assert_allclose(np.diag(matrix), 0.0, atol=1e-7)
        assert matrix[~np.eye(6, dtype=bool)].min() > 0


def test_wasserstein_of_a_shift_is_its_length():
    rng = np.random.default_rng(5)
    base = hook_map(rng)
    shifted = np.roll(base, (2, 0), axis=(0, 1))
    clouds = relevance_clouds(np.stack([base, shifted]), max_points=64)
    (value,) = pair_distances(clouds, np.array([(0, 1)]), "wasserstein")
    assert value == pytest.approx(2 / 16, abs=1e-9)  # W2 of a translation by 2 cells of a 16-cell grid
    xi, pi = clouds.cloud(0)
    xj, pj = clouds.cloud(1)
    assert value == pytest.approx(np.sqrt(ot.emd2(pi, pj, ot.dist(xi, xj))), abs=1e-12)


def test_worker_processes_give_the_serial_result():
    data = synthetic_heatmaps(62, 16, seed=6)
    clouds = relevance_clouds(data.heatmaps, max_points=24)
    pairs = np.stack(np.triu_indices(62, k=1), axis=1)
    assert len(pairs) >= 1500  # enough for the process pool
    done = []
    parallel = pair_distances(clouds, pairs, "wasserstein", workers=2, on_progress=done.append)
    np.testing.assert_array_equal(parallel, pair_distances(clouds, pairs, "wasserstein", workers=1))
    assert sum(done) == len(pairs)


def test_candidate_pairs_are_unique_unordered_and_cover_the_lists():
    neighbours = np.array([[1, 2], [0, 2], [0, 1], [2, 0]])
    pairs = candidate_pairs([neighbours], 4, random_candidates=2, seed=0)
    assert (pairs[:, 0] < pairs[:, 1]).all() and len(np.unique(pairs, axis=0)) == len(pairs)
    listed = {tuple(sorted((i, int(j)))) for i in range(4) for j in neighbours[i]}
    assert listed <= {tuple(p) for p in pairs}


def test_knn_from_pairs_refuses_a_sample_with_too_few_partners():
    pairs = np.array([(0, 1), (0, 2), (1, 2), (2, 3)])
    with pytest.raises(ConfigError, match="sample 3"):
        knn_from_pairs(pairs, np.ones(4), 4, 2)


def test_shape_descriptors_are_pose_invariant():
    rng = np.random.default_rng(7)
    base = hook_map(rng)
    clouds = relevance_clouds(np.stack([base, np.rot90(np.roll(base, 5, axis=1))]), max_points=32)
    descriptors = shape_descriptors(clouds)
    np.testing.assert_allclose(descriptors[0], descriptors[1], atol=1e-6)
    coords, weights = clouds.cloud(0)
    assert weights @ intra_distances(coords, weights) @ weights == pytest.approx(1.0)


def test_gw_analysis_groups_a_posed_mark_that_euclidean_cannot():
    """The issue's goal on synthetic maps: the same mark at random pose in 30 % of a class."""
    data = synthetic_heatmaps(240, 32, groups={"posed-mark": 0.3}, seed=3)
    truth = data.planted == "posed-mark"

    def best_f1(distance):
        result = analyse_heatmaps(data.heatmaps, AnalysisConfig(distance=distance, maps=(),
                                                                clusterings=("kmeans", "kmeans_lead")))
        scores = []
        for labels in result.arrays["clustering_labels"]:
            for cluster in np.unique(labels):
                chosen = labels == cluster
                scores.append(2 * (chosen & truth).sum() / (chosen.sum() + truth.sum()))
        return max(scores), result

    gw, result = best_f1("gw")
    euclidean, _ = best_f1("euclidean")
    assert gw >= 0.85 and euclidean < 0.6
    assert result.summary["tau"] is not None and result.arrays["knn_indices"].shape == (240, 10)


def test_batch_backend_agrees_with_conditional_gradient():
    """POT's entropic batched solver (torch; the GPU path) ranks pairs as the exact solver does."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    base = hook_map(rng)
    square = np.zeros((16, 16))
    square[4:7, 4:7] = rng.uniform(1.0, 2.0, (3, 3))
    maps = np.stack([base, np.rot90(base), square, np.fliplr(square)])
    X = maps.reshape(4, -1)
    exact = GromovWassersteinKNN(n_neighbors=1).fit(X, shape=(16, 16))
    batch = GromovWassersteinKNN(n_neighbors=1, backend="batch").fit(X, shape=(16, 16))
    assert list(batch.indices_[:, 0]) == list(exact.indices_[:, 0]) == [1, 0, 3, 2]
    same, different = batch.pair_distances_[[0, 5]], batch.pair_distances_[[1, 2, 3, 4]]
    assert same.max() < different.min()


def test_unknown_backend_and_non_square_maps_without_shape_are_refused():
    X = np.random.default_rng(0).random((8, 12))
    with pytest.raises(ConfigError, match="backend"):
        GromovWassersteinKNN(n_neighbors=2, backend="magic").fit(X, shape=(3, 4))
    with pytest.raises(ConfigError, match="grid shape"):
        GromovWassersteinKNN(n_neighbors=2).fit(X)


def test_euclidean_distance_stays_exact():
    """Registering the transport distances leaves the paper's distance untouched."""
    X = np.random.default_rng(1).random((20, 9)).astype(np.float32)
    knn = EuclideanKNN(n_neighbors=3).fit(X)
    full = np.linalg.norm(X[:, None] - X[None], axis=2)
    np.fill_diagonal(full, np.inf)
    np.testing.assert_array_equal(knn.indices_, np.argsort(full, axis=1, kind="stable")[:, :3])


def test_neighbour_descent_adds_only_new_pairs_of_neighbours_neighbours():
    indices = np.array([[1, 2], [2, 3], [3, 0], [0, 1]])
    solved = np.array([(0, 1), (0, 2)])
    extra = neighbours_of_neighbours(indices, 2, solved=solved, n=4)
    expected = set()
    for i in range(4):
        for j in indices[i]:
            for m in indices[j]:
                if m != i:
                    expected.add(tuple(sorted((i, int(m)))))
    assert {tuple(p) for p in extra} == expected - {(0, 1), (0, 2)}
    assert (extra[:, 0] < extra[:, 1]).all()


def test_refinement_raises_recall_of_true_gw_neighbours():
    """One round of neighbour descent finds true neighbours that the first candidates missed."""
    data = synthetic_heatmaps(100, 16, groups={"posed-mark": 0.3, "corner": 0.15}, seed=9)
    X = data.heatmaps.reshape(100, -1)
    options = dict(n_neighbors=5, candidates=5, euclidean_candidates=0, random_candidates=1)
    plain = GromovWassersteinKNN(refine=0, **options).fit(X, shape=(16, 16))
    refined = GromovWassersteinKNN(refine=5, **options).fit(X, shape=(16, 16))
    every = np.stack(np.triu_indices(100, k=1), axis=1)
    exact = pair_distances(plain.clouds_, every, "gw", workers=2)
    truth, _ = knn_from_pairs(every, exact, 100, 5)

    def recall(knn):
        return np.mean([len(set(truth[i]) & set(knn.indices_[i])) / 5 for i in range(100)])

    assert len(refined.pairs_) > len(plain.pairs_)
    assert recall(refined) > recall(plain) + 0.05


def test_a_process_limit_bounds_the_solver_pool():
    """A Ray task with one CPU solves its pairs in itself (``process_limit(1)``)."""
    from precompute.stages.transport import default_workers, process_limit

    outside = default_workers()
    with process_limit(1):
        assert default_workers() == 1
        with process_limit(3):
            assert default_workers() == min(3, outside)
        assert default_workers() == 1
    assert default_workers() == outside >= 1
