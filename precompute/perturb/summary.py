"""Where an occlusion map's drop lies: each grid cell's cover by a reference region, and the off-region share."""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

__all__ = ["OCCLUSION_FILL", "cell_bounds", "cell_cover", "off_object_share"]

#: What an occluded cell is filled with: the image's own mean colour (per channel), so that
#: no new colour or edge is brought in beyond the cell's border.
OCCLUSION_FILL = "image mean colour"


def cell_bounds(size: int, grid: int) -> List[Tuple[int, int]]:
    """``[start, stop)`` pixel ranges of the ``grid`` cells along a side of ``size`` pixels.

    The cells tile the side: sizes differ by at most one pixel when ``grid`` does not
    divide ``size`` (an 8 x 8 grid on 224 pixels has 28-pixel cells).
    """
    edges = np.round(np.linspace(0, size, grid + 1)).astype(int)
    return [(int(edges[i]), int(edges[i + 1])) for i in range(grid)]


def cell_cover(regions: np.ndarray, grid: int) -> np.ndarray:
    """Fraction of each grid cell inside a region.

    Parameters
    ----------
    regions : ndarray of bool, shape (n, H, W)
    grid : int

    Returns
    -------
    ndarray of float32, shape (n, grid, grid)
    """
    regions = np.asarray(regions, dtype=np.float32)
    rows, cols = cell_bounds(regions.shape[1], grid), cell_bounds(regions.shape[2], grid)
    cover = np.zeros((len(regions), grid, grid), dtype=np.float32)
    for i, (y0, y1) in enumerate(rows):
        for j, (x0, x1) in enumerate(cols):
            cover[:, i, j] = regions[:, y0:y1, x0:x1].mean(axis=(1, 2))
    return cover


def off_object_share(maps: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """Share of each map's positive drop that lies outside the reference region.

    ``sum(max(drop, 0) * (1 - cover)) / sum(max(drop, 0))`` over the cells: 0 when only
    occluding the object lowers the true class's probability, 1 when only occluding the
    rest does.

    Parameters
    ----------
    maps : ndarray of float, shape (n, g, g)
        Drop of p(true label) per occluded cell.
    cover : ndarray of float, shape (n, g, g)
        :func:`cell_cover` of the reference region.

    Returns
    -------
    ndarray of float32, shape (n,)
        NaN where no occlusion lowers the probability.
    """
    drop = np.maximum(np.asarray(maps, dtype=np.float64), 0)
    total = drop.sum(axis=(1, 2))
    off = (drop * (1 - np.asarray(cover, dtype=np.float64))).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, off / np.where(total > 0, total, 1), np.nan)
    return share.astype(np.float32)
