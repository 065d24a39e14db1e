"""The one registry of LRP composites: how zennit builds each, and the fast path's rules for it.

An entry of :data:`COMPOSITES` is a :class:`CompositeSpec` that knows both
implementations of one rule set:

* ``zennit``: ``(canonizers, input_low, input_high) -> zennit.core.Composite``, the
  reference. Calling the entry builds it, so ``COMPOSITES.get(name)(canonizers, low,
  high)`` is zennit's composite.
* ``fast``: ``(input_low, input_high) -> {zennit rule class: FastRule}``, the
  hook-free equivalent of every rule that zennit composite assigns, with the same
  parameters (zennit's defaults: epsilon and stabilisers 1e-6); or None when the
  composite has no fast path (the attributor then uses zennit).

Which module gets which rule is decided by the zennit composite's ``module_map`` in
both implementations, so a new composite is one :func:`register_composite` call here.
``input_low``/``input_high`` of shape (1, C, 1, 1) bound the *normalised* input.

The default is the paper's rule set (Anders et al., Section 2.1): flat for the first
layer, z-plus (alpha1-beta0) for the other convolutions, epsilon for dense layers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch
from zennit import rules as zrules
from zennit.canonizers import Canonizer
from zennit.composites import EpsilonAlpha2Beta1Flat, EpsilonGammaBox, EpsilonPlus, EpsilonPlusFlat
from zennit.core import Composite as ZennitComposite

from ..registry import Registry
from .fast_rules import AlphaBetaRule, EpsilonRule, FastRule, FlatRule, GammaRule, NormRule, PassRule, ZBoxRule, ZPlusRule

__all__ = ["COMPOSITES", "CompositeSpec", "GradientTimesInput", "RuleTable", "register_composite"]

#: zennit rule class -> the fast rule that reproduces it.
RuleTable = Dict[type, FastRule]
ZennitFactory = Callable[[List[Canonizer], torch.Tensor, torch.Tensor], ZennitComposite]
FastFactory = Callable[[torch.Tensor, torch.Tensor], RuleTable]


@dataclass(frozen=True)
class CompositeSpec:
    """One LRP composite, in zennit and (where there is one) on the fast path.

    Attributes
    ----------
    name : str
        The name in :data:`COMPOSITES`, on the command line and in the store.
    zennit : callable
        ``(canonizers, input_low, input_high) -> zennit.core.Composite``.
    fast : callable or None
        ``(input_low, input_high) -> RuleTable``, or None if the fast path does not
        implement this composite.
    """

    name: str
    zennit: ZennitFactory
    fast: Optional[FastFactory] = None

    def __call__(self, canonizers: List[Canonizer], input_low: torch.Tensor,
                 input_high: torch.Tensor) -> ZennitComposite:
        """zennit's composite, with ``canonizers`` and the input bounds (for box rules)."""
        return self.zennit(canonizers, input_low, input_high)

    def fast_rules(self, input_low: torch.Tensor, input_high: torch.Tensor) -> Optional[RuleTable]:
        """Fresh fast rules for every zennit rule class the composite assigns, or None if it has none."""
        return None if self.fast is None else self.fast(input_low, input_high)


#: name -> :class:`CompositeSpec`.
COMPOSITES: Registry[CompositeSpec] = Registry("composite")


def register_composite(name: str, zennit: ZennitFactory, fast: Optional[FastFactory] = None) -> CompositeSpec:
    """Register a composite under ``name`` and return its entry.

    Parameters
    ----------
    name : str
    zennit : callable
        ``(canonizers, input_low, input_high) -> zennit.core.Composite``.
    fast : callable, optional
        ``(input_low, input_high) -> {zennit rule class: FastRule}`` covering every
        rule class that the zennit composite assigns; None if there is no fast path.
    """
    return COMPOSITES.register(name)(CompositeSpec(name, zennit, fast))


class GradientTimesInput(ZennitComposite):
    """No LRP rules: the heatmap is the plain gradient times the normalised input.

    For bias-free ReLU networks, gradient×input sums to the logit (the network is
    positively homogeneous), so it is comparable with LRP heatmaps. A plain gradient is
    correct through any BatchNorm, so un-merged BatchNorms are allowed.
    """

    multiply_by_input = True
    requires_canonical_batchnorm = False


def _base(stabilizer: float = 1e-6) -> RuleTable:
    # zennit's layer_map_base: Pass for activations and BatchNorm, Norm for sums and average pools.
    return {zrules.Pass: PassRule(), zrules.Norm: NormRule(stabilizer)}


register_composite(
    "epsilon_plus_flat",
    zennit=lambda canonizers, low, high: EpsilonPlusFlat(canonizers=canonizers),
    fast=lambda low, high: {**_base(), zrules.ZPlus: ZPlusRule(), zrules.Epsilon: EpsilonRule(),
                            zrules.Flat: FlatRule()},
)
register_composite(
    "epsilon_plus",
    zennit=lambda canonizers, low, high: EpsilonPlus(canonizers=canonizers),
    fast=lambda low, high: {**_base(), zrules.ZPlus: ZPlusRule(), zrules.Epsilon: EpsilonRule()},
)
register_composite(
    "epsilon_alpha2_beta1_flat",
    zennit=lambda canonizers, low, high: EpsilonAlpha2Beta1Flat(canonizers=canonizers),
    fast=lambda low, high: {**_base(), zrules.AlphaBeta: AlphaBetaRule(2.0, 1.0), zrules.Epsilon: EpsilonRule(),
                            zrules.Flat: FlatRule()},
)
register_composite(
    "epsilon_gamma_box",
    zennit=lambda canonizers, low, high: EpsilonGammaBox(low=low, high=high, canonizers=canonizers),
    fast=lambda low, high: {**_base(), zrules.Gamma: GammaRule(0.25), zrules.Epsilon: EpsilonRule(),
                            zrules.ZBox: ZBoxRule(low, high)},
)
register_composite(
    "gradient",
    zennit=lambda canonizers, low, high: GradientTimesInput(canonizers=canonizers),
    fast=lambda low, high: {},  # no rules: the plain gradient, as zennit's empty composite
)
