"""zennit's LRP rules as closed forms: each computes in its forward what zennit's hook recomputes.

One :class:`FastRule` per zennit rule class. Its ``forward`` computes the layer's true
output ``z`` and, in the same call, the rule's modified output ``z_mod`` (for z-plus
``W+ x + b+``), keeping the stabilised denominator; its ``backward`` receives the
relevance of the output, exactly what zennit's hook receives as "gradient", and
returns the relevance of the input with one transposed layer.

Algebra, for an affine layer ``z = W x + b`` with output relevance ``R`` and
``stabilize(v) = v + eps * (+1 if v >= 0 else -1)`` (zennit's stabiliser),
writing ``x+ = max(x, 0)``, ``x- = min(x, 0)``, ``W+``/``W-`` likewise and
``T(s, V) = V^T s`` (the transposed layer):

=========  =============================================================================
epsilon    ``x * T(R / stabilize(z), W)``
z-plus     ``s = R / stabilize(W+ x+ + b+ + W- x-)``; ``x+ * T(s, W+) + x- * T(s, W-)``
alpha-beta ``sp = R / stabilize(W+ x+ + b+ + W- x-)``, ``sn = R / stabilize(W- x+ + b- + W+ x-)``;
           ``alpha (x+ T(sp, W+) + x- T(sp, W-)) - beta (x+ T(sn, W-) + x- T(sn, W+))``
gamma      with ``U = W + gamma W+``, ``D = W + gamma W-`` (biases alike):
           ``su = [z > 0] R / stabilize(U x+ + bU + D x-)``, ``sd = [z < 0] R / stabilize(D x+ + bD + U x-)``;
           ``x+ T(su, U) + x- T(su, D) + x+ T(sd, D) + x- T(sd, U)``
flat       ``T(R / stabilize(1 * 1), 1)``: all-ones weights on an all-ones input, no bias
z-box      ``s = R / stabilize(z - (W+ l + b+ + W- h + b-))``; ``x T(s, W) - l T(s, W+) - h T(s, W-)``
norm       ``x * J^T (R / stabilize(f(x)))`` for parameter-free ``f`` (average pools, residual sums)
pass       ``R`` unchanged (activations, BatchNorm)
=========  =============================================================================

Each line is zennit's ``BasicHook`` with its input, parameter and output modifiers,
gradient mapper and reducer written out; the terms are summed in zennit's order so
that the two agree to float rounding (bit for bit in most layers). Modified weights
are computed once per installation (:meth:`FastRule.prepare`), the ``x-`` terms are
skipped when the input has no negative entry (after a ReLU they are exact zeros in
zennit too), and the flat and z-box terms that do not depend on the image are
computed once per input shape.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from zennit import rules as zrules
from zennit.core import expand

from .fast_ops import (
    affine_unsupported,
    clamped_weights,
    crossed_pair,
    divide_into,
    full_precision,
    has_negatives,
    stabilize,
    times_into,
)

__all__ = [
    "FastRule",
    "PassRule",
    "NormRule",
    "EpsilonRule",
    "ZPlusRule",
    "AlphaBetaRule",
    "GammaRule",
    "FlatRule",
    "ZBoxRule",
]


class FastRule:
    """One zennit rule as a forward (true and modified outputs) and a backward (relevance).

    Subclasses set :attr:`zennit_rule`, the zennit hook class they reproduce, and
    implement :meth:`forward` and :meth:`backward`. Both run inside one
    ``torch.autograd.Function`` per layer (:mod:`precompute.lrp.fast`): ``ctx`` is its
    autograd context, ``layer`` the installed layer, with ``layer.state`` (what
    :meth:`prepare` returned), ``layer.affine`` (a
    :class:`~precompute.lrp.fast_ops.AffineLayer`, for affine rules) and
    ``layer.original_forward``.
    """

    zennit_rule: type = type(None)
    #: Whether the rule computes a layer from weights (checked with ``affine_unsupported``).
    affine: bool = True

    def unsupported(self, module: nn.Module) -> Optional[str]:
        """Why this rule cannot run on ``module`` exactly as zennit does, or None."""
        return affine_unsupported(module) if self.affine else None

    def prepare(self, module: nn.Module) -> dict:
        """Tensors computed once per installation (modified weights); the module's are fixed meanwhile."""
        return {}

    def forward(self, ctx, layer, inputs: torch.Tensor) -> torch.Tensor:
        """The layer's true output; keeps in ``ctx`` what :meth:`backward` needs."""
        raise NotImplementedError

    def backward(self, ctx, layer, relevance: torch.Tensor) -> torch.Tensor:
        """The relevance of the layer's input, given the relevance of its output."""
        raise NotImplementedError


