"""Write access to a run directory: :class:`RunWriter` (precompute) and :class:`ExperimentWriter` (the app).

Every write is atomic: JSON through a temporary file and ``os.replace``, a class and an
experiment as a temporary folder renamed into place (``docs/store.md``, Atomicity).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Sequence, Union

import numpy as np

from ..errors import DiskFullError, StoreError
from .layout import (
    ANALYSIS,
    ANALYSIS_RESULT_ARRAYS,
    ARTIFACT_INDEX,
    CLASS_ARRAYS,
    CLASS_MASKS,
    MASK_ARRAYS,
    PERTURBATION,
    PERTURBATION_ARRAYS,
    DRAFTS_DIR,
    HEATMAPS,
    MANIFEST,
    RECORD,
    REPORT,
    SEARCH_DIR,
    SEARCH_META,
    SEARCH_ROWS,
    SEARCH_VECTORS,
    READABLE_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
    SUMMARY,
    THUMB_KINDS,
    VARIANT_RECORD,
    analysis_file,
    checked_file_name,
    checked_id,
    class_id,
    fsync_dir,
    is_class_id,
    is_disk_full,
    json_safe,
    thumb_file,
    write_bytes_durable,
    write_json_atomic,
)
from .reader import RunStore
from .records import ClassSummary, Manifest, Variant

__all__ = ["ClassAnalysis", "ExperimentWriter", "RunWriter", "new_record_id", "datetime_now", "iter_class_ids"]


@dataclass
class ClassAnalysis:
    """Everything precompute stores for one class, in memory.

    Attributes mirror :data:`CLASS_ARRAYS`; ``summary`` is the leaderboard row (a
    :class:`~precompute.store.records.ClassSummary`, or a dict of JSON types) and
    ``heatmaps`` the float16 relevance maps (n, H, W). Thumbnails are lists of encoded
    image bytes, one per sample.
    """

    summary: Union[ClassSummary, Dict[str, Any]]
    arrays: Dict[str, np.ndarray]
    heatmaps: np.ndarray
    thumbs: Dict[str, List[bytes]] = field(default_factory=dict)


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
        drafts = self.root / DRAFTS_DIR
        drafts.mkdir(parents=True, exist_ok=True)
        artifact_id = new_record_id("art")
        entry = json_safe({**meta, "id": artifact_id, "source": meta.get("source", "upload"),
                            "created": datetime_now()})
        write_bytes_durable(drafts / f".{artifact_id}.png.tmp", png)
        os.replace(drafts / f".{artifact_id}.png.tmp", drafts / f"{artifact_id}.png")
        write_json_atomic(drafts / f"{artifact_id}.json", entry)  # the json is the "done" marker
        return entry

    def save_experiment(self, record: Dict[str, Any], files: Mapping[str, bytes]) -> Path:
        """Save an experiment record and its files atomically as ``experiments/<record id>/``."""
        return _save_folder(self.root, str(record["id"]), RECORD, record, files, "experiment")

    def save_variant(self, record: Variant, files: Mapping[str, bytes]) -> Path:
        """Save a model variant atomically as ``variants/<id>/`` (``variant.json`` plus ``files``).

        A variant whose id or name is taken is refused (:class:`StoreError`).
        """
        names = {name for v in self.store.variants() for name in (v.id, v.name)}
        if record.id in names or (record.name and record.name in names):
            raise StoreError(f"a model variant named {record.name or record.id!r} exists already; choose another --name")
        record = record.updated({"files": sorted(files)})
        return _save_folder(self.store.variants_dir, record.id, VARIANT_RECORD, record.to_dict(), files, "variant")


def _save_folder(parent: Path, record_id: str, record_name: str, record: Dict[str, Any],
                 files: Mapping[str, bytes], what: str) -> Path:
    """Write ``files`` and the JSON ``record`` into ``parent/.tmp-*``, then rename it to ``parent/record_id``.

    The rename is the commit: a killed process leaves only a ``.tmp-`` folder, never read.
    """
    record_id = checked_id(record_id)
    for name in files:
        checked_file_name(name)
    parent.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(parent):  # temporaries of killed writers (older than an hour)
        if entry.name.startswith(".tmp-") and entry.is_dir() and time.time() - entry.stat().st_mtime > 3600:
            shutil.rmtree(entry.path, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{record_id}-", dir=parent))
    try:
        for name, payload in files.items():
            write_bytes_durable(tmp / name, payload)
        write_bytes_durable(tmp / record_name, json.dumps(json_safe(record), indent=1, sort_keys=True,
                                                         allow_nan=False).encode())
        fsync_dir(tmp)
        final = parent / record_id
        if final.exists():
            raise StoreError(f"{what} {record_id!r} exists already")
        os.rename(tmp, final)
        fsync_dir(parent)
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
    def create(cls, root: os.PathLike, manifest: Union[Manifest, Mapping[str, Any]], *, force: bool = False,
               compare_keys: Sequence[str] = ("data", "model", "analysis", "thumbnails")) -> "RunWriter":
        """Open ``root`` for writing, creating it and its manifest if needed.

        Parameters
        ----------
        root : path
            Run directory.
        manifest : Manifest or dict
            The new run's manifest (``schema_version`` is set to :data:`SCHEMA_VERSION`).
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
        if isinstance(manifest, Manifest):
            manifest = manifest.to_dict()
        manifest = json_safe({**manifest, "schema_version": SCHEMA_VERSION})
        path = root / MANIFEST
        if path.is_file() and not force:
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                old = None
            if old is not None:
                differing = [key for key in compare_keys if old.get(key) != manifest.get(key)]
                if old.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
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
        self.manifest.update(json_safe(sections))
        write_json_atomic(self.root / MANIFEST, self.manifest)

    def write_report(self, report: Mapping[str, Any]) -> None:
        """Rewrite ``report.json`` atomically."""
        write_json_atomic(self.root / REPORT, json_safe(dict(report)))

    def write_class(self, cid: str, analysis: ClassAnalysis) -> Path:
        """Write one class atomically and return its folder.

        Files go to ``classes/.tmp-<cid>-<pid>/``, are fsynced, and the folder is renamed
        to ``classes/<cid>``; an existing folder of that id is replaced.
        """
        if not is_class_id(cid):
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
                write_bytes_durable(tmp / thumb_file(kind), b"".join(blobs))
            heatmaps = np.ascontiguousarray(analysis.heatmaps, dtype=np.float16)
            with open(tmp / HEATMAPS, "wb") as handle:
                np.save(handle, heatmaps, allow_pickle=False)
                handle.flush()
                os.fsync(handle.fileno())
            with open(tmp / ANALYSIS, "wb") as handle:
                np.savez(handle, **arrays)
                handle.flush()
                os.fsync(handle.fileno())
            summary = analysis.summary
            summary = summary.to_dict() if isinstance(summary, ClassSummary) else json_safe(dict(summary))
            summary["bytes"] = sum(entry.stat().st_size for entry in os.scandir(tmp) if entry.is_file())
            # The summary is the "finished" marker, so it is written last.
            write_bytes_durable(tmp / SUMMARY, json.dumps(summary, indent=1, sort_keys=True, allow_nan=False).encode())
            fsync_dir(tmp)
            final = self.classes_dir / cid
            if final.exists():
                old = self.classes_dir / f".old-{cid}-{os.getpid()}-{time.monotonic_ns()}"
                os.rename(final, old)
                os.rename(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, final)
            fsync_dir(self.classes_dir)
            return final
        except OSError as error:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_disk_full(error, self.classes_dir):
                raise DiskFullError(f"out of disk space while writing class {cid} to {self.root}") from None
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def write_class_part(self, cid: str, name: str, arrays: Mapping[str, np.ndarray],
                         summary: Mapping[str, Any]) -> Path:
        """Add (or replace) an optional file of a finished class and its keys in ``summary.json``.

        Parameters
        ----------
        cid : str
            A finished class.
        name : {"masks.npz", "perturbation.npz"}
            :data:`~precompute.store.layout.CLASS_MASKS` or :data:`~precompute.store.layout.PERTURBATION`.
        arrays : mapping of str to ndarray
            Every array of that file's contract (``MASK_ARRAYS``, ``PERTURBATION_ARRAYS``).
        summary : mapping
            Keys merged into the class's summary (its leaderboard columns).

        The file is written to a temporary name and renamed, then the summary rewritten
        the same way: a killed writer leaves the old file or the new one, and a summary
        without the new keys only makes the next run compute them again.
        """
        contracts = {CLASS_MASKS: MASK_ARRAYS, PERTURBATION: PERTURBATION_ARRAYS}
        if name not in contracts:
            raise StoreError(f"not an optional class file: {name!r}")
        missing = set(contracts[name]) - set(arrays)
        if missing:
            raise StoreError(f"class {cid} {name}: missing arrays {sorted(missing)}")
        folder = self._class_dir(cid)
        _replace_npz(folder / name, arrays)
        record = {**self.summary(cid), **json_safe(dict(summary))}
        record["bytes"] = sum(entry.stat().st_size for entry in os.scandir(folder)
                              if entry.is_file() and not entry.name.startswith("."))
        write_json_atomic(folder / SUMMARY, record)
        fsync_dir(folder)
        return folder / name

    def write_class_analysis(self, cid: str, name: str, arrays: Mapping[str, np.ndarray],
                             summary: Mapping[str, Any]) -> Path:
        """Add (or replace) an analysis of a finished class under another distance.

        Parameters
        ----------
        cid : str
            A finished class.
        name : str
            The analysis's name, its distance's (``gw``); not the run's primary analysis.
        arrays : mapping of str to ndarray
            Every array of :data:`~precompute.store.layout.ANALYSIS_RESULT_ARRAYS`, over the
            class's samples in ``analysis.npz``'s order.
        summary : mapping
            The analysis's summary keys (``tau``, ``default_clustering``, ...), stored as
            ``summary.json``'s ``analyses[name]``.

        Written as :meth:`write_class_part` writes (temporary name, rename, then the summary),
        so a killed writer leaves the old analysis or the new one. The run's manifest is marked
        schema version 2.
        """
        if name == self.primary_analysis:
            raise StoreError(f"{name!r} is the run's primary analysis (analysis.npz), not an added one")
        relative = analysis_file(name)
        missing = set(ANALYSIS_RESULT_ARRAYS) - set(arrays)
        if missing:
            raise StoreError(f"class {cid} analysis {name}: missing arrays {sorted(missing)}")
        n = len(self.arrays(cid)["paths"])
        if len(arrays["eigenvectors"]) != n or np.shape(arrays["clustering_labels"])[1:] != (n,):
            raise StoreError(f"class {cid} analysis {name}: arrays of {len(arrays['eigenvectors'])} samples, "
                             f"the class has {n}")
        folder = self._class_dir(cid)
        (folder / relative).parent.mkdir(exist_ok=True)
        _replace_npz(folder / relative, {key: arrays[key] for key in ANALYSIS_RESULT_ARRAYS})
        if self.manifest.get("schema_version") != SCHEMA_VERSION:
            self.update_manifest(schema_version=SCHEMA_VERSION)
        record = self.summary(cid)
        record["analyses"] = {**(record.get("analyses") or {}), name: json_safe(dict(summary))}
        write_json_atomic(folder / SUMMARY, record)
        fsync_dir(folder)
        return folder / relative

    def write_search_index(self, vectors: np.ndarray, rows: np.ndarray, meta: Dict[str, Any]) -> Path:
        """Replace ``RUN/search/`` atomically with these vectors (N, d), rows (N, 2) and ``meta``.

        ``meta`` gets ``count`` and ``run_created`` (the manifest's ``created``, which ties the
        index to this run).
        """
        folder = self.root / SEARCH_DIR
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-search-", dir=self.root))
        try:
            arrays = ((SEARCH_VECTORS, np.asarray(vectors, np.float32)), (SEARCH_ROWS, np.asarray(rows, np.int32)))
            for name, array in arrays:
                with open(tmp / name, "wb") as handle:
                    np.save(handle, array, allow_pickle=False)
                    handle.flush()
                    os.fsync(handle.fileno())
            write_json_atomic(tmp / SEARCH_META, json_safe({**meta, "count": int(len(rows)),
                                                            "run_created": self.manifest.get("created")}))
            fsync_dir(tmp)
            old = self.root / f".old-search-{os.getpid()}"
            if folder.exists():
                os.rename(folder, old)
            os.rename(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
            return folder
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def save_artifacts(self, entries: Iterable[Dict[str, Any]]) -> None:
        """Rewrite the artifact library index ``artifacts/artifacts.json``."""
        self.artifacts_dir.mkdir(exist_ok=True)
        write_json_atomic(self.artifacts_dir / ARTIFACT_INDEX, json_safe(list(entries)))


def _replace_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as ``path`` (an .npz) through a fsynced temporary file and ``os.replace``:
    a killed writer leaves the old file or the new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **{key: np.asarray(value) for key, value in arrays.items()})
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def iter_class_ids(labels: Iterable[int]) -> Iterator[str]:
    """Class ids for model label indices, in order."""
    for label in labels:
        yield class_id(label)
