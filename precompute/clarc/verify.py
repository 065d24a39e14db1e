"""Before against after: the verification report of a correction.

The ClArC paper's Table 2 and more, each on held-out data (an ImageFolder with the run's
class names), computed for the run's model and for the corrected one:

==================== ===================================================================
clean_accuracy       top-1 accuracy on the held-out images as they are (overall; and
                     ``origin_accuracy`` for the artifact's class)
artifact_accuracy    top-1 accuracy when the artifact is pasted onto every held-out image
                     (the paper's validation set B)
paste                the paste test on held-out images of the other classes (up to 200): mean
                     Δprob, mean Δrank towards the origin class and the flip rate;
                     ``control_before``/``control_after`` the same for a random-colour patch
                     of the same shape (:func:`precompute.lab.paste_effect`); ``delta_probs``
                     the per-image Δprob of each model (the lab's histograms)
artifact_relevance   on held-out origin-class images with the artifact pasted, the share of
                     positive relevance (LRP w.r.t. the origin class) inside the artifact's
                     visible pixels, averaged over images
origin_tau           SpRAy again on the origin class of the run's data: tau before (stored)
                     and after (heatmaps of the corrected model, the run's analysis
                     parameters); ``artifact_f1`` the best single-cluster F1 of any stored
                     clustering against the user's selection, before and after
==================== ===================================================================
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..data import load_rgb, resize_center_crop, scan_image_folder
from ..errors import ConfigError
from ..lab import Artifact, Placement, artifact_mask, resolve_positions
from ..store import RunStore

__all__ = ["EvalSet", "load_eval_set", "verification", "model_figures", "origin_spray"]

Status = Callable[[str], None]


@dataclass
class EvalSet:
    """Held-out images as the model sees them.

    Attributes
    ----------
    images : Tensor float (N, 3, S, S) in [0, 1]
    labels : ndarray int64 (N,)
    source : str
        Where they come from (shown in the report).
    """

    images: torch.Tensor
    labels: np.ndarray
    source: str


def load_eval_set(store: RunStore, folder: Path, *, per_class: Optional[int] = None) -> EvalSet:
    """Load an ImageFolder whose class folders are (some of) the run's class names.

    Parameters
    ----------
    store : RunStore
    folder : Path
    per_class : int, optional
        At most this many images a class (the first in sorted order).

    Raises
    ------
    ConfigError
        A class folder that the run's model does not know.
    """
    names = store.label_names()
    index = scan_image_folder(folder)
    unknown = [cls.name for cls in index.classes if cls.name not in names]
    if unknown:
        raise ConfigError(f"--eval-data {folder}: class folder {unknown[0]!r} is not a class of the run")
    size = store.manifest_record().model.image_size
    images, labels = [], []
    for cls in index.classes:
        for rel in cls.paths[:per_class]:
            images.append(np.asarray(resize_center_crop(load_rgb(index.root / rel), size), dtype=np.uint8))
            labels.append(names.index(cls.name))
    if not images:
        raise ConfigError(f"--eval-data {folder}: no images")
    tensor = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)
    return EvalSet(images=tensor, labels=np.asarray(labels, np.int64), source=str(folder))


def model_figures(session, eval_set: EvalSet, origin: int, artifact: Optional[Artifact], placement: Placement, *,
                  seed: int, paste_n: int = 200, relevance_n: int = 48) -> Dict[str, object]:
    """The held-out figures of one model (a :class:`precompute.lab.ModelSession`)."""
    from ..lab import paste, paste_effect

    images, labels = eval_set.images, eval_set.labels
    batch = session.batch_size

    def predict(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([session.predict_proba(x[i:i + batch]) for i in range(0, len(x), batch)])

    pred = predict(images).argmax(1).numpy()
    in_origin = labels == origin
    out: Dict[str, object] = {
        "clean_accuracy": float((pred == labels).mean()),
        "origin_accuracy": float((pred[in_origin] == origin).mean()) if in_origin.any() else None,
        "artifact_accuracy": None, "paste": None, "artifact_relevance": None,
    }
    if artifact is None:
        return out
    height, width = images.shape[2:]
    rng = np.random.default_rng([seed, 3])
    positions = resolve_positions(placement, artifact, (width, height), len(images), rng)
    patch = artifact.tensor()
    pasted_all = paste(images, patch, positions, opacity=placement.opacity, scale=placement.scale)
    out["artifact_accuracy"] = float((predict(pasted_all).argmax(1).numpy() == labels).mean())
    others = np.flatnonzero(~in_origin)
    if len(others):
        pick = np.random.default_rng([seed, 4]).permutation(others)[:paste_n]
        where = [positions[i] for i in pick]
        effect = paste_effect(predict, images[pick], origin, patch, where,
                              generator=torch.Generator().manual_seed(seed), opacity=placement.opacity)
        with torch.no_grad():  # per image, for the lab's histogram
            deltas = (predict(pasted_all[pick])[:, origin] - predict(images[pick])[:, origin]).numpy()
        out["paste"] = {**effect, "delta_probs": [round(float(d), 5) for d in deltas]}
    mine = np.flatnonzero(in_origin)[:relevance_n]
    if len(mine):
        maps = session.heatmaps(pasted_all[mine], [origin] * len(mine))
        shares = []
        for j, i in enumerate(mine):
            mask = artifact_mask(artifact, positions[i], placement.scale, height, width)
            positive = np.clip(maps[j], 0, None)
            total = float(positive.sum())
            if total > 0:
                shares.append(float(positive[mask].sum()) / total)
        out["artifact_relevance"] = float(np.mean(shares)) if shares else None
    return out


def _analysis_config(store: RunStore):
    from ..analysis import AnalysisConfig

    return dataclasses.replace(AnalysisConfig.from_dict(store.manifest_record().analysis or {}), maps=())


def origin_spray(store: RunStore, session, origin_id: str, selection: Sequence[int],
                 status: Optional[Status] = None) -> Dict[str, object]:
    """SpRAy on the origin class with ``session``'s model: tau and the artifact cluster's F1.

    Returns
    -------
    dict
        ``tau``, ``best_f1``, ``best_clustering``, ``default_f1``, ``default_clustering``.
    """
    from ..analysis import analyse_heatmaps
    from ..evaluate import best_cluster
    from ..lab import model_inputs
    from ..lab.session import to_tensor

    arrays = store.arrays(origin_id)
    label = int(store.class_info(origin_id)["label"])
    paths = [str(p) for p in arrays["paths"]]
    maps: List[np.ndarray] = []
    for start in range(0, len(paths), session.batch_size):
        chunk = paths[start:start + session.batch_size]
        maps.append(session.heatmaps(to_tensor(model_inputs(store, chunk)), [label] * len(chunk)))
        if status:
            status(f"heatmaps of the origin class {min(len(paths), start + len(chunk))}/{len(paths)}")
    result = analyse_heatmaps(np.concatenate(maps), _analysis_config(store))
    return {"tau": result.summary.get("tau"), **_cluster_f1(result.arrays, result.summary, selection, len(paths),
                                                           best_cluster)}


def stored_spray(store: RunStore, origin_id: str, selection: Sequence[int]) -> Dict[str, object]:
    """:func:`origin_spray`'s figures from the run as stored (the model before correction)."""
    from ..evaluate import best_cluster

    arrays = store.arrays(origin_id)
    summary = store.summary(origin_id)
    return {"tau": summary.get("tau"), **_cluster_f1(arrays, summary, selection, len(arrays["paths"]), best_cluster)}


