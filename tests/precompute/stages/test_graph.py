"""The kNN affinity of eq. (1) against a dense loop."""
import numpy as np

from precompute.stages.distance import EuclideanKNN
from precompute.stages.graph import knn_affinity

from .references import reference_affinity


def test_symmetrised_affinity_values(random_points):
    indices = EuclideanKNN(6).fit(random_points).indices_
    A = knn_affinity(indices)
    dense = A.toarray()
    np.testing.assert_array_equal(dense, reference_affinity(indices))
    assert set(np.unique(dense)) <= {0.0, 0.5, 1.0}
    assert 0.5 in dense and 1.0 in dense
    mutual = np.array([[j in indices[i] and i in indices[j] for j in range(len(dense))] for i in range(len(dense))])
    np.testing.assert_array_equal(dense == 1.0, mutual)


def test_duplicate_neighbours_count_once():
    indices = np.array([[1, 1], [0, 2], [1, 0]])
    np.testing.assert_array_equal(knn_affinity(indices).toarray(), reference_affinity(indices))
