"""The app's data access: the only module of the app that reads or writes the disk.

Reads go through :class:`precompute.store.RunStore` (the schema module) and are
memoised with flask-caching, so a class is read from disk once and then served from
memory; nothing here recomputes what precompute stored. The app's writes, the
artifact lab's drafts and experiments and the Un-Hans page's model variants, go through
:class:`precompute.store.ExperimentWriter` into ``RUN/experiments`` and ``RUN/variants``.
Pages, routes and views call the functions below and never open files or the store
themselves (``tests/spray_dash/test_layering.py`` checks this).

The app serves one or more runs (``python app.py RUN_A RUN_B``). The first is the
*primary* run, which every page but the compare page shows; the class reads below take an
optional ``run`` (a served run's name, its folder's name) for the compare page.

This module is long on purpose: being the app's one door to the disk, it holds every read
and write of every page, in sections (classes, artifacts and experiments, model variants).
"""
from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from flask_caching import Cache

from precompute.errors import StoreError
from precompute.lab import Artifact, artifact_from_box, artifact_from_entry, propose_artifact, rgba_to_png
from precompute.store import ExperimentWriter, RunStore, clustering_name, parse_clustering_name
from precompute.thumbs import encode_rgb, heatmap_rgb

from .selection import encode_mask, selection_medoid

__all__ = [
    "cache",
    "configure",
    "store",
    "run_names",
    "leaderboard",
    "class_id_for_name",
    "ClassView",
    "class_view",
    "thumbnail",
    "mean_heatmap_image",
    "medoid_heatmap_image",
    "label_names",
    "run_info",
    "run_name",
    "has_class",
    "class_name",
    "class_names",
    "artifact_entries",
    "artifact_entry",
    "artifact_png",
    "artifact",
    "experiments",
    "experiment",
    "experiment_file",
    "save_upload",
    "save_proposal",
    "save_box",
    "run_experiment",
    "variants",
    "variant",
    "variant_file",
    "locate_sample",
    "variant_cleaning_elsewhere",
    "variant_loading_text",
    "default_layer",
    "run_unhans",
    "HEATMAP_MODELS",
    "variant_heatmap",
    "cluster_selection",
    "unhans_spec",
    "similar",
    "similar_to_heatmap",
]

cache = Cache()
_state: Dict[str, object] = {}


def configure(server, run_dirs, cache_config: Optional[dict] = None) -> RunStore:
    """Open the run(s) for the app served by ``server`` (a Flask app) and set up the cache.

    Parameters
    ----------
    server : flask.Flask
    run_dirs : path or sequence of paths
        One run, or several; the first is the primary run. Runs are named by their
        folder's name, so two runs in folders of the same name are refused.
    cache_config : dict, optional
        flask-caching settings.

    Returns
    -------
    RunStore
        The primary run.
    """
    dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, os.PathLike)) else [Path(d) for d in run_dirs]
    if not dirs:
        raise StoreError("no run to serve")
    runs: Dict[str, RunStore] = {}
    for folder in dirs:
        opened = RunStore(folder)
        name = opened.root.resolve().name
        if name in runs:
            raise StoreError(f"two runs are called {name!r} ({runs[name].root} and {folder}): the app names runs by "
                             "their folder, so rename one")
        runs[name] = opened
    config = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 0, "CACHE_THRESHOLD": 256}
    config.update(cache_config or {})
    cache.init_app(server, config=config)
    with server.app_context():
        cache.clear()
    _state.clear()
    _state["store"] = next(iter(runs.values()))
    _state["runs"] = runs
    return _state["store"]  # type: ignore[return-value]


def store(run: Optional[str] = None) -> RunStore:
    """The primary run's store, or the served run called ``run`` (:class:`StoreError` if none is)."""
    try:
        primary = _state["store"]
    except KeyError:
        raise RuntimeError("spray_dash.data.configure() was not called") from None
    if run is None:
        return primary  # type: ignore[return-value]
    runs: Dict[str, RunStore] = _state["runs"]  # type: ignore[assignment]
    if run not in runs:
        raise StoreError(f"no run {run!r} is served (served: {', '.join(runs)})")
    return runs[run]