class PassRule(FastRule):
    """zennit's ``Pass``: the relevance of the output goes to the input unchanged."""

    zennit_rule = zrules.Pass
    affine = False

    def unsupported(self, module):
        if isinstance(module, nn.MultiheadAttention):
            return "MultiheadAttention (several inputs and outputs)"
        return None

    def forward(self, ctx, layer, inputs):
        outputs = layer.original_forward(inputs)
        if outputs is inputs:
            # inplace=True: the model says nothing reads its input again; the rules here never
            # keep a layer's output, and autograd's version check catches anyone who does.
            ctx.mark_dirty(inputs)
        return outputs

    def backward(self, ctx, layer, relevance):
        return relevance


class NormRule(FastRule):
    """zennit's ``Norm`` for parameter-free layers (average pools, the canonizer's ``Sum``)."""

    zennit_rule = zrules.Norm
    affine = False

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = stabilizer

    def forward(self, ctx, layer, inputs):
        ctx.save_for_backward(inputs)
        return layer.original_forward(inputs)

    def backward(self, ctx, layer, relevance):
        (inputs,) = ctx.saved_tensors
        # Pools and sums are cheap: run the layer again for its Jacobian, as zennit does.
        with torch.enable_grad():
            leaf = inputs.detach().requires_grad_(True)
            outputs = layer.original_forward(leaf)
            (gradient,) = torch.autograd.grad(outputs, leaf, relevance / stabilize(outputs, self.stabilizer))
        return inputs * gradient


class EpsilonRule(FastRule):
    """zennit's ``Epsilon``: ``x * W^T (R / stabilize(z))``."""

    zennit_rule = zrules.Epsilon

    def __init__(self, epsilon: float = 1e-6):
        self.epsilon = epsilon

    def prepare(self, module):
        return {"weight": module.weight.detach(), "bias": None if module.bias is None else module.bias.detach()}

    def forward(self, ctx, layer, inputs):
        state = layer.state
        outputs = layer.affine(inputs, state["weight"], state["bias"])
        ctx.save_for_backward(inputs)
        ctx.denominator = stabilize(outputs, self.epsilon)
        return outputs

    def backward(self, ctx, layer, relevance):
        (inputs,) = ctx.saved_tensors
        scaled, ctx.denominator = divide_into(relevance, ctx.denominator), None
        return times_into(inputs, layer.affine.transpose(scaled, layer.state["weight"], inputs.shape))


class ZPlusRule(FastRule):
    """zennit's ``ZPlus`` (alpha 1, beta 0), positive biases in the denominator."""

    zennit_rule = zrules.ZPlus

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = stabilizer

    def prepare(self, module):
        return clamped_weights(module)

    def forward(self, ctx, layer, inputs):
        state, affine = layer.state, layer.affine
        outputs = affine(inputs, state["weight"], state["bias"])
        ctx.signed = has_negatives(inputs)
        if ctx.signed:
            modified = affine(inputs.clamp(min=0), state["weight_pos"], state["bias_pos"])
            modified = modified + affine(inputs.clamp(max=0), state["weight_neg"], None)
            ctx.denominator = stabilize(modified, self.stabilizer)
        else:
            # W+ x + b+ >= 0, so zennit's stabiliser adds +eps everywhere (NaN stays NaN).
            ctx.denominator = affine(inputs, state["weight_pos"], state["bias_pos"]).add_(self.stabilizer)
        ctx.save_for_backward(inputs)
        return outputs

    def backward(self, ctx, layer, relevance):
        (inputs,) = ctx.saved_tensors
        state, affine = layer.state, layer.affine
        scaled, ctx.denominator = divide_into(relevance, ctx.denominator), None
        if not ctx.signed:
            return times_into(inputs, affine.transpose(scaled, state["weight_pos"], inputs.shape))
        positive = inputs.clamp(min=0) * affine.transpose(scaled, state["weight_pos"], inputs.shape)
        return positive + inputs.clamp(max=0) * affine.transpose(scaled, state["weight_neg"], inputs.shape)


