"""The run store: the one module that knows the on-disk layout.

Precompute writes a run directory only through :class:`RunWriter`; the dashboard
and every other reader go through :class:`RunStore`. ``docs/store.md`` documents
the layout below; :data:`SCHEMA_VERSION` changes whenever it changes.

Layout::

    RUN/
      manifest.json                  run parameters, versions, model reference, class list
      report.json                    skipped files and per-class notes (rewritten as the run goes)
      classes/
        c0000/                       one folder per finished class (label index, zero-padded)
          summary.json               leaderboard row: tau, accuracy, eigengap, eigenvalues, ...
          analysis.npz               per-sample arrays (see CLASS_ARRAYS)
          heatmaps.npy               float16 (n, H, W) relevance, one contiguous block per sample
          thumbs-image.bin           packed WebP thumbnails of the model's input images
          thumbs-heatmap.bin         packed WebP thumbnails of the heatmaps
        .tmp-c0001-1234/             a class being written; never read
      artifacts/                     the run's artifact library: RGBA patches + artifacts.json (demo)
      experiments/                   written by the artifact lab (the only part the app writes)
        artifacts/<id>.png, <id>.json    artifact drafts: uploads, boxes cut from samples, proposals
        <experiment id>/             one finished experiment: record.json + thumbnails, written atomically

A class folder appears only through an atomic ``rename`` of a complete temporary
folder, so a reader never sees half a class and a killed run resumes cleanly.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

import numpy as np

from .errors import DiskFullError, StoreError

__all__ = [
    "SCHEMA_VERSION",
    "ExperimentWriter",
    "new_record_id",
    "CLASS_ARRAYS",
    "THUMB_KINDS",
    "ClassAnalysis",
    "ClassRecord",
    "RunStore",
    "RunWriter",
    "class_id",
    "clustering_name",
    "parse_clustering_name",
    "write_json_atomic",
]

SCHEMA_VERSION = 1

MANIFEST = "manifest.json"
REPORT = "report.json"
CLASSES_DIR = "classes"
ARTIFACTS_DIR = "artifacts"
EXPERIMENTS_DIR = "experiments"
SUMMARY = "summary.json"
ANALYSIS = "analysis.npz"
HEATMAPS = "heatmaps.npy"
THUMB_KINDS = ("image", "heatmap")
_THUMB_FILE = "thumbs-{kind}.bin"
_CLASS_ID_RE = re.compile(r"^c\d{4,}$")
_CLUSTERING_RE = re.compile(r"^(?P<family>[a-z][a-z0-9_]*)-k(?P<k>\d+)$")

# name -> (dtype kind, shape description); the contract of analysis.npz.
CLASS_ARRAYS: Dict[str, str] = {
    "paths": "str (n,): image path relative to the data root, '/'-separated",
    "eigenvalues": "float64 (q,): smallest eigenvalues of L_sym, ascending (trivial 0 first)",
    "eigenvectors": "float32 (n, q): column j belongs to eigenvalues[j]; rows are the spectral embedding",
    "knn_indices": "int32 (n, k): each sample's k nearest neighbours, nearest first (self excluded)",
    "knn_distances": "float32 (n, k): Euclidean distances to those neighbours",
    "clustering_names": "str (m,): '<family>-k<k>', e.g. 'kmeans-k5', 'ward-k3'",
    "clustering_labels": "int16 (m, n): cluster label of each sample, 0..k-1",
    "fisher": "float64 (m,): Fisher separability of each clustering on the full embedding",
    "map_names": "str (p,): names of the 2-D maps, e.g. 'umap', 'tsne'",
    "maps": "float32 (p, n, 2): the 2-D maps of the spectral embedding",
    "top_classes": "int32 (n, t): top-t predicted label indices, most probable first",
    "top_probs": "float32 (n, t): their softmax probabilities",
    "true_prob": "float32 (n,): probability of the true label",
    "true_rank": "int32 (n,): rank of the true label, 1 = top-1",
    "relevance_sum": "float32 (n,): sum of each heatmap",
    "thumb_offsets_image": "int64 (n+1,): byte offsets into thumbs-image.bin",
    "thumb_offsets_heatmap": "int64 (n+1,): byte offsets into thumbs-heatmap.bin",
}


def class_id(label: int) -> str:
    """Folder name of the class with model label index ``label``: ``c0007``."""
    return f"c{int(label):04d}"


def clustering_name(family: str, k: int) -> str:
    """Stored name of one clustering: ``clustering_name("ward", 3) == "ward-k3"``."""
    return f"{family}-k{int(k)}"


def parse_clustering_name(name: str) -> tuple:
    """Inverse of :func:`clustering_name`: ``"ward-k3" -> ("ward", 3)``."""
    match = _CLUSTERING_RE.match(name)
    if not match:
        raise StoreError(f"not a clustering name: {name!r} (expected '<family>-k<k>')")
    return match["family"], int(match["k"])


def _is_disk_full(error: OSError, folder: Path) -> bool:
    """True if ``error`` means "no space left": ENOSPC/EDQUOT, or a short write (numpy's
    ``tofile`` raises a bare ``OSError("N requested and M written")``) on a nearly full disk."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(folder).free < 16 * 1024 * 1024
    except OSError:
        return False


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_bytes_durable(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(obj, handle, indent=1, sort_keys=True, allow_nan=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_safe(obj: Any) -> Any:
    """Turn numpy scalars/arrays into JSON types; NaN/inf become None."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


@dataclass
class ClassAnalysis:
    """Everything precompute stores for one class, in memory.

    Attributes mirror :data:`CLASS_ARRAYS`; ``summary`` is the leaderboard row
    (JSON types only) and ``heatmaps`` the float16 relevance maps (n, H, W).
    Thumbnails are lists of encoded image bytes, one per sample.
    """

    summary: Dict[str, Any]
    arrays: Dict[str, np.ndarray]
    heatmaps: np.ndarray
    thumbs: Dict[str, List[bytes]] = field(default_factory=dict)


@dataclass(frozen=True)
class ClassRecord:
    """A finished class as listed by :meth:`RunStore.classes` (its summary plus its folder)."""

    id: str
    name: str
    label: int
    summary: Mapping[str, Any]


class RunStore:
    """Read-only access to a run directory.

    Parameters
    ----------
    root : path
        The run directory (the ``--out`` of ``python -m precompute run``).

    Raises
    ------
    StoreError
        If the directory has no manifest, or a manifest of another schema version.
    """

    def __init__(self, root: os.PathLike):
        self.root = Path(root).resolve()
        manifest_path = self.root / MANIFEST
        if not manifest_path.is_file():
            raise StoreError(f"{self.root}: not a SpRAy run (no {MANIFEST}); build one with 'python -m precompute run'")
        try:
            self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise StoreError(f"{manifest_path}: unreadable manifest ({error})") from None
        version = self.manifest.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{manifest_path}: schema version {version!r}, this SpRAy Studio reads version {SCHEMA_VERSION}; "
                "re-run precompute with --force"
            )
        self._names = {entry["id"]: entry for entry in self.manifest.get("classes", [])}

    # -- manifest-level -------------------------------------------------------------------------
    @property
    def classes_dir(self) -> Path:
        return self.root / CLASSES_DIR

    @property
    def artifacts_dir(self) -> Path:
        return self.root / ARTIFACTS_DIR

    @property
    def experiments_dir(self) -> Path:
        return self.root / EXPERIMENTS_DIR

    def data_root(self) -> Path:
        """Folder that the per-sample ``paths`` are relative to (absolute, or relative to the run)."""
        root = Path(self.manifest["data"]["root"])
        return root if root.is_absolute() else self.root / root

    def label_names(self) -> List[str]:
        """Name of every model output index; ``label_names()[i]`` names label ``i``."""
        return list(self.manifest["data"]["label_names"])

    def class_info(self, cid: str) -> Dict[str, Any]:
        """Manifest entry of class ``cid`` (id, name, label, n_files)."""
        try:
            return self._names[cid]
        except KeyError:
            raise StoreError(f"unknown class id {cid!r}") from None

    def id_for_name(self, name: str) -> str:
        """Class id of the class called ``name``."""
        for cid, entry in self._names.items():
            if entry["name"] == name:
                return cid
        raise StoreError(f"unknown class {name!r}")

    def report(self) -> Dict[str, Any]:
        """The run report (skipped files, notes); empty if none was written yet."""
        path = self.root / REPORT
        if not path.is_file():
            return {}
        return json.loads(path.read_text(encoding="utf-8"))

    # -- classes --------------------------------------------------------------------------------
    def finished_ids(self) -> List[str]:
        """Ids of the classes whose folder is complete, sorted."""
        if not self.classes_dir.is_dir():
            return []
        return sorted(
            entry.name
            for entry in os.scandir(self.classes_dir)
            if _CLASS_ID_RE.match(entry.name) and os.path.isfile(os.path.join(entry.path, SUMMARY))
        )

    def has_class(self, cid: str) -> bool:
        return bool(_CLASS_ID_RE.match(cid)) and (self.classes_dir / cid / SUMMARY).is_file()

    def _class_dir(self, cid: str) -> Path:
        if not self.has_class(cid):
            raise StoreError(f"class {cid!r} is not in this run (or not finished)")
        return self.classes_dir / cid

    def summary(self, cid: str) -> Dict[str, Any]:
        """The leaderboard row of class ``cid``."""
        return json.loads((self._class_dir(cid) / SUMMARY).read_text(encoding="utf-8"))

    def classes(self) -> List[ClassRecord]:
        """Every finished class with its summary, in label order."""
        records = []
        for cid in self.finished_ids():
            summary = self.summary(cid)
            records.append(ClassRecord(id=cid, name=summary["name"], label=summary["label"], summary=summary))
        return records

    def arrays(self, cid: str) -> Dict[str, np.ndarray]:
        """All arrays of :data:`CLASS_ARRAYS` for class ``cid`` (loaded, no pickle)."""
        with np.load(self._class_dir(cid) / ANALYSIS, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}

    def heatmaps(self, cid: str) -> np.ndarray:
        """Memory-mapped float16 heatmaps of class ``cid``, shape (n, H, W), read-only."""
        return np.load(self._class_dir(cid) / HEATMAPS, mmap_mode="r", allow_pickle=False)

    def thumbnail(self, cid: str, kind: str, index: int, offsets: Optional[np.ndarray] = None) -> bytes:
        """Encoded thumbnail ``index`` of kind ``"image"`` or ``"heatmap"`` of class ``cid``.

        ``offsets`` (the class's ``thumb_offsets_<kind>`` array) may be passed by callers
        that cache it; otherwise it is read from ``analysis.npz``.
        """
        if kind not in THUMB_KINDS:
            raise StoreError(f"unknown thumbnail kind {kind!r}")
        folder = self._class_dir(cid)
        if offsets is None:
            with np.load(folder / ANALYSIS, allow_pickle=False) as npz:
                offsets = npz[f"thumb_offsets_{kind}"]
        index = int(index)
        if not 0 <= index < len(offsets) - 1:
            raise StoreError(f"class {cid}: no sample {index}")
        start, stop = int(offsets[index]), int(offsets[index + 1])
        with open(folder / _THUMB_FILE.format(kind=kind), "rb") as handle:
            handle.seek(start)
            return handle.read(stop - start)

    def class_bytes(self, cid: str) -> int:
        """Bytes on disk of class ``cid``."""
        folder = self._class_dir(cid)
        return sum(entry.stat().st_size for entry in os.scandir(folder) if entry.is_file())

    # -- artifacts and experiments --------------------------------------------------------------
    def artifacts(self) -> List[Dict[str, Any]]:
        """The run's artifact library (``artifacts/artifacts.json``), possibly empty."""
        path = self.artifacts_dir / "artifacts.json"
        if not path.is_file():
            return []
        return json.loads(path.read_text(encoding="utf-8"))

    def artifact_entries(self) -> List[Dict[str, Any]]:
        """Every artifact a lab can use: the library (``id`` = ``lib-<name>``), then drafts, newest first.

        Each entry has ``id``, ``name``, ``class`` (origin class name, may be empty),
        ``position`` ([x, y] in model-input pixels, or None), ``size`` ([w, h]) and ``source``.
        """
        entries = []
        for item in self.artifacts():
            entries.append({**item, "id": f"lib-{item['name']}", "source": "library"})
        drafts_dir = self.experiments_dir / _DRAFTS
        if drafts_dir.is_dir():
            drafts = []
            for path in drafts_dir.glob("*.json"):
                try:
                    drafts.append(json.loads(path.read_text(encoding="utf-8")))
                except (OSError, ValueError):
                    continue
            entries += sorted(drafts, key=lambda item: item.get("created", ""), reverse=True)
        return entries

    def artifact_entry(self, artifact_id: str) -> Dict[str, Any]:
        """One artifact entry by id (see :meth:`artifact_entries`)."""
        for entry in self.artifact_entries():
            if entry["id"] == artifact_id:
                return entry
        raise StoreError(f"unknown artifact {artifact_id!r}")

    def artifact_png(self, artifact_id: str) -> bytes:
        """The RGBA PNG of an artifact entry."""
        entry = self.artifact_entry(artifact_id)
        if entry["source"] == "library":
            path = self.artifacts_dir / Path(entry["file"]).name
        else:
            path = self.experiments_dir / _DRAFTS / f"{_checked_id(artifact_id)}.png"
        return path.read_bytes()

    def experiments(self) -> List[Dict[str, Any]]:
        """All saved experiment records, newest first."""
        if not self.experiments_dir.is_dir():
            return []
        records = []
        for entry in os.scandir(self.experiments_dir):
            if entry.name.startswith(".") or entry.name == _DRAFTS or not entry.is_dir():
                continue
            try:
                records.append(json.loads(Path(entry.path, _RECORD).read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return sorted(records, key=lambda rec: rec.get("created", ""), reverse=True)

    def experiment(self, exp_id: str) -> Dict[str, Any]:
        """The record of experiment ``exp_id``."""
        path = self.experiments_dir / _checked_id(exp_id) / _RECORD
        if not path.is_file():
            raise StoreError(f"unknown experiment {exp_id!r}")
        return json.loads(path.read_text(encoding="utf-8"))

    def experiment_file(self, exp_id: str, name: str) -> bytes:
        """A file saved with experiment ``exp_id`` (thumbnails, the artifact PNG)."""
        if not _FILE_NAME_RE.match(name or "") or name == _RECORD:
            raise StoreError(f"bad experiment file name {name!r}")
        path = self.experiments_dir / _checked_id(exp_id) / name
        if not path.is_file():
            raise StoreError(f"experiment {exp_id!r} has no file {name!r}")
        return path.read_bytes()


_DRAFTS = "artifacts"
_RECORD = "record.json"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}\.(png|webp|json|csv)$")


def _checked_id(record_id: str) -> str:
    if not isinstance(record_id, str) or not _ID_RE.match(record_id) or record_id == _DRAFTS:
        raise StoreError(f"bad id {record_id!r}")
    return record_id


def new_record_id(prefix: str) -> str:
    """A fresh, sortable, collision-safe id: ``<prefix>-YYYYmmdd-HHMMSS-<8 hex>``."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(4).hex()}"


class ExperimentWriter:
    """Write access to ``RUN/experiments`` only: what the app may write (artifact drafts, experiments).

    Parameters
    ----------
    store : RunStore
        The run; everything outside ``experiments/`` stays untouched.
    """

    def __init__(self, store: RunStore):
        self.store = store
        self.root = store.experiments_dir

    def save_artifact_draft(self, meta: Dict[str, Any], png: bytes) -> Dict[str, Any]:
        """Save an RGBA PNG with its metadata; return the entry (with a new ``id``)."""
        drafts = self.root / _DRAFTS
        drafts.mkdir(parents=True, exist_ok=True)
        artifact_id = new_record_id("art")
        entry = _json_safe({**meta, "id": artifact_id, "source": meta.get("source", "upload"),
                            "created": datetime_now()})
        _write_bytes_durable(drafts / f".{artifact_id}.png.tmp", png)
        os.replace(drafts / f".{artifact_id}.png.tmp", drafts / f"{artifact_id}.png")
        write_json_atomic(drafts / f"{artifact_id}.json", entry)  # the json is the "done" marker
        return entry

    def save_experiment(self, record: Dict[str, Any], files: Mapping[str, bytes]) -> Path:
        """Save an experiment record and its files atomically as ``experiments/<record id>/``."""
        exp_id = _checked_id(str(record["id"]))
        for name in files:
            if not _FILE_NAME_RE.match(name) or name == _RECORD:
                raise StoreError(f"bad experiment file name {name!r}")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{exp_id}-", dir=self.root))
        try:
            for name, payload in files.items():
                _write_bytes_durable(tmp / name, payload)
            _write_bytes_durable(tmp / _RECORD, json.dumps(_json_safe(record), indent=1, sort_keys=True,
                                                           allow_nan=False).encode())
            final = self.root / exp_id
            if final.exists():
                raise StoreError(f"experiment {exp_id!r} exists already")
            os.rename(tmp, final)
            return final
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def datetime_now() -> str:
    """UTC time, ISO 8601 with seconds."""
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class RunWriter(RunStore):
    """Write access to a run directory: the manifest, finished classes, the report.

    Use :meth:`create` to start or resume a run; it refuses to mix a new run into a
    directory made with other parameters unless ``force`` is set.
    """

    @classmethod
    def create(cls, root: os.PathLike, manifest: Dict[str, Any], *, force: bool = False,
               compare_keys: Sequence[str] = ("data", "model", "analysis", "thumbnails")) -> "RunWriter":
        """Open ``root`` for writing, creating it and its manifest if needed.

        Parameters
        ----------
        root : path
            Run directory.
        manifest : dict
            The new run's manifest (without ``schema_version``, which is added).
        force : bool
            Start afresh: finished classes are kept until each is rewritten.
            Without it, a resumed run keeps the old manifest, adding new classes to its list.
        compare_keys : sequence of str
            Manifest sections that must equal those of an existing run to resume it.

        Raises
        ------
        StoreError
            If ``root`` holds a run with other parameters and ``force`` is false.
        """
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root}: exists and is not a directory")
        root.mkdir(parents=True, exist_ok=True)
        manifest = _json_safe({**manifest, "schema_version": SCHEMA_VERSION})
        path = root / MANIFEST
        if path.is_file() and not force:
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                old = None
            if old is not None:
                differing = [key for key in compare_keys if old.get(key) != manifest.get(key)]
                if old.get("schema_version") != SCHEMA_VERSION:
                    differing.append("schema_version")
                if differing:
                    raise StoreError(
                        f"{root} holds a run with other {', '.join(differing)}; use another --out, "
                        "or --force to recompute it with the new parameters"
                    )
                classes = {entry["id"]: entry for entry in old.get("classes", [])}
                classes.update({entry["id"]: entry for entry in manifest.get("classes", [])})
                manifest = {**old, **{k: v for k, v in manifest.items() if k != "created"}}
                manifest["classes"] = sorted(classes.values(), key=lambda entry: entry["label"])
        write_json_atomic(path, manifest)
        writer = cls(root)
        writer.classes_dir.mkdir(exist_ok=True)
        writer.remove_stale_temporaries()
        return writer

    def remove_stale_temporaries(self) -> List[str]:
        """Delete ``.tmp-*`` folders left by a killed run; return their names."""
        removed = []
        for entry in os.scandir(self.classes_dir):
            if entry.name.startswith((".tmp-", ".old-")) and entry.is_dir():
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.name)
        return removed

    def update_manifest(self, **sections: Any) -> None:
        """Merge ``sections`` into the manifest and rewrite it atomically."""
        self.manifest.update(_json_safe(sections))
        write_json_atomic(self.root / MANIFEST, self.manifest)

    def write_report(self, report: Mapping[str, Any]) -> None:
        """Rewrite ``report.json`` atomically."""
        write_json_atomic(self.root / REPORT, _json_safe(dict(report)))

    def write_class(self, cid: str, analysis: ClassAnalysis) -> Path:
        """Write one class atomically and return its folder.

        Files go to ``classes/.tmp-<cid>-<pid>/``, are fsynced, and the folder is renamed
        to ``classes/<cid>``; an existing folder of that id is replaced.
        """
        if not _CLASS_ID_RE.match(cid):
            raise StoreError(f"bad class id {cid!r}")
        missing = set(CLASS_ARRAYS) - set(analysis.arrays) - {f"thumb_offsets_{k}" for k in THUMB_KINDS}
        if missing:
            raise StoreError(f"class {cid}: missing arrays {sorted(missing)}")
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{cid}-", dir=self.classes_dir))
        try:
            arrays = dict(analysis.arrays)
            for kind in THUMB_KINDS:
                blobs = analysis.thumbs.get(kind, [])
                offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
                np.cumsum([len(blob) for blob in blobs], out=offsets[1:])
                arrays[f"thumb_offsets_{kind}"] = offsets
                _write_bytes_durable(tmp / _THUMB_FILE.format(kind=kind), b"".join(blobs))
            heatmaps = np.ascontiguousarray(analysis.heatmaps, dtype=np.float16)
            with open(tmp / HEATMAPS, "wb") as handle:
                np.save(handle, heatmaps, allow_pickle=False)
                handle.flush()
                os.fsync(handle.fileno())
            with open(tmp / ANALYSIS, "wb") as handle:
                np.savez(handle, **arrays)
                handle.flush()
                os.fsync(handle.fileno())
            summary = _json_safe(dict(analysis.summary))
            summary["bytes"] = sum(entry.stat().st_size for entry in os.scandir(tmp) if entry.is_file())
            # The summary is the "finished" marker, so it is written last.
            _write_bytes_durable(tmp / SUMMARY, json.dumps(summary, indent=1, sort_keys=True, allow_nan=False).encode())
            _fsync_dir(tmp)
            final = self.classes_dir / cid
            if final.exists():
                old = self.classes_dir / f".old-{cid}-{os.getpid()}-{time.monotonic_ns()}"
                os.rename(final, old)
                os.rename(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, final)
            _fsync_dir(self.classes_dir)
            return final
        except OSError as error:
            shutil.rmtree(tmp, ignore_errors=True)
            if _is_disk_full(error, self.classes_dir):
                raise DiskFullError(f"out of disk space while writing class {cid} to {self.root}") from None
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def save_artifacts(self, entries: Iterable[Dict[str, Any]]) -> None:
        """Rewrite the artifact library index ``artifacts/artifacts.json``."""
        self.artifacts_dir.mkdir(exist_ok=True)
        write_json_atomic(self.artifacts_dir / "artifacts.json", _json_safe(list(entries)))


def iter_class_ids(labels: Iterable[int]) -> Iterator[str]:
    """Class ids for model label indices, in order."""
    for label in labels:
        yield class_id(label)
