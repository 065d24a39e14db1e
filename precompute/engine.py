"""Run the whole pipeline over a dataset, class by class, into a run store.

:func:`run` streams the dataset once through a DataLoader whose batches never mix
classes. When the last batch of a class has been attributed, the class is analysed
(:mod:`precompute.analysis`), thumbnailed and written atomically
(:mod:`precompute.store`), and its heatmaps are released: at most one class's
heatmaps are held in memory. Finished classes are skipped when the same command
runs again, so a killed run resumes where it stopped.

That is the ``local`` engine. The ``ray`` engine (:mod:`precompute.ray_engine`) runs
the same stages (:func:`_prepare`, :func:`_attribute_classes`, :func:`_finish_class`,
:func:`_write_class`) on a Ray cluster, into the same store.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import __version__
from .analysis import AnalysisConfig, analyse_heatmaps
from .data import ClassFiles, ClassImages, ImageFolderIndex, collate_skipping, scan_image_folder
from .errors import ConfigError, DiskFullError, SprayError, StoreError
from .registry import Registry
from .store import ClassAnalysis, RunWriter, class_id
from .thumbs import heatmap_thumbnail, image_thumbnail

__all__ = ["RunConfig", "ENGINES", "run", "software_versions", "file_sha256", "attribute_images"]

ENGINES: Registry = Registry("engine")

TOP_K = 5


@dataclass(frozen=True)
class RunConfig:
    """Everything ``python -m precompute run`` needs.

    Attributes
    ----------
    data : Path
        ImageFolder root.
    model : str
        Architecture spec (registered name, torchvision name or ``file.py:function``).
    weights : Path or None
        Local state_dict; None only for models that need no weights (tests).
    out : Path
        Run directory.
    num_classes : int or None
        Model outputs; default the number of label names.
    class_index : Path or None
        Label names in output order (see :func:`precompute.data.scan_image_folder`).
    image_size : int or None
        Resize + centre-crop side; None feeds images as they are.
    normalize : str
        ``"imagenet"`` or ``"none"``.
    composite : str
        Name in :data:`precompute.attribute.COMPOSITES`.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    batch_size : int
    workers : int or None
        DataLoader workers; None picks ``min(4, cpus - 1)``, or ``min(8, cpus - 1)`` on CUDA.
    classes : tuple of str or None
        Subset of class folder names.
    analysis : AnalysisConfig
    thumb_size : int
        Longer side of the thumbnails.
    force : bool
        Recompute finished classes.
    engine : str
        Name in :data:`ENGINES`.
    lrp_backend : str
        ``"auto"``, ``"fast"`` or ``"zennit"`` (see :class:`precompute.attribute.Attributor`).
    precision : str
        ``"fp32"``, or on CUDA ``"tf32"`` or ``"bf16"``.
    """

    data: Path
    model: str
    weights: Optional[Path]
    out: Path
    num_classes: Optional[int] = None
    class_index: Optional[Path] = None
    image_size: Optional[int] = 224
    normalize: str = "imagenet"
    composite: str = "epsilon_plus_flat"
    device: str = "auto"
    batch_size: int = 32
    workers: Optional[int] = None
    classes: Optional[Tuple[str, ...]] = None
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    thumb_size: int = 128
    force: bool = False
    engine: str = "local"
    lrp_backend: str = "auto"
    precision: str = "fp32"

    def validate(self) -> "RunConfig":
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.image_size is not None and self.image_size < 8:
            raise ConfigError(f"--image-size must be at least 8, got {self.image_size}")
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"--workers must be 0 or more, got {self.workers}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        from .attribute import BACKENDS, PRECISIONS

        if self.lrp_backend not in BACKENDS:
            raise ConfigError(f"--lrp-backend must be one of {', '.join(BACKENDS)}, got {self.lrp_backend!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        self.analysis.validate()
        ENGINES.get(self.engine)
        return self


# ---------------------------------------------------------------------------------------------
# manifest helpers
# ---------------------------------------------------------------------------------------------
def software_versions() -> Dict[str, str]:
    """Versions of the packages whose behaviour the stored numbers depend on."""
    from importlib import metadata

    versions = {"spray-studio": __version__, "python": platform.python_version()}
    for package in ("torch", "torchvision", "zennit", "numpy", "scipy", "scikit-learn", "umap-learn", "openTSNE"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _portable(path: Optional[Path], out: Path) -> Optional[str]:
    """Path relative to the run if it lies inside it (so the run can move), else absolute."""
    if path is None:
        return None
    path = Path(path).resolve()
    try:
        return path.relative_to(Path(out).resolve()).as_posix()
    except ValueError:
        return str(path)


def _manifest(config: RunConfig, index: ImageFolderIndex, num_classes: int, canonizers: List[str],
              device: str) -> Dict[str, Any]:
    weights = Path(config.weights) if config.weights else None
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "software": software_versions(),
        "data": {
            "root": _portable(index.root, config.out),
            "label_names": index.label_names,
        },
        "classes": [
            {"id": class_id(cls.label), "name": cls.name, "label": cls.label, "n_files": len(cls.paths)}
            for cls in index.classes
        ],
        "model": {
            "spec": config.model,
            "weights": _portable(weights, config.out),
            "weights_sha256": file_sha256(weights) if weights else None,
            "num_classes": num_classes,
            "normalization": config.normalize,
            "image_size": config.image_size,
            "composite": config.composite,
            "canonizers": canonizers,
        },
        "analysis": config.analysis.to_dict(),
        "thumbnails": {"size": config.thumb_size, "format": "webp"},
        "storage": {"heatmap_dtype": "float16"},
        # lrp_backend is the one asked for until the attributor says which one it uses.
        "run": {"engine": config.engine, "device": device, "batch_size": config.batch_size,
                "lrp_backend": config.lrp_backend, "precision": config.precision},
    }


def _record_backend(writer: RunWriter, backend: str) -> None:
    """Write the LRP backend in use ("fast" or "zennit") into the manifest's run section."""
    run_section = writer.manifest.get("run", {})
    if run_section.get("lrp_backend") != backend:
        writer.update_manifest(run={**run_section, "lrp_backend": backend})


