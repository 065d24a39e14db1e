"""Thumbnails of images and heatmaps, encoded for the web.

Heatmaps use zennit's ``coldnhot`` colour map, as in the paper's figures: positive
relevance red to yellow, negative blue to cyan, zero black. Each map is scaled
symmetrically by its own largest absolute value, so 0 is always black.
"""
from __future__ import annotations

import io
from functools import lru_cache
from typing import Optional

import numpy as np
from PIL import Image

__all__ = ["THUMB_FORMAT", "THUMB_MIME", "heatmap_rgb", "encode_rgb", "image_thumbnail", "heatmap_thumbnail"]

THUMB_FORMAT = "WEBP"
THUMB_MIME = "image/webp"


@lru_cache(maxsize=4)
def _palette(cmap: str) -> np.ndarray:
    from zennit.image import palette

    return np.asarray(palette(cmap), dtype=np.uint8).reshape(256, 3)


def heatmap_rgb(heatmap: np.ndarray, *, cmap: str = "coldnhot", vmax: Optional[float] = None) -> np.ndarray:
    """Colour a relevance map.

    Parameters
    ----------
    heatmap : ndarray of shape (H, W)
    cmap : str
        A zennit colour-map name.
    vmax : float, optional
        Value shown at full intensity; default the map's largest absolute value.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
    """
    heatmap = np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    scale = float(np.abs(heatmap).max()) if vmax is None else float(vmax)
    if scale <= 0:
        scale = 1.0
    index = np.clip(np.rint(heatmap / scale * 127.5 + 127.5), 0, 255).astype(np.uint8)
    return _palette(cmap)[index]


def encode_rgb(rgb: np.ndarray, size: Optional[int] = None, *, quality: int = 85) -> bytes:
    """Encode an RGB array as WebP, downscaled so its longer side is ``size``.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
    size : int, optional
        Longer side of the output; never upscaled.
    """
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB")
    if size is not None and max(image.size) > size:
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format=THUMB_FORMAT, quality=quality, method=4)
    return buffer.getvalue()


def image_thumbnail(image: np.ndarray, size: int = 128) -> bytes:
    """WebP thumbnail of an input image, uint8 (H, W, 3)."""
    return encode_rgb(image, size)


def heatmap_thumbnail(heatmap: np.ndarray, size: int = 128) -> bytes:
    """WebP thumbnail of a relevance map (H, W), coloured with :func:`heatmap_rgb`."""
    return encode_rgb(heatmap_rgb(heatmap), size, quality=90)
