"""Reading a ViRelAy/CoRelAy project: the YAML, its label map and its HDF5 files, checked as they are read.

:class:`ViRelAyProject` opens ``PROJECT.yaml`` and every file it names; anything missing or
malformed raises a :class:`~precompute.errors.ConfigError` (the YAML) or a
:class:`~precompute.errors.DataError` (a file it names) whose one-line message names the
file and what is wrong. It reads both analysis layouts: ViRelAy 0.6.1's
(``<category>/embedding/<name>`` datasets, ``<category>/cluster/<name>``) and the older
one of ViRelAy's documentation (``<name>/root`` groups, ``<category>/clustering``).
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import ConfigError, DataError
from .virelay_format import SPECTRAL, read_label_map, read_yaml

__all__ = ["ViRelAyProject", "Category", "Attributions", "EXTRAS"]

EXTRAS = ("true_rank", "split")
"""Datasets our export adds to the attribution file (ViRelAy ignores them): the true label's rank,
which the sparse ``prediction`` cannot hold, and the training/validation split of ``run --val-data``."""


@dataclass
class Category:
    """One category of an analysis (usually a class), as its analysis file holds it.

    Attributes
    ----------
    name : str
        Its group name (a WordNet id, a label index, or any name).
    source : Path
        The analysis file.
    index : ndarray of int64, shape (n,)
        Its samples: indices into the attributions (and the dataset).
    spectrum : tuple of (ndarray (q,), ndarray (n, q)) or None
        The spectral embedding's eigenvalues and eigenvectors, in the file's order.
    maps : dict of str -> ndarray of float32, shape (n, 2)
        Its other 2-D embeddings (UMAP, t-SNE, ...).
    clusterings : dict of str -> (ndarray (n,), int or None)
        Labels and the ``k`` attribute of each clustering, by name.
    notes : list of str
        What was left out, and why.
    """

    name: str
    source: Path
    index: np.ndarray
    spectrum: Optional[Tuple[np.ndarray, np.ndarray]] = None
    maps: Dict[str, np.ndarray] = field(default_factory=dict)
    clusterings: Dict[str, Tuple[np.ndarray, Optional[int]]] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


def _open_h5(path: Path, what: str):
    import h5py

    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"{path}: {what} is not a readable HDF5 file ({error})") from None


def _member(handle, key: str, path: Path, what: str):
    if key not in handle:
        raise DataError(f"{path}: no '{key}' in the {what}")
    return handle[key]


def _array(node) -> np.ndarray:
    """A dataset's values, or an old-layout group's ``root`` dataset."""
    import h5py

    if isinstance(node, h5py.Group):
        if "root" not in node:
            raise ValueError(f"group '{node.name}' is neither a dataset nor holds a 'root' dataset")
        node = node["root"]
    return np.asarray(node[()])


class _Rows:
    """Row access to an HDF5 member that is one dataset (sample = first axis) or a group (sample = key)."""

    def __init__(self, node):
        import h5py

        self.node = node
        self.keys = sorted(node.keys()) if isinstance(node, h5py.Group) else None
        self.length = len(self.keys) if self.keys is not None else (node.shape[0] if node.shape else 0)

    def get(self, rows: np.ndarray) -> List[np.ndarray]:
        if self.keys is not None:
            return [np.asarray(self.node[self.keys[int(r)]][()]) for r in rows]
        order = np.argsort(rows, kind="stable")  # h5py reads sorted, distinct indices only
        unique, inverse = np.unique(rows[order], return_inverse=True)
        if len(unique) and unique[-1] - unique[0] == len(unique) - 1:  # a run of rows: one slice, much faster
            block = np.asarray(self.node[int(unique[0]):int(unique[-1]) + 1])
        else:
            block = np.asarray(self.node[unique])
        out: List[Any] = [None] * len(rows)
        for position, row in zip(order, inverse):
            out[position] = block[row]
        return out


def _heatmap(sample: np.ndarray) -> np.ndarray:
    """A channel-summed (H, W) heatmap of an attribution: (C, H, W) or (H, W, C), as ViRelAy guesses."""
    sample = np.asarray(sample, dtype=np.float32)
    if sample.ndim == 3:
        return sample.sum(axis=0) if int(np.argmin(sample.shape)) == 0 else sample.sum(axis=-1)
    return sample


@dataclass
class _AttributionFile:
    path: Path
    rows: _Rows
    labels: _Rows
    prediction: Optional[_Rows]
    extras: Dict[str, np.ndarray]  # our export's additions that ViRelAy ignores (EXTRAS), one value a row
    positions: Optional[Dict[int, int]]  # sample index -> row, from the file's 'index'; None: row = sample


class Attributions:
    """The attribution files of a project, looked up by sample index as ViRelAy does (first file that has it)."""

    def __init__(self, paths: List[Path]):
        self.handles: List[Any] = []
        self.files: List[_AttributionFile] = []
        try:
            for path in paths:
                self._add(path)
        except BaseException:
            self.close()
            raise

    def _add(self, path: Path) -> None:
        """Open one attribution file, checking its members as they are read."""
        handle = _open_h5(path, "attribution file")
        self.handles.append(handle)
        rows = _Rows(_member(handle, "attribution", path, "attribution file"))
        labels = _Rows(_member(handle, "label", path, "attribution file"))
        index = np.asarray(handle["index"][()], dtype=np.int64).ravel() if "index" in handle else None
        if index is not None and len(index) != rows.length:
            raise DataError(f"{path}: 'index' has {len(index)} entries for {rows.length} attributions")
        if labels.length != rows.length:
            raise DataError(f"{path}: 'label' has {labels.length} entries for {rows.length} attributions")
        prediction = _Rows(handle["prediction"]) if "prediction" in handle else None
        if prediction is not None and prediction.length != rows.length:
            prediction = None  # reported as unknown predictions by the importer
        extras = {key: np.asarray(handle[key][()]).ravel() for key in EXTRAS if key in handle}
        self.files.append(_AttributionFile(
            path, rows, labels, prediction, {k: v for k, v in extras.items() if len(v) == rows.length},
            {int(v): i for i, v in enumerate(index)} if index is not None else None))

    def _by_file(self, samples: np.ndarray):
        """``(file, positions in samples, rows in the file)`` for each file that holds some of ``samples``."""
        located = []
        for sample in np.asarray(samples, np.int64):
            for number, file in enumerate(self.files):
                row = file.positions.get(int(sample)) if file.positions is not None else (
                    int(sample) if 0 <= sample < file.rows.length else None)
                if row is not None:
                    located.append((number, row))
                    break
            else:
                names = ", ".join(str(file.path) for file in self.files)
                raise DataError(f"{names}: no attribution for sample {int(sample)}")
        for number in sorted({number for number, _ in located}):
            where = [i for i, (file_number, _) in enumerate(located) if file_number == number]
            yield self.files[number], where, np.array([located[i][1] for i in where], dtype=np.int64)

    def labels(self, samples: np.ndarray) -> np.ndarray:
        """The true label of each sample, int64 (n,)."""
        out = np.zeros(len(samples), np.int64)
        for file, where, rows in self._by_file(samples):
            found = [np.asarray(v) for v in file.labels.get(rows)]
            if any(v.size != 1 for v in found):
                raise DataError(f"{file.path}: multi-label attributions (n-hot labels) are not supported")
            out[where] = [int(v.ravel()[0]) for v in found]
        return out

    def read(self, samples: np.ndarray) -> Dict[str, Any]:
        """Heatmaps (n, H, W) float32, labels (n,), predictions (n, C) or None, and each of :data:`EXTRAS` or None."""
        n = len(samples)
        heatmaps: List[Any] = [None] * n
        predictions: Optional[List[Any]] = [None] * n
        extras: Dict[str, Optional[np.ndarray]] = {key: np.zeros(n, np.int64) for key in EXTRAS}
        for file, where, rows in self._by_file(samples):
            for i, sample in zip(where, file.rows.get(rows)):
                heatmaps[i] = _heatmap(sample)
            if file.prediction is None:
                predictions = None
            elif predictions is not None:
                for i, row in zip(where, file.prediction.get(rows)):
                    predictions[i] = np.asarray(row, np.float64).ravel()
            for key in EXTRAS:
                if key not in file.extras:
                    extras[key] = None
                elif extras[key] is not None:
                    extras[key][where] = file.extras[key][rows]
        shapes = {h.shape for h in heatmaps}
        if len(shapes) > 1 or any(len(shape) != 2 for shape in shapes):
            where = ", ".join(sorted({str(file.path) for file, _, _ in self._by_file(samples)}))
            raise DataError(f"{where}: the attributions of one category must share one image shape, found "
                            f"{sorted(shapes)}")
        if predictions is not None and len({row.shape for row in predictions}) != 1:
            predictions = None
        return {"heatmaps": np.stack(heatmaps), "labels": self.labels(samples),
                "predictions": None if predictions is None else np.stack(predictions), **extras}

    def close(self) -> None:
        for handle in self.handles:
            handle.close()
        self.handles = []


class ViRelAyProject:
    """A ViRelAy project opened for reading (a context manager; :meth:`close` releases its files).

    Parameters
    ----------
    path : path
        The project YAML file; the paths it names are relative to its folder.

    Attributes
    ----------
    name, model : str
    label_map : list of dict
        ``{index, word_net_id, name}`` entries.
    attribution_method : str
    analyses : dict of str -> list of Path
        Analysis files of each analysis method, in the project's order.
    dataset : dict
        The YAML's ``dataset`` section; ``dataset_path`` is its resolved path.
    """

    def __init__(self, path: os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: project file not found")
        doc = read_yaml(self.path)
        project = doc.get("project") if isinstance(doc, dict) else None
        if not isinstance(project, dict):
            raise ConfigError(f"{self.path}: not a ViRelAy project (no 'project:' mapping)")
        folder = self.path.parent
        for key in ("label_map", "dataset"):
            if key not in project:
                raise ConfigError(f"{self.path}: the project has no '{key}'")
        self.name = str(project.get("name") or self.path.stem)
        self.model = str(project.get("model") or "unknown model")
        self.label_map = read_label_map(folder / str(project["label_map"]))
        self.dataset = project["dataset"] if isinstance(project["dataset"], dict) else {}
        if self.dataset.get("type") not in ("hdf5", "image_directory") or "path" not in self.dataset:
            raise ConfigError(f"{self.path}: 'dataset' needs a 'type' (hdf5 or image_directory) and a 'path'")
        self.dataset_path = folder / str(self.dataset["path"])
        attributions = project.get("attributions")
        if not isinstance(attributions, dict) or not attributions.get("sources"):
            raise ConfigError(f"{self.path}: the project has no attributions; SpRAy Studio needs the heatmaps")
        self.attribution_method = str(attributions.get("attribution_method") or "unknown")
        self.analyses: Dict[str, List[Path]] = {}
        for number, analysis in enumerate(project.get("analyses") or []):
            if not isinstance(analysis, dict) or "analysis_method" not in analysis or not analysis.get("sources"):
                raise ConfigError(f"{self.path}: analyses[{number}] needs an 'analysis_method' and 'sources'")
            self.analyses.setdefault(str(analysis["analysis_method"]), []).extend(
                folder / str(source) for source in analysis["sources"])
        self._handles: List[Any] = []
        self._images = None
        self.attributions = Attributions([folder / str(source) for source in attributions["sources"]])
        try:
            self._open_dataset()
            self._analysis_files = {method: [self._open(p, "analysis file") for p in paths]
                                    for method, paths in self.analyses.items()}
        except BaseException:
            self.close()
            raise

    # -- the dataset --------------------------------------------------------------------------
    def _open(self, path: Path, what: str):
        handle = _open_h5(path, what)
        self._handles.append(handle)
        return handle

    def _open_dataset(self) -> None:
        if self.dataset["type"] == "hdf5":
            handle = self._open(self.dataset_path, "dataset file")
            self._images = _Rows(_member(handle, "data", self.dataset_path, "dataset file"))
            self.sample_paths = None
            return
        listing = Path(str(self.dataset_path) + "_paths.txt")
        if listing.is_file():  # ViRelAy's convention: paths relative to the dataset folder's parent
            names = [line for line in listing.read_text(encoding="utf-8").split("\n") if line]
            paths = sorted(str(self.dataset_path.parent / name) for name in names)
        else:
            paths = sorted(glob.glob(os.path.join(str(self.dataset_path), "**", "*.*"), recursive=True))
        if not paths:
            raise DataError(f"{self.dataset_path}: no images in the dataset folder")
        self.sample_paths = paths

    def sample_names(self, samples: np.ndarray) -> List[str]:
        """A path for each sample, relative to :meth:`data_root`."""
        if self.sample_paths is None:
            return [f"{self.dataset_path.name}/{int(s):06d}" for s in samples]
        root = self.data_root()
        return [os.path.relpath(self.sample_paths[int(s)], root).replace(os.sep, "/") for s in samples]

    def data_root(self) -> Path:
        """The folder the sample paths are relative to (the image folder, or the HDF5 file's folder)."""
        return (self.dataset_path if self.sample_paths is not None else self.dataset_path.parent).resolve()

    def images(self, samples: np.ndarray) -> List[np.ndarray]:
        """The samples' images as stored: arrays (HDF5) or decoded RGB files (image folder)."""
        if self.sample_paths is None:
            if int(np.max(samples, initial=-1)) >= self._images.length:
                raise DataError(f"{self.dataset_path}: the dataset has {self._images.length} samples, the "
                                f"analysis refers to sample {int(np.max(samples))}")
            return self._images.get(np.asarray(samples, np.int64))
        from ..data import load_rgb

        if int(np.max(samples, initial=-1)) >= len(self.sample_paths):
            raise DataError(f"{self.dataset_path}: the dataset has {len(self.sample_paths)} images, the analysis "
                            f"refers to sample {int(np.max(samples))}")
        return [np.asarray(load_rgb(self.sample_paths[int(s)])) for s in samples]

    # -- the analyses -------------------------------------------------------------------------
    def method(self, name: Optional[str] = None) -> str:
        """The analysis method to import: ``name``, or the project's first."""
        if not self.analyses:
            raise ConfigError(f"{self.path}: the project has no analyses to import")
        if name is None:
            return next(iter(self.analyses))
        if name not in self.analyses:
            raise ConfigError(f"--analysis {name!r}: not in {self.path} (it has {', '.join(self.analyses)})")
        return name

    def categories(self, method: str) -> List[Category]:
        """Every category of ``method``'s analysis files; a category in two files is read from the first."""
        seen: Dict[str, Category] = {}
        for path, handle in zip(self.analyses[method], self._analysis_files[method]):
            for name in handle.keys():
                if name in seen:
                    continue
                try:
                    seen[name] = _read_category(path, name, handle[name])
                except (KeyError, TypeError, ValueError) as error:  # a member of another type or shape than ours
                    raise DataError(f"{path}: category '{name}' is malformed ({error})") from None
        if not seen:
            raise DataError(f"{self.analyses[method][0]}: the analysis file holds no categories")
        return list(seen.values())

    def close(self) -> None:
        """Close every file of the project."""
        if hasattr(self, "attributions"):
            self.attributions.close()
        for handle in getattr(self, "_handles", []):
            handle.close()
        self._handles = []

    def __enter__(self) -> "ViRelAyProject":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_category(path: Path, name: str, group) -> Category:
    import h5py

    where = f"{path}: category '{name}'"
    if not isinstance(group, h5py.Group) or "index" not in group:
        raise DataError(f"{where} has no 'index' of its samples")
    index = np.asarray(group["index"][()], dtype=np.int64).ravel()
    category = Category(name=name, source=path, index=index)
    n = len(index)
    embeddings = sorted(group["embedding"].items(), key=lambda item: item[0] != SPECTRAL) if "embedding" in group else []
    for key, node in embeddings:  # "spectral" first: it is the spectral embedding if several have eigenvalues
        values = _array(node).astype(np.float32)
        if values.ndim != 2 or values.shape[0] != n:
            raise DataError(f"{where}: embedding '{key}' has shape {values.shape}, expected ({n}, d)")
        eigen = node.attrs.get("eigenvalue") if "eigenvalue" in node.attrs else (
            node["eigenvalue"][()] if isinstance(node, h5py.Group) and "eigenvalue" in node else None)
        if eigen is not None and category.spectrum is None:
            eigen = np.asarray(eigen, np.float64).ravel()
            if len(eigen) != values.shape[1] or not np.all(np.isfinite(eigen)):
                raise DataError(f"{where}: embedding '{key}' has {values.shape[1]} dimensions but "
                                f"{len(eigen)} eigenvalues (or non-finite ones)")
            category.spectrum = (eigen, values)
        elif values.shape[1] == 2:
            category.maps[key] = values
        else:
            category.notes.append(f"embedding '{key}' ({values.shape[1]} dimensions, no eigenvalues) left out")
    clusters = group["cluster"] if "cluster" in group else group.get("clustering")
    for key, node in (clusters.items() if clusters is not None else []):
        labels = _array(node)
        if labels.shape != (n,) or labels.dtype.kind not in "biu":
            category.notes.append(f"clustering '{key}' (shape {labels.shape}, {labels.dtype}) left out")
            continue
        k = node.attrs.get("k")
        if k is None and isinstance(node, h5py.Group) and "#clusters" in node:  # the older layout
            k = node["#clusters"][()]
        category.clusterings[key] = (labels, int(k) if k is not None and np.ndim(k) == 0 else None)
    return category
