"""The orchestrator, analyse_heatmaps: the stages together on synthetic classes.

Each stage alone is tested against a plain reference in ``tests/precompute/stages/``.
"""
import numpy as np
import pytest

import precompute.analysis as analysis
from precompute.analysis import AnalysisConfig, TSNEMap, analyse_heatmaps, fisher_design
from precompute.errors import ConfigError
from precompute.evaluate import cluster_f1
from precompute.stages.base import MapStage
from precompute.synthetic import synthetic_heatmaps

from .stages.references import reference_fisher

FAST = dict(maps=("tsne",))  # one map is enough here; the maps are tested in tests/precompute/stages/


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
    defined = fisher_defined(result)
    for name, array in result.arrays.items():
        if array.dtype.kind == "f":
            assert np.all(np.isfinite(array[defined] if name == "fisher" else array)), name
    assert np.isfinite(result.summary["tau"])


def fisher_defined(result):
    """Mask of the stored clusterings whose k lies in fisher_design's range."""
    n, q = result.arrays["eigenvectors"].shape
    ks = [int(name.rsplit("-k", 1)[1]) for name in result.arrays["clustering_names"]]
    design = fisher_design(n, q, sorted(set(ks)))
    return np.array([k in design.ks for k in ks], dtype=bool)


def test_fisher_is_nan_exactly_outside_its_design():
    result = analyse_heatmaps(synthetic_heatmaps(40, 16, seed=3).heatmaps, AnalysisConfig(maps=()))
    defined = fisher_defined(result)
    assert defined.any() and not defined.all()  # n = 40: d = 10, so k <= 20 only
    assert np.all(np.isfinite(result.arrays["fisher"][defined]))
    assert np.all(np.isnan(result.arrays["fisher"][~defined]))


def test_too_small_for_tau_says_so():
    result = analyse_heatmaps(synthetic_heatmaps(5, 16, seed=1).heatmaps, AnalysisConfig(maps=()))
    assert result.summary["tau"] is None
    assert "too few samples" in result.summary["tau_note"]
    assert result.summary["default_clustering"] in set(result.arrays["clustering_names"])


@pytest.mark.parametrize("n", [20, 50])
def test_tau_of_small_classes_is_finite_and_on_the_scale_of_large_ones(n):
    """Issue 17: 20 maps gave tau = 1.5e9 (a singular within-cluster scatter in 19 dims)."""
    cfg = AnalysisConfig(maps=())
    taus = [analyse_heatmaps(synthetic_heatmaps(n, 32, groups={}, seed=seed).heatmaps, cfg).summary["tau"]
            for seed in (1, 2, 3)]
    large = analyse_heatmaps(synthetic_heatmaps(200, 32, groups={}, seed=1).heatmaps, cfg).summary["tau"]
    assert all(tau is not None and 0 < tau < 5 * large for tau in taus), (taus, large)


def test_small_class_still_ranks_a_planted_group_higher():
    cfg = AnalysisConfig(maps=())
    for seed in (1, 2):
        clean = analyse_heatmaps(synthetic_heatmaps(50, 32, groups={}, seed=seed).heatmaps, cfg).summary
        dirty = analyse_heatmaps(synthetic_heatmaps(50, 32, groups={"corner": 0.25}, seed=seed).heatmaps, cfg).summary
        assert dirty["tau"] > 3 * clean["tau"]
        assert clean["fisher_dimensions"] == 12  # 50 // 4


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
    monkeypatch.setattr(analysis, "usable_cores", lambda: 2)
    data = synthetic_heatmaps(120, 16, groups={"corner": 0.2}, seed=4)
    result = analyse_heatmaps(data.heatmaps, AnalysisConfig(maps=("umap", "tsne")))
    direct = TSNEMap(random_state=0).fit_transform(result.arrays["eigenvectors"])
    np.testing.assert_array_equal(result.arrays["maps"][1], direct)
    assert list(result.arrays["map_names"]) == ["umap", "tsne"]
    assert {"map:tsne", "wait:tsne", "map:umap"} <= set(result.timings)


def test_one_core_runs_the_background_map_in_line(monkeypatch):
    monkeypatch.setattr(analysis, "usable_cores", lambda: 1)
    data = synthetic_heatmaps(60, 16, groups={"corner": 0.2}, seed=4)
    result = analyse_heatmaps(data.heatmaps, AnalysisConfig(maps=("tsne",)))
    np.testing.assert_array_equal(result.arrays["maps"][0],
                                  TSNEMap(random_state=0).fit_transform(result.arrays["eigenvectors"]))
    assert "map:tsne" in result.timings and "wait:tsne" not in result.timings


def test_background_map_errors_reach_the_caller(monkeypatch):
    class Broken(MapStage):
        background = True

        def __init__(self, random_state=0):
            self.random_state = random_state

        def fit(self, X):
            raise RuntimeError("broken map")

    monkeypatch.setattr(analysis, "usable_cores", lambda: 2)
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


def test_the_default_view_isolates_each_of_two_artifacts():
    """A class with two artifacts (a quarter each): the truth-free default clustering gives each its cluster."""
    from precompute.evaluate import best_cluster

    data = synthetic_heatmaps(250, 32, groups={"corner": 0.25, "border": 0.25}, seed=1)
    result = analyse_heatmaps(data.heatmaps, AnalysisConfig(maps=()))
    names, labels = result.arrays["clustering_names"], result.arrays["clustering_labels"]
    default = result.summary["default_clustering"]
    assert result.summary["eigengap_k"] >= 3
    for group in ("corner", "border"):
        f1, where = best_cluster(names, labels, data.planted == group, only=default)
        assert f1 >= 0.9, (group, where)
