"""The stages every engine runs around attribution: prepare, finish, write, finalise.

In the order of a run::

    prepare(config)              -> Job: inputs checked, model loaded, store open, classes to do
    attribution.class_loader     -> batches of decoded images that never mix two classes
    attribution.attribute_classes-> one ClassBuffer per class: float16 heatmaps, logits, thumbnails
    finish_class(buffer)         -> ClassAnalysis: the analysis (precompute.analysis) and the arrays to store
    write_class(writer, ...)     -> written atomically, noted in the report
    finalise(writer, report)     -> with --masks, right-reason scores (masking); sizes and the end time
                                    in the manifest and the report

The local engine (:mod:`precompute.pipeline.local`) runs them in one process; the
Ray engine (:mod:`precompute.pipeline.ray`) attributes on actors and finishes
classes in tasks, with the same functions, so both write the same store.
"""
from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..analysis import analyse_heatmaps
from ..data import ClassFiles, ImageFolderIndex, scan_image_folder
from ..errors import ConfigError, DiskFullError, StoreError
from ..progress import progress_bar
from ..store import ClassAnalysis, ClassSummary, RunWriter, class_id
from .attribution import ClassBuffer
from .config import RunConfig
from .manifest import build_manifest

__all__ = [
    "TOP_K", "Job", "local_device", "prepare", "finish_class", "record_backend", "log_failures",
    "readable_count", "write_class", "safe_report", "finalise",
]

#: Classes stored per image in ``top_classes`` and ``top_probs``.
TOP_K = 5


# ---------------------------------------------------------------------------------------------
# prepare
# ---------------------------------------------------------------------------------------------
@dataclass
class Job:
    """A checked run with its store open: what every engine starts from.

    Attributes
    ----------
    index : ImageFolderIndex
    num_classes : int
    model : torch.nn.Module
        The loaded model, on the CPU, in eval mode.
    canonizers : list of zennit Canonizer
    device : str
        ``"cpu"`` or ``"cuda"``, as recorded in the manifest.
    writer : RunWriter
    report : dict
        The run report, resumed from ``report.json``.
    todo : list of ClassFiles
        Classes to compute, in label order; none of them is empty.
    """

    index: ImageFolderIndex
    num_classes: int
    model: Any
    canonizers: List[Any]
    device: str
    writer: RunWriter
    report: Dict[str, Any]
    todo: List[ClassFiles]


def local_device(config: RunConfig) -> str:
    """``config.device`` resolved on this machine: ``"cpu"`` or ``"cuda"``."""
    import torch

    device = "cuda" if config.device == "auto" and torch.cuda.is_available() else config.device
    if device == "auto":
        device = "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    return device


