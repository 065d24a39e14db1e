"""The one protocol every analysis stage follows, in the scikit-learn manner.

* ``__init__`` only stores its parameters (``random_state`` for randomised stages);
  validation and work happen in ``fit``.
* ``fit(...)`` returns ``self``; what it learned is in attributes ending in ``_``
  (``indices_``, ``embedding_``, ``labels_``, ``tau_``).
* Two class attributes tell the orchestrator how to schedule a stage:
  :attr:`Stage.imports` (modules worth importing on a second thread while the
  distances are computed) and :attr:`Stage.background` (the stage may run on a second
  thread, because its heavy loops release the GIL).

Three families add a fixed ``fit`` signature each, so that the orchestrator treats
every registered member alike: :class:`MapStage` (``fit(X)``, ``embedding_``,
``fit_transform``) here, and the clusterings in :mod:`precompute.stages.cluster`.
"""
from __future__ import annotations

import inspect
from typing import ClassVar, Dict, Tuple

import numpy as np

__all__ = ["Stage", "MapStage", "fallback_map"]


class Stage:
    """Base class of the analysis stages.

    Attributes
    ----------
    imports : tuple of str
        Class attribute: modules the stage imports in ``fit``; imported ahead of time
        on a second thread (:class:`precompute.stages.concurrency.ImportAhead`).
    background : bool
        Class attribute: True if ``fit`` may run on a second thread beside the other
        stages (its heavy loops release the GIL).
    """

    imports: ClassVar[Tuple[str, ...]] = ()
    background: ClassVar[bool] = False

    @classmethod
    def _param_names(cls) -> Tuple[str, ...]:
        signature = inspect.signature(cls.__init__)
        return tuple(name for name, p in signature.parameters.items()
                     if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))

    def get_params(self) -> Dict[str, object]:
        """The parameters given to ``__init__``, by name (as scikit-learn's ``get_params(deep=False)``)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def fit(self, *args, **kwargs) -> "Stage":
        """Learn from the data; return ``self``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{name}={value!r}" for name, value in self.get_params().items())
        return f"{type(self).__name__}({params})"


class MapStage(Stage):
    """A 2-D map of the spectral embedding.

    Subclasses take ``random_state`` in ``__init__`` and implement ``fit(X)``, which
    sets ``embedding_``.

    Attributes
    ----------
    embedding_ : ndarray of float32, shape (n, 2)
        Set by ``fit``.
    """

    def fit(self, X: np.ndarray) -> "MapStage":
        raise NotImplementedError

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """Fit to ``X`` of shape (n, q) and return ``embedding_``, float32 of shape (n, 2)."""
        return self.fit(X).embedding_


def fallback_map(embedding: np.ndarray) -> np.ndarray:
    """Spectral dimensions 1 and 2 (float32, shape (n, 2)) for classes too small for UMAP or t-SNE."""
    cols = embedding[:, 1:3] if embedding.shape[1] >= 3 else np.pad(embedding, ((0, 0), (0, 2)))[:, :2]
    return np.ascontiguousarray(cols, dtype=np.float32)
