"""Export a run store as a ViRelAy project: ``python -m precompute export-virelay RUN OUT``.

The project (:mod:`precompute.interop.virelay_format` has the layout) holds, for every
exported class, its images at the model's input size, its heatmaps, its predictions, and
its analysis: the spectral embedding in CoRelAy's order, every 2-D map and every
clustering. ViRelAy 0.6.1 then shows what the run store holds.

Choices, each for a reason:

* Images are the model's input (resize and centre crop of the original, before
  normalisation) as uint8 ``(N, H, W, 3)``: ViRelAy shows uint8 images as they are,
  while normalised float inputs would go through its guess of their value range. Where
  the data root is gone, the stored thumbnail stands in (counted in the result).
* A heatmap is already summed over colour channels; the attribution file holds it in
  channel 0 of ``(N, 3, H, W)`` with zeros in channels 1 and 2. Every reader sums the
  channels (CoRelAy's ``SumChannel``, ViRelAy's renderer), which gives the heatmap
  back exactly, and ViRelAy's colour maps need a channel axis of more than one (with
  one, seven of its eight fail; without, all eight). The zero channels cost nothing
  compressed.
* The store keeps the top 5 predictions only, so ``prediction`` holds their
  probabilities and the true label's, zeros elsewhere; ``true_rank`` (ignored by
  ViRelAy) keeps the rank, so an import gets the predictions back unchanged, as
  ``split`` keeps the training/validation split of a run made with ``--val-data``.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ConfigError, DataError, SprayError, StoreError
from ..store import RunStore
from .virelay_format import (
    ANALYSIS_FILE,
    ANALYSIS_METHOD,
    ATTRIBUTION_FILE,
    INPUT_FILE,
    LABEL_DTYPE,
    LABEL_MAP_FILE,
    PROJECT_FILE,
    SPECTRAL,
    category_key,
    corelay_spectrum,
    label_map_entries,
    virelay_clustering_name,
    write_yaml,
)

__all__ = ["export_virelay", "ExportedClass"]

MARKER = ".spray-virelay-export"
"""File left in an exported project, so that ``--force`` replaces only our own exports."""


@dataclass(frozen=True)
class ExportedClass:
    """One class as exported: its run-store id, name, label, category key and rows ``[start, stop)``."""

    cid: str
    name: str
    label: int
    key: str
    start: int
    stop: int


def _selected(store: RunStore, names: Optional[Sequence[str]]) -> List[str]:
    if not names:
        ids = store.finished_ids()
        if not ids:
            raise ConfigError(f"{store.root}: no finished classes to export")
        return ids
    ids = []
    for name in names:
        try:
            cid = store.id_for_name(name)
        except StoreError:
            raise ConfigError(f"--classes: no class {name!r} in {store.root}") from None
        if not store.has_class(cid):
            raise ConfigError(f"--classes: class {name!r} is not analysed yet in {store.root}")
        ids.append(cid)
    return sorted(set(ids))


def _fresh_folder(out: Path, force: bool) -> Path:
    """A temporary folder beside ``out``; ``out`` must be new, empty, or (with ``force``) our own export."""
    if out.exists():
        if not out.is_dir():
            raise ConfigError(f"{out}: exists and is not a folder")
        if any(out.iterdir()) and not (force and (out / MARKER).is_file()):
            hint = "pass --force to replace it" if (out / MARKER).is_file() else "choose an empty or new folder"
            raise ConfigError(f"{out}: folder is not empty; {hint}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))


def _common(store: RunStore, ids: Sequence[str], key: str) -> List[str]:
    """Names (clusterings or maps) that every class has: ViRelAy lists the first category's only."""
    sets = [[str(name) for name in store.arrays(cid)[key]] for cid in ids]
    return [name for name in sets[0] if all(name in other for other in sets[1:])]


def _images(store: RunStore, cid: str, paths: np.ndarray, shape: Tuple[int, int]) -> Tuple[np.ndarray, int]:
    """The model-input images of a class, uint8 (n, H, W, 3), and how many came from thumbnails."""
    from PIL import Image

    from ..data import load_rgb, resize_center_crop

    height, width = shape
    size = store.manifest.get("model", {}).get("image_size")
    root = store.data_root()
    out = np.empty((len(paths), height, width, 3), np.uint8)
    from_thumbs = 0
    for i, path in enumerate(paths):
        try:
            image = resize_center_crop(load_rgb(root / str(path)), size)
        except (DataError, OSError):
            image = Image.open(io.BytesIO(store.thumbnail(cid, "image", i))).convert("RGB")
            from_thumbs += 1
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        out[i] = np.asarray(image, dtype=np.uint8)
    return out, from_thumbs