def prepare(config: RunConfig, log: Callable[[str], None],
            resolve_device: Callable[[RunConfig], str] = local_device, progress: bool = False) -> Job:
    """Check the inputs, load the model, open the store and list the classes still to do.

    Everything that can fail on bad input fails here, before any work, and the
    cheap checks come first: paths and names, then the scan of the data folder,
    and only then the import of torch and zennit and the model.

    Parameters
    ----------
    config : RunConfig
    log : callable
        Receives one line per skipped file or class.
    resolve_device : callable
        ``config -> "cpu" | "cuda"``; called once the model has loaded (the Ray engine
        asks the cluster here).
    progress : bool
        Also say what is being done (``scanning DIR ...``, ``loading the model ...``)
        through ``log``, with a progress bar over the class folders, so that the
        seconds before the first image are never silent.

    Returns
    -------
    Job
    """
    status = log if progress else (lambda message: None)
    config.check()
    status(f"scanning {config.data} ...")
    # Drawn only if the scan takes a while (ImageNet on a network file system), and then removed.
    with progress_bar(desc="scanning", unit="folder", disable=not progress, leave=False, delay=0.5) as bar:
        def on_scan(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        index = scan_image_folder(config.data, config.classes, config.class_index, on_progress=on_scan)
        if config.val_data is not None:
            from ..validation import add_validation

            index = add_validation(index, config.val_data, on_progress=on_scan)
    from .masking import check_run_masks

    check_run_masks(config, index, progress)  # before the model loads: a bad mask costs seconds, not a run
    num_classes = config.num_classes or len(index.label_names)
    too_high = [cls.name for cls in index.classes if cls.label >= num_classes]
    if too_high:
        raise ConfigError(
            f"the model has {num_classes} outputs but class {too_high[0]!r} has label "
            f"{index.label_names.index(too_high[0])}; pass --num-classes or --class-index"
        )
    status(f"loading the model {config.model} ({num_classes} classes) ...")
    config.validate()
    from ..models import canonizers_for, load_model
    from ..models.canonizers import check_explainable

    model = load_model(config.model, config.weights, num_classes)
    if config.variant is not None:
        from ..clarc.variants import apply_variant

        apply_variant(model, config.variant)
    canonizers = canonizers_for(model, config.model)
    if config.composite != "gradient":  # "gradient" installs no rules, so attention layers are fine there
        check_explainable(model, config.model)  # refused before the store is created
    device = resolve_device(config)
    writer = RunWriter.create(
        config.out, build_manifest(config, index, num_classes, [type(c).__name__ for c in canonizers], device),
        force=config.force,
    )
    report = writer.report() or {}
    report.setdefault("skipped_files", {})
    report.setdefault("classes", {})
    report["started"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    for path, reason in index.skipped:
        report["skipped_files"][path] = reason
        log(f"skipped {index.root / path}: {reason}")

    todo = [cls for cls in index.classes if config.force or not writer.has_class(class_id(cls.label))]
    done_before = len(index.classes) - len(todo)
    if done_before:
        log(f"resuming: {done_before} of {len(index.classes)} classes are finished and kept")
    for cls in todo:
        if not cls.paths:
            report["classes"][class_id(cls.label)] = {"name": cls.name, "status": "skipped", "note": "empty class folder"}
            log(f"class {cls.name!r}: empty folder, skipped")
    writer.write_report(report)
    return Job(index=index, num_classes=num_classes, model=model, canonizers=canonizers, device=device,
               writer=writer, report=report, todo=[cls for cls in todo if cls.paths])


# ---------------------------------------------------------------------------------------------
# finish, write, finalise
# ---------------------------------------------------------------------------------------------
def finish_class(buffer: ClassBuffer, config: RunConfig, label_names: Sequence[str],
                 on_stage: Optional[Callable[[str], None]] = None) -> Optional[ClassAnalysis]:
    """Analyse an attributed class and pack everything the store needs.

    Parameters
    ----------
    buffer : ClassBuffer
        A complete class from :func:`precompute.pipeline.attribution.attribute_classes`.
    config : RunConfig
    label_names : sequence of str
        Names of the model's outputs.
    on_stage : callable, optional
        Passed to :func:`precompute.analysis.analyse_heatmaps` (called with each stage's name).

    Returns
    -------
    ClassAnalysis or None
        Summary, arrays, the float16 heatmaps (n, H, W) and the thumbnails of the ``n``
        readable images; None if fewer than 4 images were readable.
    """
    from ..lrp import predictions_from_logits

    files = buffer.files
    keep = np.flatnonzero(buffer.ok) if buffer.ok is not None else np.zeros(0, int)
    if len(keep) < 4:
        return None
    heatmaps = buffer.heatmaps[keep]
    order = np.argsort(np.concatenate([idx for idx, _ in buffer.logits]))
    logits = np.concatenate([lg for _, lg in buffer.logits])[order]
    targets = np.full(len(keep), files.label, dtype=np.int64)
    predictions = predictions_from_logits(logits, targets, k=min(TOP_K, logits.shape[1]))
    started = time.perf_counter()
    # Analyse exactly what is stored (float16), so a resumed run is bit-identical.
    result = analyse_heatmaps(heatmaps.astype(np.float32), config.analysis, on_stage=on_stage)
    analysis_seconds = time.perf_counter() - started
    arrays = dict(result.arrays)
    arrays.update(
        paths=np.array([files.paths[i] for i in keep], dtype=str),
        top_classes=np.asarray(predictions.top_classes, dtype=np.int32),
        top_probs=np.asarray(predictions.top_probs, dtype=np.float32),
        true_prob=np.asarray(predictions.true_prob, dtype=np.float32),
        true_rank=np.asarray(predictions.true_rank, dtype=np.int32),
        relevance_sum=heatmaps.astype(np.float32).sum(axis=(1, 2)),
    )
    true_rank = np.asarray(predictions.true_rank)
    summary = ClassSummary(
        id=class_id(files.label),
        name=files.name,
        label=files.label,
        n=int(len(keep)),
        n_files=len(files.paths),
        n_skipped=len(files.paths) - int(len(keep)),
        accuracy=float(np.mean(true_rank == 1)),
        top5_accuracy=float(np.mean(true_rank <= 5)),
        mean_true_prob=float(np.mean(predictions.true_prob)),
        eigenvalues=[float(v) for v in result.arrays["eigenvalues"]],
        heatmap_shape=list(heatmaps.shape[1:]),
        seconds={"attribution": buffer.seconds, "analysis": analysis_seconds, **result.timings},
    ).updated(result.summary)
    if files.n_train is not None:  # run --val-data
        summary = summary.updated(_validation_figures(arrays, summary, keep >= files.n_train))
    thumbs = {
        "image": [buffer.thumbs_image[i] for i in keep],
        "heatmap": [buffer.thumbs_heatmap[i] for i in keep],
    }
    return ClassAnalysis(summary=summary, arrays=arrays, heatmaps=heatmaps, thumbs=thumbs)


def _validation_figures(arrays: Dict[str, np.ndarray], summary: ClassSummary, is_val: np.ndarray) -> Dict[str, Any]:
    """Store the ``split`` array in ``arrays`` and return the summary's validation figures."""
    from ..validation import validation_figures

    arrays["split"] = is_val.astype(np.uint8)
    return validation_figures(arrays["split"], arrays, summary.default_clustering, summary.fisher_dimensions)


def record_backend(writer: RunWriter, backend: str) -> None:
    """Write the LRP backend in use into the manifest's run section, if it is not there yet.

    Parameters
    ----------
    writer : RunWriter
    backend : {"fast", "zennit"}
        ``Attributor.backend_``: ``"auto"`` resolves to one of them on the first batch.
    """
    run_section = writer.manifest.get("run", {})
    if run_section.get("lrp_backend") != backend:
        writer.update_manifest(run={**run_section, "lrp_backend": backend})


def log_failures(failures: Sequence[Tuple[str, str]], report: Dict[str, Any], log: Callable[[str], None]) -> None:
    """Note the files of a class that could not be read in ``report`` and through ``log``.

    Parameters
    ----------
    failures : sequence of (str, str)
        ``(path relative to the data root, message)`` pairs.
    report : dict
        The run report; its ``skipped_files`` gains one entry per failure.
    log : callable
    """
    for path, message in failures:
        report["skipped_files"][path] = message
        log(f"skipped {message}")


def readable_count(buffer: ClassBuffer) -> int:
    """Number of images of ``buffer``'s class that were decoded and attributed."""
    return int(buffer.ok.sum()) if buffer.ok is not None else 0


def write_class(writer: RunWriter, cls: ClassFiles, analysis: Optional[ClassAnalysis], readable: int,
                config: RunConfig, report: Dict[str, Any], log: Callable[[str], None]) -> None:
    """Write one analysed class atomically and note it in ``report``.

    Parameters
    ----------
    writer : RunWriter
    cls : ClassFiles
    analysis : ClassAnalysis or None
        What :func:`finish_class` returned; None (too few readable images) notes the
        class as skipped.
    readable : int
        Readable images of the class (:func:`readable_count`), for that note.
    config : RunConfig
    report : dict
        The run report; ``report["classes"][class id]`` is set.
    log : callable

    Raises
    ------
    StoreError
        When the disk is full; the classes written before are intact.
    """
    cid = class_id(cls.label)
    if analysis is None:
        note = f"only {readable} readable images (need at least 4)"
        report["classes"][cid] = {"name": cls.name, "status": "skipped", "note": note}
        log(f"class {cls.name!r}: {note}, skipped")
        return
    try:
        writer.write_class(cid, analysis)
    except DiskFullError:
        report["classes"][cid] = {"name": cls.name, "status": "failed", "note": "out of disk space"}
        safe_report(writer, report)
        raise StoreError(
            f"out of disk space while writing class {cls.name!r} to {writer.root}; every finished class "
            "is intact: free some space and run the same command again to resume"
        ) from None
    entry = {"name": cls.name, "status": "done", "n": analysis.summary["n"]}
    if analysis.summary["neighbors_used"] < config.analysis.neighbors:
        entry["note"] = f"small class: k reduced to {analysis.summary['neighbors_used']}"
        log(f"class {cls.name!r}: {entry['note']}")
    report["classes"][cid] = entry


def safe_report(writer: RunWriter, report: Dict[str, Any]) -> None:
    """Write ``report.json``, ignoring an OS error: the report is advisory and must never hide the real error.

    Parameters
    ----------
    writer : RunWriter
    report : dict
    """
    try:
        writer.write_report(report)
    except OSError:
        pass


def finalise(writer: RunWriter, report: Dict[str, Any], *, config: Optional[RunConfig] = None,
             index: Optional[ImageFolderIndex] = None, progress: bool = False,
             log: Callable[[str], None] = print) -> None:
    """Score masks (``--masks``), then record the end time, the classes and samples finished and the bytes per image.

    Parameters
    ----------
    writer : RunWriter
        The bytes per image also go into the manifest's ``storage`` section.
    report : dict
        The run report, written to ``report.json``.
    config : RunConfig, optional
        With ``config.masks``, the finished classes of ``index`` get right-reason scores
        (:func:`precompute.pipeline.masking.add_right_reason`).
    index : ImageFolderIndex, optional
        The run's classes.
    progress : bool
    log : callable
    """
    if config is not None and config.masks is not None and index is not None:
        from .masking import add_right_reason

        add_right_reason(writer, config, index, progress=progress, log=log)
    ids = writer.finished_ids()
    total_bytes = sum(writer.class_bytes(cid) for cid in ids)
    samples = sum(writer.summary(cid)["n"] for cid in ids)
    report["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    report["classes_finished"] = len(ids)
    report["samples"] = samples
    report["bytes"] = total_bytes
    report["bytes_per_image"] = total_bytes / samples if samples else None
    writer.update_manifest(storage={**writer.manifest.get("storage", {}), "bytes_per_image": report["bytes_per_image"]})
    from ..search import build_search_index

    build_search_index(writer.root)  # the similarity index over every finished class (RUN/search/)
    writer.write_report(report)
