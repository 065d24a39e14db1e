"""The clustering families against direct scikit-learn / scipy calls; relabelling; the default rule."""
import numpy as np
import pytest

from precompute.stages.cluster import (
    CLUSTERINGS,
    DEFAULT_RULES,
    KMEANS_INITS,
    KMeansAll,
    KMeansLeading,
    WardAll,
    default_lead_eigengap,
    leading_dimensions,
    relabel_by_size,
)


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4, size=(4, 6))
    sizes = [40, 25, 15, 10]
    X = np.concatenate([c + rng.normal(size=(s, 6)) for c, s in zip(centres, sizes)])
    return X.astype(np.float32)


def test_relabel_by_size_numbers_the_largest_cluster_0():
    labels = np.array([5, 2, 2, 7, 7, 7, 5, 9])
    # sizes: 7 -> 3, then 5 and 2 tie at 2 (5 appears first), then 9
    np.testing.assert_array_equal(relabel_by_size(labels), [1, 2, 2, 0, 0, 0, 1, 3])
    assert relabel_by_size(labels).dtype == np.int16


def test_kmeans_equals_sklearn_relabelled(blobs):
    from sklearn.cluster import KMeans

    stage = KMeansAll(n_clusters=[2, 4], random_state=3)
    assert stage.fit(blobs) is stage
    assert stage.n_clusters_ == (2, 4) and stage.labels_.shape == (2, len(blobs))
    for k, row in zip(stage.n_clusters_, stage.labels_):
        direct = KMeans(n_clusters=k, n_init=KMEANS_INITS, random_state=3).fit(blobs).labels_
        np.testing.assert_array_equal(row, relabel_by_size(direct))
    assert np.all(np.diff(np.bincount(stage.labels_[1])) <= 0)


def test_ward_cuts_one_tree_at_every_k(blobs):
    from scipy.cluster.hierarchy import fcluster, linkage

    stage = WardAll(n_clusters=[2, 3, 4]).fit(blobs)
    tree = linkage(blobs.astype(np.float64), method="ward")
    for k, row in zip(stage.n_clusters_, stage.labels_):
        np.testing.assert_array_equal(row, relabel_by_size(fcluster(tree, t=k, criterion="maxclust") - 1))
    np.testing.assert_array_equal(np.bincount(stage.labels_[2]), [40, 25, 15, 10])


def test_kmeans_lead_uses_the_unit_rows_of_the_leading_eigenvectors(blobs):
    from sklearn.cluster import KMeans

    eigengap_k = 3
    stage = KMeansLeading(n_clusters=[3], random_state=1).fit(blobs, eigengap_k)
    lead = blobs[:, :leading_dimensions(eigengap_k, blobs.shape[1])].astype(np.float64)
    lead /= np.linalg.norm(lead, axis=1, keepdims=True)
    direct = KMeans(n_clusters=3, n_init=KMEANS_INITS, random_state=1).fit(lead).labels_
    np.testing.assert_array_equal(stage.labels_[0], relabel_by_size(direct))


def test_leading_dimensions_is_the_eigengap_count_at_least_2():
    assert leading_dimensions(1, 32) == 2
    assert leading_dimensions(7, 32) == 7
    assert leading_dimensions(40, 32) == 32


def test_no_cluster_counts_give_no_clusterings(blobs):
    assert KMeansAll(n_clusters=[]).fit(blobs).labels_.shape == (0, len(blobs))


def test_registries():
    assert {"kmeans": KMeansAll, "ward": WardAll, "kmeans_lead": KMeansLeading} == {
        name: CLUSTERINGS.get(name) for name in CLUSTERINGS.names()}
    assert DEFAULT_RULES.get("lead_eigengap") is default_lead_eigengap


def test_default_rule_falls_back_to_the_tau_family():
    names = [f"kmeans-k{k}" for k in range(2, 31)]
    assert default_lead_eigengap(4, names + ["kmeans_lead-k4"], 30) == "kmeans_lead-k4"
    assert default_lead_eigengap(4, names, 30) == "kmeans-k4"
    assert default_lead_eigengap(1, names, 30) == "kmeans-k2"
    assert default_lead_eigengap(40, names, 30) == "kmeans-k30"
