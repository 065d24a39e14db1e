"""LRP: one registry of composites, explained with zennit's hooks or the hook-free fast path.

::

    from precompute.lrp import Attributor, predictions_from_logits

    with Attributor(model, composite="epsilon_plus_flat", normalization="imagenet") as attributor:
        result = attributor.attribute(images, targets)  # heatmaps (B, H, W), logits (B, C)
    predictions = predictions_from_logits(result.logits, targets, k=5)

One concept a module, each importing only those above it:

==================  ==================================================================
``fast_ops``        zennit's stabiliser, affine layers and their transposes
``fast_rules``      one :class:`FastRule` per zennit rule, as closed forms
``composites``      :data:`COMPOSITES`: each composite's zennit construction and fast
                    rules (or none), registered with :func:`register_composite`
``fast``            :class:`FastLRP`: a composite's rules as autograd Functions
``precision``       devices, TF32 switches, :func:`relative_l2`
``results``         :class:`AttributionResult`, :func:`predictions_from_logits`,
                    input checks
``zennit_backend``  canonizers, zennit's hooks, checks that zennit's rules land right
``attributor``      :class:`Attributor`: either backend, batch after batch
==================  ==================================================================

The merged BatchNorms are made an exact identity, a small deviation from zennit
0.5.1 that ``docs/lrp.md`` explains and ``tests/precompute/lrp`` measures.
"""
from __future__ import annotations

from .attributor import BACKENDS, FAST_TOLERANCE, Attributor
from .composites import COMPOSITES, CompositeSpec, GradientTimesInput, register_composite
from .fast import FastLRP, UnsupportedModel
from .fast_ops import stabilize
from .precision import PRECISIONS, relative_l2
from .results import AttributionResult, Predictions, predictions_from_logits

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "FAST_TOLERANCE",
    "COMPOSITES",
    "CompositeSpec",
    "GradientTimesInput",
    "register_composite",
    "Attributor",
    "AttributionResult",
    "Predictions",
    "predictions_from_logits",
    "FastLRP",
    "UnsupportedModel",
    "relative_l2",
    "stabilize",
]