def run_names() -> List[str]:
    """Names of the served runs, the primary run first."""
    return list(_state.get("runs") or {})


def _run_key(run: Optional[str]) -> Optional[str]:
    """``run`` as memoised functions take it: None for the primary run, so it is cached once."""
    return None if run is None or run == run_name() else str(store(run).root.resolve().name)


@cache.memoize()
def label_names() -> List[str]:
    """Name of every model output index."""
    return store().label_names()


def run_info(run: Optional[str] = None) -> dict:
    """Facts about a served run (default: the primary) for page headers; see :func:`_run_info`."""
    return _run_info(_run_key(run))


@cache.memoize()
def _run_info(run: Optional[str]) -> dict:
    """Facts about the run for page headers.

    The run is named by its directory's name (``name``), never by its path on the
    server: whatever the app shows or exports reaches the browser.
    """
    manifest = store(run).manifest
    model = manifest.get("model", {})
    return {
        "name": store(run).root.resolve().name,
        "model": model.get("spec"),
        "composite": model.get("composite"),
        "image_size": model.get("image_size"),
        "created": manifest.get("created"),
        "classes_total": len(manifest.get("classes", [])),
        "neighbors": manifest.get("analysis", {}).get("neighbors"),
        "eigenvectors": manifest.get("analysis", {}).get("eigenvectors"),
        "default_rule": manifest.get("analysis", {}).get("default_rule", "lead_eigengap"),
        "demo": "demo" in manifest,
    }


def run_name() -> str:
    """The primary run's name: its directory's name (exports and pages never show the server's path)."""
    runs = _state.get("runs")
    return next(iter(runs)) if runs else store().root.resolve().name


def leaderboard(run: Optional[str] = None) -> List[dict]:
    """One row per finished class of a served run (default: the primary), ranked by tau; see :func:`_leaderboard`."""
    return _leaderboard(_run_key(run))


