"""The run store: the one package that knows the on-disk layout.

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
          masks.npz                  optional (run --masks): object masks, right-reason scores, outlines
          perturbation.npz           optional (perturb): occlusion sensitivity maps
        .tmp-c0001-1234/             a class being written; never read
      artifacts/                     the run's artifact library: RGBA patches + artifacts.json (demo)
      experiments/                   written by the artifact lab (the only part the app writes)
        artifacts/<id>.png, <id>.json    artifact drafts: uploads, boxes cut from samples, proposals
        <experiment id>/             one finished experiment: record.json + thumbnails, written atomically
      search/                        the similarity index: vectors.npy, rows.npy, search.json
      variants/<id>/                 corrected models (ClArC): variant.json, weights.pt or projection.pt,
                                     concept.pt, cleaning.csv; written atomically
      truth.csv, demo_report.json    the demo's (and synthetic stores') ground truth and training report

A class folder appears only through an atomic ``rename`` of a complete temporary
folder, so a reader never sees half a class and a killed run resumes cleanly.

Modules
-------
layout   file names, id formats, atomic and durable writes, the truth and artifact-library files
records  typed records: :class:`Manifest` (and its sections) and :class:`ClassSummary`
reader   :class:`RunStore`
writer   :class:`RunWriter`, :class:`ExperimentWriter`, :class:`ClassAnalysis`
"""
from .layout import (
    ANALYSIS_RESULT_ARRAYS,
    ARTIFACTS_DIR,
    CLASS_ARRAYS,
    CLASS_ID_PATTERN,
    CLASS_MASKS,
    MASK_ARRAYS,
    MEDOID_PROTOTYPE_ANALYSES,
    PERTURBATION,
    PERTURBATION_ARRAYS,
    DEMO_REPORT,
    HOLDOUT_TRUTH,
    SCHEMA_VERSION,
    THUMB_KINDS,
    TRUTH,
    CLEANING,
    SEARCH_DIR,
    SEARCH_META,
    VARIANT_CONCEPT,
    VARIANT_PROJECTION,
    VARIANT_WEIGHTS,
    checked_id,
    class_id,
    clustering_name,
    is_class_id,
    parse_clustering_name,
    write_artifact_library,
    write_json_atomic,
    write_truth_rows,
)
from .reader import ClassRecord, RunStore
from .records import (
    DEFAULT_COMPOSITE,
    DEFAULT_NORMALIZATION,
    ClassEntry,
    ClassSummary,
    DataInfo,
    Manifest,
    ModelInfo,
    StorageInfo,
    ThumbnailInfo,
    Variant,
)
from .writer import ClassAnalysis, ExperimentWriter, RunWriter, datetime_now, iter_class_ids, new_record_id

__all__ = [
    "SCHEMA_VERSION",
    "ANALYSIS_RESULT_ARRAYS",
    "MEDOID_PROTOTYPE_ANALYSES",
    "ExperimentWriter",
    "new_record_id",
    "datetime_now",
    "CLASS_ARRAYS",
    "CLASS_MASKS",
    "MASK_ARRAYS",
    "PERTURBATION",
    "PERTURBATION_ARRAYS",
    "THUMB_KINDS",
    "ClassAnalysis",
    "ClassRecord",
    "RunStore",
    "RunWriter",
    "CLASS_ID_PATTERN",
    "class_id",
    "checked_id",
    "is_class_id",
    "iter_class_ids",
    "clustering_name",
    "parse_clustering_name",
    "write_json_atomic",
    "TRUTH",
    "HOLDOUT_TRUTH",
    "DEMO_REPORT",
    "ARTIFACTS_DIR",
    "write_truth_rows",
    "write_artifact_library",
    "Manifest",
    "DataInfo",
    "ModelInfo",
    "ThumbnailInfo",
    "StorageInfo",
    "ClassEntry",
    "ClassSummary",
    "Variant",
    "VARIANT_WEIGHTS",
    "VARIANT_PROJECTION",
    "VARIANT_CONCEPT",
    "CLEANING",
    "SEARCH_DIR",
    "SEARCH_META",
    "DEFAULT_NORMALIZATION",
    "DEFAULT_COMPOSITE",
]