class AlphaBetaRule(FastRule):
    """zennit's ``AlphaBeta``: positive contributions times alpha minus negative ones times beta."""

    zennit_rule = zrules.AlphaBeta

    def __init__(self, alpha: float = 2.0, beta: float = 1.0, stabilizer: float = 1e-6):
        self.alpha, self.beta, self.stabilizer = alpha, beta, stabilizer

    def prepare(self, module):
        return clamped_weights(module)

    def forward(self, ctx, layer, inputs):
        state, affine = layer.state, layer.affine
        outputs = affine(inputs, state["weight"], state["bias"])
        ctx.signed = has_negatives(inputs)
        positive, negative = crossed_pair(affine, state, inputs, ctx.signed, "pos", "neg")
        ctx.denominators = (stabilize(positive, self.stabilizer), stabilize(negative, self.stabilizer))
        ctx.save_for_backward(inputs)
        return outputs

    def backward(self, ctx, layer, relevance):
        (inputs,) = ctx.saved_tensors
        state, transpose, shape = layer.state, layer.affine.transpose, inputs.shape
        scaled_pos, scaled_neg = (divide_into(relevance, denominator) for denominator in ctx.denominators)
        ctx.denominators = None
        if not ctx.signed:
            activating = times_into(inputs, transpose(scaled_pos, state["weight_pos"], shape)).mul_(self.alpha)
            inhibiting = times_into(inputs, transpose(scaled_neg, state["weight_neg"], shape)).mul_(self.beta)
            return activating.sub_(inhibiting)
        positive_in, negative_in = inputs.clamp(min=0), inputs.clamp(max=0)
        activating = (positive_in * transpose(scaled_pos, state["weight_pos"], shape)
                      + negative_in * transpose(scaled_pos, state["weight_neg"], shape))
        inhibiting = (positive_in * transpose(scaled_neg, state["weight_neg"], shape)
                      + negative_in * transpose(scaled_neg, state["weight_pos"], shape))
        return self.alpha * activating - self.beta * inhibiting


class GammaRule(FastRule):
    """zennit's generalised ``Gamma``: weights ``W + gamma W+`` for the output's sign, masked by it."""

    zennit_rule = zrules.Gamma

    def __init__(self, gamma: float = 0.25, stabilizer: float = 1e-6):
        self.gamma, self.stabilizer = gamma, stabilizer

    def prepare(self, module):
        weight, bias = module.weight.detach(), None if module.bias is None else module.bias.detach()
        gamma = self.gamma
        return {
            "weight": weight,
            "bias": bias,
            "weight_up": weight + gamma * weight.clamp(min=0),
            "weight_down": weight + gamma * weight.clamp(max=0),
            "bias_up": None if bias is None else bias + gamma * bias.clamp(min=0),
            "bias_down": None if bias is None else bias + gamma * bias.clamp(max=0),
        }

    def forward(self, ctx, layer, inputs):
        state, affine = layer.state, layer.affine
        outputs = affine(inputs, state["weight"], state["bias"])
        ctx.signed = has_negatives(inputs)
        up, down = crossed_pair(affine, state, inputs, ctx.signed, "up", "down")
        ctx.masks = (outputs > 0, outputs < 0)
        ctx.denominators = (stabilize(up, self.stabilizer), stabilize(down, self.stabilizer))
        ctx.save_for_backward(inputs)
        return outputs

    def backward(self, ctx, layer, relevance):
        (inputs,) = ctx.saved_tensors
        state, transpose, shape = layer.state, layer.affine.transpose, inputs.shape
        scaled_up, scaled_down = (divide_into(mask * relevance, denominator)
                                  for mask, denominator in zip(ctx.masks, ctx.denominators))
        ctx.masks = ctx.denominators = None
        if not ctx.signed:
            up = times_into(inputs, transpose(scaled_up, state["weight_up"], shape))
            return up.add_(times_into(inputs, transpose(scaled_down, state["weight_down"], shape)))
        positive_in, negative_in = inputs.clamp(min=0), inputs.clamp(max=0)
        return (positive_in * transpose(scaled_up, state["weight_up"], shape)
                + negative_in * transpose(scaled_up, state["weight_down"], shape)
                + positive_in * transpose(scaled_down, state["weight_down"], shape)
                + negative_in * transpose(scaled_down, state["weight_up"], shape))


