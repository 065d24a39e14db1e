"""The artifact concept: a direction in a layer's activation space (a CAV).

Anders et al. (ClArC) model an artifact as a direction ``v`` in a layer's activations:
samples that carry it lie further along ``v`` than samples that do not. Two ways to find
``v`` from artifact samples ``A`` and clean samples ``C`` of the same class, chosen by
name from :data:`CAV_METHODS`:

* ``signal`` (default): the *signal pattern* ``v ∝ mean(A) - mean(C)`` (Haufe et al.),
  the direction along which the activations co-vary with the artifact label. It needs
  no training, has no hyper-parameter and does not chase noise dimensions, which a
  classifier's weight vector (a *filter*) does.
* ``svm``: the unit normal of a linear SVM separating ``A`` from ``C`` (balanced classes).

The concept also keeps the clean reference ``r = vᵀ mean(C)``, the value the projection
moves every sample to.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

import numpy as np

from ..errors import ConfigError
from ..registry import Registry

__all__ = ["CAV_METHODS", "Concept", "fit_concept"]

CAV_METHODS: Registry[Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = Registry("CAV method")


@CAV_METHODS.register("signal")
def signal_pattern(artifact: np.ndarray, clean: np.ndarray, seed: int = 0) -> np.ndarray:
    """Difference of the class-conditional means (D,), not yet normalised."""
    return artifact.astype(np.float64).mean(0) - clean.astype(np.float64).mean(0)


@CAV_METHODS.register("svm")
def svm_direction(artifact: np.ndarray, clean: np.ndarray, seed: int = 0) -> np.ndarray:
    """Weight vector (D,) of a balanced linear SVM on standardised-free activations."""
    from sklearn.svm import LinearSVC

    x = np.concatenate([artifact, clean]).astype(np.float64)
    y = np.r_[np.ones(len(artifact)), np.zeros(len(clean))]
    svm = LinearSVC(C=1.0, class_weight="balanced", random_state=seed, max_iter=20000, dual="auto")
    return svm.fit(x, y).coef_[0]


@dataclass
class Concept:
    """A concept activation vector and its clean reference.

    Attributes
    ----------
    layer : str
        Where it lives (see :class:`precompute.clarc.layers.LayerRef`).
    method : str
        A name of :data:`CAV_METHODS`.
    vector : ndarray of float32, shape (D,)
        Unit direction ``v``.
    reference : float
        ``vᵀ mean(clean)``.
    n_artifact, n_clean : int
        Samples it was fitted on.
    separation : float
        ``(mean score of A − mean score of C) / pooled std``: how well ``v`` tells them apart.
    """

    layer: str
    method: str
    vector: np.ndarray
    reference: float
    n_artifact: int
    n_clean: int
    separation: float

    def scores(self, activations: np.ndarray) -> np.ndarray:
        """``vᵀa − r`` (N,) for flattened activations (N, D): > 0 is further along the artifact."""
        return activations.astype(np.float64) @ self.vector.astype(np.float64) - self.reference

    def meta(self) -> Dict[str, object]:
        return {"layer": self.layer, "method": self.method, "dimensions": int(self.vector.size),
                "reference": float(self.reference), "n_artifact": self.n_artifact, "n_clean": self.n_clean,
                "separation": float(self.separation)}


def fit_concept(artifact: np.ndarray, clean: np.ndarray, *, layer: str, method: str = "signal",
                seed: int = 0) -> Concept:
    """Fit the artifact direction from activations.

    Parameters
    ----------
    artifact : ndarray (n_a, D)
        Activations of the samples that carry the artifact.
    clean : ndarray (n_c, D)
        Activations of the other samples of the same class.
    layer : str
    method : str
        A name in :data:`CAV_METHODS`.
    seed : int

    Raises
    ------
    ConfigError
        Empty groups, or activations identical along every direction.
    """
    direction_of = CAV_METHODS.get(method)
    if len(artifact) == 0 or len(clean) == 0:
        raise ConfigError("the concept needs artifact samples and clean samples of the same class")
    vector = np.asarray(direction_of(artifact, clean, seed), dtype=np.float64)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0:
        raise ConfigError(f"layer {layer}: the artifact and clean samples have the same activations there")
    vector /= norm
    reference = float(clean.astype(np.float64).mean(0) @ vector)
    score_a, score_c = artifact @ vector, clean @ vector
    pooled = np.sqrt((score_a.var() + score_c.var()) / 2) or 1.0
    return Concept(layer=layer, method=method, vector=vector.astype(np.float32), reference=reference,
                   n_artifact=len(artifact), n_clean=len(clean),
                   separation=float((score_a.mean() - score_c.mean()) / pooled))
