"""Distances that see a heatmap's shape, not its place: Wasserstein and Gromov-Wasserstein.

Section 2.2 of Anders et al. (Figures 3 and 5): Euclidean SpRAy groups "relevance in
the bottom-left corner"; these distances group "this shape, wherever it is".

Both read a heatmap as a **relevance cloud** (:mod:`precompute.stages.clouds`): its
largest cells until 99 % of the positive relevance, on a grid of at most 16 x 16 cells
(at most 24 points for GW, 64 for Wasserstein), as points weighted by their relevance.

``"wasserstein"`` (:class:`WassersteinKNN`)
    Exact optimal transport (POT's network simplex, ``ot.emd2``) between two clouds with
    the squared Euclidean ground cost; the distance is W2, the square root of the cost.
    Robust to small shifts, not to rotation.
``"gw"`` (:class:`GromovWassersteinKNN`)
    Gromov-Wasserstein (POT's ``ot.gromov.gromov_wasserstein2``, conditional gradient,
    square loss) between the clouds' intra-cloud Euclidean distance matrices, each
    divided by its weighted mean distance: invariant to translation, rotation,
    mirroring and scale. The distance is the square root of the GW discrepancy.
    ``backend="batch"`` uses POT's entropic batched solver (``ot.batch``) on torch
    tensors, on the GPU when ``device="cuda"``.

**Candidate pairs** (:mod:`precompute.stages.candidates`). All pairs cost ``n(n-1)/2``
solves (844,350 for 1,300 maps). The distance is computed only on candidate pairs: each
sample's ``candidates`` nearest neighbours under a cheap descriptor of the same
invariance (:func:`~precompute.stages.clouds.shape_descriptors` for GW,
:func:`~precompute.stages.clouds.mass_descriptors` for W), its ``euclidean_candidates``
Euclidean neighbours on the pooled maps and ``random_candidates`` random partners, then
one round of neighbour descent (``refine``). Each unordered pair is solved once (so the
distances are symmetric) and the kNN graph is built from them; classes small enough
(``n - 1 <= candidates + euclidean_candidates + random_candidates``) get all pairs.
``benchmarks/transport.py`` measures how many true neighbours the candidates recover and
the cost per class; docs/distances.md has every choice.
"""
from __future__ import annotations

import contextlib
import contextvars
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np

from ..errors import ConfigError
from ..threads import usable_cores
from .candidates import all_pairs, candidate_pairs, euclidean_neighbours, knn_from_pairs, neighbours_of_neighbours
from .clouds import RelevanceClouds, grid_maps, intra_distances, mass_descriptors, relevance_clouds, shape_descriptors
from .distance import DISTANCES, KNNDistance

__all__ = ["SERIAL_PAIRS", "pair_distances", "gw_batch_distances", "TransportKNN", "WassersteinKNN",
           "GromovWassersteinKNN", "process_limit", "default_workers"]

SERIAL_PAIRS = 1500
"""Fewer pairs than this are solved in the calling process (a process pool costs more)."""

_SHARED: dict = {}


def _share(clouds: RelevanceClouds, kind: str) -> None:
    _SHARED["clouds"] = clouds
    _SHARED["kind"] = kind
    _SHARED["intra"] = {}


def _intra(i: int) -> np.ndarray:
    cache = _SHARED["intra"]
    if i not in cache:
        cache[i] = intra_distances(*_SHARED["clouds"].cloud(i))
    return cache[i]


def _solve_pairs(pairs: np.ndarray) -> np.ndarray:
    """Distances of ``pairs`` (shape (p, 2)) under the shared clouds and kind."""
    import ot
    from threadpoolctl import threadpool_limits

    clouds: RelevanceClouds = _SHARED["clouds"]
    kind = _SHARED["kind"]
    out = np.empty(len(pairs))
    with threadpool_limits(limits=1):
        for row, (i, j) in enumerate(pairs):
            (xi, pi), (xj, pj) = clouds.cloud(int(i)), clouds.cloud(int(j))
            if kind == "wasserstein":
                cost = ot.emd2(pi, pj, ot.dist(xi, xj, metric="sqeuclidean"))
            else:
                cost = ot.gromov.gromov_wasserstein2(_intra(int(i)), _intra(int(j)), pi, pj,
                                                     loss_fun="square_loss")
            out[row] = np.sqrt(max(float(cost), 0.0))
    return out


