"""Object masks beside an ImageFolder: where they are, checking them, reading them as the model saw the image.

A masks folder mirrors the data folder: the mask of ``DATA/<class>/<name>.<ext>`` is
``MASKS/<class>/<name>.png`` (sub-folders kept), a single-channel or RGB(A) image of
the same size as its image whose nonzero pixels are the object. :func:`load_mask`
applies the image's own resize and centre crop (:func:`precompute.data.resize_center_crop`),
so a mask lines up with the stored heatmap pixel for pixel.

Nothing here imports torch: ``run --masks`` checks every mask before the model loads.
"""
from __future__ import annotations

import io
import os
from pathlib import Path, PurePosixPath
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

from .data import resize_center_crop
from .errors import ConfigError

__all__ = ["mask_path", "check_masks", "load_mask", "load_masks", "pack_masks", "unpack_masks",
           "outline_thumbnail"]

#: Outline colour of the gallery's mask overlay (RGBA).
OUTLINE_RGBA = (0, 229, 255, 255)


def mask_path(masks_root: os.PathLike, image_path: str) -> Path:
    """The mask file of the image at ``image_path`` (relative to the data root, ``/``-separated)."""
    return Path(masks_root) / PurePosixPath(image_path).with_suffix(".png")


def _size(path: Path) -> Optional[tuple]:
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def check_masks(masks_root: os.PathLike, data_root: os.PathLike, paths: Sequence[str],
                on_progress: Optional[Callable[[int, int], None]] = None) -> None:
    """Check that every image of ``paths`` has a readable mask of its own size.

    Only the file headers are read (a few tens of microseconds a file).

    Parameters
    ----------
    masks_root, data_root : path
    paths : sequence of str
        Image paths relative to ``data_root``.
    on_progress : callable, optional
        ``on_progress(done, total)`` every 256 files and at the end.

    Raises
    ------
    ConfigError
        One line: the first missing, unreadable or wrongly sized mask, and how many
        masks are missing in all.
    """
    masks_root, data_root = Path(masks_root), Path(data_root)
    if not masks_root.is_dir():
        raise ConfigError(f"--masks {masks_root}: not a folder")
    missing = [path for path in paths if not mask_path(masks_root, path).is_file()]
    if missing:
        raise ConfigError(f"--masks {masks_root}: no mask for {missing[0]} (expected "
                          f"{mask_path(masks_root, missing[0])}); {len(missing)} of {len(paths)} images have none")
    for done, path in enumerate(paths, start=1):
        mask_size = _size(mask_path(masks_root, path))
        if mask_size is None:
            raise ConfigError(f"--masks: {mask_path(masks_root, path)} is not a readable image")
        image_size = _size(data_root / path)
        if image_size is not None and mask_size != image_size:
            raise ConfigError(f"--masks: {mask_path(masks_root, path)} is {mask_size[0]}x{mask_size[1]} pixels but "
                              f"its image {path} is {image_size[0]}x{image_size[1]}; a mask must match its image")
        if on_progress is not None and (done % 256 == 0 or done == len(paths)):
            on_progress(done, len(paths))


def load_mask(masks_root: os.PathLike, image_path: str, size: Optional[int]) -> np.ndarray:
    """The object mask of one image as the model saw the image: bool (S, S), True = object.

    Parameters
    ----------
    masks_root : path
    image_path : str
        Relative to the data root.
    size : int or None
        The run's image size (resize + centre crop); None keeps the mask as it is.
    """
    path = mask_path(masks_root, image_path)
    try:
        with Image.open(path) as image:
            image.load()
            values = np.asarray(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise ConfigError(f"--masks: cannot read {path} ({error})") from None
    if values.ndim == 3:
        values = values.max(axis=2)
    binary = Image.fromarray(np.where(values > 0, 255, 0).astype(np.uint8), mode="L")
    return np.asarray(resize_center_crop(binary, size)) >= 128


def load_masks(masks_root: os.PathLike, image_paths: Sequence[str], size: Optional[int]) -> np.ndarray:
    """:func:`load_mask` of each path, stacked: bool (n, S, S)."""
    return np.stack([load_mask(masks_root, path, size) for path in image_paths])


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """Bool masks (n, H, W) as bits, uint8 (n, ceil(H*W / 8)): an eighth of a byte a pixel."""
    masks = np.asarray(masks, dtype=bool)
    return np.packbits(masks.reshape(len(masks), -1), axis=1)


def unpack_masks(packed: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`pack_masks`: bool (n, H, W) for ``shape = (H, W)``."""
    height, width = int(shape[0]), int(shape[1])
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=1, count=height * width)
    return bits.reshape(len(packed), height, width).astype(bool)


def outline_thumbnail(mask: np.ndarray, size: int) -> bytes:
    """Lossless WebP of the mask's outline at thumbnail size: transparent, with a 1-pixel coloured contour.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
    size : int
        Longer side of the thumbnail (the run's thumbnail size).
    """
    height, width = mask.shape
    scale = size / max(height, width)
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255, mode="L").resize(shape, Image.Resampling.NEAREST)) > 0
    padded = np.pad(small, 1, mode="edge")
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    edge = small & ~interior
    rgba = np.zeros(small.shape + (4,), dtype=np.uint8)
    rgba[edge] = OUTLINE_RGBA
    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="WEBP", lossless=True)
    return buffer.getvalue()
