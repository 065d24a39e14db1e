"""Load a stored model variant: the run's model with the variant's weights and projections.

A variant folder (``RUN/variants/<id>/``) holds plain files, so it also loads without
this package::

    import torch
    model = build_the_architecture(num_classes)                 # as for the run
    model.load_state_dict(torch.load("weights.pt", weights_only=True))   # A-/RR-ClArC
    # P-ClArC: the run's own weights, then each projection as a forward hook
    for p in torch.load("projection.pt", weights_only=True):
        # p["layer"]: "NAME" (output of module NAME) or "NAME:input"; with v = p["vector"],
        # r = p["reference"], each flattened activation a becomes, by p["mode"]:
        #   "full":   a' = a + v (r - vᵀa)
        #   "excess": a' = a - v max(0, vᵀa - r)      (the default)
        ...

:func:`apply_variant` does exactly that (through :class:`precompute.clarc.Projection`).
"""
from __future__ import annotations

from pathlib import Path
from typing import List

import torch
from torch import nn

from ..errors import ConfigError
from ..store import VARIANT_PROJECTION, VARIANT_WEIGHTS, RunStore, Variant
from .projection import Projection

__all__ = ["apply_variant", "load_variant_model", "variant_folder"]


def variant_folder(store: RunStore, variant_id: str) -> Path:
    """The folder of a variant (by id or name)."""
    record = store.variant(variant_id)
    return store.variants_dir / record.id


def apply_variant(model: nn.Module, folder: Path) -> List[Projection]:
    """Load ``folder``'s weights (if any) into ``model`` and install its projections (if any).

    Returns the installed projections. Raises :class:`ConfigError` for a folder that is not a variant.
    """
    from ..models import load_weights

    folder = Path(folder)
    if not (folder / "variant.json").is_file():
        raise ConfigError(f"--variant {folder}: not a model variant folder (no variant.json)")
    if (folder / VARIANT_WEIGHTS).is_file():
        load_weights(model, folder / VARIANT_WEIGHTS)
    projections = []
    if (folder / VARIANT_PROJECTION).is_file():
        states = torch.load(folder / VARIANT_PROJECTION, map_location="cpu", weights_only=True)
        projections = [Projection.from_state(state) for state in states]
        for projection in projections:
            projection.install(model)
    return projections


def load_variant_model(store: RunStore, variant_id: str) -> nn.Module:
    """The run's model corrected by variant ``variant_id``, in eval mode."""
    from ..lab import load_run_model

    model = load_run_model(store)
    apply_variant(model, variant_folder(store, variant_id))
    return model.eval()


def variant_summary(record: Variant) -> dict:
    """The unhans command's JSON line (``README``): the report's headline figures."""
    report = record.report
    paste = report.get("paste") or {}
    return {
        "variant": record.id, "method": record.method, "layer": record.layer,
        "clean_accuracy": report.get("clean_accuracy"),
        "artifact_accuracy": report.get("artifact_accuracy"),
        "paste": {"before": paste.get("before"), "after": paste.get("after"),
                  "control_after": {"mean_delta_prob": (paste.get("control_after") or {}).get("mean_delta_prob")}}
        if paste else None,
        "artifact_relevance": report.get("artifact_relevance"),
        "origin_tau": report.get("origin_tau"),
        "seconds": record.seconds,
    }
