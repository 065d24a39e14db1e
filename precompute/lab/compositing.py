"""The artifact lab: paste a patch onto images and measure how the model reacts.

This is the "adding an artifact" test of Anders et al. (Section 3.2, Table 3): paste an
isolated artifact onto images of other classes and watch the probability and the rank
of the artifact's class of origin. A control patch with the same alpha mask but random
colours tells a reaction to the artifact's content from a reaction to any occlusion.
"""
from __future__ import annotations

import numbers
from typing import Callable, Dict, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError

__all__ = ["paste", "control_patch", "paste_effect"]

Position = Tuple[int, int]


def _check_tensor(tensor: torch.Tensor, name: str, channels: int, shape: str) -> None:
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != len(shape.split(",")) or tensor.shape[-3] != channels:
        got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise DataError(f"{name} must be a tensor of shape ({shape}), got {got}")
    if not tensor.is_floating_point():
        raise DataError(f"{name} must be a float tensor in [0, 1], got dtype {tensor.dtype}")


def _check_images(images: torch.Tensor) -> None:
    _check_tensor(images, "images", 3, "B, 3, H, W")


def _check_patch(patch_rgba: torch.Tensor) -> None:
    _check_tensor(patch_rgba, "patch", 4, "4, h, w")


def _is_number(value) -> bool:
    if isinstance(value, torch.Tensor):
        return value.ndim == 0
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _positions(position, batch: int) -> list:
    """Normalise ``(x, y)`` or a sequence of B ``(x, y)`` to a list of B integer pairs."""
    def is_pair(p) -> bool:
        try:
            return len(p) == 2 and all(_is_number(v) for v in p)
        except TypeError:
            return False

    if is_pair(position):
        pairs = [position] * batch
    else:
        try:
            pairs = list(position)
        except TypeError:
            pairs = []
        if len(pairs) != batch or not all(is_pair(p) for p in pairs):
            raise ConfigError(f"position must be (x, y) or a sequence of {batch} (x, y) pairs, got {position!r}")
    return [(int(round(float(x))), int(round(float(y)))) for x, y in pairs]