def _worker_init(clouds: RelevanceClouds, kind: str, parent_pid: int) -> None:
    from ..workers import die_with_parent

    die_with_parent(parent_pid)  # a killed run leaves no solver processes behind
    _share(clouds, kind)


def pair_distances(clouds: RelevanceClouds, pairs: np.ndarray, kind: str, workers: int = 1,
                   on_progress: Optional[Callable[[int], None]] = None, chunk: int = 256) -> np.ndarray:
    """Exact W2 (``kind="wasserstein"``) or GW (``kind="gw"``) distance of each pair.

    Parameters
    ----------
    clouds : RelevanceClouds
    pairs : ndarray of int, shape (p, 2)
    kind : {"wasserstein", "gw"}
    workers : int
        Processes; 1 (or fewer than ``SERIAL_PAIRS`` pairs) solves in this process.
    on_progress : callable, optional
        Called with the number of pairs just finished.
    chunk : int
        Pairs per task handed to a worker.

    Returns
    -------
    ndarray of float64, shape (p,)
    """
    if kind not in ("wasserstein", "gw"):
        raise ConfigError(f"unknown transport distance {kind!r}")
    chunks = [pairs[start:start + chunk] for start in range(0, len(pairs), chunk)]
    results: List[np.ndarray] = []
    # a daemonic process (a pool's worker) cannot start processes of its own
    if workers <= 1 or len(pairs) < SERIAL_PAIRS or multiprocessing.current_process().daemon:
        _share(clouds, kind)
        try:
            for part in chunks:
                results.append(_solve_pairs(part))
                if on_progress:
                    on_progress(len(part))
        finally:
            _SHARED.clear()
    else:
        # fork: a script without a main guard works; the caller makes sure no thread holds
        # an import lock now (analyse_heatmaps joins its import thread first)
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                                 initargs=(clouds, kind, os.getpid())) as pool:
            for part, result in zip(chunks, pool.map(_solve_pairs, chunks)):
                results.append(result)
                if on_progress:
                    on_progress(len(part))
    return np.concatenate(results) if results else np.empty(0)


