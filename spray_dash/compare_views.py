"""Pure view models of the compare page and of the leaderboard's columns for other runs.

Runs of the same data with different models (the paper's appendix, Figure 11) are compared
class by class: tau and its rank in each run, and whether a group of samples that is a cluster
in one run is a cluster in another. Samples are matched across runs by their path relative to
the data root (the runs' sample order may differ); a sample that only one run holds is left
out of the comparison and counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "ClusterMatch",
    "RUN_FIELDS",
    "runs_leaderboard",
    "run_columns",
    "rank_change_text",
    "shared_samples",
    "best_match",
    "parse_runs",
    "default_cluster",
    "cluster_options",
    "cluster_indices",
]

#: Leaderboard fields added for the ``i``-th other run: ``tau_run{i}``, ``rank_run{i}``, ``rank_change_run{i}``.
RUN_FIELDS = ("tau", "rank", "rank_change")


def runs_leaderboard(rows: List[dict], others: Dict[str, List[dict]]) -> List[dict]:
    """The primary run's leaderboard rows with each other run's tau, rank and rank change.

    Parameters
    ----------
    rows : list of dict
        :func:`spray_dash.data.leaderboard` of the primary run.
    others : dict of str -> list of dict
        The other runs' leaderboards, by run name, in the order their columns are shown.

    Returns
    -------
    list of dict
        Copies of ``rows`` with ``tau_run{i}``, ``rank_run{i}`` and ``rank_change_run{i}``
        (the primary's rank minus the other run's: positive when the class ranks higher,
        i.e. looks more Clever-Hans-like, in the other run) for the ``i``-th other run;
        None where that run has no such class or no tau for it.
    """
    out = [dict(row) for row in rows]
    for i, other in enumerate(others.values()):
        by_name = {row["name"]: row for row in other}
        for row in out:
            match = by_name.get(row["name"])
            rank = None if match is None else match.get("rank")
            row[f"tau_run{i}"] = None if match is None else match.get("tau")
            row[f"rank_run{i}"] = rank
            row[f"rank_change_run{i}"] = None if rank is None or row.get("rank") is None else int(row["rank"] - rank)
    return out


def run_columns(names: Sequence[str]) -> List[dict]:
    """AG Grid column definitions of :func:`runs_leaderboard`'s fields, one group per other run."""
    columns = []
    for i, name in enumerate(names):
        columns.append({"headerName": name, "headerTooltip": f"run {name}: τ of the same class, its rank there "
                                                             "and how far it moved (▲: ranked higher there)",
                        "children": [
            {"field": f"tau_run{i}", "headerName": "τ", "width": 100, "filter": "agNumberColumnFilter",
             "comparator": {"function": "sprayNullsLast"},
             "valueFormatter": {"function": "params.value == null ? '—' : d3.format('.3f')(params.value)"}},
            {"field": f"rank_run{i}", "headerName": "#", "width": 70, "filter": "agNumberColumnFilter",
             "comparator": {"function": "sprayNullsLast"},
             "valueFormatter": {"function": "params.value == null ? '—' : String(params.value)"}},
            {"field": f"rank_change_run{i}", "headerName": "Δ rank", "width": 100, "filter": "agNumberColumnFilter",
             "comparator": {"function": "sprayNullsLast"},
             "valueFormatter": {"function": "params.value == null ? '—' : params.value > 0 ? '▲' + params.value : "
                                            "params.value < 0 ? '▼' + (-params.value) : '='"}},
        ]})
    return columns


def rank_change_text(change: Optional[int]) -> str:
    """``▲2`` (ranked 2 places higher in the other run), ``▼1``, ``=`` or ``—`` (unknown)."""
    if change is None:
        return "—"
    return "=" if change == 0 else (f"▲{change}" if change > 0 else f"▼{-change}")


