"""Typed records of the store: the manifest and a class's summary, with their defaults in one place.

Each record is a dataclass whose fields are the JSON keys of ``docs/store.md``.
``from_dict`` reads what any v1 store holds: a missing key gets the default below, an
unknown key is kept in ``extra`` and written back by ``to_dict``. ``to_dict`` gives the
JSON written today, key for key; a field marked *optional* is left out while it is None.

Records also answer ``record["key"]`` and ``record.get("key")`` like the dicts they
replace, so code not yet moved to attributes keeps working.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Type, TypeVar

from .layout import SCHEMA_VERSION, json_safe

__all__ = [
    "DEFAULT_NORMALIZATION",
    "DEFAULT_COMPOSITE",
    "DEFAULT_THUMB_SIZE",
    "Record",
    "ClassEntry",
    "DataInfo",
    "ModelInfo",
    "ThumbnailInfo",
    "StorageInfo",
    "Manifest",
    "ClassSummary",
    "Variant",
]

#: Input normalisation of a run that does not say (``RunConfig.normalize``'s default).
DEFAULT_NORMALIZATION = "imagenet"
#: The zennit composite of a run that does not say (``RunConfig.composite``'s default).
DEFAULT_COMPOSITE = "epsilon_plus_flat"
#: Longer side of a thumbnail (``RunConfig.thumb_size``'s default).
DEFAULT_THUMB_SIZE = 128

R = TypeVar("R", bound="Record")


def optional(default: Any = None) -> Any:
    """A field left out of ``to_dict`` while it is None."""
    return field(default=default, metadata={"optional": True})


@dataclass
class Record:
    """Base of the store's records: dict conversion that keeps unknown keys.

    Subclasses list nested records in ``_nested`` (field name -> record type) and lists
    of records in ``_nested_lists``.
    """

    _nested: ClassVar[Dict[str, Type["Record"]]] = {}
    _nested_lists: ClassVar[Dict[str, Type["Record"]]] = {}

    @classmethod
    def _keys(cls) -> List[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name != "extra"]

    @classmethod
    def from_dict(cls: Type[R], data: Optional[Mapping[str, Any]]) -> R:
        """The record of a JSON object; missing keys get the defaults, unknown keys go to ``extra``."""
        data = dict(data or {})
        known = set(cls._keys())
        values: Dict[str, Any] = {}
        for key in known & set(data):
            value = data[key]
            if key in cls._nested and isinstance(value, Mapping):
                value = cls._nested[key].from_dict(value)
            elif key in cls._nested_lists and isinstance(value, list):
                value = [cls._nested_lists[key].from_dict(item) for item in value]
            values[key] = value
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> Dict[str, Any]:
        """The JSON object written to the store (JSON types only; NaN becomes None)."""
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None and f.metadata.get("optional"):
                continue
            if isinstance(value, Record):
                value = value.to_dict()
            elif isinstance(value, list) and value and isinstance(value[0], Record):
                value = [item.to_dict() for item in value]
            out[f.name] = value
        out.update(self.extra)
        return json_safe(out)

    def updated(self: R, values: Mapping[str, Any]) -> R:
        """A copy with ``values`` set: known keys as fields, others in ``extra``."""
        known = set(self._keys())
        return dataclasses.replace(
            self, **{k: v for k, v in values.items() if k in known},
            extra={**self.extra, **{k: v for k, v in values.items() if k not in known}},
        )

    # -- dict-style reading, for code that still uses JSON keys ---------------------------------
    def __getitem__(self, key: str) -> Any:
        if key in self._keys():
            value = getattr(self, key)
            if value is None and key in self._optional_keys():
                raise KeyError(key)
            return value
        return self.extra[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            value = self[key]
        except KeyError:
            return default
        return value

    def __contains__(self, key: object) -> bool:
        return self.get(str(key), _MISSING) is not _MISSING

    @classmethod
    def _optional_keys(cls) -> List[str]:
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("optional")]


_MISSING = object()


@dataclass
class ClassEntry(Record):
    """One selected class in the manifest's ``classes`` list."""

    id: str = ""
    name: str = ""
    label: int = -1
    n_files: Optional[int] = None
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class DataInfo(Record):
    """The manifest's ``data`` section."""

    root: str = "."  # relative to the run directory, or absolute
    label_names: List[str] = field(default_factory=list)
    val_root: Optional[str] = optional()  # run --val-data: the validation folder, as root
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelInfo(Record):
    """The manifest's ``model`` section: how to rebuild the model and its input."""

    spec: str = ""
    weights: Optional[str] = None
    weights_sha256: Optional[str] = None
    num_classes: Optional[int] = None
    normalization: str = DEFAULT_NORMALIZATION
    image_size: Optional[int] = None
    composite: str = DEFAULT_COMPOSITE
    canonizers: List[str] = field(default_factory=list)
    variant: Optional[Dict[str, Any]] = optional()  # a corrected model (run --variant): id, method, folder
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class ThumbnailInfo(Record):
    """The manifest's ``thumbnails`` section."""

    size: int = DEFAULT_THUMB_SIZE
    format: str = "webp"
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class StorageInfo(Record):
    """The manifest's ``storage`` section; ``bytes_per_image`` is added when a run finishes."""

    heatmap_dtype: str = "float16"
    bytes_per_image: Optional[float] = optional()
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Manifest(Record):
    """``manifest.json``: what a run was asked to do, with which model and software.

    ``analysis`` is :meth:`precompute.analysis.AnalysisConfig.to_dict`; ``software``,
    ``run``, ``demo`` and ``synthetic`` are informational sections kept as dicts and left
    out while None (a synthetic store has no ``software`` or ``run``).
    """

    _nested: ClassVar[Dict[str, Type[Record]]] = {
        "data": DataInfo, "model": ModelInfo, "thumbnails": ThumbnailInfo, "storage": StorageInfo,
    }
    _nested_lists: ClassVar[Dict[str, Type[Record]]] = {"classes": ClassEntry}

    schema_version: int = SCHEMA_VERSION
    created: Optional[str] = optional()
    software: Optional[Dict[str, str]] = optional()
    data: DataInfo = field(default_factory=DataInfo)
    classes: List[ClassEntry] = field(default_factory=list)
    model: ModelInfo = field(default_factory=ModelInfo)
    analysis: Dict[str, Any] = field(default_factory=dict)
    thumbnails: ThumbnailInfo = field(default_factory=ThumbnailInfo)
    storage: StorageInfo = field(default_factory=StorageInfo)
    run: Optional[Dict[str, Any]] = optional()
    demo: Optional[Dict[str, Any]] = optional()
    synthetic: Optional[Dict[str, Any]] = optional()
    extra: Dict[str, Any] = field(default_factory=dict)

    def class_entry(self, cid: str) -> Optional[ClassEntry]:
        """The entry of class ``cid``, or None."""
        return next((entry for entry in self.classes if entry.id == cid), None)


