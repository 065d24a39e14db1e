"""Import a ViRelAy/CoRelAy project as a run store: ``python -m precompute import-virelay PROJECT.yaml OUT``.

Each category of the chosen analysis becomes a class of the store (written with
:class:`~precompute.store.RunWriter`, as ``run`` writes one), with:

* its heatmaps (the attributions summed over channels) and thumbnails of its images
  and heatmaps (:mod:`precompute.thumbs`);
* its spectral embedding (eigenvalues made ascending, :func:`ascending_spectrum`), 2-D
  maps and clusterings, completed by :func:`~precompute.interop.imported_analysis.analyse_imported`
  (tau, the default clustering, and whatever the project lacks);
* its predictions from the attribution file's ``prediction``: rows of non-negative values
  summing to at most 1 are probabilities (our export writes the top 5 and the true
  label's), others are logits and go through a softmax. Without them ``top_classes`` holds the true label with
  ``top_probs`` NaN, ``true_rank`` 0 and ``true_prob`` NaN, and the summary says
  ``predictions: "unknown"`` (``accuracy`` null).

A category is a class by the label map: its name is a ``word_net_id`` there, a label
name, or a label index; otherwise the label its samples share. A project has no model,
so the store has none: the explorer and leaderboard work, the artifact lab, Un-Hans,
``perturb`` and ``run --masks`` do not. The result lists this and every other gap.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..analysis import AnalysisConfig
from ..errors import ConfigError, DataError
from ..store import (
    ClassAnalysis,
    ClassEntry,
    ClassSummary,
    DataInfo,
    Manifest,
    ModelInfo,
    RunWriter,
    StorageInfo,
    ThumbnailInfo,
    class_id,
    datetime_now,
)
from ..store.records import DEFAULT_THUMB_SIZE
from .imported_analysis import analyse_imported
from .virelay_format import ascending_spectrum, store_clustering
from .virelay_project import Category, ViRelAyProject

__all__ = ["import_virelay", "rgb_image", "prediction_arrays"]

NO_MODEL = ("the project has no model, so the store has none: the artifact lab, Un-Hans, perturb and run --masks "
            "are unavailable; the leaderboard, explorer and Find elsewhere work")


def rgb_image(sample: np.ndarray) -> np.ndarray:
    """A dataset sample as uint8 RGB (H, W, 3).

    Channels first (C, H, W) are moved last, as ViRelAy guesses them (the smallest axis
    first); one channel is repeated; float values are scaled from [-1, 1] or [0, 1] where
    they fit there, else clipped to [0, 255].
    """
    image = np.asarray(sample)
    if image.ndim == 3 and int(np.argmin(image.shape)) == 0:
        image = np.moveaxis(image, 0, -1)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    image = image[..., :3]
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    values = np.nan_to_num(image.astype(np.float64))
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if high <= 1.0 + 1e-6:
        values = (values + 1.0) * 127.5 if low < -1e-6 else values * 255.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def prediction_arrays(predictions: Optional[np.ndarray], labels: np.ndarray, n_classes: int,
                      true_rank: Optional[np.ndarray] = None, top: int = 5) -> Tuple[Dict[str, np.ndarray], bool]:
    """``top_classes``, ``top_probs``, ``true_prob`` and ``true_rank`` of a class, and whether they are known.

    Parameters
    ----------
    predictions : ndarray of shape (n, C), or None
        Model outputs: rows that are probability distributions are kept, others (logits)
        go through a softmax. None, or another C than ``n_classes``, means unknown.
    labels : ndarray of int, shape (n,)
        The true labels.
    n_classes : int
    true_rank : ndarray of int, shape (n,), optional
        Ranks stored beside sparse predictions (an export of ours); used where given.
    top : int
    """
    n = len(labels)
    if predictions is None or predictions.ndim != 2 or predictions.shape[1] != n_classes:
        return {"top_classes": labels.astype(np.int32)[:, None], "top_probs": np.full((n, 1), np.nan, np.float32),
                "true_prob": np.full(n, np.nan, np.float32), "true_rank": np.zeros(n, np.int32)}, False
    values = np.nan_to_num(np.asarray(predictions, np.float64))
    # Probabilities (also partial ones, as our export writes: the top 5 and the true label's) or logits.
    if not (np.all(values >= -1e-6) and np.all(values.sum(axis=1) <= 1.0 + 1e-3)):
        values = np.exp(values - values.max(axis=1, keepdims=True))
        values /= values.sum(axis=1, keepdims=True)
    order = np.argsort(-values, axis=1, kind="stable")
    k = min(top, n_classes)
    rank = np.argmax(order == labels[:, None], axis=1) + 1
    if true_rank is not None and len(true_rank) == n:
        rank = np.where(np.asarray(true_rank) > 0, true_rank, rank)
    return {"top_classes": order[:, :k].astype(np.int32),
            "top_probs": np.take_along_axis(values, order[:, :k], axis=1).astype(np.float32),
            "true_prob": values[np.arange(n), labels].astype(np.float32),
            "true_rank": rank.astype(np.int32)}, True


def _label_of(category: Category, label_map: List[dict], sample_labels: np.ndarray) -> Optional[int]:
    """The model label of a category: by the label map, else the label all its samples share."""
    for key in ("word_net_id", "name"):
        for entry in label_map:
            if entry[key] and entry[key] == category.name:
                return entry["index"]
    if category.name.isdigit():
        return int(category.name)
    values = np.unique(sample_labels)
    return int(values[0]) if len(values) == 1 else None


def _check_out(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    if any(out.iterdir()):
        if not (force and (out / "manifest.json").is_file()):
            hint = "pass --force to replace that run store" if (out / "manifest.json").is_file() \
                else "choose an empty or new folder"
            raise ConfigError(f"{out}: folder is not empty; {hint}")
        shutil.rmtree(out)


def _thumbs(images: List[np.ndarray], heatmaps: np.ndarray, size: int) -> Dict[str, List[bytes]]:
    from ..thumbs import heatmap_thumbnail, image_thumbnail

    return {"image": [image_thumbnail(rgb_image(image), size) for image in images],
            "heatmap": [heatmap_thumbnail(heatmap, size) for heatmap in heatmaps]}


def import_virelay(project: os.PathLike, out: os.PathLike, *, analysis: Optional[str] = None,
                   force: bool = False, seed: int = 0, thumb_size: int = DEFAULT_THUMB_SIZE,
                   log: Optional[Callable[[str], None]] = None) -> Dict[str, object]:
    """Turn a ViRelAy/CoRelAy project into a run store the app serves.

    Parameters
    ----------
    project : path
        The project's YAML file.
    out : path
        Run directory to create; it must be new or empty, or a run store when ``force`` is set
        (which is then replaced).
    analysis : str, optional
        The analysis method to import; default the project's first.
    force : bool
    seed : int
        Seed of what is computed (clusterings, a missing spectral embedding or map).
    thumb_size : int
    log : callable, optional
        Called with a line per class and with each note.

    Returns
    -------
    dict
        ``run`` (its path), ``classes``, ``samples``, ``analysis`` (the method imported),
        ``notes`` (what the project lacks, what was left out or computed) and ``seconds``.

    Raises
    ------
    ConfigError
        A malformed project file, an unknown ``analysis``, or an ``out`` that is not free.
    DataError
        A missing or malformed file the project names (the message names it).
    """
    started = time.perf_counter()
    out = Path(out)
    say = log or (lambda line: None)
    with ViRelAyProject(project) as proj:
        method = proj.method(analysis)
        categories = proj.categories(method)
        notes = [NO_MODEL]
        if len(proj.analyses) > 1:
            notes.append(f"imported the analysis '{method}'; the project also has "
                         f"{', '.join(m for m in proj.analyses if m != method)} (choose with --analysis)")
        planned, used = [], {}
        for category in categories:  # labels first (cheap): a conflict is reported before any work
            if len(category.index) < 4:
                notes.append(f"category '{category.name}' left out: {len(category.index)} samples are too few")
                continue
            label = _label_of(category, proj.label_map, proj.attributions.labels(category.index))
            if label is None:
                raise DataError(f"{category.source}: category '{category.name}' is not in the label map and its "
                                "samples have different labels")
            if label in used:
                raise DataError(f"{category.source}: categories '{used[label]}' and '{category.name}' are both "
                                f"label {label}; SpRAy Studio keeps one analysis a class")
            used[label] = category.name
            planned.append((category, label))
        if not planned:
            raise DataError(f"{proj.analyses[method][0]}: no category with at least 4 samples")
        names = {entry["index"]: entry["name"] for entry in proj.label_map}
        size = max(max(names, default=0), max(used)) + 1
        label_names = [names.get(i, str(i)) for i in range(size)]
        config = AnalysisConfig(seed=seed, maps=())
        _check_out(out, force)
        writer = RunWriter.create(out, Manifest(
            created=datetime_now(),
            data=DataInfo(root=str(proj.data_root()), label_names=label_names),
            classes=[ClassEntry(id=class_id(label), name=_class_name(label_names[label], category.name, label_names),
                                label=label, n_files=len(category.index)) for category, label in planned],
            model=ModelInfo(spec=f"virelay:{proj.model}", weights=None, num_classes=len(label_names),
                            normalization="none", image_size=None,
                            composite=proj.attribution_method, canonizers=[]),
            analysis={**config.to_dict(), "source": "virelay"},
            thumbnails=ThumbnailInfo(size=thumb_size, format="webp"),
            storage=StorageInfo(heatmap_dtype="float16"),
            extra={"virelay": {"project": str(Path(project).resolve()), "name": proj.name, "model": proj.model,
                               "analysis": method}},
        ), force=True)
        total, shapes = 0, set()
        for number, (category, label) in enumerate(planned, start=1):  # one class in memory at a time
            read = proj.attributions.read(category.index)
            summary, arrays, heatmaps, thumbs = _import_class(proj, category, label, read, label_names, config,
                                                              thumb_size, notes)
            shapes.add(tuple(heatmaps.shape[1:]))
            writer.write_class(class_id(label), ClassAnalysis(summary=summary, arrays=arrays, heatmaps=heatmaps,
                                                              thumbs=thumbs))
            total += len(category.index)
            tau = "-" if summary.tau is None else f"{summary.tau:.3f}"
            say(f"imported {summary.name}: {summary.n} samples, tau {tau} ({number}/{len(planned)})")
    square = len(shapes) == 1 and len({side for shape in shapes for side in shape}) == 1
    writer.update_manifest(virelay={**writer.manifest["virelay"], "notes": notes},
                           model={**writer.manifest["model"], "image_size": shapes.pop()[0] if square else None})
    writer.write_report({"finished": "import-virelay", "classes_finished": len(planned), "samples": total,
                         "notes": notes})
    from ..search import build_search_index

    build_search_index(out, force=True)
    for note in notes:
        say(f"note: {note}")
    return {"run": str(out), "classes": len(planned), "samples": total, "analysis": method, "notes": notes,
            "seconds": round(time.perf_counter() - started, 2)}


def _class_name(label_name: str, category: str, label_names: List[str]) -> str:
    return label_name if label_names.count(label_name) == 1 else f"{label_name} ({category})"


def _import_class(proj: ViRelAyProject, category: Category, label: int, read: Dict[str, object],
                  label_names: List[str], config: AnalysisConfig, thumb_size: int, notes: List[str]):
    """Summary, arrays, float16 heatmaps and thumbnails of one category."""
    clock = time.perf_counter()
    heatmaps = np.asarray(read["heatmaps"], np.float32)
    n = len(heatmaps)
    clusterings: Dict[str, np.ndarray] = {}
    for name, (values, k) in category.clusterings.items():
        stored, labels = store_clustering(name, values, k)
        while stored in clusterings:  # two names that map alike (kmeans-5, kmeans-05): keep both
            family, _, count = stored.rpartition("-k")
            stored = f"{family}_{len(clusterings)}-k{count}"
        clusterings[stored] = labels
    spectrum = None if category.spectrum is None else ascending_spectrum(*category.spectrum)
    result = analyse_imported(heatmaps, spectrum=spectrum, clusterings=clusterings, maps=category.maps, config=config)
    notes += [f"category '{category.name}': {note}" for note in category.notes]
    if category.spectrum is None:
        notes.append(f"category '{category.name}' has no spectral embedding: SpRAy computed its own from the "
                     "attributions")
    predictions, known = prediction_arrays(read["predictions"], read["labels"], len(label_names), read["true_rank"])
    if not known:
        notes.append(f"category '{category.name}': no usable 'prediction' in the attribution file, so accuracy "
                     "and ranks are unknown")
    arrays = dict(result.arrays)
    arrays.update(predictions, paths=np.array(proj.sample_names(category.index), dtype=str),
                  relevance_sum=heatmaps.sum(axis=(1, 2)).astype(np.float32))
    if read["split"] is not None:  # our export of a run made with --val-data
        arrays["split"] = np.asarray(read["split"], np.uint8)
    thumbs = _thumbs(proj.images(category.index), heatmaps, thumb_size)
    rank = arrays["true_rank"]
    name = _class_name(label_names[label], category.name, label_names)
    summary = ClassSummary(
        id=class_id(label), name=name, label=label, n=n, n_files=n, n_skipped=0,
        accuracy=float(np.mean(rank == 1)) if known else None,
        top5_accuracy=float(np.mean((rank >= 1) & (rank <= 5))) if known else None,
        mean_true_prob=float(np.mean(arrays["true_prob"])) if known else None,
        eigenvalues=[float(v) for v in arrays["eigenvalues"]], heatmap_shape=list(heatmaps.shape[1:]),
        seconds={**result.timings, "import": time.perf_counter() - clock},
    ).updated({**result.summary, "virelay": {"category": category.name, "source": category.source.name,
                                             "clusterings": sorted(category.clusterings),
                                             "embeddings": (["spectral"] if category.spectrum is not None else [])
                                             + sorted(category.maps)},
               **({} if known else {"predictions": "unknown"})})
    return summary, arrays, heatmaps.astype(np.float16), thumbs