def shared_samples(paths: Sequence[str], other_paths: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """Indices of the samples two runs share, matched by path.

    Parameters
    ----------
    paths, other_paths : sequence of str
        Sample paths of one class in two runs (relative to each run's data root).

    Returns
    -------
    here, there : ndarray of int64, shape (m,)
        ``paths[here[j]] == other_paths[there[j]]``, in the order of ``paths``.
    """
    where = {str(path): j for j, path in enumerate(other_paths)}
    pairs = [(i, where[str(path)]) for i, path in enumerate(paths) if str(path) in where]
    if not pairs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    here, there = zip(*pairs)
    return np.asarray(here, dtype=np.int64), np.asarray(there, dtype=np.int64)


@dataclass(frozen=True)
class ClusterMatch:
    """The cluster of a run that best matches a selection of samples.

    Attributes
    ----------
    clustering : str
        Name of the clustering, e.g. ``kmeans-k3``.
    cluster : int
    size : int
        Samples in the cluster (of the shared samples).
    f1 : float
        F1 of the cluster as a detector of the selection: ``2 |S ∩ C| / (|S| + |C|)``.
    overlap : float
        Share of the selection inside the cluster, ``|S ∩ C| / |S|``.
    purity : float
        Share of the cluster that is selected, ``|S ∩ C| / |C|``.
    """

    clustering: str
    cluster: int
    size: int
    f1: float
    overlap: float
    purity: float

    @property
    def label(self) -> str:
        """``CLUSTERING/cluster-C``, as ``evaluate`` and the Un-Hans page write a cluster."""
        return f"{self.clustering}/cluster-{self.cluster}"


def best_match(selected: np.ndarray, names: Sequence[str], labels: np.ndarray,
               only: Optional[Sequence[str]] = None) -> Optional[ClusterMatch]:
    """The cluster with the highest F1 for the selection, among a run's stored clusterings.

    Parameters
    ----------
    selected : ndarray of bool, shape (n,)
        The selection, over the shared samples in the other run's order.
    names : sequence of str
        Clustering names (m,).
    labels : ndarray of int, shape (m, n)
        Cluster labels of each clustering, over the same samples.
    only : sequence of str, optional
        Consider only these clusterings (e.g. the run's default clustering).

    Returns
    -------
    ClusterMatch or None
        None for an empty selection or no clustering; ties go to the first clustering and
        the smaller cluster index.
    """
    selected = np.asarray(selected, dtype=bool)
    n_selected = int(selected.sum())
    if n_selected == 0:
        return None
    best: Optional[ClusterMatch] = None
    for row, name in enumerate(names):
        if only is not None and name not in only:
            continue
        row_labels = np.asarray(labels[row], dtype=np.int64)
        if row_labels.size == 0:
            continue
        sizes = np.bincount(row_labels)
        hits = np.bincount(row_labels[selected], minlength=len(sizes))
        f1 = 2.0 * hits / (n_selected + sizes)
        cluster = int(np.argmax(f1))
        if best is None or f1[cluster] > best.f1 + 1e-12:
            best = ClusterMatch(clustering=str(name), cluster=cluster, size=int(sizes[cluster]),
                                f1=float(f1[cluster]), overlap=float(hits[cluster] / n_selected),
                                purity=float(hits[cluster] / max(int(sizes[cluster]), 1)))
    return best


def parse_runs(text: Optional[str], served: Sequence[str]) -> List[str]:
    """The runs a compare URL names (``runs=a,b``), served ones only, in order, without repeats;
    every served run when the URL names none that is served."""
    wanted = [part.strip() for part in str(text or "").split(",") if part.strip()]
    chosen = [name for name in dict.fromkeys(wanted) if name in served]
    return chosen or list(served)


def default_cluster(names: Sequence[str], labels: np.ndarray, summary: dict) -> Optional[str]:
    """The cluster a class's comparison starts with: its artifact suspect.

    That is the default clustering's cluster that ``run --val-data`` marked as suspect (separated
    most from the rest), else the default clustering's smallest cluster (artifact groups are
    usually the minority). ``CLUSTERING/cluster-C``, or None without a default clustering.
    """
    default = summary.get("default_clustering")
    if default not in names:
        return None
    suspect = (summary.get("validation_suspect") or {}).get("cluster")
    row = np.asarray(labels[list(names).index(default)], dtype=np.int64)
    sizes = np.bincount(row)
    if suspect is None or not 0 <= int(suspect) < len(sizes):
        present = np.flatnonzero(sizes)
        suspect = int(present[np.argmin(sizes[present])])
    return f"{default}/cluster-{int(suspect)}"


def cluster_options(names: Sequence[str], labels: np.ndarray, summary: dict) -> List[dict]:
    """Dropdown options: each cluster of the class's default clustering, with its size."""
    default = summary.get("default_clustering")
    if default not in names:
        return []
    row = np.asarray(labels[list(names).index(default)], dtype=np.int64)
    sizes = np.bincount(row)
    return [{"label": f"{default} · cluster {c} ({int(size)} samples)", "value": f"{default}/cluster-{c}"}
            for c, size in enumerate(sizes) if size]


def cluster_indices(text: Optional[str], names: Sequence[str], labels: np.ndarray) -> Optional[np.ndarray]:
    """Sample indices of ``CLUSTERING/cluster-C`` among a class's clusterings; None if it has no such cluster."""
    name, _, cluster = str(text or "").partition("/")
    if name not in names or not cluster.startswith("cluster-") or not cluster[8:].isdigit():
        return None
    row = np.asarray(labels[list(names).index(name)], dtype=np.int64)
    found = np.flatnonzero(row == int(cluster[8:]))
    return found if found.size else None
