"""The ``local`` engine: the whole pipeline in this process, class by class, into a run store.

:func:`run_local` streams the dataset once through a DataLoader whose batches never
mix classes. When the last batch of a class has been attributed, the class is
analysed (:mod:`precompute.analysis`), thumbnailed and written atomically
(:mod:`precompute.store`), and its heatmaps are released: at most one class's
heatmaps are held in memory. Finished classes are skipped when the same command
runs again, so a killed run resumes where it stopped.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Sequence

from ..progress import bar_safe, progress_bar, warnings_to
from ..store import RunWriter
from ..workers import attribution_threads
from .attribution import ClassBuffer, attribute_classes, build_attributor, class_loader, loader_workers
from .config import RunConfig
from .stages import (Job, finalise, finish_class, log_failures, prepare, readable_count, record_backend,
                     safe_report, write_class)

__all__ = ["run_local"]


def run_local(config: RunConfig, *, progress: bool = True, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run attribution and analysis in this process (GPU if there is one).

    Every line of ``log``, and every Python warning, is written above the progress
    bars (:func:`precompute.progress.bar_safe`), never into them. With ``progress``,
    the run says what it does from its first second (scanning, loading the model,
    the first batch).

    While it attributes, torch's intra-op thread pool is set to
    :func:`precompute.workers.attribution_threads`: the usable cores (CPU affinity)
    less one per DataLoader worker, at least 1, and at most ``OMP_NUM_THREADS`` if
    that is set; torch's default (every core) oversubscribes a machine whose cores
    also decode images. The count is restored afterwards and recorded in the
    manifest as ``run.torch_threads``. Heatmaps computed with different thread
    counts may differ in the last bits, so compare runs made with the same count.

    DataLoader workers die with this process, even when it is killed with
    ``kill -9`` (:func:`precompute.workers.die_with_parent`).

    Parameters
    ----------
    config : RunConfig
    progress : bool
        Show progress bars.
    log : callable
        Receives one line per skipped file or class.

    Returns
    -------
    dict
        The run report (also written to ``report.json``).
    """
    log = bar_safe(log)
    with warnings_to(log):
        job = prepare(config, log, progress=progress)
        writer, report, todo = job.writer, job.report, job.todo
        if not todo:
            finalise(writer, report, config=config, index=job.index, progress=progress, log=log)
            return report
        import torch

        threads = attribution_threads(loader_workers(config, job.device))
        writer.update_manifest(run={**writer.manifest.get("run", {}), "torch_threads": threads})
        threads_before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            _attribute_and_store(job, config, progress, log)
        finally:
            torch.set_num_threads(threads_before)
        finalise(writer, report, config=config, index=job.index, progress=progress, log=log)
    return report


def _attribute_and_store(job: Job, config: RunConfig, progress: bool, log: Callable[[str], None]) -> None:
    """The local engine's loop: attribute the classes still to do, analysing and writing each as it completes."""
    writer, report, todo = job.writer, job.report, job.todo
    loader = class_loader(job.index.root, todo, config, job.device)
    class_bar = progress_bar(total=len(todo), desc="classes", unit="class", disable=not progress, position=0)
    image_bar = progress_bar(total=sum(len(cls.paths) for cls in todo), desc="images", unit="img",
                             disable=not progress, position=1)
    try:
        with build_attributor(job.model, job.canonizers, config, job.device) as attributor:
            record_backend(writer, attributor.backend_)
            if progress and attributor.backend_ == "fast":
                log("checking the fast LRP path against zennit on the first image ...")

            def on_batch(files: int) -> None:
                record_backend(writer, attributor.backend_)  # "auto" may fall back to zennit on the first batch
                image_bar.update(files)

            for buffer in attribute_classes(attributor, todo, loader, config, on_batch):
                _store_class(writer, buffer, config, job.index.label_names, report, log, image_bar)
                class_bar.update(1)
    finally:
        class_bar.close()
        image_bar.close()


def _store_class(writer: RunWriter, buffer: ClassBuffer, config: RunConfig, label_names: Sequence[str],
                 report: Dict[str, Any], log: Callable[[str], None], bar) -> None:
    """Analyse an attributed class in this process and write it (see :func:`precompute.pipeline.stages.write_class`)."""
    log_failures(buffer.failures, report, log)
    bar.set_postfix_str(f"analysing {buffer.files.name}")
    analysis = finish_class(buffer, config, label_names)
    write_class(writer, buffer.files, analysis, readable_count(buffer), config, report, log)
    bar.set_postfix_str("")
    safe_report(writer, report)
