"""Every stage follows the one protocol: parameters in __init__, fit returns self, learned state ends in _."""
import numpy as np
import pytest

from precompute.stages import CLUSTERINGS, DISTANCES, MAPS, SpectralEmbedding, Stage, Tau, knn_affinity
from precompute.stages.base import MapStage
from precompute.stages.cluster import Clustering

DISTANCE_STAGES = [DISTANCES.get(name) for name in DISTANCES.names()]
REGISTERED = (DISTANCE_STAGES
              + [CLUSTERINGS.get(name) for name in CLUSTERINGS.names()]
              + [MAPS.get(name) for name in MAPS.names()])
ALL = REGISTERED + [SpectralEmbedding, Tau]


def learned(stage):
    return sorted(name for name in vars(stage) if name.endswith("_") and not name.startswith("_"))


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.__name__)
def test_init_only_stores_its_parameters(cls):
    assert issubclass(cls, Stage)
    stage = cls()
    assert vars(stage) == stage.get_params(), "__init__ stores its parameters and nothing else"
    assert learned(stage) == []
    assert repr(stage).startswith(f"{cls.__name__}(")
    # scheduling flags are class attributes declared on the base, never looked up with a default
    assert isinstance(cls.imports, tuple) and isinstance(cls.background, bool)
    assert {"imports", "background"} <= set(vars(Stage))


@pytest.mark.parametrize("cls", [c for c in ALL if c not in DISTANCE_STAGES and c is not Tau],
                         ids=lambda cls: cls.__name__)
def test_randomised_stages_take_random_state_in_init(cls):
    assert "random_state" in cls().get_params()
    assert cls(random_state=7).random_state == 7


def _fit(stage, rng):
    X = rng.normal(size=(30, 6)).astype(np.float32)
    if isinstance(stage, Clustering):
        return stage.fit(X, 2), ["labels_", "n_clusters_"]
    if isinstance(stage, MapStage):
        return stage.fit(X[:5]), ["embedding_"]  # five points: every map's quick fallback
    if isinstance(stage, SpectralEmbedding):
        affinity = knn_affinity(DISTANCES.get("euclidean")(5).fit(X).indices_)
        return stage.fit(affinity), ["eigenvalues_", "embedding_"]
    if isinstance(stage, Tau):
        labels = [np.arange(30) % 2, np.arange(30) % 3]
        return stage.fit(X, labels, [2, 3], ["kmeans", "kmeans"]), ["design_", "fisher_", "mask_", "note_", "tau_"]
    if getattr(stage, "spatial", False):  # Wasserstein, GW: maps on a grid
        return stage.fit(X, shape=(2, 3)), ["distances_", "indices_", "pairs_", "pair_distances_", "clouds_"]
    return stage.fit(X), ["distances_", "indices_"]


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.__name__)
def test_fit_returns_self_with_learned_state(cls):
    stage = cls()
    fitted, expected = _fit(stage, np.random.default_rng(0))
    assert fitted is stage
    assert set(expected) <= set(learned(stage))
    assert vars(stage).items() >= stage.get_params().items(), "fit leaves the parameters alone"


def test_map_fit_transform_is_fit_then_embedding():
    X = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    for cls in [MAPS.get(name) for name in MAPS.names()]:
        stage = cls()
        assert stage.fit_transform(X) is stage.embedding_