@dataclass
class ClassSummary(Record):
    """``classes/<id>/summary.json``: the class's leaderboard row (see ``docs/store.md``).

    ``tau`` is None for a class too small for it, with ``tau_note`` saying why;
    ``bytes`` is filled in by :meth:`precompute.store.RunWriter.write_class`. The
    right-reason and perturbation keys appear once ``run --masks`` or ``perturb`` has
    added their file to the class (:meth:`precompute.store.RunWriter.write_class_part`).
    """

    id: str = ""
    name: str = ""
    label: int = -1
    n: int = 0
    n_files: int = 0
    n_skipped: int = 0
    accuracy: Optional[float] = None
    top5_accuracy: Optional[float] = None
    mean_true_prob: Optional[float] = None
    eigenvalues: List[float] = field(default_factory=list)
    heatmap_shape: List[int] = field(default_factory=list)
    seconds: Dict[str, float] = field(default_factory=dict)
    tau: Optional[float] = None
    tau_note: Optional[str] = optional()
    fisher_dimensions: Optional[int] = None
    eigengap_k: Optional[int] = None
    default_clustering: Optional[str] = None
    # the second truth-free class score: Fisher separability of the default clustering
    default_separability: Optional[float] = optional()
    leading_dimensions: Optional[int] = None
    neighbors_used: Optional[int] = None
    eigenvectors_used: Optional[int] = None
    fisher_kmeans: Dict[str, float] = field(default_factory=dict)
    bytes: Optional[int] = optional()
    # added by run --masks (masks.npz): the class's mean right-reason score and its chance level
    right_reason: Optional[float] = optional()
    right_reason_chance: Optional[float] = optional()
    masks: Optional[Dict[str, Any]] = optional()  # root, share, scored
    # run --val-data: validation images, their accuracy, and those in the suspect cluster
    n_validation: Optional[int] = optional()
    validation_accuracy: Optional[float] = optional()
    validation_suspect: Optional[Dict[str, Any]] = optional()  # cluster, size, n_validation, accuracy_without
    # added by python -m precompute perturb (perturbation.npz)
    off_object_sensitivity: Optional[float] = optional()
    perturbation: Optional[Dict[str, Any]] = optional()  # grid, fill, reference, seconds
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Variant(Record):
    """``variants/<id>/variant.json``: a corrected model (ClArC) and its before/after report.

    ``origin`` is ``{"id", "name", "label"}`` of the artifact's class; ``selection`` the
    artifact samples (``source``, ``indices`` into the origin class, ``n``); ``concept``
    the CAV's layer, method and fit (:meth:`precompute.clarc.Concept.meta`); ``files``
    the names saved with it (``weights.pt`` when the weights changed, ``projection.pt``
    for P-ClArC, ``concept.pt``, ``cleaning.csv``); ``base_weights_sha256`` the SHA-256 of
    the run's weights it was made from; ``report`` the verification (``docs/store.md``).
    """

    id: str = ""
    name: str = ""
    method: str = ""
    created: str = ""
    status: str = "done"
    layer: str = ""
    origin: Dict[str, Any] = field(default_factory=dict)
    selection: Dict[str, Any] = field(default_factory=dict)
    concept: Dict[str, Any] = field(default_factory=dict)
    artifact: Optional[Dict[str, Any]] = optional()
    params: Dict[str, Any] = field(default_factory=dict)
    files: List[str] = field(default_factory=list)
    base_weights_sha256: Optional[str] = None
    report: Dict[str, Any] = field(default_factory=dict)
    seconds: Optional[float] = None
    extra: Dict[str, Any] = field(default_factory=dict)
