"""Pooling and the distance stage: exact k nearest neighbours of the flattened heatmaps.

A distance is one class in :data:`DISTANCES`, constructed with ``n_neighbors`` and
fitted on an ``(n, d)`` array of any float dtype (a float16 memory map is fine); it
sets ``indices_`` and ``distances_``. ``"euclidean"`` is the paper's choice and
``"cosine"`` its scale-invariant variant. Distances between whole maps that are not a
norm of their difference (Wasserstein, Gromov-Wasserstein) register here too, as
subclasses of :class:`KNNDistance` that override ``fit``.
"""
from __future__ import annotations

import threading
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import ConfigError
from ..registry import Registry
from ..threads import usable_cores
from .base import Stage

__all__ = ["DISTANCES", "CHUNK_BYTES", "sum_pool", "KNNDistance", "EuclideanKNN", "CosineKNN"]

DISTANCES: Registry = Registry("distance")

CHUNK_BYTES = 32 << 20
"""Size of one float32 working chunk of heatmaps; bounds the distance stage's extra memory."""


def _finite_float32(block: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy of ``block`` with NaN and +-inf replaced by 0."""
    out = np.array(block, dtype=np.float32, order="C")
    bad = ~np.isfinite(out)
    if bad.any():
        out[bad] = 0.0
    return out


def sum_pool(heatmaps: np.ndarray, grid: Optional[int]) -> np.ndarray:
    """Flatten heatmaps, optionally sum-pooled onto a ``grid`` x ``grid`` grid.

    Non-finite values count as 0. The maps are converted to float32 a few at a time, so
    a float16 memory map is never copied whole when pooling.

    Parameters
    ----------
    heatmaps : ndarray of shape (n, H, W)
    grid : int or None
        Output grid side; cells cover nearly equal pixel ranges when H or W is not a
        multiple of ``grid``. None flattens without pooling (a full float32 copy).

    Returns
    -------
    ndarray of float32, shape (n, grid*grid) or (n, H*W)
    """
    n, height, width = heatmaps.shape
    if grid is None:
        return _finite_float32(heatmaps).reshape(n, height * width)
    if grid > min(height, width):
        raise ConfigError(f"--pool {grid} is larger than the heatmaps ({height}x{width})")
    rows = np.linspace(0, height, grid + 1).round().astype(int)[:-1]
    cols = np.linspace(0, width, grid + 1).round().astype(int)[:-1]
    out = np.empty((n, grid * grid), dtype=np.float32)
    step = max(1, CHUNK_BYTES // max(1, 4 * height * width))
    for start in range(0, n, step):
        block = _finite_float32(heatmaps[start:start + step])
        pooled = np.add.reduceat(np.add.reduceat(block, rows, axis=1), cols, axis=2)
        out[start:start + step] = pooled.reshape(len(block), grid * grid)
    return out


class KNNDistance(Stage):
    """Exact k nearest neighbours from the Gram matrix, built by BLAS products of chunks.

    The heatmaps are read ``CHUNK_BYTES`` of float32 at a time (a slab of feature
    columns, converted from any float dtype, non-finite values set to 0), and each slab
    adds its ``X_c X_c^T`` to the Gram matrix (BLAS ``syrk``): one pass over the data,
    without a float32 copy of the whole class. Slabs are handed to ``workers`` threads
    with single-threaded BLAS as the threads come free, so a core that another process
    slows down simply takes fewer slabs (BLAS's own threads split the work evenly and
    wait for the slowest); the products are added in slab order, so the result does not
    depend on the timing. Squared distances follow as ``|x_i|^2 + |x_j|^2 - 2 x_i.x_j``.
    Classes whose ``n x n`` blocks would exceed ``max_block_bytes`` are done in row
    blocks (each re-reads the data).

    Parameters
    ----------
    n_neighbors : int
        k; ``fit`` needs more samples than this.
    workers : int or None
        Threads; None: the usable cores, at most 4.
    block_rows : int or None
        Rows of one distance block; None: as many as ``max_block_bytes`` allows.
    max_block_bytes : int

    Attributes
    ----------
    indices_ : ndarray of int32, shape (n, k)
        Neighbours of each sample, nearest first (ties by index), self excluded.
    distances_ : ndarray of float32, shape (n, k)
    """

    imports = ("threadpoolctl",)

    def __init__(self, n_neighbors: int = 10, workers: Optional[int] = None, block_rows: Optional[int] = None,
                 max_block_bytes: int = 256 << 20):
        self.n_neighbors = n_neighbors
        self.workers = workers
        self.block_rows = block_rows
        self.max_block_bytes = max_block_bytes

    def _row_scale(self, sq: np.ndarray) -> Optional[np.ndarray]:
        """Per-sample factor applied to the rows before distances (None: no scaling)."""
        return None

    def _gram(self, X: np.ndarray, start: int, stop: int, with_norms: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Rows ``start:stop`` of ``X X^T`` (float32) and, if asked, every row's squared norm (float64).

        Threads take slabs as they come free, but the slabs' products are added in slab
        order, so the result is bit-identical to a serial pass whatever the timing.
        """
        from threadpoolctl import threadpool_limits

        n, d = X.shape
        cols = max(1, CHUNK_BYTES // (4 * n))
        n_slabs = -(-d // cols)
        whole = stop - start == n
        gram = np.zeros((stop - start, n), dtype=np.float32)
        sq = np.zeros(n, dtype=np.float64)
        workers = max(1, min(self.workers or min(4, usable_cores()), n_slabs))
        window = 2 * workers  # products waiting to be added, at most
        state = {"next": 0, "added": 0}
        pending: Dict[int, Tuple[np.ndarray, Optional[np.ndarray]]] = {}
        errors: List[BaseException] = []
        turn = threading.Condition()

        def work() -> None:
            while True:
                with turn:
                    while state["next"] < n_slabs and state["next"] - state["added"] >= window and not errors:
                        turn.wait()
                    if state["next"] >= n_slabs or errors:
                        return
                    index = state["next"]
                    state["next"] += 1
                try:
                    slab = _finite_float32(X[:, index * cols:(index + 1) * cols])
                    norms = np.einsum("ij,ij->i", slab, slab, dtype=np.float64) if with_norms else None
                    product = slab @ slab.T if whole else slab[start:stop] @ slab.T  # A @ A.T: BLAS syrk
                except BaseException as error:  # re-raised in the calling thread
                    with turn:
                        errors.append(error)
                        turn.notify_all()
                    return
                with turn:
                    pending[index] = (product, norms)
                    while state["added"] in pending:
                        done, done_norms = pending.pop(state["added"])
                        np.add(gram, done, out=gram)
                        if done_norms is not None:
                            np.add(sq, done_norms, out=sq)
                        state["added"] += 1
                    turn.notify_all()

        with threadpool_limits(limits=1):
            threads = [threading.Thread(target=work, daemon=True) for _ in range(workers - 1)]
            for thread in threads:
                thread.start()
            work()
            for thread in threads:
                thread.join()
        if errors:
            raise errors[0]
        return gram, (sq if with_norms else None)

    def fit(self, X: np.ndarray) -> "KNNDistance":
        """X : array-like of shape (n, d), any float dtype (a float16 memory map is fine).

        Requires ``n > n_neighbors``.
        """
        n, d = X.shape
        k = self.n_neighbors
        if n <= k:
            raise ConfigError(f"{n} samples cannot have {k} neighbours each")
        block_rows = self.block_rows or max(1, self.max_block_bytes // (4 * n))
        block_rows = min(n, block_rows)
        sq = None
        scale = None
        sq32 = None
        indices = np.empty((n, k), dtype=np.int32)
        sq_dist = np.empty((n, k), dtype=np.float32)
        for start in range(0, n, block_rows):
            stop = min(n, start + block_rows)
            block, norms = self._gram(X, start, stop, with_norms=sq is None)
            if sq is None:
                sq = norms
                scale = self._row_scale(sq)
                sq32 = (sq if scale is None else sq * scale**2).astype(np.float32)
            block *= -2.0
            if scale is not None:
                block *= scale[start:stop, None].astype(np.float32)
                block *= scale[None, :].astype(np.float32)
            block += sq32[start:stop, None]
            block += sq32[None, :]
            np.maximum(block, 0.0, out=block)
            block[np.arange(stop - start), np.arange(start, stop)] = np.inf
            part = np.argpartition(block, k - 1, axis=1)[:, :k]
            part_d = np.take_along_axis(block, part, axis=1)
            # nearest first; equal distances by index, so the order is deterministic
            order = np.lexsort((part, part_d), axis=1)
            indices[start:stop] = np.take_along_axis(part, order, axis=1)
            sq_dist[start:stop] = np.take_along_axis(part_d, order, axis=1)
        self.indices_ = indices
        self.distances_ = np.sqrt(sq_dist)
        return self


@DISTANCES.register("euclidean")
class EuclideanKNN(KNNDistance):
    """Euclidean kNN on the flattened heatmaps (the paper's choice)."""


@DISTANCES.register("cosine")
class CosineKNN(KNNDistance):
    """kNN by cosine distance: Euclidean on unit-normalised heatmaps (scale-invariant).

    All-zero heatmaps stay zero (distance 1 to every unit vector).
    """

    def _row_scale(self, sq: np.ndarray) -> np.ndarray:
        norms = np.sqrt(sq)
        return 1.0 / np.where(norms > 0, norms, 1.0)
