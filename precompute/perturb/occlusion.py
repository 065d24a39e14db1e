"""Occlusion maps: the drop of the true class's probability when each cell of a grid is covered."""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch

from .summary import cell_bounds

__all__ = ["occlusion_maps"]


def occlusion_maps(predict_proba: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                   targets: Sequence[int], grid: int, *, batch_size: int = 256,
                   on_image: Optional[Callable[[int], None]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """For each image, ``p(target | image) - p(target | image with cell (i, j) filled)`` over a ``grid`` x ``grid`` grid.

    A cell is filled with the image's mean colour (:data:`precompute.perturb.OCCLUSION_FILL`).
    Each image costs ``grid ** 2 + 1`` forward passes, sent in batches of ``batch_size``.

    Parameters
    ----------
    predict_proba : callable
        Images (B, 3, H, W) in [0, 1] -> softmax probabilities (B, C)
        (:meth:`precompute.lab.ModelSession.predict_proba`).
    images : Tensor, shape (n, 3, H, W)
        In [0, 1].
    targets : sequence of int, length n
        The class whose probability is watched (the true label).
    grid : int
        Cells per side, at least 2 and at most the image's smaller side.
    batch_size : int
    on_image : callable, optional
        Called with the number of images finished, after each image.

    Returns
    -------
    maps : ndarray of float32, shape (n, grid, grid)
        Positive where covering the cell lowers the probability.
    base : ndarray of float32, shape (n,)
        ``p(target | image)``.
    """
    n, _, height, width = images.shape
    rows, cols = cell_bounds(height, grid), cell_bounds(width, grid)
    cells = [(y, x) for y in rows for x in cols]
    per_batch = max(1, batch_size // (len(cells) + 1))
    maps = np.zeros((n, grid, grid), dtype=np.float32)
    base = np.zeros(n, dtype=np.float32)
    with torch.no_grad():
        for start in range(0, n, per_batch):
            chunk = images[start:start + per_batch]
            variants = chunk.unsqueeze(1).repeat(1, len(cells) + 1, 1, 1, 1)  # (b, cells + 1, 3, H, W)
            fill = chunk.mean(dim=(2, 3))[:, :, None, None]
            for c, ((y0, y1), (x0, x1)) in enumerate(cells, start=1):
                variants[:, c, :, y0:y1, x0:x1] = fill
            probs = predict_proba(variants.flatten(0, 1)).reshape(len(chunk), len(cells) + 1, -1)
            for b in range(len(chunk)):
                p = probs[b, :, int(targets[start + b])].float().cpu().numpy()
                base[start + b] = p[0]
                maps[start + b] = (p[0] - p[1:]).reshape(grid, grid)
            if on_image is not None:
                on_image(len(chunk))
    return maps, base