class FlatRule(FastRule):
    """zennit's ``Flat``: all-ones weights and inputs, no bias; the input itself is ignored."""

    zennit_rule = zrules.Flat

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = stabilizer

    def prepare(self, module):
        weight = module.weight.detach()
        return {
            "weight": weight,
            "bias": None if module.bias is None else module.bias.detach(),
            "ones": torch.ones_like(weight),
            "denominators": {},  # input shape without batch -> (1, ...) denominator
        }

    def forward(self, ctx, layer, inputs):
        state = layer.state
        key = (tuple(inputs.shape[1:]), inputs.dtype, inputs.device)
        denominator = state["denominators"].get(key)
        if denominator is None:
            # Receptive-field sizes: integers, so one image gives every image's exact value.
            ones = torch.ones((1,) + tuple(inputs.shape[1:]), dtype=inputs.dtype, device=inputs.device)
            with full_precision(inputs):
                modified = layer.affine(ones, state["ones"].to(ones.dtype), None)
            denominator = stabilize(modified, self.stabilizer)
            state["denominators"][key] = denominator
        ctx.denominator = denominator
        ctx.input_shape = inputs.shape
        return layer.affine(inputs, state["weight"], state["bias"])

    def backward(self, ctx, layer, relevance):
        scaled = relevance / ctx.denominator
        return layer.affine.transpose(scaled, layer.state["ones"], ctx.input_shape)


class ZBoxRule(FastRule):
    """zennit's ``ZBox`` for inputs bounded by ``low`` and ``high`` (per channel)."""

    zennit_rule = zrules.ZBox

    def __init__(self, low: torch.Tensor, high: torch.Tensor, stabilizer: float = 1e-6):
        self.low, self.high, self.stabilizer = low, high, stabilizer

    def prepare(self, module):
        state = clamped_weights(module)
        state["bounds"] = {}  # input shape without batch -> (low, high, W+ low + b+ + W- high + b-)
        return state

    def _bounds(self, layer, inputs):
        state, affine = layer.state, layer.affine
        key = (tuple(inputs.shape[1:]), inputs.dtype, inputs.device)
        if key not in state["bounds"]:
            shape = (1,) + tuple(inputs.shape[1:])
            low = expand(self.low, shape, cut_batch_dim=True).to(inputs)
            high = expand(self.high, shape, cut_batch_dim=True).to(inputs)
            # Constant over images; zennit's sum(negatives) is 0 + (W+ l + b+) + (W- h + b-).
            with full_precision(inputs):
                weight_pos, weight_neg, bias_pos, bias_neg = (
                    None if value is None else value.to(low.dtype)
                    for value in (state["weight_pos"], state["weight_neg"], state["bias_pos"], state["bias_neg"]))
                offset = affine(low, weight_pos, bias_pos) + affine(high, weight_neg, bias_neg)
            state["bounds"][key] = (low, high, offset)
        return state["bounds"][key]

    def forward(self, ctx, layer, inputs):
        state = layer.state
        outputs = layer.affine(inputs, state["weight"], state["bias"])
        low, high, offset = self._bounds(layer, inputs)
        ctx.denominator = stabilize(outputs - offset, self.stabilizer)
        ctx.bounds = (low, high)
        ctx.save_for_backward(inputs)
        return outputs

    def backward(self, ctx, layer, relevance):
        (inputs,) = ctx.saved_tensors
        state, transpose, shape = layer.state, layer.affine.transpose, inputs.shape
        low, high = ctx.bounds
        scaled, ctx.denominator = divide_into(relevance, ctx.denominator), None
        bounded = low * transpose(scaled, state["weight_pos"], shape) + high * transpose(
            scaled, state["weight_neg"], shape)
        return inputs * transpose(scaled, state["weight"], shape) - bounded
