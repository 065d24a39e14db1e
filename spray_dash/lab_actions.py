"""Artifact drafts the app creates: proposals from a selection, boxes cut from a sample.

The only writes of the app besides experiments; both go to ``RUN/experiments/artifacts``
through :class:`precompute.store.ExperimentWriter`.
"""
from __future__ import annotations

from typing import Sequence

from precompute.lab import artifact_from_box, propose_artifact, rgba_to_png
from precompute.store import ExperimentWriter

from . import data
from .selection import encode_mask

__all__ = ["save_proposal", "save_box"]


def save_proposal(cid: str, indices: Sequence[int], *, threshold: float = 0.3, shared: bool = True) -> dict:
    """Propose an artifact from a selection of class ``cid`` and keep it as a draft; return the entry."""
    store = data.store()
    proposal = propose_artifact(store, cid, indices, threshold=threshold, shared=shared)
    meta = {**proposal.artifact.meta(), "method": proposal.method, "relevance_share": proposal.relevance_share,
            "threshold": proposal.threshold, "source_index": proposal.source_index,
            "selection": f"{cid}:{encode_mask(indices, data.class_view(cid).n)}"}
    return ExperimentWriter(store).save_artifact_draft(meta, rgba_to_png(proposal.artifact.rgba))


def save_box(cid: str, index: int, box: Sequence[float]) -> dict:
    """Cut a box (model-input pixels) out of one sample and keep it as a draft; return the entry."""
    store = data.store()
    artifact = artifact_from_box(store, cid, index, box)
    return ExperimentWriter(store).save_artifact_draft({**artifact.meta(), "source_index": int(index)},
                                                       rgba_to_png(artifact.rgba))
