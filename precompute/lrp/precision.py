"""How exactly attribution runs: the device, CUDA's TF32 switches, and how two heatmaps are compared.

``"fp32"`` (the default) turns TF32 off on CUDA: TF32 matmuls and convolutions change
heatmaps by about 6 %. ``"tf32"`` allows them; ``"bf16"`` runs the fast path's forward
pass under bfloat16 autocast. Both are faster and less exact; :func:`relative_l2` is
the measure the first-batch check and ``benchmarks/attribution.py --precision`` use.
"""
from __future__ import annotations

import contextlib
from typing import Optional, Tuple, Union

import numpy as np
import torch

from ..errors import ConfigError

__all__ = ["PRECISIONS", "TF32Switch", "relative_l2", "resolve_device"]

#: Arithmetic on CUDA; see the ``precision`` of :class:`precompute.lrp.Attributor`.
PRECISIONS = ("fp32", "tf32", "bf16")


def resolve_device(device: Union[str, torch.device]) -> torch.device:
    """The device for ``"auto"`` (CUDA if available, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises
    ------
    ConfigError
        An invalid name, or CUDA asked for where there is none.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"invalid device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N' ({error})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was requested but CUDA is not available; use 'auto' or 'cpu'")
    return resolved


class TF32Switch:
    """CUDA's two TF32 switches (matmul and cuDNN), set for a while and then restored.

    :meth:`take` saves the current settings and sets both; :meth:`restore` puts the
    saved ones back; :meth:`off` turns TF32 off for a ``with`` block while taken and on.
    """

    def __init__(self):
        self._saved: Optional[Tuple[bool, bool]] = None
        self._enabled = False

    @property
    def taken(self) -> bool:
        """Whether the settings are saved and this switch sets them."""
        return self._saved is not None

    def take(self, enabled: bool) -> None:
        """Save the current settings and set both switches to ``enabled``."""
        self._saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        self._set(enabled)

    def restore(self) -> None:
        """Put the saved settings back (nothing if none were taken)."""
        if self._saved is not None:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self._saved
            self._saved = None

    @contextlib.contextmanager
    def off(self):
        """TF32 off for a while, where this switch turned it on (fp32 and the CPU have it off already)."""
        if self._saved is None or not self._enabled:
            yield
            return
        self._set(False)
        try:
            yield
        finally:
            self._set(True)

    def _set(self, enabled: bool) -> None:
        self._enabled = enabled
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def relative_l2(estimate, reference) -> float:
    """``||estimate - reference|| / ||reference||`` in float64 (0 when both are zero).

    Parameters
    ----------
    estimate, reference : array-like of the same shape
        Numpy arrays or tensors.

    Returns
    -------
    float
        ``inf`` if the reference is zero and the estimate is not, ``nan`` if either
        holds a non-finite value.
    """
    estimate = _as_float64(estimate)
    reference = _as_float64(reference)
    if estimate.shape != reference.shape:
        raise ValueError(f"shapes differ: {estimate.shape} vs {reference.shape}")
    if not (np.isfinite(estimate).all() and np.isfinite(reference).all()):
        return float("nan")
    difference = float(np.linalg.norm(estimate - reference))
    scale = float(np.linalg.norm(reference))
    if scale == 0.0:
        return 0.0 if difference == 0.0 else float("inf")
    return difference / scale


def _as_float64(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)
