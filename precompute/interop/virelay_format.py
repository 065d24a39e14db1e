"""The ViRelAy/CoRelAy project format, as ViRelAy 0.6.1 reads it, and how it maps to the run store.

A ViRelAy project is a YAML file that names a label map (JSON) and three kinds of HDF5
file. The layout below is what ViRelAy 0.6.1's reader accepts (``virelay/model.py``);
its documentation still describes an older analysis layout (``<category>/clustering/
<name>/root``) that 0.6.1 rejects with ``KeyError: 'cluster'``. The importer reads both.

::

    project.yaml      project: name, model, label_map, dataset, attributions, analyses
    label-map.json    [{"index": 0, "word_net_id": "...", "name": "..."}, ...]
    input.h5          data   (N, H, W, 3) uint8     label (N,) uint16
    attribution.h5    attribution (N, 3, H, W) float32   label (N,) uint16
                      prediction (N, C) float32          [index (N,): avoided, see below]
    analysis.h5       <category>/index                     uint32 (n,): rows of attribution.h5
                      <category>/embedding/spectral         (n, q), attribute eigenvalue (q,)
                      <category>/embedding/<umap|tsne>      (n, 2), attributes embedding, index
                      <category>/cluster/<name>             (n,) labels, attributes embedding, k, index

Traps of 0.6.1's reader that the exporter avoids: labels are read as uint16; the names of
the clusterings and embeddings are read from the first category (alphabetically) only,
so every category must have them all; a per-file ``index`` array makes every look-up
scan the whole array, so the attribution file has none (row ``i`` is sample ``i``).

Eigenvalue order: SpRAy Studio stores the eigenvalues of ``L_sym`` **ascending** with the
trivial eigenvector first (``docs/store.md``). CoRelAy computes the same ``L_sym``
eigenvalues as ``1 - mu`` of the largest eigenvalues ``mu`` of ``D^-1/2 A D^-1/2``, which
``eigsh`` returns ascending, so its eigenvalues run **descending** with the trivial one
last. :func:`corelay_spectrum` and :func:`ascending_spectrum` convert between the two.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import ConfigError, DataError
from ..stages import relabel_by_size
from ..store import clustering_name

__all__ = [
    "PROJECT_FILE", "LABEL_MAP_FILE", "INPUT_FILE", "ATTRIBUTION_FILE", "ANALYSIS_FILE", "ANALYSIS_METHOD",
    "SPECTRAL", "LABEL_DTYPE", "category_key", "virelay_clustering_name", "store_clustering",
    "corelay_spectrum", "ascending_spectrum", "read_yaml", "write_yaml", "read_label_map", "label_map_entries",
]

PROJECT_FILE = "project.yaml"
LABEL_MAP_FILE = "label-map.json"
INPUT_FILE = "input.h5"
ATTRIBUTION_FILE = "attribution.h5"
ANALYSIS_FILE = "analysis.h5"
#: The exported analysis's method name (ViRelAy shows it, and its URLs spell ``_`` as ``-``).
ANALYSIS_METHOD = "spectral"
#: The embedding CoRelAy and ViRelAy call the spectral embedding.
SPECTRAL = "spectral"
#: ViRelAy 0.6.1 takes a scalar label for an index only when it is uint16.
LABEL_DTYPE = np.uint16

_VIRELAY_NAME = re.compile(r"^(?P<family>.+?)-k?(?P<k>\d+)$")  # kmeans-05 (CoRelAy), kmeans-k5 (ours)
_BAD_KEY = re.compile(r"[/\x00]")


def category_key(label: int, name: str) -> str:
    """The analysis-file group (and label-map ``word_net_id``) of a class.

    The class name where HDF5 allows it as a group name, else CoRelAy's fallback, the
    zero-padded label (``00000007``).
    """
    if name and name not in (".", "..") and not _BAD_KEY.search(name):
        return name
    return f"{int(label):08d}"


def virelay_clustering_name(name: str) -> str:
    """The ViRelAy name of a stored clustering: ``kmeans-k5`` -> ``kmeans-05`` (CoRelAy's spelling)."""
    family, k = name.rsplit("-k", 1)
    return f"{family}-{int(k):02d}"


def _family(text: str) -> str:
    family = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")
    return family if family[:1].isalpha() else f"c_{family}"


def store_clustering(name: str, labels: np.ndarray, k: Optional[int] = None) -> Tuple[str, np.ndarray]:
    """A project's clustering as the run store holds it: a ``<family>-k<k>`` name and labels 0..k-1.

    ``kmeans-05`` becomes ``kmeans-k5``; a name without a trailing count (``hdbscan``,
    ``dbscan-eps=0.5``) becomes a family named after it, with k the number of distinct
    labels. Negative labels (DBSCAN's noise, -1) become a cluster of their own. Labels are
    renumbered by size, 0 the largest, as :func:`precompute.stages.relabel_by_size` does.

    Parameters
    ----------
    name : str
        The clustering's name in the analysis file.
    labels : ndarray of int or bool, shape (n,)
    k : int, optional
        The ``k`` attribute, if the file has one.

    Returns
    -------
    name : str
    labels : ndarray of int16, shape (n,)
    """
    values = np.asarray(labels).astype(np.int64).ravel()
    if values.size and values.min() < 0:
        values = values - values.min()
    relabelled = relabel_by_size(values).astype(np.int16)
    distinct = int(relabelled.max()) + 1 if relabelled.size else 0
    match = _VIRELAY_NAME.match(name)
    family = _family(match["family"] if match else name)
    named = int(k) if k is not None else (int(match["k"]) if match else 0)
    return clustering_name(family, named if named >= distinct else distinct), relabelled


def corelay_spectrum(eigenvalues: np.ndarray, eigenvectors: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Our spectrum in CoRelAy's order: eigenvalues descending, the trivial eigenvector last.

    Parameters
    ----------
    eigenvalues : ndarray of shape (q,)
        Ascending (``analysis.npz``).
    eigenvectors : ndarray of shape (n, q)
        Column j belongs to ``eigenvalues[j]``.

    Returns
    -------
    eigenvalues : ndarray of float64, shape (q,)
    eigenvectors : ndarray of float32, shape (n, q)
        Both reversed.
    """
    return (np.ascontiguousarray(np.asarray(eigenvalues, np.float64)[::-1]),
            np.ascontiguousarray(np.asarray(eigenvectors, np.float32)[:, ::-1]))


def ascending_spectrum(eigenvalues: np.ndarray, embedding: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """A project's spectral embedding in the run store's convention.

    Eigenvalues ascending, column j belonging to eigenvalue j, each column's
    largest-magnitude entry positive. A descending spectrum (CoRelAy's) is reversed,
    which keeps tied eigenvalues (a disconnected graph's zeros) in their order; any other
    order is sorted stably.

    Parameters
    ----------
    eigenvalues : ndarray of shape (q,)
    embedding : ndarray of shape (n, q)

    Returns
    -------
    eigenvalues : ndarray of float64, shape (q,)
    embedding : ndarray of float32, shape (n, q)
    """
    values = np.asarray(eigenvalues, dtype=np.float64).ravel()
    vectors = np.asarray(embedding, dtype=np.float32)
    diffs = np.diff(values)
    order = np.arange(len(values))[::-1] if len(values) > 1 and np.all(diffs <= 0) and np.any(diffs < 0) \
        else np.argsort(values, kind="stable")
    values, vectors = values[order], np.array(vectors[:, order])
    if vectors.size:
        peak = np.argmax(np.abs(vectors), axis=0)
        signs = np.sign(vectors[peak, np.arange(vectors.shape[1])])
        vectors *= np.where(signs == 0, 1, signs).astype(np.float32)
    return values, vectors


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; a :class:`ConfigError` naming it if it is unreadable or not YAML."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with ray, a pinned requirement
        raise ConfigError("reading ViRelAy projects needs PyYAML (pip install pyyaml)") from None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the project file ({getattr(error, 'strerror', None) or error})") \
            from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path}: not valid YAML{line} ({getattr(error, 'problem', None) or 'parse error'})") \
            from None


def write_yaml(path: Path, obj: Any) -> None:
    """Write ``obj`` as block-style YAML, keys in the given order."""
    import yaml

    Path(path).write_text(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True),
                          encoding="utf-8")


def label_map_entries(label_names: List[str], keys: Dict[int, str]) -> List[Dict[str, Any]]:
    """The label map of a run: every model output, ``word_net_id`` the category key where it has one.

    Parameters
    ----------
    label_names : list of str
        Name of every model output index.
    keys : dict of int -> str
        Category key of each exported class's label (:func:`category_key`).
    """
    return [{"index": i, "word_net_id": keys.get(i, category_key(i, name)), "name": name}
            for i, name in enumerate(label_names)]


def read_label_map(path: Path) -> List[Dict[str, Any]]:
    """Entries ``{index, word_net_id, name}`` of a label map; a :class:`DataError` naming it if malformed."""
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: label map not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DataError(f"{path}: not a JSON label map ({error})") from None
    if not isinstance(entries, list):
        raise DataError(f"{path}: a label map is a JSON list of {{index, word_net_id, name}}")
    out = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("index"), int) or "name" not in entry:
            raise DataError(f"{path}: entry {number} needs an integer 'index' and a 'name'")
        out.append({"index": int(entry["index"]), "word_net_id": str(entry.get("word_net_id") or ""),
                    "name": str(entry["name"])})
    indices = [entry["index"] for entry in out]
    if len(set(indices)) != len(indices) or any(index < 0 for index in indices):
        raise DataError(f"{path}: label indices must be distinct and non-negative")
    return out
