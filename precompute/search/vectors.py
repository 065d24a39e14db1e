"""Heatmaps as search vectors: absolute relevance, sum-pooled to a grid, unit length.

**The sign.** Heatmaps are computed for each image's own label, so an artifact that is
evidence for its class of origin draws *negative* relevance in another class's image
(evidence against that class). A search for "the same artifact elsewhere" must find it
either way, so the vectors pool ``|R|``: where relevance lies, whatever its sign. The
cost: a region the model weighs heavily for and one it weighs heavily against look alike.

**The grid.** ``GRID`` x ``GRID`` cells (default 8, so 64 dimensions), sum-pooled with
area weights for any map size, then scaled to unit length, so the inner product is the
cosine similarity and images of any size and total relevance compare. 64 float32 values
a sample keep ImageNet's 1.28 million vectors at 330 MB.
"""
from __future__ import annotations

import numpy as np

__all__ = ["GRID", "relevance_vectors", "pool_matrix", "load_heatmap"]

GRID = 8


def pool_matrix(size: int, grid: int) -> np.ndarray:
    """(grid, size) area weights: row ``g`` sums the pixels that fall in cell ``g`` (fractionally at edges)."""
    edges = np.linspace(0, size, grid + 1)
    weights = np.zeros((grid, size), np.float32)
    for g in range(grid):
        lo, hi = edges[g], edges[g + 1]
        for p in range(int(np.floor(lo)), int(np.ceil(hi))):
            weights[g, p] = min(hi, p + 1) - max(lo, p)
    return weights


def relevance_vectors(heatmaps: np.ndarray, grid: int = GRID) -> np.ndarray:
    """Search vectors of heatmaps.

    Parameters
    ----------
    heatmaps : ndarray (n, H, W)
        Relevance maps (any float dtype); non-finite values count as 0.
    grid : int
        Cells per side.

    Returns
    -------
    ndarray of float32, shape (n, grid * grid)
        Unit-length vectors (all-zero maps stay zero).
    """
    maps = np.abs(np.nan_to_num(np.asarray(heatmaps, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0))
    if maps.ndim != 3:
        raise ValueError(f"heatmaps must have shape (n, H, W), got {maps.shape}")
    rows, cols = pool_matrix(maps.shape[1], grid), pool_matrix(maps.shape[2], grid)
    pooled = np.einsum("gh,nhw,kw->ngk", rows, maps, cols).reshape(len(maps), grid * grid)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return np.divide(pooled, norms, out=np.zeros_like(pooled), where=norms > 0).astype(np.float32)


def load_heatmap(payload: bytes, *, name: str = "heatmap", max_side: int = 4096) -> np.ndarray:
    """A user's heatmap from the bytes of a ``.npy`` file: one finite 2-D array (H, W), or (1, H, W).

    Raises
    ------
    ConfigError
        Not a ``.npy`` file (pickles are never loaded), another shape, too large, or not finite.
    """
    import io

    from ..errors import ConfigError

    try:
        array = np.load(io.BytesIO(payload), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ConfigError(f"{name}: not a .npy array ({error})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise ConfigError(f"{name}: expected a numeric array, got {getattr(array, 'dtype', type(array))}")
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or min(array.shape) < 1 or max(array.shape) > max_side:
        raise ConfigError(f"{name}: expected a heatmap of shape (H, W) up to {max_side} a side, got {array.shape}")
    if not np.isfinite(array).all():
        raise ConfigError(f"{name}: the heatmap has NaN or infinite values")
    return array.astype(np.float32)