def _predictions(arrays: Dict[str, np.ndarray], label: int, n_classes: int) -> np.ndarray:
    """(n, C) float32: the stored top-k probabilities and the true label's, zeros elsewhere."""
    n = len(arrays["true_prob"])
    out = np.zeros((n, n_classes), np.float32)
    top = arrays["top_classes"].astype(np.int64)
    ok = (top >= 0) & (top < n_classes)
    rows = np.repeat(np.arange(n)[:, None], top.shape[1], axis=1)
    out[rows[ok], top[ok]] = np.nan_to_num(arrays["top_probs"][ok])
    if 0 <= label < n_classes:
        out[:, label] = np.nan_to_num(arrays["true_prob"])
    return out


def _write_category(group, cls: ExportedClass, arrays: Dict[str, np.ndarray], summary: dict,
                    clusterings: Sequence[str], maps: Sequence[str]) -> None:
    """One class's analysis under ``<category>/`` in ViRelAy 0.6.1's layout."""
    from ..stages import leading_dimensions

    group["index"] = np.arange(cls.start, cls.stop, dtype=np.uint32)
    for key in ("tau", "default_clustering", "eigengap_k"):  # for readers of the file; ViRelAy ignores them
        if summary.get(key) is not None:
            group.attrs[key] = summary[key]
    group.attrs["name"] = cls.name
    embeddings = group.create_group("embedding")
    values, vectors = corelay_spectrum(arrays["eigenvalues"], arrays["eigenvectors"])
    q = vectors.shape[1]
    embeddings.create_dataset(SPECTRAL, data=vectors)
    embeddings[SPECTRAL].attrs["eigenvalue"] = values
    map_names = [str(name) for name in arrays["map_names"]]
    for name in maps:
        embeddings.create_dataset(name, data=np.asarray(arrays["maps"][map_names.index(name)], np.float32))
        embeddings[name].attrs["embedding"] = SPECTRAL
        embeddings[name].attrs["index"] = np.arange(q, dtype=np.uint32)  # maps embed all q eigenvectors
    clusters = group.create_group("cluster")
    names = [str(name) for name in arrays["clustering_names"]]
    lead = leading_dimensions(int(summary.get("eigengap_k") or 1), q)
    for name in clusterings:
        family, _, k = name.rpartition("-k")
        dataset = clusters.create_dataset(virelay_clustering_name(name),
                                          data=arrays["clustering_labels"][names.index(name)].astype(np.int32))
        dataset.attrs["embedding"] = SPECTRAL
        dataset.attrs["k"] = int(k)
        # The eigenvectors it clustered, counted from the trivial one (our order): kmeans_lead the leading m.
        dataset.attrs["index"] = np.arange(lead if family == "kmeans_lead" else q, dtype=np.uint32)


