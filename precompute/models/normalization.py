"""Per-channel input normalisation, and the bounds of a normalised input (for box rules)."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from ..errors import ConfigError

__all__ = ["NORMALIZATIONS", "normalize", "input_bounds"]

#: name -> (per-channel mean, per-channel std), or None for no normalisation.
NORMALIZATIONS: Dict[str, Optional[Tuple[Tuple[float, ...], Tuple[float, ...]]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "none": None,
}


def _mean_std(name: str, channels: int, like: torch.Tensor) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    if name not in NORMALIZATIONS:
        raise ConfigError(f"unknown normalization {name!r}; known: {', '.join(sorted(NORMALIZATIONS))}")
    stats = NORMALIZATIONS[name]
    if stats is None:
        return None
    mean, std = stats
    if len(mean) != channels:
        raise ConfigError(
            f"normalization {name!r} is for {len(mean)}-channel images, but the images have {channels} channels"
        )
    shape = (1, channels, 1, 1)
    return (
        torch.tensor(mean, dtype=like.dtype, device=like.device).view(shape),
        torch.tensor(std, dtype=like.dtype, device=like.device).view(shape),
    )


def normalize(images: torch.Tensor, name: str) -> torch.Tensor:
    """Normalise images per channel.

    Parameters
    ----------
    images : torch.Tensor of shape (B, C, H, W)
        Float images in [0, 1].
    name : str
        A key of :data:`NORMALIZATIONS`.

    Returns
    -------
    torch.Tensor of shape (B, C, H, W)
        ``(images - mean) / std``, or ``images`` itself for ``"none"``.
    """
    if images.ndim != 4:
        raise ConfigError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    stats = _mean_std(name, images.shape[1], images)
    if stats is None:
        return images
    mean, std = stats
    return (images - mean) / std


def input_bounds(name: str, channels: int = 3) -> Tuple[torch.Tensor, torch.Tensor]:
    """Lowest and highest values of a normalised input, for box rules such as ZBox.

    Parameters
    ----------
    name : str
        A key of :data:`NORMALIZATIONS`.
    channels : int
        Number of image channels.

    Returns
    -------
    low, high : torch.Tensor of shape (1, C, 1, 1)
        ``normalize(0)`` and ``normalize(1)`` per channel (float32, CPU).
    """
    like = torch.empty(0)
    zeros = torch.zeros(1, channels, 1, 1)
    ones = torch.ones(1, channels, 1, 1)
    stats = _mean_std(name, channels, like)
    if stats is None:
        return zeros, ones
    mean, std = stats
    return (zeros - mean) / std, (ones - mean) / std