# ---------------------------------------------------------------------------------------------
# attribution, streamed by class
# ---------------------------------------------------------------------------------------------
class _ClassBatches:
    """Batch sampler over concatenated classes: batches never cross a class boundary."""

    def __init__(self, sizes: Sequence[int], batch_size: int):
        self.sizes = list(sizes)
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[List[int]]:
        start = 0
        for size in self.sizes:
            for offset in range(0, size, self.batch_size):
                yield list(range(start + offset, start + min(size, offset + self.batch_size)))
            start += size

    def __len__(self) -> int:
        return sum(-(-size // self.batch_size) for size in self.sizes)


def attribute_images(attributor, images: np.ndarray, targets: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Heatmaps and logits of a uint8 image batch.

    The attributor halves its batch by itself on CUDA out-of-memory and keeps the size
    that fits; only a single image that does not fit is an error.

    Parameters
    ----------
    attributor : precompute.attribute.Attributor
    images : ndarray of uint8, shape (b, H, W, 3)
    targets : ndarray of int64, shape (b,)

    Returns
    -------
    heatmaps : ndarray of float32, shape (b, H, W)
    logits : ndarray of float32, shape (b, C)
    """
    import torch

    batch = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    try:
        result = attributor.attribute(batch, torch.from_numpy(targets))
    except torch.cuda.OutOfMemoryError:
        raise SprayError("out of GPU memory even with a batch of 1 image; use --device cpu") from None
    return result.heatmaps, result.logits


@dataclass
class _ClassBuffer:
    """Heatmaps and predictions of the class being attributed."""

    files: ClassFiles
    heatmaps: Optional[np.ndarray] = None  # float16 (n_files, H, W), allocated on the first batch
    logits: List[Tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    ok: Optional[np.ndarray] = None
    thumbs_image: Dict[int, bytes] = field(default_factory=dict)
    thumbs_heatmap: Dict[int, bytes] = field(default_factory=dict)
    failures: List[Tuple[str, str]] = field(default_factory=list)
    seen: int = 0
    seconds: float = 0.0


def _finish_class(buffer: _ClassBuffer, config: RunConfig, label_names: Sequence[str],
                  on_stage: Optional[Callable[[str], None]] = None) -> Optional[ClassAnalysis]:
    """Analyse an attributed class and pack everything the store needs; None if too few images."""
    from .attribute import predictions_from_logits

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
    summary = {
        "id": class_id(files.label),
        "name": files.name,
        "label": files.label,
        "n": int(len(keep)),
        "n_files": len(files.paths),
        "n_skipped": len(files.paths) - int(len(keep)),
        "accuracy": float(np.mean(true_rank == 1)),
        "top5_accuracy": float(np.mean(true_rank <= 5)),
        "mean_true_prob": float(np.mean(predictions.true_prob)),
        "eigenvalues": [float(v) for v in result.arrays["eigenvalues"]],
        "heatmap_shape": list(heatmaps.shape[1:]),
        "seconds": {"attribution": buffer.seconds, "analysis": analysis_seconds, **result.timings},
        **result.summary,
    }
    thumbs = {
        "image": [buffer.thumbs_image[i] for i in keep],
        "heatmap": [buffer.thumbs_heatmap[i] for i in keep],
    }
    return ClassAnalysis(summary=summary, arrays=arrays, heatmaps=heatmaps, thumbs=thumbs)


def _progress(iterable=None, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, dynamic_ncols=True, mininterval=0.5, **kwargs)


def _workers(config: RunConfig, device: str = "cpu") -> int:
    """DataLoader workers: as asked, else ``min(4, cpus - 1)``, or ``min(8, cpus - 1)`` feeding a GPU.

    Decoding and resizing a 224-pixel JPEG costs a core a few milliseconds; a GPU that
    explains 500 images a second needs about eight cores on it to never wait.
    """
    if config.workers is not None:
        return config.workers
    return max(0, min(8 if device == "cuda" else 4, (os.cpu_count() or 1) - 1))


# ---------------------------------------------------------------------------------------------
# stages shared by the engines
# ---------------------------------------------------------------------------------------------
@dataclass
class _Job:
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


def _local_device(config: RunConfig) -> str:
    """``config.device`` resolved on this machine: ``"cpu"`` or ``"cuda"``."""
    import torch

    device = "cuda" if config.device == "auto" and torch.cuda.is_available() else config.device
    if device == "auto":
        device = "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    return device


def _prepare(config: RunConfig, log: Callable[[str], None],
             resolve_device: Callable[[RunConfig], str] = _local_device) -> _Job:
    """Check the inputs, load the model, open the store and list the classes still to do.

    Everything that can fail on bad input fails here, before any work.

    Parameters
    ----------
    config : RunConfig
    log : callable
        Receives one line per skipped file or class.
    resolve_device : callable
        ``config -> "cpu" | "cuda"``; called once the model has loaded (the Ray engine
        asks the cluster here).
    """
    from .models import canonizers_for, load_model

    config.validate()
    index = scan_image_folder(config.data, config.classes, config.class_index)
    num_classes = config.num_classes or len(index.label_names)
    too_high = [cls.name for cls in index.classes if cls.label >= num_classes]
    if too_high:
        raise ConfigError(
            f"the model has {num_classes} outputs but class {too_high[0]!r} has label "
            f"{index.label_names.index(too_high[0])}; pass --num-classes or --class-index"
        )
    model = load_model(config.model, config.weights, num_classes)
    canonizers = canonizers_for(model, config.model)
    device = resolve_device(config)
    writer = RunWriter.create(
        config.out, _manifest(config, index, num_classes, [type(c).__name__ for c in canonizers], device),
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
    return _Job(index=index, num_classes=num_classes, model=model, canonizers=canonizers, device=device,
                writer=writer, report=report, todo=[cls for cls in todo if cls.paths])


def _attributor(model, canonizers: Sequence[Any], config: RunConfig, device: str):
    """The :class:`precompute.attribute.Attributor` of a run (enter it to use it)."""
    from .attribute import Attributor

    return Attributor(model, composite=config.composite, canonizers=canonizers, normalization=config.normalize,
                      device=device, batch_size=config.batch_size, backend=config.lrp_backend,
                      precision=config.precision)


def _class_loader(root: Path, classes: Sequence[ClassFiles], config: RunConfig, device: str):
    """A DataLoader over ``classes`` one after the other; no batch mixes two classes."""
    from torch.utils.data import DataLoader

    workers = _workers(config, device)
    return DataLoader(
        ClassImages(root, [path for cls in classes for path in cls.paths], config.image_size),
        batch_sampler=_ClassBatches([len(cls.paths) for cls in classes], config.batch_size),
        num_workers=workers,
        collate_fn=collate_skipping,
        pin_memory=device == "cuda",
        persistent_workers=False,
        prefetch_factor=2 if workers else None,
    )


def _attribute_classes(attributor, classes: Sequence[ClassFiles], loader, config: RunConfig,
                       on_batch: Optional[Callable[[int], None]] = None) -> Iterator[_ClassBuffer]:
    """Attribute the batches of :func:`_class_loader`, yielding each class once it is complete.

    Parameters
    ----------
    attributor : precompute.attribute.Attributor
        Entered.
    classes : sequence of ClassFiles
        The classes ``loader`` reads, in its order.
    loader : iterable of (indices, images, failures)
        Batches of :func:`precompute.data.collate_skipping`, indexed over all ``classes``.
    config : RunConfig
    on_batch : callable, optional
        Called with the number of files of each batch, after it is attributed.

    Yields
    ------
    _ClassBuffer
        float16 heatmaps (n_files, H, W), logits, thumbnails and failures of one class.
    """
    starts = np.cumsum([0] + [len(cls.paths) for cls in classes])
    position = 0
    buffer = _ClassBuffer(files=classes[0])
    for global_idx, images, failures in loader:
        cls = classes[position]
        offset = starts[position]
        started = time.perf_counter()
        for idx, message in failures:
            buffer.failures.append((cls.paths[idx - offset], message))
        if len(global_idx):
            local = global_idx - offset
            targets = np.full(len(local), cls.label, dtype=np.int64)
            heatmaps, logits = attribute_images(attributor, images, targets)
            if buffer.heatmaps is None:
                buffer.heatmaps = np.zeros((len(cls.paths),) + heatmaps.shape[1:], dtype=np.float16)
                buffer.ok = np.zeros(len(cls.paths), dtype=bool)
            if heatmaps.shape[1:] != buffer.heatmaps.shape[1:]:
                raise ConfigError(f"class {cls.name!r}: images of different sizes; pass --image-size")
            buffer.heatmaps[local] = heatmaps.astype(np.float16)
            buffer.ok[local] = True
            buffer.logits.append((local, logits))
            for j, i in enumerate(local):
                buffer.thumbs_image[i] = image_thumbnail(images[j], config.thumb_size)
                buffer.thumbs_heatmap[i] = heatmap_thumbnail(heatmaps[j], config.thumb_size)
        buffer.seen += len(global_idx) + len(failures)
        buffer.seconds += time.perf_counter() - started
        if on_batch is not None:
            on_batch(len(global_idx) + len(failures))
        if buffer.seen == len(cls.paths):
            yield buffer
            position += 1
            if position < len(classes):
                buffer = _ClassBuffer(files=classes[position])


@ENGINES.register("local")
def run_local(config: RunConfig, *, progress: bool = True, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run attribution and analysis in this process (GPU if there is one).

    Returns
    -------
    dict
        The run report (also written to ``report.json``).
    """
    job = _prepare(config, log)
    writer, report, todo = job.writer, job.report, job.todo
    if not todo:
        _finalise(writer, report)
        return report

    loader = _class_loader(job.index.root, todo, config, job.device)
    class_bar = _progress(total=len(todo), desc="classes", unit="class", disable=not progress, position=0)
    image_bar = _progress(total=sum(len(cls.paths) for cls in todo), desc="images", unit="img",
                          disable=not progress, position=1)
    with _attributor(job.model, job.canonizers, config, job.device) as attributor:
        _record_backend(writer, attributor.backend_)

        def on_batch(files: int) -> None:
            _record_backend(writer, attributor.backend_)  # "auto" may fall back to zennit on the first batch
            image_bar.update(files)

        for buffer in _attribute_classes(attributor, todo, loader, config, on_batch):
            _store_class(writer, buffer, config, job.index.label_names, report, log, image_bar)
            class_bar.update(1)
    class_bar.close()
    image_bar.close()
    _finalise(writer, report)
    return report


@ENGINES.register("ray")
def run_ray(config: RunConfig, *, progress: bool = True, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run attribution on every GPU of a Ray cluster and the analyses as Ray tasks.

    See :func:`precompute.ray_engine.run_ray`; Ray is imported only here.
    """
    try:
        from .ray_engine import run_ray as run_on_ray
    except ModuleNotFoundError as error:
        if error.name != "ray" and not str(error.name).startswith("ray."):
            raise
        raise ConfigError("--engine ray needs Ray: pip install ray==2.60.0") from None
    return run_on_ray(config, progress=progress, log=log)


def _log_failures(failures: Sequence[Tuple[str, str]], report: Dict[str, Any], log: Callable[[str], None]) -> None:
    """Note the files of a class that could not be read, as ``(path, message)`` pairs."""
    for path, message in failures:
        report["skipped_files"][path] = message
        log(f"skipped {message}")


def _readable(buffer: _ClassBuffer) -> int:
    """Number of images of the class that were decoded and attributed."""
    return int(buffer.ok.sum()) if buffer.ok is not None else 0


def _store_class(writer: RunWriter, buffer: _ClassBuffer, config: RunConfig, label_names: Sequence[str],
                 report: Dict[str, Any], log: Callable[[str], None], bar) -> None:
    """Analyse an attributed class in this process and write it (see :func:`_write_class`)."""
    _log_failures(buffer.failures, report, log)
    bar.set_postfix_str(f"analysing {buffer.files.name}")
    analysis = _finish_class(buffer, config, label_names)
    _write_class(writer, buffer.files, analysis, _readable(buffer), config, report, log)
    bar.set_postfix_str("")
    _safe_report(writer, report)


def _write_class(writer: RunWriter, cls: ClassFiles, analysis: Optional[ClassAnalysis], readable: int,
                 config: RunConfig, report: Dict[str, Any], log: Callable[[str], None]) -> None:
    """Write one analysed class atomically and note it in ``report`` (None: too few readable images)."""
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
        _safe_report(writer, report)
        raise StoreError(
            f"out of disk space while writing class {cls.name!r} to {writer.root}; every finished class "
            "is intact: free some space and run the same command again to resume"
        ) from None
    entry = {"name": cls.name, "status": "done", "n": analysis.summary["n"]}
    if analysis.summary["neighbors_used"] < config.analysis.neighbors:
        entry["note"] = f"small class: k reduced to {analysis.summary['neighbors_used']}"
        log(f"class {cls.name!r}: {entry['note']}")
    report["classes"][cid] = entry


def _safe_report(writer: RunWriter, report: Dict[str, Any]) -> None:
    try:
        writer.write_report(report)
    except OSError:
        pass  # the report is advisory; never let it hide the real error


def _finalise(writer: RunWriter, report: Dict[str, Any]) -> None:
    ids = writer.finished_ids()
    total_bytes = sum(writer.class_bytes(cid) for cid in ids)
    samples = sum(writer.summary(cid)["n"] for cid in ids)
    report["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    report["classes_finished"] = len(ids)
    report["samples"] = samples
    report["bytes"] = total_bytes
    report["bytes_per_image"] = total_bytes / samples if samples else None
    writer.update_manifest(storage={**writer.manifest.get("storage", {}), "bytes_per_image": report["bytes_per_image"]})
    writer.write_report(report)


def run(config: RunConfig, *, progress: bool = True, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the pipeline with the engine named in ``config.engine``."""
    return ENGINES.get(config.engine)(config, progress=progress, log=log)
