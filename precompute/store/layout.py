"""The run directory's file names, id formats and write helpers.

This is the one place that knows the name of every file of a run (``docs/store.md``);
the reader, the writers and the demo builders ask it for paths instead of spelling them.
"""
from __future__ import annotations

import csv
import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple

import numpy as np

from ..errors import StoreError

__all__ = [
    "SCHEMA_VERSION", "READABLE_SCHEMA_VERSIONS", "ANALYSES_DIR", "ANALYSIS_RESULT_ARRAYS", "analysis_file",
    "MEDOID_PROTOTYPE_ANALYSES",
    "MANIFEST", "REPORT", "CLASSES_DIR", "ARTIFACTS_DIR", "ARTIFACT_INDEX", "EXPERIMENTS_DIR",
    "DRAFTS_DIR", "RECORD", "SUMMARY", "ANALYSIS", "HEATMAPS", "CLASS_MASKS", "PERTURBATION", "MASK_ARRAYS", "OPTIONAL_CLASS_ARRAYS",
    "PERTURBATION_ARRAYS", "THUMB_KINDS", "TRUTH", "HOLDOUT_TRUTH",
    "DEMO_REPORT", "TRUTH_COLUMNS", "CLASS_ARRAYS", "CLASS_ID_PATTERN", "class_id", "is_class_id",
    "thumb_file", "clustering_name", "parse_clustering_name", "write_json_atomic", "json_safe",
    "write_bytes_durable", "fsync_dir", "is_disk_full", "write_truth_rows", "write_artifact_library",
    "read_json", "checked_id", "checked_file_name",
]

SCHEMA_VERSION = 2
"""Version 2 added ``classes/<id>/analyses/<name>.npz``: analyses under other distances beside the
primary one. A version-1 run is a version-2 run with its primary analysis only, so both are read
(:data:`READABLE_SCHEMA_VERSIONS`), and adding an analysis to a version-1 run marks it version 2."""
READABLE_SCHEMA_VERSIONS = (1, 2)

MANIFEST = "manifest.json"
REPORT = "report.json"
CLASSES_DIR = "classes"
ARTIFACTS_DIR = "artifacts"
ARTIFACT_INDEX = "artifacts.json"
EXPERIMENTS_DIR = "experiments"
DRAFTS_DIR = "artifacts"  # experiments/artifacts/: the lab's artifact drafts
RECORD = "record.json"
VARIANTS_DIR = "variants"  # corrected models (ClArC): variants/<id>/variant.json + files
VARIANT_RECORD = "variant.json"
VARIANT_WEIGHTS = "weights.pt"  # a plain state_dict, when the correction changed the weights
VARIANT_PROJECTION = "projection.pt"  # P-ClArC's layer, unit vector and reference
VARIANT_CONCEPT = "concept.pt"  # the CAV the correction was made with
CLEANING = "cleaning.csv"  # path,class,score,in_selection
SEARCH_DIR = "search"  # the similarity index: vectors.npy, rows.npy, search.json
SEARCH_VECTORS = "vectors.npy"  # float32 (N, d): unit-length pooled |relevance| of every sample
SEARCH_ROWS = "rows.npy"  # int32 (N, 2): (model label, index in its class) of each vector
SEARCH_META = "search.json"  # grid, kind, count, classes, the run's "created": written last
SUMMARY = "summary.json"
ANALYSIS = "analysis.npz"
ANALYSES_DIR = "analyses"  # classes/<id>/analyses/<distance>.npz: analyses other than the primary one
CLASS_MASKS = "masks.npz"  # run --masks: object masks, right-reason scores, outline thumbnails (MASK_ARRAYS)
PERTURBATION = "perturbation.npz"  # python -m precompute perturb: occlusion maps (PERTURBATION_ARRAYS)
HEATMAPS = "heatmaps.npy"
THUMB_KINDS = ("image", "heatmap")
#: The demo's and the synthetic store's ground truth, in the run directory.
TRUTH = "truth.csv"
HOLDOUT_TRUTH = "holdout_truth.csv"
DEMO_REPORT = "demo_report.json"
TRUTH_COLUMNS = ("path", "class", "artifact")

