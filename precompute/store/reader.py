"""Read access to a run directory: :class:`RunStore`.

The dashboard, the lab, ``evaluate`` and the writers' resume logic all read through it.
The dict accessors (``manifest``, :meth:`RunStore.summary`) return the JSON as stored;
the typed ones (:meth:`RunStore.manifest_record`, :meth:`RunStore.class_summary`) return
:mod:`precompute.store.records`, with the documented defaults filled in.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np

from ..errors import StoreError
from .layout import (
    ANALYSIS,
    ANALYSIS_RESULT_ARRAYS,
    ARTIFACT_INDEX,
    CLASS_MASKS,
    PERTURBATION,
    ARTIFACTS_DIR,
    CLASSES_DIR,
    DEMO_REPORT,
    DRAFTS_DIR,
    EXPERIMENTS_DIR,
    HEATMAPS,
    MANIFEST,
    RECORD,
    REPORT,
    READABLE_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
    SUMMARY,
    THUMB_KINDS,
    TRUTH,
    CLEANING,
    SEARCH_DIR,
    SEARCH_META,
    SEARCH_ROWS,
    SEARCH_VECTORS,
    VARIANT_RECORD,
    VARIANTS_DIR,
    checked_file_name,
    analysis_file,
    checked_id,
    is_class_id,
    thumb_file,
)
from .records import ClassSummary, Manifest, Variant

__all__ = ["ClassRecord", "RunStore"]


@dataclass(frozen=True)
class ClassRecord:
    """A finished class as listed by :meth:`RunStore.classes` (its summary plus its folder)."""

    id: str
    name: str
    label: int
    summary: Mapping[str, Any]

    def summary_record(self) -> ClassSummary:
        """:attr:`summary` as a typed :class:`~precompute.store.records.ClassSummary`."""
        return ClassSummary.from_dict(self.summary)


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
        if version not in READABLE_SCHEMA_VERSIONS:
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

    def manifest_record(self) -> Manifest:
        """The manifest, typed (missing keys get the documented defaults, unknown ones are kept)."""
        return Manifest.from_dict(self.manifest)

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

    def truth_path(self) -> Path:
        """``RUN/truth.csv``: the ground truth of the demo and of synthetic stores (may not exist)."""
        return self.root / TRUTH

    def demo_report(self) -> Dict[str, Any]:
        """The demo's training report (``demo_report.json``); empty if there is none."""
        path = self.root / DEMO_REPORT
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    # -- classes --------------------------------------------------------------------------------
    def finished_ids(self) -> List[str]:
        """Ids of the classes whose folder is complete, sorted."""
        if not self.classes_dir.is_dir():
            return []
        return sorted(
            entry.name
            for entry in os.scandir(self.classes_dir)
            if is_class_id(entry.name) and os.path.isfile(os.path.join(entry.path, SUMMARY))
        )

    def has_class(self, cid: str) -> bool:
        return bool(is_class_id(cid)) and (self.classes_dir / cid / SUMMARY).is_file()

    def _class_dir(self, cid: str) -> Path:
        if not self.has_class(cid):
            raise StoreError(f"class {cid!r} is not in this run (or not finished)")
        return self.classes_dir / cid

    @property
    def primary_analysis(self) -> str:
        """Name of the analysis in ``analysis.npz``: the distance the run was made with."""
        return str((self.manifest.get("analysis") or {}).get("distance") or "euclidean")

    def analysis_names(self, cid: str) -> List[str]:
        """The analyses of class ``cid``: the primary one, then those added (``analyses/``), sorted."""
        extra = self.summary(cid).get("analyses") or {}
        return [self.primary_analysis, *sorted(name for name in extra if name != self.primary_analysis)]

    def _checked_analysis(self, cid: str, analysis: Optional[str]) -> Optional[str]:
        """None for the primary analysis, else the name of an added one (a StoreError if the class lacks it)."""
        if analysis is None or analysis == self.primary_analysis:
            return None
        names = self.analysis_names(cid)
        if analysis not in names:
            raise StoreError(f"class {cid} has no {analysis!r} analysis; it has {', '.join(names)} "
                             f"(add one with: python -m precompute analyse RUN --distance {analysis})")
        return analysis

    def summary(self, cid: str, analysis: Optional[str] = None) -> Dict[str, Any]:
        """The leaderboard row of class ``cid``.

        With ``analysis`` (a name of :meth:`analysis_names`), that analysis's keys (``tau``,
        ``default_clustering``, ``eigenvalues``, ...) replace the primary one's, and
        ``analysis`` names it; without, the primary analysis's row as stored.
        """
        summary = json.loads((self._class_dir(cid) / SUMMARY).read_text(encoding="utf-8"))
        if self._checked_analysis(cid, analysis) is None:
            return summary
        return {**summary, **summary["analyses"][analysis], "analysis": analysis}

    def class_summary(self, cid: str) -> ClassSummary:
        """The leaderboard row of class ``cid``, typed (missing keys get the documented defaults)."""
        return ClassSummary.from_dict(self.summary(cid))

    def classes(self) -> List[ClassRecord]:
        """Every finished class with its summary, in label order."""
        records = []
        for cid in self.finished_ids():
            summary = self.summary(cid)
            records.append(ClassRecord(id=cid, name=summary["name"], label=summary["label"], summary=summary))
        return records

    def arrays(self, cid: str, analysis: Optional[str] = None) -> Dict[str, np.ndarray]:
        """All arrays of :data:`CLASS_ARRAYS` for class ``cid`` (loaded, no pickle).

        With ``analysis`` (a name of :meth:`analysis_names`), the arrays of
        :data:`ANALYSIS_RESULT_ARRAYS` are that analysis's (``analyses/<name>.npz``).
        """
        added = self._checked_analysis(cid, analysis)
        with np.load(self._class_dir(cid) / ANALYSIS, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files
                      if added is None or name not in ANALYSIS_RESULT_ARRAYS}
        if added is not None:
            with np.load(self._class_dir(cid) / analysis_file(added), allow_pickle=False) as npz:
                arrays.update({name: npz[name] for name in ANALYSIS_RESULT_ARRAYS})
        return arrays

    def heatmaps(self, cid: str) -> np.ndarray:
        """Memory-mapped float16 heatmaps of class ``cid``, shape (n, H, W), read-only."""
        return np.load(self._class_dir(cid) / HEATMAPS, mmap_mode="r", allow_pickle=False)

    def thumbnail(self, cid: str, kind: str, index: int, offsets: Optional[np.ndarray] = None) -> bytes:
        """Encoded thumbnail ``index`` of kind ``"image"`` or ``"heatmap"`` of class ``cid``.

        ``offsets`` (the class's ``thumb_offsets_<kind>`` array) may be passed by callers
        that cache it; otherwise it is read from ``analysis.npz``.
        """
        if kind == "mask":  # the mask outlines live in masks.npz, added after the class was written
            masks = self.class_masks(cid, keys=("thumbs_mask", "thumb_offsets_mask"))
            if masks is None:
                raise StoreError(f"class {cid} has no masks")
            blob, offsets = masks["thumbs_mask"], masks["thumb_offsets_mask"]
            if not 0 <= int(index) < len(offsets) - 1:
                raise StoreError(f"class {cid}: no sample {index}")
            return blob[int(offsets[int(index)]):int(offsets[int(index) + 1])].tobytes()
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
        with open(folder / thumb_file(kind), "rb") as handle:
            handle.seek(start)
            return handle.read(stop - start)

    def class_part(self, cid: str, name: str, keys: Optional[Sequence[str]] = None) -> Optional[Dict[str, np.ndarray]]:
        """The arrays of an optional class file (``masks.npz``, ``perturbation.npz``), or None if it has none.

        ``keys`` reads only those arrays (the app needs the scores, not the packed masks).
        """
        if name not in (CLASS_MASKS, PERTURBATION):
            raise StoreError(f"not an optional class file: {name!r}")
        path = self._class_dir(cid) / name
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in (npz.files if keys is None else keys)}

    def class_masks(self, cid: str, keys: Optional[Sequence[str]] = None) -> Optional[Dict[str, np.ndarray]]:
        """``masks.npz`` of class ``cid`` (:data:`~precompute.store.layout.MASK_ARRAYS`), or None."""
        return self.class_part(cid, CLASS_MASKS, keys)

    def class_perturbation(self, cid: str, keys: Optional[Sequence[str]] = None) -> Optional[Dict[str, np.ndarray]]:
        """``perturbation.npz`` of class ``cid`` (:data:`~precompute.store.layout.PERTURBATION_ARRAYS`), or None."""
        return self.class_part(cid, PERTURBATION, keys)

    def class_bytes(self, cid: str) -> int:
        """Bytes on disk of class ``cid``."""
        folder = self._class_dir(cid)
        return sum(entry.stat().st_size for entry in os.scandir(folder) if entry.is_file())

    # -- artifacts and experiments --------------------------------------------------------------
    def artifacts(self) -> List[Dict[str, Any]]:
        """The run's artifact library (``artifacts/artifacts.json``), possibly empty."""
        path = self.artifacts_dir / ARTIFACT_INDEX
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
        drafts_dir = self.experiments_dir / DRAFTS_DIR
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
            path = self.experiments_dir / DRAFTS_DIR / f"{checked_id(artifact_id)}.png"
        return path.read_bytes()

    def experiments(self) -> List[Dict[str, Any]]:
        """All saved experiment records, newest first."""
        if not self.experiments_dir.is_dir():
            return []
        records = []
        for entry in os.scandir(self.experiments_dir):
            if entry.name.startswith(".") or entry.name == DRAFTS_DIR or not entry.is_dir():
                continue
            try:
                records.append(json.loads(Path(entry.path, RECORD).read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return sorted(records, key=lambda rec: rec.get("created", ""), reverse=True)

    def experiment(self, exp_id: str) -> Dict[str, Any]:
        """The record of experiment ``exp_id``."""
        path = self.experiments_dir / checked_id(exp_id) / RECORD
        if not path.is_file():
            raise StoreError(f"unknown experiment {exp_id!r}")
        return json.loads(path.read_text(encoding="utf-8"))

    def experiment_file(self, exp_id: str, name: str) -> bytes:
        """A file saved with experiment ``exp_id`` (thumbnails, the artifact PNG)."""
        checked_file_name(name or "")
        path = self.experiments_dir / checked_id(exp_id) / name
        if not path.is_file():
            raise StoreError(f"experiment {exp_id!r} has no file {name!r}")
        return path.read_bytes()



    # -- model variants (ClArC corrections) ------------------------------------------------
    @property
    def variants_dir(self) -> Path:
        return self.root / VARIANTS_DIR

    def variants(self) -> List[Variant]:
        """All finished model variants, newest first (a half-written one is never listed)."""
        if not self.variants_dir.is_dir():
            return []
        records = []
        for entry in os.scandir(self.variants_dir):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            try:
                records.append(Variant.from_dict(json.loads(Path(entry.path, VARIANT_RECORD).read_text("utf-8"))))
            except (OSError, ValueError):
                continue
        return sorted(records, key=lambda rec: rec.created, reverse=True)

    def variant(self, variant_id: str) -> Variant:
        """The record of variant ``variant_id`` (an id or a name)."""
        for record in self.variants():
            if variant_id in (record.id, record.name):
                return record
        known = ", ".join(r.name or r.id for r in self.variants()) or "none"
        raise StoreError(f"unknown model variant {variant_id!r} in {self.root} (known: {known})")

    def variant_path(self, variant_id: str, name: str) -> Path:
        """Path of a file saved with a variant (``weights.pt``, ``cleaning.csv``, ...)."""
        checked_file_name(name or "")
        path = self.variants_dir / checked_id(variant_id) / name
        if not path.is_file():
            raise StoreError(f"model variant {variant_id!r} has no file {name!r}")
        return path

    def variant_cleaning(self, variant_id: str) -> Iterator[Dict[str, Any]]:
        """The variant's cleaning list (``cleaning.csv``), read row by row: ``path``, ``class``, ``score``
        (float) and ``in_selection`` (int) per sample, highest score first. It scores every sample of
        the run, so a reader that wants the top rows stops early and never holds the whole list."""
        import csv

        path = self.variant_path(self.variant(variant_id).id, CLEANING)
        with open(path, encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                yield {"path": row["path"], "class": row["class"], "score": float(row["score"]),
                       "in_selection": int(row["in_selection"])}

    # -- the similarity index ---------------------------------------------------------------
    def search_index(self):
        """``(vectors (N, d) float32, rows (N, 2) int32 [label, index], meta dict)`` of the run's index.

        Raises
        ------
        StoreError
            No index yet (``python -m precompute index RUN`` builds it), or an index that
            another run made (its ``run_created`` differs from this manifest's ``created``).
        """
        folder = self.root / SEARCH_DIR
        if not (folder / SEARCH_META).is_file():
            raise StoreError(f"{self.root} has no similarity index yet; build it with: python -m precompute index "
                             f"{self.root}")
        meta = json.loads((folder / SEARCH_META).read_text(encoding="utf-8"))
        if meta.get("run_created") != self.manifest.get("created"):
            raise StoreError(f"{folder}: this index belongs to another run (made {meta.get('run_created')}, this run "
                             f"{self.manifest.get('created')}); rebuild it with: python -m precompute index {self.root}")
        vectors = np.load(folder / SEARCH_VECTORS, mmap_mode="r")
        rows = np.load(folder / SEARCH_ROWS)
        if len(vectors) != len(rows) or len(rows) != meta.get("count"):
            raise StoreError(f"{folder}: the index files disagree ({len(vectors)} vectors, {len(rows)} rows)")
        return np.asarray(vectors, dtype=np.float32), rows, meta
