"""Small seeded inputs shared by the stage tests."""
import numpy as np
import pytest

from precompute.analysis import AnalysisConfig, analyse_heatmaps
from precompute.synthetic import synthetic_heatmaps


@pytest.fixture(scope="package")
def random_points():
    """120 Gaussian points in 40 dimensions, float32."""
    return np.random.default_rng(0).normal(size=(120, 40)).astype(np.float32)


@pytest.fixture(scope="package")
def points():
    """Three well separated Gaussian blobs of 60 points in 8 dimensions."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=6, size=(3, 8))
    return np.concatenate([c + rng.normal(size=(60, 8)) for c in centres])


@pytest.fixture(scope="package")
def spray_embedding():
    """The spectral embedding of a planted synthetic class (what the map stages really get), and the planted mask."""
    data = synthetic_heatmaps(500, 32, groups={"corner": 0.2}, seed=5)
    result = analyse_heatmaps(data.heatmaps, AnalysisConfig(maps=(), clusterings=("kmeans",)))
    return result.arrays["eigenvectors"], data.planted == "corner"