def _cluster_f1(arrays, summary, selection, n, best_cluster) -> Dict[str, object]:
    truth = np.zeros(n, bool)
    truth[np.asarray(list(selection), int)] = True
    names = np.asarray(arrays["clustering_names"]).astype(str)
    labels = np.asarray(arrays["clustering_labels"])
    best_f1, best_name = best_cluster(names, labels, truth)
    default = summary.get("default_clustering")
    default_f1 = best_cluster(names, labels, truth, only=default)[0] if default else None
    return {"best_f1": float(best_f1), "best_clustering": best_name, "default_f1": default_f1,
            "default_clustering": default}


def verification(before: Dict[str, object], after: Dict[str, object], spray_before: Dict[str, object],
                 spray_after: Dict[str, object]) -> Dict[str, object]:
    """The report: each figure as ``{"before", "after"}`` (see the module docstring)."""
    def pair(key):
        return {"before": before[key], "after": after[key]}

    keys = ("mean_delta_prob", "mean_delta_rank", "flip_rate")
    paste_report = None
    if before["paste"] is not None:
        paste_report = {"before": {k: before["paste"][k] for k in keys}, "after": {k: after["paste"][k] for k in keys},
                        "control_before": {k: before["paste"]["control"][k] for k in keys},
                        "control_after": {k: after["paste"]["control"][k] for k in keys},
                        "n": len(before["paste"]["delta_probs"]),
                        "delta_probs": {"before": before["paste"]["delta_probs"],
                                        "after": after["paste"]["delta_probs"]}}
    return {
        "clean_accuracy": pair("clean_accuracy"),
        "origin_accuracy": pair("origin_accuracy"),
        "artifact_accuracy": pair("artifact_accuracy"),
        "paste": paste_report,
        "artifact_relevance": pair("artifact_relevance"),
        "origin_tau": {"before": spray_before["tau"], "after": spray_after["tau"]},
        "artifact_f1": {"before": spray_before["best_f1"], "after": spray_after["best_f1"],
                        "clustering_before": spray_before["best_clustering"],
                        "clustering_after": spray_after["best_clustering"],
                        "default_before": spray_before["default_f1"], "default_after": spray_after["default_f1"]},
    }
