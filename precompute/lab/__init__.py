"""The artifact lab: test a Clever-Hans hypothesis by adding or removing an artifact.

Anders et al. (Section 3.2) test each hypothesis two ways.
- **Addition** (Table 3, Figure 7): paste the isolated artifact onto samples of other
  classes and watch the artifact's class of origin.
- **Removal** (Table 4): inpaint the artifact away in affected samples and watch their
  true class.

The app's live lab and ``python -m precompute paste`` share these functions. They also
use precompute's own model loading and attribution code.

Modules
-------
compositing  alpha compositing, control patches and their effect (pure tensor code)
artifacts    artifacts from uploads, boxes cut from samples, or proposals from heatmaps
session      the run's model, rebuilt from the store's manifest
experiments  paste and removal experiments, with progress, cancel and saved records
"""
from .artifacts import (
    ARTIFACT_LIMITS,
    Artifact,
    Proposal,
    artifact_from_box,
    artifact_from_entry,
    library_artifact_of,
    load_artifact_image,
    propose_artifact,
    resolve_artifact,
    rgba_to_png,
)
from .experiments import (
    Cancelled,
    PasteSpec,
    Placement,
    RemovalSpec,
    artifact_mask,
    export_rows,
    resolve_positions,
    run_paste_experiment,
    run_removal_experiment,
    sample_targets,
)

# torch-backed parts load on first use, so the dashboard does not pay for torch
# (about 500 MB) until someone runs an experiment.
_LAZY = {"control_patch": "compositing", "paste": "compositing", "paste_effect": "compositing",
         "ModelSession": "session",
         "load_run_model": "session", "model_inputs": "session"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ARTIFACT_LIMITS",
    "Artifact",
    "Proposal",
    "artifact_from_box",
    "artifact_from_entry",
    "load_artifact_image",
    "propose_artifact",
    "rgba_to_png",
    "resolve_artifact",
    "library_artifact_of",
    "Cancelled",
    "PasteSpec",
    "Placement",
    "RemovalSpec",
    "artifact_mask",
    "export_rows",
    "resolve_positions",
    "run_paste_experiment",
    "run_removal_experiment",
    "sample_targets",
    "control_patch",
    "paste",
    "paste_effect",
    "ModelSession",
    "load_run_model",
    "model_inputs",
]