def export_virelay(run: os.PathLike, out: os.PathLike, *, classes: Optional[Sequence[str]] = None,
                   force: bool = False, log: Optional[Callable[[str], None]] = None) -> Dict[str, object]:
    """Write a run store's classes as a ViRelAy project.

    Parameters
    ----------
    run : path
        The run store.
    out : path
        Project folder to create (``OUT/project.yaml`` and the files it names); it must be
        new or empty, or an earlier export when ``force`` is set.
    classes : sequence of str, optional
        Class names to export; default every finished class.
    force : bool
        Replace an earlier export in ``out``.
    log : callable, optional
        Called with a line of progress per class.

    Returns
    -------
    dict
        ``project`` (the YAML path), ``classes``, ``samples``, ``clusterings`` and ``maps``
        (the names exported, ViRelAy's spelling), ``dropped`` (names some class lacks),
        ``images_from_thumbnails``, ``bytes`` and ``seconds``.

    Raises
    ------
    ConfigError
        Unknown ``classes``, or an ``out`` that is not free.
    DataError
        Classes whose heatmaps differ in shape (one project holds one shape).
    """
    import h5py

    started = time.perf_counter()
    store = RunStore(run)
    out = Path(out)
    ids = _selected(store, classes)
    shapes = {tuple(store.heatmaps(cid).shape[1:]) for cid in ids}
    if len(shapes) > 1:
        raise DataError(f"{store.root}: the classes have heatmaps of different shapes {sorted(shapes)}; "
                        "export classes of one shape at a time with --classes")
    height, width = shapes.pop()
    clusterings, maps = _common(store, ids, "clustering_names"), _common(store, ids, "map_names")
    dropped = sorted({str(name) for cid in ids for key in ("clustering_names", "map_names")
                      for name in store.arrays(cid)[key]} - set(clusterings) - set(maps))
    label_names = store.label_names()
    n_classes = int(store.manifest.get("model", {}).get("num_classes") or len(label_names))
    plan, start = [], 0
    for cid in ids:
        info = store.class_info(cid)
        n = len(store.heatmaps(cid))
        plan.append(ExportedClass(cid, str(info["name"]), int(info["label"]),
                                  category_key(int(info["label"]), str(info["name"])), start, start + n))
        start += n
    total = start
    tmp = _fresh_folder(out, force)
    from_thumbs = 0
    try:
        with h5py.File(tmp / INPUT_FILE, "w") as inputs, h5py.File(tmp / ATTRIBUTION_FILE, "w") as attributions, \
                h5py.File(tmp / ANALYSIS_FILE, "w") as analysis:
            # One sample a chunk: ViRelAy reads one sample at a time.
            images = inputs.create_dataset("data", (total, height, width, 3), np.uint8, chunks=(1, height, width, 3),
                                           compression="gzip", compression_opts=4)
            heatmaps = attributions.create_dataset("attribution", (total, 3, height, width), np.float32,
                                                   chunks=(1, 3, height, width), compression="gzip",
                                                   compression_opts=4, shuffle=True, fillvalue=0.0)
            predictions = attributions.create_dataset("prediction", (total, n_classes), np.float32,
                                                      compression="gzip")
            ranks = attributions.create_dataset("true_rank", (total,), np.uint32)
            labels, split = np.zeros(total, LABEL_DTYPE), None
            for number, cls in enumerate(plan, start=1):
                arrays, summary = store.arrays(cls.cid), store.summary(cls.cid)
                images[cls.start:cls.stop], thumbs = _images(store, cls.cid, arrays["paths"], (height, width))
                from_thumbs += thumbs
                heatmaps[cls.start:cls.stop, 0] = np.asarray(store.heatmaps(cls.cid), dtype=np.float32)
                predictions[cls.start:cls.stop] = _predictions(arrays, cls.label, n_classes)
                ranks[cls.start:cls.stop] = np.clip(arrays["true_rank"], 0, None).astype(np.uint32)
                labels[cls.start:cls.stop] = cls.label
                if "split" in arrays:  # run --val-data: 1 marks a validation image
                    split = np.zeros(total, np.uint8) if split is None else split
                    split[cls.start:cls.stop] = arrays["split"]
                _write_category(analysis.create_group(cls.key), cls, arrays, summary, clusterings, maps)
                if log:
                    log(f"exported {cls.name}: {cls.stop - cls.start} samples ({number}/{len(plan)})")
            inputs["label"] = labels
            attributions["label"] = labels
            if split is not None:
                attributions["split"] = split
        (tmp / LABEL_MAP_FILE).write_text(json.dumps(
            label_map_entries(label_names, {cls.label: cls.key for cls in plan}), indent=1), encoding="utf-8")
        model = store.manifest.get("model", {})
        write_yaml(tmp / PROJECT_FILE, {"project": {
            "name": store.root.name,
            "model": str(model.get("spec") or "unknown model"),
            "label_map": LABEL_MAP_FILE,
            "dataset": {"name": f"{store.root.name} (model input)", "type": "hdf5", "path": INPUT_FILE,
                        "input_width": int(width), "input_height": int(height),
                        "up_sampling_method": "none", "down_sampling_method": "none"},
            "attributions": {"attribution_method": f"LRP {model.get('composite') or ''}".strip(),
                             "attribution_strategy": "true_label", "sources": [ATTRIBUTION_FILE]},
            "analyses": [{"analysis_method": ANALYSIS_METHOD, "sources": [ANALYSIS_FILE]}],
        }})
        (tmp / MARKER).write_text(json.dumps({"run": str(store.root)}), encoding="utf-8")
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "project": str(out / PROJECT_FILE),
        "classes": len(plan),
        "samples": total,
        "clusterings": [virelay_clustering_name(name) for name in clusterings],
        "maps": list(maps),
        "dropped": dropped,
        "images_from_thumbnails": from_thumbs,
        "bytes": sum(path.stat().st_size for path in out.iterdir() if path.is_file()),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished project into place (an earlier export in ``out`` is removed first)."""
    if out.exists():
        for entry in out.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        out.rmdir()
    try:
        os.rename(tmp, out)
    except OSError as error:
        raise SprayError(f"{out}: cannot move the finished project into place ({error.strerror})") from None
