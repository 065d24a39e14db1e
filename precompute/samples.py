"""Samples of a run chosen by the user: a stored cluster, or a file of paths.

``unhans`` and ``similar`` take their query samples from here. Nothing here imports torch,
so the commands that only read the store start at once.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import List, Sequence

import numpy as np

from .errors import ConfigError, SprayError
from .store import RunStore, parse_clustering_name

__all__ = ["selection_from_cluster", "selection_from_file", "check_selection"]


def selection_from_cluster(store: RunStore, origin_id: str, text: str) -> List[int]:
    """Indices of ``CLUSTERING/cluster-C`` (as ``evaluate`` prints ``best_clustering``)."""
    name, _, cluster = str(text).partition("/")
    if not cluster.startswith("cluster-") or not cluster[8:].isdigit():
        raise ConfigError(f"--cluster {text!r}: expected CLUSTERING/cluster-C, e.g. kmeans_lead-k2/cluster-1")
    try:
        parse_clustering_name(name)
    except SprayError:
        raise ConfigError(f"--cluster {text!r}: {name!r} is not a clustering name like kmeans-k5") from None
    arrays = store.arrays(origin_id)
    names = [str(n) for n in arrays["clustering_names"]]
    if name not in names:
        raise ConfigError(f"--cluster {text!r}: class {store.class_info(origin_id)['name']} has no clustering "
                          f"{name!r} (it has {names[0]} ... {names[-1]})")
    labels = np.asarray(arrays["clustering_labels"][names.index(name)])
    c = int(cluster[8:])
    if c > int(labels.max()):
        raise ConfigError(f"--cluster {text!r}: {name} has clusters 0..{int(labels.max())}")
    return [int(i) for i in np.flatnonzero(labels == c)]


def selection_from_file(store: RunStore, origin_id: str, path: Path) -> List[int]:
    """Indices of the origin-class samples listed in ``path``.

    One path a line (relative to the data root, or absolute), or a CSV with a ``path``
    column (the explorer's selection export).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--samples {path}: cannot read it ({error})") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and "path" in [c.strip() for c in lines[0].split(",")]:
        lines = [row["path"].strip() for row in csv.DictReader(io.StringIO(text)) if row.get("path")]
    root = store.data_root().resolve()
    paths = {str(p): i for i, p in enumerate(store.arrays(origin_id)["paths"])}
    chosen, unknown = set(), []
    for line in lines:
        rel = line
        if Path(line).is_absolute():
            try:
                rel = Path(line).resolve().relative_to(root).as_posix()
            except ValueError:
                pass
        if rel in paths:
            chosen.add(paths[rel])
        else:
            unknown.append(line)
    if unknown and not chosen:
        raise ConfigError(f"--samples {path}: none of its {len(lines)} paths is a sample of class "
                          f"{store.class_info(origin_id)['name']} (first: {unknown[0]!r})")
    return sorted(chosen)


def check_selection(store: RunStore, origin_id: str, selection: Sequence[int]) -> List[int]:
    """The selection as sorted unique indices; refuses an empty one and the whole class."""
    n = len(store.arrays(origin_id)["paths"])
    chosen = sorted({int(i) for i in selection})
    name = store.class_info(origin_id)["name"]
    if not chosen:
        raise ConfigError(f"the selection in class {name} is empty: choose the artifact samples")
    if chosen[0] < 0 or chosen[-1] >= n:
        raise ConfigError(f"class {name} has no sample {chosen[-1]}")
    if len(chosen) >= n:
        raise ConfigError(f"the selection is the whole class {name}: the concept needs clean samples too")
    return chosen
