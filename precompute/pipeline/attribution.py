"""Attribution streamed by class: images in, float16 heatmaps, logits and thumbnails out, one class at a time.

:func:`class_loader` reads the classes to do one after the other through a
DataLoader whose batches never mix two classes (:class:`ClassBatches`);
:func:`attribute_classes` explains each batch with the run's
:class:`precompute.lrp.Attributor` (:func:`build_attributor`) and yields a
:class:`ClassBuffer` as soon as a class is complete, so at most one class's heatmaps
are held in memory. Both engines use these; the Ray engine on one class per call.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..data import ClassFiles, ClassImages, collate_skipping
from ..errors import ConfigError, SprayError
from ..thumbs import heatmap_thumbnail, image_thumbnail
from ..workers import worker_init
from .config import RunConfig

__all__ = ["build_attributor", "loader_workers", "ClassBatches", "class_loader", "attribute_images",
           "ClassBuffer", "attribute_classes"]

def build_attributor(model, canonizers: Sequence[Any], config: RunConfig, device: str):
    """The :class:`precompute.lrp.Attributor` of a run (enter it to use it).

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode.
    canonizers : sequence of zennit Canonizer
    config : RunConfig
        Gives the composite, normalisation, batch size, LRP backend and precision.
    device : {"cpu", "cuda"}
    """
    from ..lrp import Attributor

    return Attributor(model, composite=config.composite, canonizers=canonizers, normalization=config.normalize,
                      device=device, batch_size=config.batch_size, backend=config.lrp_backend,
                      precision=config.precision)


def loader_workers(config: RunConfig, device: str = "cpu") -> int:
    """DataLoader workers: as asked, else ``min(4, cpus - 1)``, or ``min(8, cpus - 1)`` feeding a GPU.

    Decoding and resizing a 224-pixel JPEG costs a core a few milliseconds; a GPU that
    explains 500 images a second needs about eight cores on it to never wait.
    """
    if config.workers is not None:
        return config.workers
    return max(0, min(8 if device == "cuda" else 4, (os.cpu_count() or 1) - 1))


class ClassBatches:
    """Batch sampler over concatenated classes: batches never cross a class boundary.

    Parameters
    ----------
    sizes : sequence of int
        Number of files of each class, in the order they are concatenated.
    batch_size : int
    """

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


def class_loader(root: Path, classes: Sequence[ClassFiles], config: RunConfig, device: str):
    """A DataLoader over ``classes`` one after the other; no batch mixes two classes.

    Parameters
    ----------
    root : Path
        The data root the classes' paths are relative to.
    classes : sequence of ClassFiles
    config : RunConfig
        Gives the image size, batch size and workers (:func:`loader_workers`).
    device : {"cpu", "cuda"}
        Batches are pinned for CUDA.

    Returns
    -------
    torch.utils.data.DataLoader
        Yields ``(indices, images, failures)`` (:func:`precompute.data.collate_skipping`),
        indices counted over all ``classes``; its workers die with this process.
    """
    from torch.utils.data import DataLoader

    workers = loader_workers(config, device)
    return DataLoader(
        ClassImages(root, [path for cls in classes for path in cls.paths], config.image_size),
        batch_sampler=ClassBatches([len(cls.paths) for cls in classes], config.batch_size),
        num_workers=workers,
        worker_init_fn=worker_init() if workers else None,  # workers die with this process, even on kill -9
        collate_fn=collate_skipping,
        pin_memory=device == "cuda",
        persistent_workers=False,
        prefetch_factor=2 if workers else None,
    )


def attribute_images(attributor, images: np.ndarray, targets: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Heatmaps and logits of a uint8 image batch.

    The attributor halves its batch by itself on CUDA out-of-memory and keeps the size
    that fits; only a single image that does not fit is an error.

    Parameters
    ----------
    attributor : precompute.lrp.Attributor
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
class ClassBuffer:
    """Heatmaps and predictions of the class being attributed.

    Attributes
    ----------
    files : ClassFiles
    heatmaps : ndarray of float16, shape (n_files, H, W) or None
        Allocated on the first batch; rows of unreadable files stay zero.
    logits : list of (ndarray of int, ndarray of float32)
        ``(indices into files.paths, logits (b, C))`` of each batch.
    ok : ndarray of bool, shape (n_files,) or None
        Which files were decoded and attributed.
    thumbs_image, thumbs_heatmap : dict of int to bytes
        WebP thumbnails by index into ``files.paths``.
    failures : list of (str, str)
        ``(path, message)`` of the files that could not be read.
    seen : int
        Files handled so far, readable or not.
    seconds : float
        Time spent attributing the class.
    """

    files: ClassFiles
    heatmaps: Optional[np.ndarray] = None  # float16 (n_files, H, W), allocated on the first batch
    logits: List[Tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    ok: Optional[np.ndarray] = None
    thumbs_image: Dict[int, bytes] = field(default_factory=dict)
    thumbs_heatmap: Dict[int, bytes] = field(default_factory=dict)
    failures: List[Tuple[str, str]] = field(default_factory=list)
    seen: int = 0
    seconds: float = 0.0


def attribute_classes(attributor, classes: Sequence[ClassFiles], loader, config: RunConfig,
                      on_batch: Optional[Callable[[int], None]] = None) -> Iterator[ClassBuffer]:
    """Attribute the batches of :func:`class_loader`, yielding each class once it is complete.

    Parameters
    ----------
    attributor : precompute.lrp.Attributor
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
    ClassBuffer
        float16 heatmaps (n_files, H, W), logits, thumbnails and failures of one class.
    """
    starts = np.cumsum([0] + [len(cls.paths) for cls in classes])
    position = 0
    buffer = ClassBuffer(files=classes[0])
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
                buffer = ClassBuffer(files=classes[position])