@cache.memoize()
def _leaderboard(run: Optional[str]) -> List[dict]:
    """One row per finished class, ranked by tau (rank 1 = most separable).

    Each row has ``id``, ``name``, ``rank``, ``tau``, ``tau_note``, ``n``, ``accuracy``,
    ``mean_true_prob``, ``eigengap_k``, ``spectrum`` (the first 16 eigenvalues) and
    ``default_clustering``. A class too small for a meaningful tau stores ``tau = None``
    with a ``tau_note`` (e.g. "too few samples (n=5; τ needs at least 8)"): its ``tau``
    and ``rank`` are None and it comes after every ranked class, by name.
    """
    rows = []
    for record in store(run).classes():
        summary = record.summary
        tau = summary.get("tau")
        rows.append({
            "id": record.id,
            "name": record.name,
            "tau": None if tau is None else float(tau),
            "tau_note": None if tau is not None else str(summary.get("tau_note") or "too few samples"),
            "n": int(summary.get("n") or 0),
            # None where the run does not know the predictions (an imported ViRelAy project)
            "accuracy": _optional_float(summary.get("accuracy")),
            "mean_true_prob": _optional_float(summary.get("mean_true_prob")),
            "eigengap_k": int(summary.get("eigengap_k") or 0),
            "spectrum": [round(float(v), 4) for v in (summary.get("eigenvalues") or [])[:16]],
            "default_clustering": summary.get("default_clustering"),
            "default_separability": _optional_float(summary.get("default_separability")),
            # tau of each analysis added with `analyse` (by distance); the leaderboard shows one column each
            **{f"analysis_tau_{name}": _optional_float((extra or {}).get("tau"))
               for name, extra in (summary.get("analyses") or {}).items()},
            # optional: run --masks and python -m precompute perturb add these; None where absent
            "right_reason": _optional_float(summary.get("right_reason")),
            "right_reason_chance": _optional_float(summary.get("right_reason_chance")),
            "off_object_sensitivity": _optional_float(summary.get("off_object_sensitivity")),
            "n_validation": summary.get("n_validation"),
            "validation_accuracy": _optional_float(summary.get("validation_accuracy")),
            "validation_in_suspect": (summary.get("validation_suspect") or {}).get("n_validation"),
            "validation_accuracy_without": _optional_float(
                (summary.get("validation_suspect") or {}).get("accuracy_without")),
        })
    rows.sort(key=lambda row: (row["tau"] is None, -(row["tau"] or 0.0), row["name"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank if row["tau"] is not None else None
        # ranked at full precision; sent at what a person reads (a third less JSON at 1,000 classes)
        for key in ("tau", "accuracy", "mean_true_prob", "default_separability", "right_reason",
                    "right_reason_chance", "off_object_sensitivity", "validation_accuracy",
                    "validation_accuracy_without", *(key for key in row if key.startswith("analysis_tau_"))):
            if row.get(key) is not None:
                row[key] = round(row[key], 5)
    return rows


def _optional_float(value) -> Optional[float]:
    return None if value is None else float(value)


@cache.memoize()
def _name_index(run: Optional[str] = None) -> Dict[str, str]:
    return {entry["name"]: entry["id"] for entry in store(run).manifest.get("classes", [])}


def has_class(cid, run: Optional[str] = None) -> bool:
    """True if ``cid`` is a finished class of the run (default: the primary run)."""
    return isinstance(cid, str) and store(run).has_class(cid)


def class_name(cid: str) -> str:
    """Name of class ``cid`` (raises :class:`StoreError` if unknown)."""
    return str(store().class_info(cid)["name"])


def class_id_for_name(name: str, run: Optional[str] = None) -> Optional[str]:
    """Id of the finished class called ``name`` in the run (default: the primary run), or None."""
    key = _run_key(run)
    cid = _name_index(key).get(name)
    return cid if cid is not None and store(key).has_class(cid) else None


@dataclass
class ClassView:
    """What the class explorer shows of one class (all from the store, nothing recomputed).

    Attributes
    ----------
    id, name : str
    n : int
    summary : dict
    maps : dict of str -> ndarray of float32 (n, 2)
    spectral : ndarray of float32 (n, q)
    eigenvalues : ndarray of float64 (q,)
    clustering_names : list of str
    clustering_labels : ndarray of int16 (m, n)
    families : dict of str -> list of int
        The k values stored per clustering family.
    paths : ndarray of str (n,)
    top_classes : ndarray of int32 (n, t)
    top_probs : ndarray of float32 (n, t)
    true_rank : ndarray of int32 (n,)
    true_prob : ndarray of float32 (n,)
    label : int
    right_reason : ndarray of float32 (n,) or None
        Right-reason score of each sample (``masks.npz``; NaN without positive relevance);
        None for a class without masks.
    sensitivity : ndarray of float32 (n, g, g) or None
        Occlusion maps of the perturbation scan (``perturbation.npz``); None if not scanned.
    off_object : ndarray of float32 (n,) or None
        Share of each occlusion map's drop off the reference region.
    perturbation : dict
        The summary's ``perturbation`` section (grid, fill, reference); empty if not scanned.
    split : ndarray of uint8 (n,) or None
        0 training, 1 validation image (``run --val-data``); None without validation data.
    analysis : str
        The analysis shown (a distance's name); ``maps`` to ``families`` and ``summary`` are its.
    analyses : list of str
        Every analysis of the class, the run's primary one first.
    analysis_taus : dict of str -> float or None
        Tau of each analysis.
    """

    id: str
    name: str
    n: int
    summary: dict
    maps: Dict[str, np.ndarray]
    spectral: np.ndarray
    eigenvalues: np.ndarray
    clustering_names: List[str]
    clustering_labels: np.ndarray
    families: Dict[str, List[int]]
    paths: np.ndarray
    top_classes: np.ndarray
    top_probs: np.ndarray
    true_rank: np.ndarray
    true_prob: np.ndarray
    label: int
    right_reason: Optional[np.ndarray] = None
    sensitivity: Optional[np.ndarray] = None
    off_object: Optional[np.ndarray] = None
    perturbation: Dict = field(default_factory=dict)
    split: Optional[np.ndarray] = None
    analysis: str = "euclidean"
    analyses: List[str] = field(default_factory=lambda: ["euclidean"])
    analysis_taus: Dict[str, Optional[float]] = field(default_factory=dict)

    @property
    def has_masks(self) -> bool:
        """True if the class has object masks (and right-reason scores)."""
        return self.right_reason is not None

    def labels(self, family: str, k: int) -> Optional[np.ndarray]:
        """Cluster labels (n,) of clustering ``family`` at ``k``, or None if not stored."""
        name = clustering_name(family, k)
        if name not in self.clustering_names:
            return None
        return self.clustering_labels[self.clustering_names.index(name)]


def class_view(cid: str, run: Optional[str] = None, analysis: Optional[str] = None) -> ClassView:
    """The explorer data of class ``cid`` of a served run (default: the primary run).

    ``analysis`` names one of the class's analyses (:func:`analysis_names`; default the
    primary one): its maps, spectrum and clusterings; the samples are the same in each.
    Raises :class:`StoreError` for an unknown class, run or analysis. Memoised (:func:`_class_view`).
    """
    primary = store(run).primary_analysis
    return _class_view(cid, _run_key(run), None if analysis in (None, primary) else analysis)


def analysis_names(cid: str, run: Optional[str] = None) -> List[str]:
    """The analyses of class ``cid`` by distance name, the run's primary one first."""
    return class_view(cid, run).analyses


@cache.memoize()
def _class_view(cid: str, run: Optional[str], analysis: Optional[str] = None) -> ClassView:
    st = store(run)
    summary = st.summary(cid, analysis)
    arrays = st.arrays(cid, analysis)
    analyses = st.analysis_names(cid)
    base = st.summary(cid)
    taus = {name: (base.get("tau") if name == analyses[0] else (base["analyses"][name] or {}).get("tau"))
            for name in analyses}
    names = [str(name) for name in arrays["clustering_names"]]
    families: Dict[str, List[int]] = {}
    for name in names:
        family, k = parse_clustering_name(name)
        families.setdefault(family, []).append(k)
    maps = {str(name): arrays["maps"][i] for i, name in enumerate(arrays["map_names"])}
    masks = st.class_masks(cid, keys=("right_reason",))
    scan = st.class_perturbation(cid, keys=("maps", "off_object"))
    return ClassView(
        id=cid,
        name=summary["name"],
        n=int(summary["n"]),
        summary=summary,
        maps=maps,
        spectral=arrays["eigenvectors"],
        eigenvalues=arrays["eigenvalues"],
        clustering_names=names,
        clustering_labels=arrays["clustering_labels"],
        families={family: sorted(ks) for family, ks in families.items()},
        paths=arrays["paths"],
        top_classes=arrays["top_classes"],
        top_probs=arrays["top_probs"],
        true_rank=arrays["true_rank"],
        true_prob=arrays["true_prob"],
        label=int(summary["label"]),
        right_reason=None if masks is None else masks["right_reason"],
        sensitivity=None if scan is None else scan["maps"],
        off_object=None if scan is None else scan["off_object"],
        perturbation=dict(summary.get("perturbation") or {}) if scan is not None else {},
        split=arrays.get("split"),
        analysis=analysis or analyses[0],
        analyses=analyses,
        analysis_taus=taus,
    )


@cache.memoize()
def _thumb_offsets(cid: str, kind: str, run: Optional[str] = None) -> np.ndarray:
    return store(run).arrays(cid)[f"thumb_offsets_{kind}"]


def thumbnail(cid: str, kind: str, index: int, run: Optional[str] = None) -> bytes:
    """Encoded thumbnail bytes of a served run (default: the primary run).

    Raises :class:`StoreError` for unknown runs, classes, kinds or indices.
    """
    key = _run_key(run)
    if not store(key).has_class(cid):
        raise StoreError(f"unknown class {cid!r}")
    if kind == "mask":
        blob, offsets = _mask_outlines(cid, key)
        if not 0 <= int(index) < len(offsets) - 1:
            raise StoreError(f"class {cid}: no sample {index}")
        return blob[int(offsets[index]):int(offsets[index + 1])].tobytes()
    if kind not in ("image", "heatmap"):
        raise StoreError(f"unknown thumbnail kind {kind!r}")
    return store(key).thumbnail(cid, kind, index, offsets=_thumb_offsets(cid, kind, key))


@cache.memoize()
def _mask_outlines(cid: str, run: Optional[str] = None):
    """``(packed outline thumbnails, offsets)`` of class ``cid`` (StoreError without masks)."""
    masks = store(run).class_masks(cid, keys=("thumbs_mask", "thumb_offsets_mask"))
    if masks is None:
        raise StoreError(f"class {cid} has no masks")
    return masks["thumbs_mask"], masks["thumb_offsets_mask"]


@cache.memoize()
def mean_heatmap_image(cid: str, indices: Sequence[int], size: int = 256) -> bytes:
    """The selection's prototype: the mean of its stored heatmaps, coloured like the thumbnails.

    ``indices`` must be a sorted tuple (it is part of the cache key).
    """
    heatmaps = store().heatmaps(cid)
    idx = _checked_selection(cid, indices, len(heatmaps))
    total = np.zeros(heatmaps.shape[1:], dtype=np.float64)
    for start in range(0, len(idx), 256):  # bounded memory for big classes
        total += heatmaps[idx[start:start + 256]].astype(np.float32).sum(axis=0)
    return _heatmap_webp(total / len(idx), size)


@cache.memoize()
def medoid_heatmap_image(cid: str, indices: Sequence[int], analysis: str, size: int = 256) -> bytes:
    """The selection's prototype under a shape analysis (GW): its medoid's heatmap.

    The medoid is the selection's most central sample in that analysis's stored kNN graph
    (:func:`spray_dash.selection.selection_medoid`). ``indices`` must be a sorted tuple.
    """
    arrays = store().arrays(cid, analysis)
    idx = _checked_selection(cid, indices, len(arrays["knn_indices"]))
    medoid = selection_medoid(arrays["knn_indices"], arrays["knn_distances"], idx)
    return _heatmap_webp(np.asarray(store().heatmaps(cid)[medoid], dtype=np.float64), size)


def _checked_selection(cid: str, indices: Sequence[int], n: int) -> np.ndarray:
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n:
        raise StoreError(f"class {cid}: bad selection")
    return idx


def _heatmap_webp(heatmap: np.ndarray, size: int) -> bytes:
    """A heatmap coloured like the thumbnails, enlarged crisply when small, as WebP."""
    rgb = heatmap_rgb(heatmap)
    from PIL import Image

    image = Image.fromarray(rgb)
    if max(image.size) < size:  # small heatmaps: enlarge crisply for display
        factor = max(1, size // max(image.size))
        image = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    return encode_rgb(np.asarray(image), size=None, quality=92)


# -- the artifact lab (experiments change while the app runs, so they are not memoised) ----------
def artifact_entries() -> List[dict]:
    """The run's artifact library and the lab's drafts (see :meth:`RunStore.artifact_entries`)."""
    return store().artifact_entries()


def artifact_entry(artifact_id: str) -> dict:
    """One artifact entry (raises :class:`StoreError` if unknown)."""
    return store().artifact_entry(artifact_id)


def artifact_png(artifact_id: str) -> bytes:
    """The RGBA PNG of an artifact entry (raises :class:`StoreError` or :class:`OSError`)."""
    return store().artifact_png(artifact_id)


def artifact(artifact_id: str) -> Artifact:
    """An artifact of the library or of the drafts, decoded (see :func:`precompute.lab.artifact_from_entry`)."""
    return artifact_from_entry(store(), artifact_id)


def experiments() -> List[dict]:
    """Saved experiment records, newest first."""
    return store().experiments()


@cache.memoize()
def experiment(exp_id: str) -> dict:
    """One experiment record (immutable once saved, so memoised)."""
    return store().experiment(exp_id)


def experiment_file(exp_id: str, name: str) -> bytes:
    """A file saved with an experiment (raises :class:`StoreError` or :class:`OSError`)."""
    return store().experiment_file(exp_id, name)


def save_upload(upload: Artifact, name: str) -> dict:
    """Keep a validated upload as an artifact draft; return its entry."""
    return ExperimentWriter(store()).save_artifact_draft({**upload.meta(), "name": name.rsplit(".", 1)[0]},
                                                         rgba_to_png(upload.rgba))


def save_proposal(cid: str, indices: Sequence[int], *, threshold: float = 0.3, shared: bool = True) -> dict:
    """Propose an artifact from a selection of class ``cid`` and keep it as a draft; return the entry.

    Raises :class:`precompute.errors.ConfigError` (a message for the user) when no artifact
    can be proposed, e.g. a region covering more than half of the image.
    """
    proposal = propose_artifact(store(), cid, indices, threshold=threshold, shared=shared)
    meta = {**proposal.artifact.meta(), "method": proposal.method, "relevance_share": proposal.relevance_share,
            "coverage": proposal.coverage, "threshold": proposal.threshold, "source_index": proposal.source_index,
            "selection": f"{cid}:{encode_mask(indices, class_view(cid).n)}"}
    return ExperimentWriter(store()).save_artifact_draft(meta, rgba_to_png(proposal.artifact.rgba))


def save_box(cid: str, index: int, box: Sequence[float]) -> dict:
    """Cut a box (model-input pixels) out of one sample and keep it as a draft; return the entry."""
    cut = artifact_from_box(store(), cid, index, box)
    return ExperimentWriter(store()).save_artifact_draft({**cut.meta(), "source_index": int(index)},
                                                         rgba_to_png(cut.rgba))


def run_experiment(runner: Callable, subject: Artifact, spec, *, progress=None, cancel=None) -> str:
    """Run one lab experiment on the run's model and save it; return the experiment id.

    ``runner`` is an experiment kind's ``precompute.lab.run_*_experiment``; the model is
    loaded here, with the first experiment (torch is imported then, not with the app).
    """
    from precompute.lab import ModelSession

    session = ModelSession.for_store(store())
    record, files = runner(store(), session, subject, spec, progress=progress, cancel=cancel)
    ExperimentWriter(store()).save_experiment(record, files)
    return record["id"]


def class_names() -> List[dict]:
    """``{"id", "name"}`` of every finished class, by name."""
    return sorted(({"id": row["id"], "name": row["name"]} for row in leaderboard()), key=lambda row: row["name"])


# -- model variants (ClArC corrections) -------------------------------------------------------
def variants() -> list:
    """The run's model variants (:class:`precompute.store.Variant`), newest first."""
    return store().variants()


def variant(variant_id: str):
    """One variant record; :class:`StoreError` for an unknown id."""
    return store().variant(variant_id)


def variant_file(variant_id: str, name: str) -> bytes:
    """A file saved with a variant (``cleaning.csv``, ``weights.pt``, ...)."""
    return store().variant_path(variant(variant_id).id, name).read_bytes()


@cache.memoize()
def _sample_index(cid: str) -> Dict[str, int]:
    return {str(path): index for index, path in enumerate(store().arrays(cid)["paths"])}


def locate_sample(class_name: str, path: str) -> Optional[tuple]:
    """``(class id, index)`` of the sample ``path`` (relative to the data root) of class ``class_name``, or None."""
    cid = class_id_for_name(class_name)
    index = _sample_index(cid).get(str(path)) if cid else None
    return None if index is None else (cid, index)


@cache.memoize()
def variant_cleaning_elsewhere(variant_id: str, n: int = 24) -> List[dict]:
    """The ``n`` highest cleaning scores outside the variant's class of origin: the artifact elsewhere.

    Rows of ``cleaning.csv`` (``path``, ``class``, ``score``, ``in_selection``) with the sample's
    ``class_id`` and ``index`` in the run; samples the run does not hold are passed over. The
    whole list is never kept in memory (it scores every sample of the run).
    """
    origin = variant(variant_id).origin.get("name")
    found = []
    for row in store().variant_cleaning(variant_id):
        where = locate_sample(row["class"], row["path"]) if row["class"] != origin else None
        if where is not None:
            found.append({**row, "class_id": where[0], "index": where[1]})
            if len(found) >= n:
                break
    return found


@functools.lru_cache(maxsize=None)
def _docstring(*module: str) -> str:
    """The docstring of a module of ``precompute``, read without importing it (that would import torch)."""
    import ast

    import precompute

    path = Path(precompute.__file__).resolve().parent.joinpath(*module[:-1], module[-1] + ".py")
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


def variant_loading_text(record) -> str:
    """``LOADING.txt`` of an exported variant: what it is, then how to load it without SpRAy Studio
    (the docstrings of :mod:`precompute.clarc.variants` and, for a projection, :mod:`precompute.clarc.projection`)."""
    info = store().manifest_record().model
    parts = [
        f"Model variant {record.id} of run {run_name()}: {record.method} for class {record.origin.get('name')} at "
        f"layer {record.layer}.\nArchitecture {info.spec} ({info.num_classes} classes), input {info.image_size} px, "
        f"normalisation {info.normalization}; base weights SHA-256 {record.base_weights_sha256}.",
        "Files: " + ", ".join(["variant.json"] + sorted(record.files)) + ".",
        _docstring("clarc", "variants"),
    ]
    if "projection.pt" in record.files:
        mode = (record.params or {}).get("projection")
        parts.append((f"This variant's projection mode: {mode}.\n" if mode else "") + _docstring("clarc", "projection"))
    parts.append("With SpRAy Studio: precompute.clarc.apply_variant(model, FOLDER), or python -m precompute run ... "
                 "--variant FOLDER.")
    return "\n\n".join(parts) + "\n"


def default_layer() -> Optional[str]:
    """The layer a blank layer field means, if known without loading the model (torch), else None.

    Known once a correction with the default layer ran in this process, or from a stored
    variant that records that no layer was asked for (``params["layer_requested"]`` is None).
    """
    if _state.get("default_layer"):
        return str(_state["default_layer"])
    for record in variants():
        if "layer_requested" in (record.params or {}) and record.params["layer_requested"] is None:
            return record.layer
    return None


def cluster_selection(cid: str, text: str) -> List[int]:
    """Indices of ``CLUSTERING/cluster-C`` in class ``cid`` (ConfigError for an unknown one)."""
    from precompute.samples import selection_from_cluster

    return selection_from_cluster(store(), cid, text)


def unhans_spec(*, origin_id: str, indices: Sequence[int], source: str, method: str, layer: Optional[str],
                cav: str, artifact: Optional[str], position: str = "original", epochs: Optional[int] = None,
                lr: Optional[float] = None, name: Optional[str] = None):
    """A checked :class:`precompute.clarc.unhans.UnhansSpec`: the selection, the name and the fine-tuning
    recipe (``epochs`` and ``lr``; None keeps the method's default) are checked before any work is done."""
    from precompute.clarc.corrections import default_recipe
    from precompute.clarc.unhans import UnhansSpec, check_name_free
    from precompute.samples import check_selection

    check_selection(store(), origin_id, indices)
    check_name_free(store(), name)
    return UnhansSpec(origin_id=origin_id, selection=list(indices), selection_source=source, method=method,
                      layer=layer, cav=cav, artifact=artifact, position=position,
                      recipe=default_recipe(method, epochs=epochs, lr=lr), name=name)


def run_unhans(spec, *, progress=None, cancel=None) -> str:
    """Correct the run's model (:func:`precompute.clarc.unhans.run_unhans`), save the variant, return its id.

    ``progress(done, total, text)`` says what runs now. The run's model is loaded afresh (never
    the lab's session's, whose model is canonized while its attributor is entered).
    """
    from precompute.clarc.unhans import run_unhans as correct, save_variant

    result = correct(store(), spec, progress=progress, cancel=cancel)
    save_variant(store(), result)
    if spec.layer is None:
        _state["default_layer"] = result.record.layer
    return result.record.id


def _corrected_session(record):
    from precompute.clarc import load_variant_model
    from precompute.lab import ModelSession

    key = (str(store().root), record.id, record.created)
    with _VARIANT_LOCK:
        session = _VARIANT_SESSIONS.pop(key, None)
        if session is None:
            session = ModelSession(store(), model=load_variant_model(store(), record.id))
        _VARIANT_SESSIONS[key] = session  # most recently used last
        while len(_VARIANT_SESSIONS) > MAX_VARIANT_SESSIONS:
            del _VARIANT_SESSIONS[next(iter(_VARIANT_SESSIONS))]  # dropped, not closed: a request may still use it
    return session


def _original_session(_record):
    from precompute.lab import ModelSession

    return ModelSession.for_store(store())


#: The models whose live heatmaps the Un-Hans page compares: the run's and the variant's.
HEATMAP_MODELS: Dict[str, Callable] = {"original": _original_session, "corrected": _corrected_session}
MAX_VARIANT_SESSIONS = 4
_VARIANT_SESSIONS: Dict[tuple, object] = {}
_VARIANT_LOCK = threading.Lock()


@cache.memoize()
def variant_heatmap(variant_id: str, index: int, model: str) -> bytes:
    """WebP of the live LRP heatmap of sample ``index`` of the variant's class of origin, w.r.t. that
    class, from ``model`` (a :data:`HEATMAP_MODELS` name). :class:`StoreError` for an unknown variant,
    sample or model. Loads torch and the model(s) on first use; variant sessions are kept for
    the :data:`MAX_VARIANT_SESSIONS` variants used last."""
    record = variant(variant_id)
    if model not in HEATMAP_MODELS:
        raise StoreError(f"unknown model {model!r}; known: {', '.join(HEATMAP_MODELS)}")
    view = class_view(record.origin["id"])
    if not 0 <= int(index) < view.n:
        raise StoreError(f"class {view.name} has no sample {index}")
    from precompute.lab import model_inputs
    from precompute.lab.session import to_tensor
    from precompute.thumbs import heatmap_thumbnail

    session = HEATMAP_MODELS[model](record)
    images = to_tensor(model_inputs(store(), [str(view.paths[int(index)])]))
    return heatmap_thumbnail(session.heatmaps(images, [int(record.origin["label"])])[0], 160)


# -- similarity search --------------------------------------------------------------------------
def similar(cid: str, indices: Sequence[int], top: int = 60, other_classes: bool = True) -> List[dict]:
    """The run's samples whose |relevance| lies where the selection's does, best first
    (:func:`precompute.search.find_similar`; StoreError if the run has no index)."""
    from precompute.search import find_similar

    return find_similar(store(), cid=cid, indices=indices, top=top, other_classes=other_classes)


def similar_to_heatmap(payload: bytes, name: str, top: int = 60) -> List[dict]:
    """The run's samples whose |relevance| lies where an uploaded heatmap's does (a ``.npy`` (H, W) array)."""
    from precompute.search import find_similar, load_heatmap

    return find_similar(store(), heatmap=load_heatmap(payload, name=name), top=top)
