"""The parts of an experiment record shared by the paste and removal tests.

Per-sample rows of the three arms (before, after, control), their summary, the
Figure-7 example thumbnails, the saved record (``docs/store.md``, Artifacts and
experiments) and its CSV export. Sign conventions as in the paper's tables:
``delta_rank = rank_before - rank_after`` (> 0 when the class moved towards rank 1),
``delta_prob = prob_after - prob_before``.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import numpy as np

from ..store import datetime_now, new_record_id
from ..thumbs import heatmap_thumbnail, image_thumbnail
from .artifacts import Artifact

if TYPE_CHECKING:  # torch is imported when an experiment runs, not with the app
    import torch

    from .session import ModelSession

__all__ = ["Cancelled", "rank_of", "arm_rows", "arms_summary", "experiment_record", "check_cancel",
           "add_examples", "EXPORT_COLUMNS", "export_rows"]


class Cancelled(Exception):
    """The experiment was cancelled before it finished."""



def rank_of(probs: torch.Tensor, cls: int) -> np.ndarray:
    """1-based rank of class ``cls`` per row (ties in its favour)."""
    return (probs > probs[:, cls:cls + 1]).sum(dim=1).add(1).numpy()


def arm_rows(session: ModelSession, arms: Sequence[torch.Tensor], cls: int,
              label_names: Sequence[str]) -> List[Dict[str, object]]:
    """Per sample, the class ``cls``'s probability, rank and the top-1 under each arm.

    ``arms`` are the (B, 3, H, W) batches before, after and under the control.
    """
    before, after, control = (session.predict_proba(x) for x in arms)
    ranks = [rank_of(p, cls) for p in (before, after, control)]
    return [{
        "prob_before": float(before[j, cls]), "prob_after": float(after[j, cls]),
        "prob_control": float(control[j, cls]),
        "rank_before": int(ranks[0][j]), "rank_after": int(ranks[1][j]), "rank_control": int(ranks[2][j]),
        "top1_before": label_names[int(before[j].argmax())], "top1_after": label_names[int(after[j].argmax())],
        "top1_control": label_names[int(control[j].argmax())],
    } for j in range(len(before))]


def _arm_summary(before_p, after_p, before_r, after_r, after_top1, cls) -> Dict[str, float]:
    delta_prob = after_p - before_p
    delta_rank = (before_r - after_r).astype(np.float64)
    return {"mean_delta_rank": float(delta_rank.mean()), "mean_delta_prob": float(delta_prob.mean()),
            "flip_rate": float(np.mean(after_top1 == cls)), "median_delta_prob": float(np.median(delta_prob))}


def arms_summary(rows: List[Dict[str, object]], cls: int, label_names: Sequence[str]) -> Dict[str, object]:
    """``n``, the artifact arm's figures and the ``control``'s, from the per-sample rows."""
    arrays = {key: np.array([row[key] for row in rows]) for key in rows[0]}
    top1 = {key: np.array([label_names.index(v) for v in arrays[key]]) for key in ("top1_after", "top1_control")}
    return {
        "n": len(rows),
        **_arm_summary(arrays["prob_before"], arrays["prob_after"], arrays["rank_before"], arrays["rank_after"],
                       top1["top1_after"], cls),
        "control": _arm_summary(arrays["prob_before"], arrays["prob_control"], arrays["rank_before"],
                                arrays["rank_control"], top1["top1_control"], cls),
    }


def experiment_record(kind: str, spec, origin: Dict[str, object], artifact: Artifact, summary: Dict[str, object],
            rows: List[Dict[str, object]], examples: List[Dict[str, object]], session: ModelSession,
            started: float) -> Dict[str, object]:
    """The saved experiment record (see docs/store.md, experiments)."""
    return {
        "id": new_record_id(kind), "kind": kind, "created": datetime_now(), "status": "done",
        "origin": origin, "artifact": artifact.meta(),
        "params": {**asdict(spec), "placement": asdict(spec.placement)},
        "summary": summary, "rows": rows, "examples": examples,
        "device": session.device, "seconds": time.perf_counter() - started,
    }


def check_cancel(cancel: Optional[threading.Event]) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled()


def _example_files(session: ModelSession, before: torch.Tensor, after: torch.Tensor, cls: int,
                   prefix: str, start: int) -> Dict[str, bytes]:
    """Figure-7 thumbnails: before/after images and their heatmaps w.r.t. class ``cls``."""
    from .session import to_uint8

    files = {}
    targets = [cls] * len(before)
    maps_before = session.heatmaps(before, targets)
    maps_after = session.heatmaps(after, targets)
    for j, (b, a) in enumerate(zip(to_uint8(before), to_uint8(after))):
        k = start + j
        files[f"{prefix}{k}-before.webp"] = image_thumbnail(b, 256)
        files[f"{prefix}{k}-after.webp"] = image_thumbnail(a, 256)
        files[f"{prefix}{k}-before-heat.webp"] = heatmap_thumbnail(maps_before[j], 256)
        files[f"{prefix}{k}-after-heat.webp"] = heatmap_thumbnail(maps_after[j], 256)
    return files


def add_examples(session: ModelSession, before: torch.Tensor, after: torch.Tensor, chunk_rows, cls: int,
                  wanted: int, examples: List[Dict[str, object]], files: Dict[str, bytes]) -> None:
    """Add Figure-7 examples from this chunk (its rows ``chunk_rows``) until there are ``wanted``."""
    take = min(wanted - len(examples), len(before))
    if take <= 0:
        return
    files.update(_example_files(session, before[:take], after[:take], cls, "ex", len(examples)))
    examples += [{"k": len(examples) + j, "class": row["class"], "index": row["index"],
                  "prob_before": row["prob_before"], "prob_after": row["prob_after"]}
                 for j, row in enumerate(chunk_rows[:take])]


EXPORT_COLUMNS = ("class_id", "class", "index", "path", "x", "y", "prob_before", "prob_after", "prob_control",
                  "rank_before", "rank_after", "rank_control", "top1_before", "top1_after", "top1_control")


def export_rows(record: Dict[str, object]) -> List[Dict[str, object]]:
    """Per-sample rows of an experiment record, with the record's id and kind, for CSV export."""
    return [{"experiment": record["id"], "kind": record["kind"], **{c: row.get(c, "") for c in EXPORT_COLUMNS}}
            for row in record.get("rows", [])]
