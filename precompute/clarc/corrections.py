"""Correction methods, chosen by name from :data:`CORRECTIONS`.

Each method takes a :class:`CorrectionInput` (a private copy of the run's model, the
concept, the training data and the artifact) and returns a :class:`Corrected` model.

========  ==========================================================================
pclarc    Projective ClArC: no training. A hook sets every activation's component
          along the CAV to the clean reference (:mod:`precompute.clarc.projection`).
aclarc    Augmentative ClArC: fine-tune with the artifact pasted into every training
          sample that does not carry it, in every class, labels unchanged.
rrclarc   Right-Reason ClArC: fine-tune with a penalty on the origin class's logit
          gradient along the CAV, for every sample (no artifact image needed).
========  ==========================================================================
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from .concept import Concept
from .finetune import FinetuneRecipe, finetune, paste_augment
from .projection import Projection

__all__ = ["CORRECTIONS", "CorrectionInput", "Corrected", "TrainingSet", "default_recipe"]

#: Each fine-tuning method's recipe defaults, measured on the demo (README, "Un-Hans'ing a model").
#: A-ClArC trains convolutions and linear layers; RR-ClArC only the layers after the CAV's layer,
#: with a strong penalty (at λ = 1, 10, 100 it removed 38, 74 and 80 % of the test demo's paste effect).
RECIPE_DEFAULTS: Dict[str, Dict[str, object]] = {
    "aclarc": {"trainable": "all", "rr_lambda": 0.0},
    "rrclarc": {"trainable": "after_layer", "rr_lambda": 100.0},
}


def default_recipe(method: str, **overrides) -> FinetuneRecipe:
    """The recipe of ``method`` with its defaults (:data:`RECIPE_DEFAULTS`), then ``overrides`` (None = default)."""
    values = {**RECIPE_DEFAULTS.get(method, {}), **{k: v for k, v in overrides.items() if v is not None}}
    return FinetuneRecipe(**values).validate()


@dataclass
class TrainingSet:
    """Training images for fine-tuning.

    Attributes
    ----------
    images : Tensor uint8 (N, 3, H, W)
    labels : Tensor int64 (N,)
    carries_artifact : Tensor bool (N,)
        Samples that already carry the artifact (the user's selection): never pasted onto.
    class_ids : list of str
        The classes it covers.
    """

    images: torch.Tensor
    labels: torch.Tensor
    carries_artifact: torch.Tensor
    class_ids: List[str]


@dataclass
class CorrectionInput:
    """What a correction method gets.

    ``training`` is a callable so that P-ClArC never loads the training set.
    """

    model: nn.Module
    concept: Concept
    normalization: str
    device: torch.device
    recipe: FinetuneRecipe
    training: Callable[[], TrainingSet]
    artifact_patch: Optional[torch.Tensor] = None  # (4, h, w) float in [0, 1]
    positions: Sequence[Tuple[int, int]] = ()
    projection_mode: str = "excess"
    origin_label: int = 0
    progress: Optional[Callable[[int, int, str], None]] = None
    cancel: Optional[threading.Event] = None


@dataclass
class Corrected:
    """A corrected model.

    Attributes
    ----------
    model : nn.Module
        In eval mode, with its projections installed.
    projections : list of Projection
        Hooks to save with the variant (and to re-install when it is loaded).
    weights_changed : bool
        Whether the state_dict differs from the run's (then it is saved).
    training : dict
        The fine-tuning's figures (empty without training).
    """

    model: nn.Module
    projections: List[Projection] = field(default_factory=list)
    weights_changed: bool = False
    training: Dict[str, object] = field(default_factory=dict)


CORRECTIONS: Registry[Callable[[CorrectionInput], Corrected]] = Registry("correction method")


@CORRECTIONS.register("pclarc")
def projective(given: CorrectionInput) -> Corrected:
    concept = given.concept
    projection = Projection(layer=concept.layer, vector=torch.from_numpy(concept.vector),
                            reference=concept.reference, mode=given.projection_mode)
    projection.install(given.model)
    return Corrected(model=given.model.eval(), projections=[projection])


@CORRECTIONS.register("aclarc")
def augmentative(given: CorrectionInput) -> Corrected:
    if given.artifact_patch is None or not len(given.positions):
        raise ConfigError("A-ClArC pastes the artifact into the training data: choose one with --artifact")
    data = given.training()
    augment = paste_augment(given.artifact_patch, list(given.positions), data.carries_artifact)
    figures = finetune(given.model, data.images, data.labels, given.recipe, normalization=given.normalization,
                       augment=augment, device=given.device, progress=given.progress, cancel=given.cancel)
    return Corrected(model=given.model, weights_changed=True,
                     training={**figures, "samples": len(data.images), "classes": len(data.class_ids),
                               "pasted_per_epoch": int((~data.carries_artifact).sum())})


@CORRECTIONS.register("rrclarc")
def right_reason(given: CorrectionInput) -> Corrected:
    recipe = given.recipe
    if recipe.rr_lambda <= 0:
        raise ConfigError("RR-ClArC needs a positive penalty weight (--rr-lambda)")
    data = given.training()
    figures = finetune(given.model, data.images, data.labels, recipe, normalization=given.normalization,
                       concept=(given.concept.layer, torch.from_numpy(given.concept.vector), given.origin_label),
                       device=given.device,
                       progress=given.progress, cancel=given.cancel)
    return Corrected(model=given.model, weights_changed=True,
                     training={**figures, "samples": len(data.images), "classes": len(data.class_ids),
                               "rr_lambda": recipe.rr_lambda})