def gw_batch_distances(clouds: RelevanceClouds, pairs: np.ndarray, device: str = "cpu", batch: int = 4096,
                       reg: float = 0.005, on_progress: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """Entropic GW distances of many pairs at once: POT's batched solver on torch tensors.

    Every cloud is padded to the common point count with points of weight ``1e-9`` at its
    first point (the solver works in log space, so a weight cannot be 0), then
    renormalised; ``ot.batch.solve_gromov_batch`` solves ``batch`` pairs per call.

    Parameters
    ----------
    clouds : RelevanceClouds
    pairs : ndarray of int, shape (p, 2)
    device : str
        A torch device: ``"cuda"`` on a GPU machine.
    batch : int
    reg : float
        Entropic regularisation of the proximal steps.
    on_progress : callable, optional

    Returns
    -------
    ndarray of float64, shape (p,)
    """
    import ot
    import torch

    n, m = clouds.weights.shape
    coords = clouds.coords.copy()
    weights = clouds.weights.copy()
    for i in range(n):
        size = int(clouds.sizes[i])
        coords[i, size:] = coords[i, 0]
        weights[i, size:] = 1e-9
    weights /= weights.sum(axis=1, keepdims=True)
    intra = np.stack([intra_distances(coords[i], weights[i]) for i in range(n)])
    C = torch.as_tensor(intra, dtype=torch.float64, device=device)
    P = torch.as_tensor(weights, dtype=torch.float64, device=device)
    out = np.empty(len(pairs))
    for start in range(0, len(pairs), batch):
        part = torch.as_tensor(pairs[start:start + batch], device=device)
        result = ot.batch.solve_gromov_batch(C[part[:, 0]], C[part[:, 1]], reg=reg, a=P[part[:, 0]],
                                             b=P[part[:, 1]], max_iter=50, max_iter_inner=50, tol_inner=1e-4)
        out[start:start + len(part)] = np.sqrt(np.clip(result.value.detach().cpu().numpy(), 0.0, None))
        if on_progress:
            on_progress(len(part))
    return out


class TransportKNN(KNNDistance):
    """kNN under an optimal-transport distance between relevance clouds, on candidate pairs.

    Fitted with the maps' grid shape: ``fit(X, shape=(H, W))`` (the orchestrator passes
    it to every distance with ``spatial = True``).

    Parameters
    ----------
    n_neighbors : int
    max_points : int
        Cap on a cloud's points.
    candidates : int
        Neighbours under the cheap invariant descriptor that become candidate pairs
        (at least ``n_neighbors`` are used).
    euclidean_candidates : int
        Euclidean neighbours of the pooled maps that become candidate pairs.
    random_candidates : int
        Random partners of each sample.
    refine : int
        After the first solve, the pairs between each sample and the ``refine`` nearest
        neighbours of its ``refine`` nearest neighbours are solved too (one round of
        neighbour descent: a neighbour's neighbour is likely a neighbour); 0 skips it.
    workers : int or None
        Processes solving pairs; None: the usable cores, at most 4.
    progress : bool
        A progress bar over the pairs.
    random_state : int

    Attributes
    ----------
    indices_ : ndarray of int32, shape (n, k)
    distances_ : ndarray of float32, shape (n, k)
    pairs_ : ndarray of int64, shape (p, 2)
        The candidate pairs solved.
    pair_distances_ : ndarray of float64, shape (p,)
    clouds_ : RelevanceClouds
    """

    spatial = True
    imports = ("ot",)
    kind = ""
    default_points = 32

    def __init__(self, n_neighbors: int = 10, max_points: Optional[int] = None, candidates: int = 20,
                 euclidean_candidates: int = 5, random_candidates: int = 5, refine: int = 5,
                 workers: Optional[int] = None, progress: bool = False, random_state: int = 0):
        self.n_neighbors = n_neighbors
        self.max_points = max_points
        self.candidates = candidates
        self.euclidean_candidates = euclidean_candidates
        self.random_candidates = random_candidates
        self.refine = refine
        self.workers = workers
        self.progress = progress
        self.random_state = random_state

    def _descriptors(self, clouds: RelevanceClouds, maps: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _solve(self, clouds: RelevanceClouds, pairs: np.ndarray, on_progress) -> np.ndarray:
        workers = self.workers or default_workers()
        return pair_distances(clouds, pairs, self.kind, workers=workers, on_progress=on_progress)

    def candidate_pairs(self, maps: np.ndarray, clouds: RelevanceClouds) -> np.ndarray:
        """The pairs to solve for maps of shape (n, h, w) and their clouds (all pairs when few)."""
        n = len(maps)
        k = self.n_neighbors
        per_sample = max(self.candidates, k) + self.euclidean_candidates + self.random_candidates
        if n - 1 <= per_sample:
            return all_pairs(n)
        lists = [euclidean_neighbours(self._descriptors(clouds, maps), max(self.candidates, k))]
        if self.euclidean_candidates > 0:
            lists.append(euclidean_neighbours(maps.reshape(n, -1), self.euclidean_candidates))
        return candidate_pairs(lists, n, self.random_candidates, seed=self.random_state)

    def fit(self, X: np.ndarray, shape: Optional[Tuple[int, int]] = None) -> "TransportKNN":
        """X : array of shape (n, H*W), any float dtype; shape : (H, W), the maps' grid."""
        from ..progress import progress_bar

        n = len(X)
        k = self.n_neighbors
        if n <= k:
            raise ConfigError(f"{n} samples cannot have {k} neighbours each")
        if shape is None:
            side = int(round(np.sqrt(X.shape[1])))
            if side * side != X.shape[1]:
                raise ConfigError(f"the {self.kind} distance needs the maps' grid shape; {X.shape[1]} values "
                                  "are not a square")
            shape = (side, side)
        maps = grid_maps(X, shape)
        clouds = relevance_clouds(maps, self.max_points or self.default_points)
        pairs = self.candidate_pairs(maps, clouds)
        bar = progress_bar(total=len(pairs), desc=f"{self.kind} pairs", unit="pair", leave=False,
                           disable=not self.progress)
        try:
            values = self._solve(clouds, pairs, bar.update)
            indices, distances = knn_from_pairs(pairs, values, n, k)
            if self.refine > 0 and len(pairs) < n * (n - 1) // 2:
                # one round of neighbour descent: my near neighbours' near neighbours
                extra = neighbours_of_neighbours(indices, self.refine, solved=pairs, n=n)
                bar.total += len(extra)
                bar.refresh()
                pairs = np.concatenate([pairs, extra])
                values = np.concatenate([values, self._solve(clouds, extra, bar.update)])
                indices, distances = knn_from_pairs(pairs, values, n, k)
        finally:
            bar.close()
        self.indices_, self.distances_ = indices, distances
        self.pairs_ = pairs
        self.pair_distances_ = values
        self.clouds_ = clouds
        return self


@DISTANCES.register("wasserstein")
class WassersteinKNN(TransportKNN):
    """kNN by exact Wasserstein-2 distance between relevance clouds (robust to small shifts).

    Candidate pairs come from the mass-normalised, blurred maps (:func:`mass_descriptors`).
    Clouds keep up to 64 points by default (``ot.emd2`` on 64 x 64 points is about 0.1 ms).
    """

    kind = "wasserstein"
    default_points = 64

    def _descriptors(self, clouds: RelevanceClouds, maps: np.ndarray) -> np.ndarray:
        return mass_descriptors(maps)


@DISTANCES.register("gw")
class GromovWassersteinKNN(TransportKNN):
    """kNN by Gromov-Wasserstein distance between relevance clouds (invariant to pose and scale).

    Candidate pairs come from the invariant :func:`shape_descriptors`. Clouds keep up to
    24 points by default: the solve is about 1 ms a pair there, and on the demo model's
    heatmaps of its posed barcode, 24 points grouped it as well as 32 and better than 16
    (docs/distances.md has the measurements).

    Parameters
    ----------
    backend : {"cg", "batch"}
        ``"cg"``: POT's exact conditional gradient, one pair at a time on CPU processes;
        ``"batch"``: POT's entropic batched solver on torch tensors (:func:`gw_batch_distances`).
    device : str
        Torch device of the ``"batch"`` backend (``"cuda"`` on a GPU machine).
    """

    kind = "gw"
    default_points = 24

    def __init__(self, n_neighbors: int = 10, max_points: Optional[int] = None, candidates: int = 20,
                 euclidean_candidates: int = 5, random_candidates: int = 5, refine: int = 5,
                 workers: Optional[int] = None, progress: bool = False, random_state: int = 0, backend: str = "cg",
                 device: str = "cpu"):
        super().__init__(n_neighbors=n_neighbors, max_points=max_points, candidates=candidates,
                         euclidean_candidates=euclidean_candidates, random_candidates=random_candidates,
                         refine=refine, workers=workers, progress=progress, random_state=random_state)
        self.backend = backend
        self.device = device

    def _descriptors(self, clouds: RelevanceClouds, maps: np.ndarray) -> np.ndarray:
        return shape_descriptors(clouds)

    def _solve(self, clouds: RelevanceClouds, pairs: np.ndarray, on_progress) -> np.ndarray:
        if self.backend == "batch":
            return gw_batch_distances(clouds, pairs, device=self.device, on_progress=on_progress)
        if self.backend != "cg":
            raise ConfigError(f"unknown GW backend {self.backend!r}; use 'cg' or 'batch'")
        return super()._solve(clouds, pairs, on_progress)


_PROCESS_LIMIT: contextvars.ContextVar = contextvars.ContextVar("transport_process_limit", default=None)


@contextlib.contextmanager
def process_limit(processes: int) -> Iterator[None]:
    """Solve transport pairs with at most ``processes`` processes inside the body.

    For a caller that was given a CPU budget, such as a Ray task with ``num_cpus=1``
    (:mod:`precompute.pipeline.ray`), where a pool of one process a core would take the
    CPUs of the node's other tasks.
    """
    token = _PROCESS_LIMIT.set(max(1, int(processes)))
    try:
        yield
    finally:
        _PROCESS_LIMIT.reset(token)


def default_workers() -> int:
    """Processes the transport distances use by default: the usable cores, at most 4 (or the :func:`process_limit`)."""
    limit = _PROCESS_LIMIT.get()
    return min(4, usable_cores(), 4 if limit is None else limit)