#: A class id: ``c`` plus the zero-padded model label (``c0003``); see :func:`class_id`.
CLASS_ID_PATTERN = re.compile(r"c\d{4,}")
_CLUSTERING_RE = re.compile(r"^(?P<family>[a-z][a-z0-9_]*)-k(?P<k>\d+)$")

# name -> (dtype kind, shape description); the contract of analysis.npz.
CLASS_ARRAYS: Dict[str, str] = {
    "paths": "str (n,): image path relative to the data root, '/'-separated",
    "eigenvalues": "float64 (q,): smallest eigenvalues of L_sym, ascending (trivial 0 first)",
    "eigenvectors": "float32 (n, q): column j belongs to eigenvalues[j]; rows are the spectral embedding",
    "knn_indices": "int32 (n, k): each sample's k nearest neighbours, nearest first (self excluded)",
    "knn_distances": "float32 (n, k): distances to those neighbours under the analysis's distance (Euclidean by default)",
    "clustering_names": "str (m,): '<family>-k<k>', e.g. 'kmeans-k5', 'ward-k3'",
    "clustering_labels": "int16 (m, n): cluster label of each sample, 0..k-1",
    "fisher": "float64 (m,): Fisher separability of each clustering in the leading fisher_dimensions "
              "eigenvectors (NaN outside the k range of small classes)",
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


# The arrays of analysis.npz that one analysis (one distance) computes; analyses/<name>.npz holds these.
ANALYSIS_RESULT_ARRAYS: Tuple[str, ...] = ("eigenvalues", "eigenvectors", "knn_indices", "knn_distances",
                                           "clustering_names", "clustering_labels", "fisher", "map_names", "maps")

# Analyses whose clusters share a shape, not a place (Gromov-Wasserstein: any place, angle, mirroring and
# scale): the mean of their heatmaps smears the shape away, so a selection's prototype is its medoid.
MEDOID_PROTOTYPE_ANALYSES = frozenset({"gw"})

_ANALYSIS_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def analysis_file(name: str) -> str:
    """``analyses/<name>.npz``, relative to a class folder, for an analysis name (a distance's name)."""
    if not isinstance(name, str) or not _ANALYSIS_NAME_RE.match(name):
        raise StoreError(f"bad analysis name {name!r} (lower-case letters, digits and _)")
    return f"{ANALYSES_DIR}/{name}.npz"


# Optional arrays of analysis.npz: present only in some runs.
OPTIONAL_CLASS_ARRAYS: Dict[str, str] = {
    "split": "uint8 (n,): 0 = training, 1 = validation image (run --val-data); absent without validation data",
}

# Optional files a class folder gains after it is written; each is replaced atomically as a whole.
MASK_ARRAYS: Dict[str, str] = {
    "object_mask": "uint8 (n, ceil(H*W/8)): the object mask at heatmap resolution, np.packbits of each row-major "
                   "(H, W) bool mask (precompute.masks.unpack_masks)",
    "right_reason": "float32 (n,): share of the decisive region (fewest pixels holding 80 % of the positive "
                    "relevance) that lies on the object; NaN without positive relevance",
    "chance": "float32 (n,): the mask's area fraction, the score of a random explainer",
    "thumbs_mask": "uint8 (bytes,): packed lossless WebP outlines of the masks at thumbnail size",
    "thumb_offsets_mask": "int64 (n+1,): byte offsets into thumbs_mask",
}
PERTURBATION_ARRAYS: Dict[str, str] = {
    "maps": "float32 (n, g, g): drop of p(true label) when each grid cell is occluded (row-major cells, y down)",
    "base_prob": "float32 (n,): p(true label) of the unoccluded image",
    "off_object": "float32 (n,): share of the positive drop outside the reference region (mask, else the LRP "
                  "decisive region); NaN when no occlusion lowers p",
    "reference_cover": "float32 (n, g, g): fraction of each cell inside the reference region",
}


def class_id(label: int) -> str:
    """Folder name of the class with model label index ``label``: ``c0007``."""
    return f"c{int(label):04d}"


def is_class_id(value: object) -> bool:
    """True if ``value`` is a well-formed class id (:data:`CLASS_ID_PATTERN`, the whole string)."""
    return isinstance(value, str) and CLASS_ID_PATTERN.fullmatch(value) is not None


def thumb_file(kind: str) -> str:
    """File name of the packed thumbnails of ``kind`` (one of :data:`THUMB_KINDS`)."""
    return f"thumbs-{kind}.bin"


def clustering_name(family: str, k: int) -> str:
    """Stored name of one clustering: ``clustering_name("ward", 3) == "ward-k3"``."""
    return f"{family}-k{int(k)}"


def parse_clustering_name(name: str) -> tuple:
    """Inverse of :func:`clustering_name`: ``"ward-k3" -> ("ward", 3)``."""
    match = _CLUSTERING_RE.match(name)
    if not match:
        raise StoreError(f"not a clustering name: {name!r} (expected '<family>-k<k>')")
    return match["family"], int(match["k"])


def is_disk_full(error: OSError, folder: Path) -> bool:
    """True if ``error`` means "no space left": ENOSPC/EDQUOT, or a short write (numpy's
    ``tofile`` raises a bare ``OSError("N requested and M written")``) on a nearly full disk."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(folder).free < 16 * 1024 * 1024
    except OSError:
        return False


def fsync_dir(path: Path) -> None:
    """fsync a directory, so a rename inside it survives a crash (best effort)."""
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


def write_bytes_durable(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it."""
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


def read_json(path: Path) -> Any:
    """Parse the JSON file ``path``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def json_safe(obj: Any) -> Any:
    """Turn numpy scalars/arrays into JSON types; NaN/inf become None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write_truth_rows(path: Path, rows: Iterable[Sequence[str]], *, append: bool = False) -> None:
    """Write ground-truth rows ``(path, class, artifact)`` as CSV (:data:`TRUTH_COLUMNS`).

    Parameters
    ----------
    path : Path
        Usually ``RUN/truth.csv`` (:data:`TRUTH`); its folder is created.
    rows : iterable of (str, str, str)
    append : bool
        Add to an existing file instead of starting it (with its header).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if not append:
            writer.writerow(TRUTH_COLUMNS)
        writer.writerows([str(value) for value in row] for row in rows)


def write_artifact_library(folder: Path, items: Iterable[Tuple[Dict[str, Any], bytes]]) -> List[Dict[str, Any]]:
    """Write an artifact library: each PNG under its entry's ``file`` name, then :data:`ARTIFACT_INDEX`.

    Parameters
    ----------
    folder : Path
        ``RUN/artifacts`` (:data:`ARTIFACTS_DIR`) or any folder; created if missing.
    items : iterable of (dict, bytes)
        An entry (``name``, ``class``, ``file``, ``position``, ``size``, ``image_size``, ...)
        and its RGBA PNG.

    Returns
    -------
    list of dict
        The entries, as written to the index.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for entry, png in items:
        name = Path(str(entry["file"])).name
        if name != entry["file"] or not name.endswith(".png"):
            raise StoreError(f"bad artifact file name {entry['file']!r}")
        write_bytes_durable(folder / name, png)
        entries.append(entry)
    write_json_atomic(folder / ARTIFACT_INDEX, json_safe(entries))
    return entries


_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}\.(png|webp|json|csv|pt)$")


def checked_id(record_id: str) -> str:
    """``record_id`` if it is a safe experiment or draft id, else :class:`StoreError`."""
    if not isinstance(record_id, str) or not _ID_RE.match(record_id) or record_id == DRAFTS_DIR:
        raise StoreError(f"bad id {record_id!r}")
    return record_id


def checked_file_name(name: str) -> str:
    """``name`` if it is a safe name for a file saved with an experiment, else :class:`StoreError`."""
    if not isinstance(name, str) or not _FILE_NAME_RE.match(name) or name == RECORD:
        raise StoreError(f"bad experiment file name {name!r}")
    return name
