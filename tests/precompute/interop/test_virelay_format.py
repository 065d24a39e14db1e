"""The format's conversions: clustering names, label uint16-ness, and the eigenvalue order against a dense reference."""
import numpy as np
import pytest
import scipy.linalg

from precompute.errors import DataError
from precompute.interop.virelay_format import (
    ascending_spectrum,
    category_key,
    corelay_spectrum,
    read_label_map,
    store_clustering,
    virelay_clustering_name,
)
from precompute.stages import SpectralEmbedding, knn_affinity


@pytest.mark.parametrize("ours, theirs", [("kmeans-k5", "kmeans-05"), ("kmeans_lead-k12", "kmeans_lead-12"),
                                          ("ward-k30", "ward-30")])
def test_clustering_names_go_both_ways(ours, theirs):
    labels = np.arange(int(ours.rsplit("-k", 1)[1])) % 3
    assert virelay_clustering_name(ours) == theirs
    assert store_clustering(theirs, labels)[0] == ours
    assert store_clustering(ours, labels)[0] == ours


def test_clusterings_without_a_count_are_named_by_their_clusters_and_noise_is_a_cluster():
    labels = np.array([-1, 0, 0, 1, 1, 1, -1])
    name, stored = store_clustering("dbscan-eps=0.5", labels)
    assert name == "dbscan_eps_0_5-k3"
    assert stored.dtype == np.int16 and stored.tolist() == [1, 2, 2, 0, 0, 0, 1]  # 0 = largest
    assert store_clustering("hdbscan", labels)[0] == "hdbscan-k3"
    assert store_clustering("train_split", np.array([True, False, True]))[0] == "train_split-k2"
    assert store_clustering("kmeans-05", np.array([0, 1, 1]), k=5)[0] == "kmeans-k5"  # empty clusters keep k


def test_category_keys_are_valid_hdf5_names():
    assert category_key(3, "star") == "star"
    assert category_key(3, "a/b") == "00000003"
    assert category_key(12, ".") == "00000012"


def _ring_graph(n=24, seed=0):
    """Two loosely joined rings: a connected graph with a clear second eigenvector."""
    rng = np.random.default_rng(seed)
    points = np.concatenate([rng.normal(0, 0.3, (n // 2, 2)), rng.normal(4, 0.3, (n // 2, 2))])
    from precompute.stages import EuclideanKNN

    return knn_affinity(EuclideanKNN(n_neighbors=5).fit(points).indices_)


def test_corelays_order_read_back_matches_a_dense_eigh_of_l_sym():
    """CoRelAy writes 1 - eig(D^-1/2 A D^-1/2), descending: read back, it is L_sym's spectrum ascending."""
    affinity = _ring_graph()
    dense = affinity.toarray()
    scale = 1.0 / np.sqrt(dense.sum(axis=1))
    mu, vectors = scipy.linalg.eigh(scale[:, None] * dense * scale[None, :])  # ascending mu
    q = 6
    corelay_values, corelay_vectors = 1.0 - mu[-q:], vectors[:, -q:]  # eigsh 'LM': ascending mu, trivial last
    assert np.all(np.diff(corelay_values) <= 0) and abs(corelay_values[-1]) < 1e-9
    values, embedding = ascending_spectrum(corelay_values, corelay_vectors)
    reference = np.sort(scipy.linalg.eigvalsh(np.eye(len(dense)) - scale[:, None] * dense * scale[None, :]))[:q]
    np.testing.assert_allclose(values, reference, atol=1e-9)
    ours = SpectralEmbedding(q).fit(affinity)
    np.testing.assert_allclose(values, ours.eigenvalues_, atol=1e-9)
    np.testing.assert_allclose(embedding, ours.embedding_, atol=1e-5)  # same columns, same sign convention


def test_export_order_is_the_reverse_and_reading_it_back_is_exact():
    ours = SpectralEmbedding(6).fit(_ring_graph())
    values, vectors = corelay_spectrum(ours.eigenvalues_, ours.embedding_)
    assert values[-1] == ours.eigenvalues_[0] == 0.0 and np.all(np.diff(values) <= 0)
    np.testing.assert_array_equal(vectors[:, -1], ours.embedding_[:, 0])
    back_values, back_vectors = ascending_spectrum(values, vectors)
    np.testing.assert_array_equal(back_values, ours.eigenvalues_)
    np.testing.assert_array_equal(back_vectors, ours.embedding_)


def test_tied_eigenvalues_keep_their_columns():
    """A disconnected graph has several zero eigenvalues: reversing, not sorting, keeps their columns apart."""
    values = np.array([0.0, 0.0, 0.3])
    vectors = np.eye(3, dtype=np.float32)
    back_values, back_vectors = ascending_spectrum(*corelay_spectrum(values, vectors))
    np.testing.assert_array_equal(back_vectors, vectors)
    unsorted_values, unsorted_vectors = ascending_spectrum(np.array([0.5, 0.0, 0.2]), -np.eye(3))
    assert unsorted_values.tolist() == [0.0, 0.2, 0.5]
    np.testing.assert_array_equal(unsorted_vectors, np.eye(3)[:, [1, 2, 0]])  # signs: largest entry positive


def test_a_bad_label_map_names_its_file(tmp_path):
    path = tmp_path / "labels.json"
    with pytest.raises(DataError, match=f"^{path}: label map not found$"):
        read_label_map(path)
    path.write_text("{not json")
    with pytest.raises(DataError, match=f"^{path}: not a JSON label map"):
        read_label_map(path)
    path.write_text('[{"index": 0, "name": "a"}, {"index": 0, "name": "b"}]')
    with pytest.raises(DataError, match="distinct"):
        read_label_map(path)
