"""The run's model, rebuilt from the store's manifest, for live experiments.

A :class:`ModelSession` uses precompute's own code: :func:`precompute.models.load_model`,
:func:`precompute.models.canonizers_for` and :class:`precompute.lrp.Attributor`. Its
heatmaps are therefore the run's heatmaps, and its predictions the run's predictions. Model
calls are serialised with a lock, so concurrent experiments (two users of the app) never
share hook state.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data import load_rgb, resize_center_crop
from ..errors import DataError, ModelError
from ..store import RunStore

__all__ = ["ModelSession", "model_inputs", "load_run_model", "run_weights_path"]


def run_weights_path(store: RunStore, *, verify: bool = True) -> Optional[Path]:
    """The weights file the run was made with (None for a model without weights).

    Raises
    ------
    ModelError
        If the file is missing, or (``verify``) its SHA-256 differs from the manifest's.
    """
    from ..pipeline.manifest import file_sha256

    info = store.manifest_record().model
    if not info.weights:
        return None
    weights = Path(info.weights)
    weights = weights if weights.is_absolute() else store.root / weights
    if not weights.is_file():
        raise ModelError(f"{weights}: the weights this run was made with are missing; restore them to use the lab")
    if verify and info.weights_sha256 and file_sha256(weights) != info.weights_sha256:
        raise ModelError(f"{weights}: the weights changed since the run was made (SHA-256 differs)")
    return weights


def load_run_model(store: RunStore, *, verify_weights: bool = True) -> torch.nn.Module:
    """The run's model in eval mode, rebuilt from the manifest with :func:`precompute.models.load_model`."""
    from ..models import load_model

    info = store.manifest_record().model
    if info.num_classes is None:
        raise ModelError(f"{store.root}: the manifest does not say how many classes the model has")
    return load_model(info.spec, run_weights_path(store, verify=verify_weights), int(info.num_classes))


def model_inputs(store: RunStore, paths: Sequence[str]) -> np.ndarray:
    """Load samples as the model saw them: RGB, resized and centre-cropped.

    Parameters
    ----------
    store : RunStore
    paths : sequence of str
        Paths relative to the run's data root (the ``paths`` array of a class).

    Returns
    -------
    ndarray of uint8, shape (B, S, S, 3)
        ``S`` is the manifest's ``model.image_size`` (or the images' own size).
    """
    size = store.manifest_record().model.image_size
    root = store.data_root()
    images = []
    for rel in paths:
        path = root / str(rel)
        if not path.is_file():
            raise DataError(f"{path}: the original image is gone (the lab needs the dataset the run was made from)")
        images.append(np.asarray(resize_center_crop(load_rgb(path), size), dtype=np.uint8))
    return np.stack(images) if images else np.zeros((0, size or 0, size or 0, 3), np.uint8)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [0, 1] -> uint8 (B, H, W, 3)."""
    return (images.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy())


class ModelSession:
    """Predictions and heatmaps of the run's model.

    Parameters
    ----------
    store : RunStore
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    batch_size : int
        Largest batch sent to the model.
    verify_weights : bool
        Check the weights' SHA-256 against the manifest, so the lab never tests a
        different model from the one that was analysed.
    model : nn.Module, optional
        Use this model (a corrected variant of the run's) instead of loading the run's.

    Raises
    ------
    ModelError
        If the weights are missing or changed, or the model cannot be rebuilt.
    """

    _cache: Dict[Tuple[str, str], "ModelSession"] = {}
    _cache_lock = threading.Lock()

    def __init__(self, store: RunStore, *, device: str = "auto", batch_size: int = 64, verify_weights: bool = True,
                 model: Optional[torch.nn.Module] = None):
        from ..lrp import Attributor
        from ..models import canonizers_for

        info = store.manifest_record().model
        self.store = store
        self.num_classes = int(info.num_classes or 0)
        self.image_size = info.image_size
        self.model = model if model is not None else load_run_model(store, verify_weights=verify_weights)
        # the defaults of a manifest without composite or normalisation are RunConfig's (store.records)
        self.normalization = info.normalization
        self._attributor = Attributor(self.model, composite=info.composite,
                                      canonizers=canonizers_for(self.model, info.spec),
                                      normalization=info.normalization, device=device,
                                      batch_size=batch_size)
        self._attributor.__enter__()
        self.device = str(self._attributor.device_)
        self.batch_size = batch_size
        self._lock = threading.Lock()

    @classmethod
    def for_store(cls, store: RunStore, *, device: str = "auto") -> "ModelSession":
        """A session shared by everything in this process that uses the same run and device."""
        key = (str(store.root), device)
        with cls._cache_lock:
            session = cls._cache.get(key)
            if session is None:
                session = cls._cache[key] = cls(store, device=device)
            return session

    def close(self) -> None:
        """Remove the model's hooks."""
        self._attributor.__exit__(None, None, None)

    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities (B, C) of images (B, 3, H, W) in [0, 1]."""
        with self._lock:
            logits = self._attributor.predict(images)
        return torch.softmax(torch.as_tensor(logits, dtype=torch.float32), dim=1)

    def heatmaps(self, images: torch.Tensor, targets: Sequence[int]) -> np.ndarray:
        """LRP heatmaps (B, H, W) of images (B, 3, H, W) in [0, 1] w.r.t. ``targets``."""
        with self._lock:
            result = self._attributor.attribute(images, torch.as_tensor(list(targets), dtype=torch.int64))
        return result.heatmaps
