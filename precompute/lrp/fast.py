"""zennit's LRP rules without zennit's hooks: one forward, one modified forward, one backward.

zennit computes a rule in a backward hook: it clones every layer input in the
forward pass, and in the backward pass it runs each layer again with modified
weights and asks autograd for that layer's gradient. :class:`FastLRP` gives the
same heatmaps at about half the cost. While it is installed, every layer that the
composite gives a rule runs through one :class:`torch.autograd.Function` whose
``forward`` computes the layer's true output and the rule's modified output, and
whose ``backward`` turns the relevance of the output into the relevance of the
input (the closed forms are in :mod:`precompute.lrp.fast_rules`).

So the gradient that flows between layers *is* the relevance, as in zennit, and
everything without a rule (max pooling, flatten, reshape, slicing, functional
ops in ``forward``) keeps its plain gradient in both implementations.

Which module gets which rule is decided by the zennit composite itself (its
``module_map``, run over the canonized model as ``Composite.register`` does); the
fast equivalent of each zennit rule class comes from the composite's entry in
:data:`precompute.lrp.composites.COMPOSITES`. A model is refused with
:class:`UnsupportedModel` when a module would get a rule that has no fast
equivalent, when a layer's type or settings are outside what the closed forms
cover (a Conv1d, a subclass with its own ``forward``, string padding, ...), or,
while running, when a layer with a rule runs twice in one forward pass (zennit
keeps only its last input).
"""
from __future__ import annotations

import itertools
from typing import Callable, List, Optional, Tuple

import torch
from torch import nn

from ..errors import ModelError
from .composites import COMPOSITES
from .fast_ops import AffineLayer
from .fast_rules import FastRule, PassRule

__all__ = ["FastLRP", "UnsupportedModel"]


class UnsupportedModel(ModelError):
    """The fast path cannot reproduce zennit's heatmaps for this model and composite."""


class _LayerFunction(torch.autograd.Function):
    """Runs one layer's rule: true output forward, the rule's relevance backward."""

    @staticmethod
    def forward(ctx, inputs, layer):
        ctx.layer = layer
        return layer.rule.forward(ctx, layer, inputs)

    @staticmethod
    def backward(ctx, relevance):
        return ctx.layer.rule.backward(ctx, ctx.layer, relevance), None


class _Layer:
    """A module with its fast rule, while installed."""

    def __init__(self, name: str, module: nn.Module, rule: FastRule, owner: "FastLRP"):
        self.name, self.module, self.rule, self.owner = name, module, rule, owner
        self.affine = AffineLayer(module) if rule.affine else None
        self.state: dict = {}
        self.original_forward: Callable = module.forward
        self.last_pass = -1

    def forward(self, *args, **kwargs):
        inputs = args[0] if args else None
        if not (torch.is_grad_enabled() and isinstance(inputs, torch.Tensor) and inputs.requires_grad):
            return self.original_forward(*args, **kwargs)  # zennit's hooks skip these calls too
        if len(args) != 1 or kwargs:
            raise UnsupportedModel(f"layer {self.name!r} ({type(self.module).__name__}) is called with "
                                   "several arguments; the fast path handles one input tensor")
        if not isinstance(self.rule, PassRule):
            if self.last_pass == self.owner.pass_id:
                raise UnsupportedModel(
                    f"layer {self.name!r} ({type(self.module).__name__}) runs twice in one forward pass; "
                    "zennit keeps only its last input, which the fast path does not reproduce")
            self.last_pass = self.owner.pass_id
        return _LayerFunction.apply(inputs, self)


class FastLRP:
    """The rules of one composite on one canonized model, as autograd Functions instead of hooks.

    Parameters
    ----------
    model : torch.nn.Module
        The model with its canonizers already applied (merged BatchNorms, ``Sum``
        modules in residual blocks), on its device, in eval mode.
    composite_name : str
        A name in :data:`precompute.lrp.composites.COMPOSITES` whose entry has fast rules.
    composite : zennit.core.Composite
        The zennit composite of that name; only its ``module_map`` is used, to
        assign rules exactly as ``composite.register`` would.
    input_low, input_high : torch.Tensor of shape (1, C, 1, 1)
        Bounds of the normalised input, for the z-box rule.

    Attributes
    ----------
    layers : list of (str, type)
        Module names and the zennit rule class each gets, in ``named_modules`` order.

    Raises
    ------
    UnsupportedModel
        If a module gets a rule without a fast equivalent, or its type or settings
        are outside what the fast rules implement.

    Notes
    -----
    Use :meth:`install` and :meth:`remove` around the attribution; call
    :meth:`begin_pass` before each forward pass with gradients, so that a layer
    running twice in one pass is noticed. Relevance is then computed by plain
    autograd: ``torch.autograd.grad(output, inputs, grad_outputs=output * one_hot)``
    gives zennit's relevance at the input.
    """

    def __init__(self, model: nn.Module, composite_name: str, composite, input_low: torch.Tensor,
                 input_high: torch.Tensor):
        table = None
        if composite_name in COMPOSITES:
            table = COMPOSITES.get(composite_name).fast_rules(input_low, input_high)
        if table is None:
            raise UnsupportedModel(f"composite {composite_name!r} has no fast implementation")
        self.model = model
        self.pass_id = 0
        self._layers: List[_Layer] = []
        self._installed: List[Tuple[_Layer, Optional[Callable]]] = []
        context: dict = {}
        for name, module in model.named_modules():
            template = composite.module_map(context, name, module)
            if template is None:
                continue
            rule = table.get(type(template))
            label = f"layer {name or '<model>'!r} ({type(module).__name__})"
            if rule is None:
                raise UnsupportedModel(f"{label} gets zennit's {type(template).__name__} rule, "
                                       "which the fast path does not implement")
            reason = rule.unsupported(module)
            if reason is not None:
                raise UnsupportedModel(f"{label} with zennit's {type(template).__name__} rule: {reason}")
            self._layers.append(_Layer(name, module, rule, self))
        self.layers = [(layer.name, layer.rule.zennit_rule) for layer in self._layers]

    def install(self) -> "FastLRP":
        """Route every ruled layer through its fast rule (instance ``forward``), and precompute weights."""
        if self._installed:
            return self
        for layer in self._layers:
            module = layer.module
            previous_forward = vars(module).get("forward")
            layer.original_forward = module.forward
            layer.state = layer.rule.prepare(module)
            layer.last_pass = -1
            module.forward = layer.forward
            self._installed.append((layer, previous_forward))
        return self

    def remove(self) -> None:
        """Restore every module's ``forward`` and drop the precomputed tensors."""
        for layer, previous_forward in reversed(self._installed):
            module = layer.module
            if previous_forward is None:
                vars(module).pop("forward", None)
            else:
                module.forward = previous_forward
            layer.state = {}
        self._installed = []

    def begin_pass(self) -> None:
        """Mark the start of a forward pass (a ruled layer may then run once)."""
        self.pass_id = next(_PASS_IDS)


_PASS_IDS = itertools.count(1)