def _scaled(patch_rgba: torch.Tensor, scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Premultiplied colour (3, h', w') and alpha (1, h', w') of the patch at ``scale``."""
    alpha = patch_rgba[3:4]
    premultiplied = patch_rgba[:3] * alpha
    if scale != 1.0:
        h, w = patch_rgba.shape[1:]
        size = (max(1, int(round(h * scale))), max(1, int(round(w * scale))))
        stacked = torch.cat([premultiplied, alpha])[None]
        stacked = F.interpolate(stacked, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
        premultiplied, alpha = stacked[0, :3], stacked[0, 3:].clamp(0, 1)
        premultiplied = torch.minimum(premultiplied.clamp(min=0), alpha)
    return premultiplied, alpha


def paste(images: torch.Tensor, patch_rgba: torch.Tensor, position: Union[Position, Sequence[Position]], *,
          opacity: float = 1.0, scale: float = 1.0) -> torch.Tensor:
    """Alpha-composite an RGBA patch onto a batch of images.

    ``out = image * (1 - a) + rgb * a`` with ``a = alpha * opacity`` inside the pasted
    rectangle; pixels outside it are unchanged.

    Parameters
    ----------
    images : Tensor of shape (B, 3, H, W)
        Float images in [0, 1]; not modified.
    patch_rgba : Tensor of shape (4, h, w)
        Float RGBA patch in [0, 1] (straight, not premultiplied, alpha).
    position : (x, y) or sequence of B (x, y)
        Top-left corner of the patch in pixels, one for all images or one per image.
        May lie partly or wholly outside the image; the outside part is cropped.
    opacity : float
        Multiplies the patch alpha, in [0, 1].
    scale : float
        Resize factor for the patch (bilinear on premultiplied colour), > 0.

    Returns
    -------
    Tensor of shape (B, 3, H, W)
        A new tensor with the composite.
    """
    _check_images(images)
    _check_patch(patch_rgba)
    if not 0.0 <= float(opacity) <= 1.0:
        raise ConfigError(f"opacity must be in [0, 1], got {opacity!r}")
    if not float(scale) > 0.0:
        raise ConfigError(f"scale must be > 0, got {scale!r}")
    batch, _, height, width = images.shape
    pairs = _positions(position, batch)
    patch_rgba = patch_rgba.to(device=images.device, dtype=images.dtype)
    premultiplied, alpha = _scaled(patch_rgba, float(scale))
    premultiplied, alpha = premultiplied * opacity, alpha * opacity
    ph, pw = alpha.shape[1:]
    out = images.clone()
    for b, (x, y) in enumerate(pairs):
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + pw, width), min(y + ph, height)
        if x1 <= x0 or y1 <= y0:
            continue
        a = alpha[:, y0 - y:y1 - y, x0 - x:x1 - x]
        c = premultiplied[:, y0 - y:y1 - y, x0 - x:x1 - x]
        out[b, :, y0:y1, x0:x1] = out[b, :, y0:y1, x0:x1] * (1 - a) + c
    return out


def control_patch(patch_rgba: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The control for a patch: the same alpha mask filled with uniform random colours.

    Parameters
    ----------
    patch_rgba : Tensor of shape (4, h, w)
        Float RGBA patch in [0, 1].
    generator : torch.Generator
        Source of the random colours (on the CPU).

    Returns
    -------
    Tensor of shape (4, h, w)
        Channels 0-2 uniform in [0, 1) per pixel, channel 3 equal to the patch's alpha.
    """
    _check_patch(patch_rgba)
    rgb = torch.rand((3,) + tuple(patch_rgba.shape[1:]), generator=generator, dtype=patch_rgba.dtype)
    return torch.cat([rgb.to(patch_rgba.device), patch_rgba[3:4]])


def _rank(probs: torch.Tensor, cls: int) -> torch.Tensor:
    """1-based rank of class ``cls`` per row of ``probs`` (B, C), ties counted in its favour."""
    return 1 + (probs > probs[:, cls:cls + 1]).sum(dim=1)


def _effect(before: torch.Tensor, after: torch.Tensor, cls: int) -> Dict[str, float]:
    return {
        "mean_delta_prob": float((after[:, cls] - before[:, cls]).mean()),
        "mean_delta_rank": float((_rank(before, cls) - _rank(after, cls)).float().mean()),
        "flip_rate": float((after.argmax(dim=1) == cls).float().mean()),
    }


def paste_effect(predict_proba: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, origin_class: int,
                 patch_rgba: torch.Tensor, position: Union[Position, Sequence[Position]], *,
                 generator: torch.Generator, opacity: float = 1.0) -> Dict[str, object]:
    """How much pasting an artifact pulls images towards its class of origin.

    Parameters
    ----------
    predict_proba : callable
        Maps images of shape (B, 3, H, W) in [0, 1] to class probabilities of shape (B, C).
    images : Tensor of shape (B, 3, H, W)
        Images, usually of classes other than ``origin_class``.
    origin_class : int
        Index of the class the artifact was found in.
    patch_rgba : Tensor of shape (4, h, w)
        The artifact.
    position : (x, y) or sequence of B (x, y)
        Where to paste it, see :func:`paste`.
    generator : torch.Generator
        Source of the control patch's colours.
    opacity : float
        Patch opacity in [0, 1].

    Returns
    -------
    dict
        ``mean_delta_prob`` (mean change of the origin class's probability),
        ``mean_delta_rank`` (mean rank improvement of the origin class; > 0 means it moved
        towards rank 1), ``flip_rate`` (fraction predicted as ``origin_class`` after pasting),
        and ``control``: a dict with the same three keys for :func:`control_patch`.
    """
    _check_images(images)
    with torch.no_grad():
        before = predict_proba(images)
        if before.ndim != 2 or before.shape[0] != images.shape[0]:
            raise ConfigError(f"predict_proba must return shape (B, C), got {tuple(before.shape)}")
        if not 0 <= int(origin_class) < before.shape[1]:
            raise ConfigError(f"origin_class {origin_class} is not in [0, {before.shape[1]})")
        cls = int(origin_class)
        after = predict_proba(paste(images, patch_rgba, position, opacity=opacity))
        control = control_patch(patch_rgba, generator)
        after_control = predict_proba(paste(images, control, position, opacity=opacity))
    result: Dict[str, object] = dict(_effect(before, after, cls))
    result["control"] = _effect(before, after_control, cls)
    return result
