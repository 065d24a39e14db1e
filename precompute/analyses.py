"""Several analyses of each class: its stored heatmaps under other distances.

``python -m precompute analyse RUN --distance gw`` (and ``run --distance euclidean,gw``,
which runs the first and then adds the others) adds an analysis to the finished classes
of a run from their stored heatmaps, without attributing again. An analysis is named by
its distance (:data:`precompute.stages.DISTANCES`: ``euclidean``, ``cosine``,
``wasserstein``, ``gw``). The run's primary analysis, the one its ``run`` made, stays in
``analysis.npz`` and at the top of ``summary.json``; each other one is written beside it
as ``analyses/<name>.npz`` (:data:`~precompute.store.layout.ANALYSIS_RESULT_ARRAYS`) with
its summary keys in ``summary.json``'s ``analyses`` (:mod:`precompute.store`). Everything
downstream (evaluate, the app's leaderboard, explorer, prototype, export and lab) reads an
analysis through :meth:`precompute.store.RunStore.arrays` and
:meth:`~precompute.store.RunStore.summary` with ``analysis=NAME``.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, List, Optional, Sequence

import numpy as np

from .analysis import AnalysisConfig, analyse_heatmaps
from .errors import ConfigError
from .progress import progress_bar
from .store import RunStore, RunWriter

__all__ = ["parse_distances", "analysis_config", "add_analysis"]

_UNSET = object()


def parse_distances(text: str) -> List[str]:
    """Distance names from ``--distance a,b`` (registered, no repeats), in order; the first is the primary.

    Raises
    ------
    ConfigError
        An empty list, an unknown name (with the known ones) or a repeated one.
    """
    from .stages import DISTANCES

    names = [part.strip() for part in str(text).split(",") if part.strip()]
    if not names:
        raise ConfigError("--distance needs at least one name, e.g. euclidean or euclidean,gw")
    for name in names:
        DISTANCES.get(name)  # a ConfigError naming the known distances
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"--distance names {', '.join(repeated)} twice")
    return names


def analysis_config(store: RunStore, distance: str, pool=_UNSET) -> AnalysisConfig:
    """The run's stored analysis configuration with another distance (and, if given, another pool)."""
    config = AnalysisConfig.from_dict(store.manifest_record().analysis or {})
    changes = {"distance": distance}
    if pool is not _UNSET:
        changes["pool"] = pool
    return dataclasses.replace(config, **changes).validate()


def add_analysis(run_dir: os.PathLike, distance: str, *, classes: Optional[Sequence[str]] = None, pool=_UNSET,
                 force: bool = False, progress: bool = True,
                 log: Callable[[str], None] = print) -> List[str]:
    """Analyse the stored heatmaps of a run's finished classes under ``distance`` and store the result.

    Parameters
    ----------
    run_dir : path
        A run with finished classes.
    distance : str
        A name in :data:`precompute.stages.DISTANCES`; the analysis is stored under this name.
        The run's primary distance is refused (it is stored already).
    classes : sequence of str, optional
        Class names or ids; default every finished class.
    pool : int or None, optional
        Sum-pool the heatmaps to this grid first; default the run's ``--pool``.
    force : bool
        Recompute classes that have this analysis already (else they are skipped, so an
        interrupted ``analyse`` resumes).
    progress : bool
        A progress bar over the classes (and the distance stage's own bar where it has one).
    log : callable
        Receives one line per class.

    Returns
    -------
    list of str
        The ids of the classes analysed now.

    Raises
    ------
    ConfigError
        Unknown distance or class, the primary distance, or a run without finished classes.
    """
    store = RunStore(run_dir)
    config = analysis_config(store, distance, pool)
    primary = store.primary_analysis
    if distance == primary:
        raise ConfigError(f"{distance!r} is this run's primary analysis already (analysis.npz); "
                          f"name another distance")
    ids = store.finished_ids()
    if not ids:
        raise ConfigError(f"{store.root}: no finished classes to analyse")
    if classes:
        ids = [cid if store.has_class(cid) else store.id_for_name(cid) for cid in classes]
    todo = [cid for cid in ids if force or distance not in store.analysis_names(cid)]
    writer = RunWriter(store.root)
    done: List[str] = []
    bar = progress_bar(total=len(todo), desc=f"analyse {distance}", unit="class", disable=not progress)
    try:
        for cid in todo:
            name = store.summary(cid)["name"]
            started = time.perf_counter()
            heatmaps = np.asarray(store.heatmaps(cid), dtype=np.float32)
            result = analyse_heatmaps(heatmaps, config, progress=progress)
            extra = _validation_summary(store.arrays(cid), result)
            summary = {**result.summary, **extra, "eigenvalues": [float(v) for v in result.arrays["eigenvalues"]],
                       "config": config.to_dict(),
                       "seconds": {"analysis": time.perf_counter() - started, **result.timings}}
            writer.write_class_analysis(cid, distance, result.arrays, summary)
            done.append(cid)
            tau = result.summary.get("tau")
            log(f"{name}: {distance} analysis, tau {'n/a' if tau is None else f'{tau:.3f}'}, "
                f"default {result.summary.get('default_clustering')}, {time.perf_counter() - started:.1f} s")
            bar.update(1)
    finally:
        bar.close()
    return done


def _validation_summary(stored: dict, result) -> dict:
    """The validation figures (``run --val-data``) of a new analysis, where the class has a split."""
    from .validation import validation_figures

    if "split" not in stored:
        return {}
    return validation_figures(stored["split"], {**result.arrays, "true_rank": stored["true_rank"]},
                              result.summary.get("default_clustering"), result.summary.get("fisher_dimensions"))
