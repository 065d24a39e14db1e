"""Compare a run's clusterings with known artifacts (``truth.csv``).

``truth.csv`` has the columns ``path,class,artifact``; ``path`` is relative to the
data root (or absolute), and an empty ``artifact`` marks a clean image. A class is
*planted* if any of its images has an artifact; its artifact samples are those
images. For each planted class this reports the best F1 of any single stored
cluster (``best_f1``) and of any cluster of the default clustering (``default_f1``).
"""
from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from .errors import ConfigError
from .store import ClassSummary, RunStore

__all__ = ["read_truth", "cluster_f1", "best_cluster", "evaluate_run", "markdown_table", "reason_table"]


def read_truth(path: os.PathLike, data_root: Optional[Path] = None) -> Dict[str, Tuple[str, str]]:
    """Read ``truth.csv`` into ``{relative path: (class, artifact)}``.

    Raises
    ------
    ConfigError
        If the file is missing or lacks the ``path,class,artifact`` columns.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: truth file not found")
    truth: Dict[str, Tuple[str, str]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "class", "artifact"} - set(reader.fieldnames or [])
        if missing:
            raise ConfigError(f"{path}: missing column(s) {', '.join(sorted(missing))} (need path,class,artifact)")
        for row in reader:
            rel = (row["path"] or "").replace("\\", "/")
            if data_root is not None and os.path.isabs(rel):
                try:
                    rel = Path(rel).resolve().relative_to(data_root.resolve()).as_posix()
                except ValueError:
                    pass
            truth[rel] = (row["class"] or "", (row["artifact"] or "").strip())
    return truth


def cluster_f1(labels: np.ndarray, truth: np.ndarray) -> Tuple[float, int]:
    """Best F1 of a single cluster of ``labels`` against the boolean mask ``truth``.

    Parameters
    ----------
    labels : ndarray of int, shape (n,)
    truth : ndarray of bool, shape (n,)

    Returns
    -------
    (f1, cluster) : (float, int)
    """
    labels = np.asarray(labels)
    truth = np.asarray(truth, dtype=bool)
    k = int(labels.max()) + 1 if labels.size else 0
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    hits = np.bincount(labels, weights=truth.astype(np.float64), minlength=k)
    f1 = 2 * hits / np.maximum(sizes + truth.sum(), 1)
    best = int(np.argmax(f1)) if k else 0
    return (float(f1[best]) if k else 0.0), best


def best_cluster(names: np.ndarray, labels: np.ndarray, truth: np.ndarray,
                 only: Optional[str] = None) -> Tuple[float, str]:
    """Best single-cluster F1 over stored clusterings (or only the clustering ``only``).

    Returns ``(f1, "<clustering>/cluster-<c>")``.
    """
    best = (-1.0, "")
    for name, lab in zip(names, labels):
        if only is not None and name != only:
            continue
        f1, cluster = cluster_f1(lab, truth)
        if f1 > best[0]:
            best = (f1, f"{name}/cluster-{cluster}")
    return best


def evaluate_run(run_dir: os.PathLike, truth_csv: os.PathLike, analysis: Optional[str] = None) -> Dict[str, Any]:
    """Score every finished class of a run against ``truth_csv``.

    ``analysis`` scores that analysis of each class (a distance's name,
    :mod:`precompute.analyses`; default the run's primary one); the result has the same
    keys whichever it is, and ``analysis`` names it.

    Returns
    -------
    dict
        ``{"classes": {name: {"tau", "tau_rank", "separability", "separability_rank", "planted",
        "artifact", "best_f1", "best_clustering", "default_f1", "default_clustering", "n",
        "n_artifact", "artifacts"}}, "mean_tau_planted", "mean_tau_clean", "scores"}``; F1 fields and
        ``artifact`` are None for clean classes, means None when a group is empty. ``artifact``
        is the class's most common artifact and the F1 fields score all its artifact samples
        as one group; ``artifacts`` scores each artifact on its own, ``{name: {"n", "best_f1",
        "best_clustering", "default_f1"}}`` (empty for a clean class), so a class with two
        artifacts shows whether each has a cluster of its own. A class
        too small for tau has ``tau`` None and ranks after every class with one.
        ``separability`` is the second truth-free class score, the Fisher separability of
        the default clustering (:func:`precompute.stages.separability.default_separability`,
        read from the stored per-clustering scores, so older runs have it too). ``scores``
        says how each score ranks the planted classes: ``{"tau"|"separability":
        {"mean_rank_planted", "planted_in_top_quarter", "top_quarter", "planted"}}``. A class
        with masks or a perturbation scan also has the figures of :func:`_reason_figures`.

    Raises
    ------
    ConfigError
        No finished class, or a truth file none of whose paths is a sample of the run.
    """
    store = RunStore(run_dir)
    truth = read_truth(truth_csv, store.data_root())
    records = store.classes()
    if not records:
        raise ConfigError(f"{store.root}: no finished classes to evaluate")
    analysis = analysis or store.primary_analysis
    missing = [rec.name for rec in records if analysis not in store.analysis_names(rec.id)]
    if missing:
        raise ConfigError(f"{len(missing)} classes have no {analysis!r} analysis (e.g. {missing[0]}); add it with: "
                          f"python -m precompute analyse {store.root} --distance {analysis}")
    summaries = [ClassSummary.from_dict(store.summary(rec.id, analysis)) for rec in records]
    taus = np.array([np.nan if summary.tau is None else summary.tau for summary in summaries], dtype=np.float64)
    ranks = _ranks(taus)
    separabilities = np.array([_separability(store.arrays(rec.id, analysis), summary)
                               for rec, summary in zip(records, summaries)], dtype=np.float64)
    separability_ranks = _ranks(separabilities)
    classes: Dict[str, Any] = {}
    planted_taus, clean_taus = [], []
    matched, example = 0, None
    for rec, summary, rank, tau, separability, separability_rank in zip(records, summaries, ranks, taus,
                                                                         separabilities, separability_ranks):
        arrays = store.arrays(rec.id, analysis)
        paths = arrays["paths"]
        matched += sum(str(p) in truth for p in paths)
        example = example if example is not None or not len(paths) else str(paths[0])
        carried = [truth.get(str(p), ("", ""))[1] for p in paths]
        mask = np.array([bool(name) for name in carried])
        planted = bool(mask.any())
        default = summary.default_clustering
        entry: Dict[str, Any] = {
            "tau": None if np.isnan(tau) else float(tau),
            "tau_rank": int(rank),
            "separability": None if np.isnan(separability) else float(separability),
            "separability_rank": int(separability_rank),
            "planted": planted,
            "artifact": Counter(name for name in carried if name).most_common(1)[0][0] if planted else None,
            "best_f1": None,
            "best_clustering": None,
            "default_f1": None,
            "default_clustering": default,
            "n": int(len(paths)),
            "n_artifact": int(mask.sum()),
            "artifacts": {},
        }
        if planted:
            names, labels = arrays["clustering_names"], arrays["clustering_labels"]
            entry["best_f1"], entry["best_clustering"] = best_cluster(names, labels, mask)
            entry["default_f1"], _ = best_cluster(names, labels, mask, only=default)
            for artifact in sorted({name for name in carried if name}):  # each artifact's own group
                own = np.array([name == artifact for name in carried])
                best_f1, best_name = best_cluster(names, labels, own)
                entry["artifacts"][artifact] = {"n": int(own.sum()), "best_f1": best_f1, "best_clustering": best_name,
                                                "default_f1": best_cluster(names, labels, own, only=default)[0]}
            if entry["tau"] is not None:
                planted_taus.append(entry["tau"])
        elif entry["tau"] is not None:
            clean_taus.append(entry["tau"])
        entry.update(_reason_figures(store, rec.id, carried))
        classes[rec.name] = entry
    if truth and not matched:  # else every class would silently be reported as clean
        raise ConfigError(f"{truth_csv}: none of its {len(truth)} paths is a sample of the run (a path there: "
                          f"{next(iter(truth))!r}; a sample of the run: {example!r}); paths must be relative to the "
                          f"run's data root, {store.data_root()}")
    return {
        "analysis": analysis,
        "classes": classes,
        "mean_tau_planted": float(np.mean(planted_taus)) if planted_taus else None,
        "mean_tau_clean": float(np.mean(clean_taus)) if clean_taus else None,
        "scores": {score: _ranking(classes, f"{score}_rank") for score in ("tau", "separability")},
    }


def _ranks(values: np.ndarray) -> np.ndarray:
    """Rank 1 for the highest value; NaN (no score) after every class with one, in order."""
    ranks = np.empty(len(values), dtype=int)
    ranks[np.argsort(-values, kind="stable")] = np.arange(1, len(values) + 1)  # NaN sorts last
    return ranks


def _separability(arrays: Dict[str, np.ndarray], summary) -> float:
    """The class's default-clustering separability (NaN if none), from the stored per-clustering scores."""
    from .stages.separability import default_separability

    value = default_separability(arrays["clustering_names"], arrays["fisher"], summary.default_clustering)
    return np.nan if value is None else value


def _ranking(classes: Dict[str, Any], key: str) -> Dict[str, Any]:
    """How a class score ranks the planted classes: their mean rank, and how many are in the top quarter."""
    ranks = [entry[key] for entry in classes.values() if entry["planted"]]
    quarter = max(1, int(np.ceil(len(classes) / 4)))
    return {"mean_rank_planted": float(np.mean(ranks)) if ranks else None,
            "planted_in_top_quarter": int(sum(rank <= quarter for rank in ranks)), "top_quarter": quarter,
            "planted": len(ranks)}


def _mean(values: np.ndarray) -> Optional[float]:
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else None


def _artifact_cells(store: RunStore, artifact: str, grid: int, side: int) -> Optional[np.ndarray]:
    """bool (grid, grid): the cells the library artifact ``artifact`` covers at its place; None if unknown."""
    from .lab import artifact_from_entry, artifact_mask
    from .perturb import cell_cover

    entry = next((e for e in store.artifacts() if e.get("name") == artifact and e.get("position")), None)
    if entry is None:
        return None
    patch = artifact_from_entry(store, f"lib-{artifact}")
    footprint = artifact_mask(patch, tuple(entry["position"]), 1.0, side, side)
    return cell_cover(footprint[None], grid)[0] > 0


def _reason_figures(store: RunStore, cid: str, carried: Sequence[str]) -> Dict[str, Any]:
    """The right-reason and perturbation figures of a class, split by artifact and clean samples.

    ``carried`` names each sample's artifact (``""``: clean). ``right_reason_artifact`` /
    ``right_reason_clean`` / ``right_reason_chance``: mean scores (``run --masks``);
    ``off_object_artifact`` / ``off_object_clean``: mean off-object shares, and
    ``peak_on_artifact`` / ``peak_on_artifact_clean``: the fraction of artifact samples whose
    occlusion map peaks in a cell their own artifact covers (clean samples: any of the class's
    artifacts; ``perturb``). An artifact of no fixed place (posed) has no cells and is left out
    of the peak figures. Keys are left out where the class has no such file; artifact figures
    are None for a clean class.
    """
    figures: Dict[str, Any] = {}
    carries = np.array([bool(name) for name in carried], dtype=bool)
    planted = bool(carries.any())
    masks = store.class_masks(cid)
    if masks is not None:
        score = masks["right_reason"]
        figures.update(right_reason_artifact=_mean(score[carries]) if planted else None,
                       right_reason_clean=_mean(score[~carries]), right_reason_chance=_mean(masks["chance"]))
    scan = store.class_perturbation(cid)
    if scan is not None:
        off = scan["off_object"]
        figures.update(off_object_artifact=_mean(off[carries]) if planted else None,
                       off_object_clean=_mean(off[~carries]), peak_on_artifact=None, peak_on_artifact_clean=None)
        maps = scan["maps"]
        side = store.summary(cid)["heatmap_shape"][0]
        cells = {name: _artifact_cells(store, name, maps.shape[1], side) for name in sorted(set(carried) - {""})}
        cells = {name: cover.ravel() for name, cover in cells.items() if cover is not None}
        if cells:
            peaks = np.argmax(maps.reshape(len(maps), -1), axis=1)
            placed = np.array([name in cells for name in carried], dtype=bool)
            on_own = np.array([bool(cells[name][peak]) if name in cells else False
                               for name, peak in zip(carried, peaks)])
            on_any = np.any(np.stack(list(cells.values())), axis=0)[peaks]
            figures.update(peak_on_artifact=float(on_own[placed].mean()),
                           peak_on_artifact_clean=float(on_any[~carries].mean()) if (~carries).any() else None)
    return figures


def reason_table(result: Dict[str, Any]) -> str:
    """Markdown: right-reason and perturbation figures of every class that has them, by name; empty if none."""
    def number(value: Optional[float], digits: int = 2) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    def pair(entry: Dict[str, Any], key: str, percent: bool = False) -> str:
        if f"{key}_clean" not in entry:
            return "—"
        fmt = (lambda v: "—" if v is None else f"{100 * v:.0f} %") if percent else number
        return f"{fmt(entry.get(f'{key}_artifact'))} / {fmt(entry.get(f'{key}_clean'))}"

    rows = [(name, entry) for name, entry in sorted(result["classes"].items())
            if "right_reason_clean" in entry or "off_object_clean" in entry]
    if not rows:
        return ""
    lines = ["| class | artifact | right-reason score: artifact / clean (chance) | off-object share: artifact / clean "
             "| occlusion peak on the artifact: artifact / clean |", "|---|---|---|---|---|"]
    for name, entry in rows:
        chance = f" ({number(entry['right_reason_chance'])})" if "right_reason_chance" in entry else ""
        peak = "—" if entry.get("peak_on_artifact") is None else (
            f"{100 * entry['peak_on_artifact']:.0f} % / {100 * (entry.get('peak_on_artifact_clean') or 0):.0f} %")
        artifacts = ", ".join(sorted(entry.get("artifacts") or {})) or entry["artifact"] or "—"
        lines.append(f"| {name} | {artifacts} | {pair(entry, 'right_reason')}{chance} | "
                     f"{pair(entry, 'off_object', percent=True)} | {peak} |")
    return "\n".join(lines)


def markdown_table(result: Dict[str, Any], accuracy: Optional[float] = None) -> str:
    """The README's table of planted classes from :func:`evaluate_run`'s result.

    Parameters
    ----------
    result : dict
        What :func:`evaluate_run` returns.
    accuracy : float, optional
        Held-out accuracy of the model, printed above the table when given.

    Returns
    -------
    str
        Markdown: an optional accuracy line, the table (planted classes by tau rank),
        and the mean tau of planted and clean classes.
    """
    def number(value: Optional[float], digits: int = 2) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    lines = []
    if accuracy is not None:
        lines += [f"Held-out accuracy: {100 * accuracy:.1f} %.", ""]
    lines += ["| class | artifact | τ rank | separability rank | best F1 | default F1 (default clustering) |",
              "|---|---|---|---|---|---|"]
    planted = sorted((entry["tau_rank"], name, entry) for name, entry in result["classes"].items() if entry["planted"])
    for rank, name, entry in planted:
        artifacts = entry.get("artifacts") or {}
        label = entry["artifact"] if len(artifacts) < 2 else f"{len(artifacts)} artifacts, together"
        lines.append(f"| {name} | {label} | {rank} | {entry.get('separability_rank', 'n/a')} | "
                     f"{number(entry['best_f1'])} | {number(entry['default_f1'])} ({entry['default_clustering']}) |")
        if len(artifacts) > 1:  # each artifact on its own: does each have a cluster?
            lines += [f"| ↳ | {artifact} ({figures['n']}) | | | {number(figures['best_f1'])} | "
                      f"{number(figures['default_f1'])} |" for artifact, figures in artifacts.items()]
    lines += ["", f"Mean τ is {number(result['mean_tau_planted'])} for planted classes and "
                  f"{number(result['mean_tau_clean'])} for clean ones."]
    scores = result.get("scores") or {}
    if scores:
        total = len(result["classes"])
        lines += [""] + [f"Ranked by {label}, the {entry['planted']} planted classes have mean rank "
                         f"{number(entry['mean_rank_planted'], 1)} of {total}, {entry['planted_in_top_quarter']} in "
                         f"the top quarter (the first {entry['top_quarter']})."
                         for label, entry in (("τ", scores["tau"]), ("default-clustering separability",
                                                                       scores["separability"]))]
    return "\n".join(lines)
