"""zennit's LRP rules without zennit's hooks: one forward, one modified forward, one backward.

zennit computes a rule in a backward hook: it clones every layer input in the
forward pass, and in the backward pass it runs each layer again with modified
weights and asks autograd for that layer's gradient. :class:`FastLRP` gives the
same heatmaps at about half the cost. While it is installed, every layer that the
composite gives a rule runs through one :class:`torch.autograd.Function` whose

* ``forward`` computes the layer's true output ``z`` and, in the same call, the
  rule's modified output ``z_mod`` (for z-plus ``W+ x + b+``), and keeps the
  stabilised denominator;
* ``backward`` receives the relevance of the output, exactly what zennit's hook
  receives as "gradient", and returns the relevance of the input with one
  transposed convolution: for z-plus ``x * W+^T (R / stabilize(z_mod))``.

So the gradient that flows between layers *is* the relevance, as in zennit, and
everything without a rule (max pooling, flatten, reshape, slicing, functional
ops in ``forward``) keeps its plain gradient in both implementations.

Which module gets which rule is decided by the zennit composite itself (its
``module_map``, run over the canonized model as ``Composite.register`` does); this
module only supplies a fast equivalent for each zennit rule class, per composite
name, in :data:`FAST_RULES`. A model is refused with :class:`UnsupportedModel`
when a module would get a rule that has no fast equivalent here, when a layer's
type or settings are outside what the closed forms cover (a Conv1d, a subclass
with its own ``forward``, string padding, ...), or, while running, when a layer
with a rule runs twice in one forward pass (zennit keeps only its last input).

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

Each line is zennit's ``BasicHook`` with its input, parameter and output
modifiers, gradient mapper and reducer written out; the terms are summed in
zennit's order so that the two agree to float rounding (bit for bit in most
layers). What makes it cheaper than zennit, besides running no hooks: modified
weights are computed once per installation, the ``x-`` terms are skipped when the
input has no negative entry (after a ReLU they are exact zeros in zennit too), and
the flat and z-box terms that do not depend on the image are computed once per
input shape.
"""
from __future__ import annotations

import itertools
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from zennit import rules as zrules
from zennit.core import expand

from .errors import ModelError
from .registry import Registry

__all__ = [
    "FAST_RULES",
    "FastLRP",
    "UnsupportedModel",
    "relative_l2",
    "stabilize",
]


class UnsupportedModel(ModelError):
    """The fast path cannot reproduce zennit's heatmaps for this model and composite."""


def stabilize(values: torch.Tensor, epsilon: float) -> torch.Tensor:
    """zennit's stabiliser: add ``epsilon`` with the sign of each entry, ``+`` for zero.

    Parameters
    ----------
    values : torch.Tensor of any shape
    epsilon : float

    Returns
    -------
    torch.Tensor of the same shape
        Bitwise equal to ``zennit.core.stabilize(values, epsilon)`` (``+-eps + v`` is ``v + +-eps``).
    """
    # One full-size allocation: large fresh tensors are what costs on the CPU (page faults).
    positive, negative = values.new_full((), epsilon), values.new_full((), -epsilon)
    return torch.where(values >= 0, positive, negative).add_(values)


def relative_l2(estimate, reference) -> float:
    """``||estimate - reference|| / ||reference||`` in float64 (0 when both are zero).

    Parameters
    ----------
    estimate, reference : array-like of the same shape
        Numpy arrays or tensors.

    Returns
    -------
    float
        ``inf`` if the reference is zero and the estimate is not, ``nan`` if either
        holds a non-finite value.
    """
    estimate = _as_float64(estimate)
    reference = _as_float64(reference)
    if estimate.shape != reference.shape:
        raise ValueError(f"shapes differ: {estimate.shape} vs {reference.shape}")
    if not (np.isfinite(estimate).all() and np.isfinite(reference).all()):
        return float("nan")
    difference = float(np.linalg.norm(estimate - reference))
    scale = float(np.linalg.norm(reference))
    if scale == 0.0:
        return 0.0 if difference == 0.0 else float("inf")
    return difference / scale


def _as_float64(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


# --------------------------------------------------------------------------------------
# Affine layers: the layer and its transpose with any weights
# --------------------------------------------------------------------------------------


class _Affine:
    """``Conv2d`` or ``Linear`` with the module's settings, applied to any weights.

    Parameters
    ----------
    module : nn.Conv2d or nn.Linear
    """

    def __init__(self, module: nn.Module):
        self.is_conv = isinstance(module, nn.Conv2d)
        if self.is_conv:
            padding = (0, 0) if module.padding == "valid" else tuple(module.padding)
            self.stride, self.padding = tuple(module.stride), padding
            self.dilation, self.groups = tuple(module.dilation), module.groups

    def __call__(self, inputs: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        """The layer on ``inputs`` (B, C_in, H, W) or (..., in) with ``weight`` and ``bias``."""
        if self.is_conv:
            return F.conv2d(inputs, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        return F.linear(inputs, weight, bias)

    def transpose(self, grad: torch.Tensor, weight: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:
        """``weight^T grad``: the gradient of the layer with respect to an input of ``input_shape``."""
        weight = weight.to(grad.dtype)  # bf16 autocast: grads arrive in bf16, cached weights are fp32
        if not self.is_conv:
            return grad.matmul(weight)
        # What autograd runs for conv2d's input gradient; only the input's shape is read.
        dummy = grad.new_empty(1).expand(input_shape)
        return torch.ops.aten.convolution_backward(
            grad, dummy, weight, None, self.stride, self.padding, self.dilation,
            False, [0], self.groups, (True, False, False),
        )[0]


def _affine_unsupported(module: nn.Module) -> Optional[str]:
    """Why the closed forms cannot stand in for zennit's re-run of ``module.forward``, or None."""
    if type(module).forward is nn.Conv2d.forward:
        if type(module)._conv_forward is not nn.Conv2d._conv_forward:
            return "a Conv2d subclass with its own _conv_forward"
        if module.padding_mode != "zeros":
            return f"padding_mode={module.padding_mode!r} (only 'zeros' is implemented)"
        if isinstance(module.padding, str) and module.padding != "valid":
            return f"padding={module.padding!r} (only numbers and 'valid' are implemented)"
    elif type(module).forward is not nn.Linear.forward:
        kind = "its own forward" if isinstance(module, (nn.Conv2d, nn.Linear)) else "no closed form here"
        return f"{type(module).__name__} ({kind}; Conv2d and Linear are implemented)"
    if "forward" in vars(module):
        return "a forward set on the instance"
    if parametrize.is_parametrized(module):
        return "parametrized weights"
    return None


# --------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------


class FastRule:
    """One zennit rule as a forward (true and modified outputs) and a backward (relevance).

    Subclasses set :attr:`zennit_rule`, the zennit hook class they reproduce, and
    implement :meth:`forward` and :meth:`backward`. Both run inside
    :class:`_LayerFunction`; ``ctx`` is its autograd context.
    """

    zennit_rule: type = type(None)
    #: Whether the rule computes a layer from weights (checked with ``_affine_unsupported``).
    affine: bool = True

    def unsupported(self, module: nn.Module) -> Optional[str]:
        """Why this rule cannot run on ``module`` exactly as zennit does, or None."""
        return _affine_unsupported(module) if self.affine else None

    def prepare(self, module: nn.Module) -> dict:
        """Tensors computed once per installation (modified weights); the module's are fixed meanwhile."""
        return {}

    def forward(self, ctx, layer: "_Layer", inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def backward(self, ctx, layer: "_Layer", relevance: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _clamped(module: nn.Module) -> dict:
    weight, bias = module.weight.detach(), None if module.bias is None else module.bias.detach()
    return {
        "weight": weight,
        "bias": bias,
        "weight_pos": weight.clamp(min=0),
        "weight_neg": weight.clamp(max=0),
        "bias_pos": None if bias is None else bias.clamp(min=0),
        "bias_neg": None if bias is None else bias.clamp(max=0),
    }


def _divide(relevance: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``relevance / denominator``, written into ``denominator`` (which the caller owns and drops)."""
    if denominator.shape == relevance.shape and denominator.dtype == torch.result_type(relevance, denominator):
        return torch.div(relevance, denominator, out=denominator)
    return relevance / denominator


def _times(inputs: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """``inputs * gradient``, written into ``gradient`` (fresh from a transposed layer)."""
    if gradient.shape == inputs.shape and gradient.dtype == torch.result_type(inputs, gradient):
        return gradient.mul_(inputs)
    return inputs * gradient


def _no_autocast(inputs: torch.Tensor):
    # Cached constants are computed once, at full precision, whatever autocast is doing.
    return torch.autocast(device_type=inputs.device.type, enabled=False)


def _has_negatives(inputs: torch.Tensor) -> bool:
    # For x >= 0 the x- terms are exact zeros in zennit too; skipping them saves a layer each.
    return bool(inputs.min() < 0) if inputs.numel() else False


def _crossed_pair(affine: "_Affine", state: dict, inputs: torch.Tensor, signed: bool, first: str, second: str):
    """``(A x+ + a + B x-, B x+ + b + A x-)`` for the weights/biases ``A, a`` = ``first``, ``B, b`` = ``second``.

    The two modified outputs of alpha-beta (``pos``/``neg``) and gamma (``up``/``down``),
    summed in zennit's order; without negative inputs the ``x-`` terms are skipped.
    """
    positive_in = inputs.clamp(min=0) if signed else inputs
    out_first = affine(positive_in, state[f"weight_{first}"], state[f"bias_{first}"])
    out_second = affine(positive_in, state[f"weight_{second}"], state[f"bias_{second}"])
    if signed:
        negative_in = inputs.clamp(max=0)
        out_first = out_first + affine(negative_in, state[f"weight_{second}"], None)
        out_second = out_second + affine(negative_in, state[f"weight_{first}"], None)
    return out_first, out_second


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
        scaled, ctx.denominator = _divide(relevance, ctx.denominator), None
        return _times(inputs, layer.affine.transpose(scaled, layer.state["weight"], inputs.shape))


class ZPlusRule(FastRule):
    """zennit's ``ZPlus`` (alpha 1, beta 0), positive biases in the denominator."""

    zennit_rule = zrules.ZPlus

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = stabilizer

    def prepare(self, module):
        return _clamped(module)

    def forward(self, ctx, layer, inputs):
        state, affine = layer.state, layer.affine
        outputs = affine(inputs, state["weight"], state["bias"])
        ctx.signed = _has_negatives(inputs)
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
        scaled, ctx.denominator = _divide(relevance, ctx.denominator), None
        if not ctx.signed:
            return _times(inputs, affine.transpose(scaled, state["weight_pos"], inputs.shape))
        positive = inputs.clamp(min=0) * affine.transpose(scaled, state["weight_pos"], inputs.shape)
        return positive + inputs.clamp(max=0) * affine.transpose(scaled, state["weight_neg"], inputs.shape)


class AlphaBetaRule(FastRule):
    """zennit's ``AlphaBeta``: positive contributions times alpha minus negative ones times beta."""

    zennit_rule = zrules.AlphaBeta

    def __init__(self, alpha: float = 2.0, beta: float = 1.0, stabilizer: float = 1e-6):
        self.alpha, self.beta, self.stabilizer = alpha, beta, stabilizer

    def prepare(self, module):
        return _clamped(module)

    def forward(self, ctx, layer, inputs):
        state, affine = layer.state, layer.affine
        outputs = affine(inputs, state["weight"], state["bias"])
        ctx.signed = _has_negatives(inputs)
        positive, negative = _crossed_pair(affine, state, inputs, ctx.signed, "pos", "neg")
        ctx.denominators = (stabilize(positive, self.stabilizer), stabilize(negative, self.stabilizer))
        ctx.save_for_backward(inputs)
        return outputs

    def backward(self, ctx, layer, relevance):
        (inputs,) = ctx.saved_tensors
        state, transpose, shape = layer.state, layer.affine.transpose, inputs.shape
        scaled_pos, scaled_neg = (_divide(relevance, denominator) for denominator in ctx.denominators)
        ctx.denominators = None
        if not ctx.signed:
            activating = _times(inputs, transpose(scaled_pos, state["weight_pos"], shape)).mul_(self.alpha)
            inhibiting = _times(inputs, transpose(scaled_neg, state["weight_neg"], shape)).mul_(self.beta)
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
        ctx.signed = _has_negatives(inputs)
        up, down = _crossed_pair(affine, state, inputs, ctx.signed, "up", "down")
        ctx.masks = (outputs > 0, outputs < 0)
        ctx.denominators = (stabilize(up, self.stabilizer), stabilize(down, self.stabilizer))
        ctx.save_for_backward(inputs)
        return outputs

    def backward(self, ctx, layer, relevance):
        (inputs,) = ctx.saved_tensors
        state, transpose, shape = layer.state, layer.affine.transpose, inputs.shape
        scaled_up, scaled_down = (_divide(mask * relevance, denominator)
                                  for mask, denominator in zip(ctx.masks, ctx.denominators))
        ctx.masks = ctx.denominators = None
        if not ctx.signed:
            up = _times(inputs, transpose(scaled_up, state["weight_up"], shape))
            return up.add_(_times(inputs, transpose(scaled_down, state["weight_down"], shape)))
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
            with _no_autocast(inputs):
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
        state = _clamped(module)
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
            with _no_autocast(inputs):
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
        scaled, ctx.denominator = _divide(relevance, ctx.denominator), None
        bounded = low * transpose(scaled, state["weight_pos"], shape) + high * transpose(
            scaled, state["weight_neg"], shape)
        return inputs * transpose(scaled, state["weight"], shape) - bounded


class _LayerFunction(torch.autograd.Function):
    """Runs one layer's rule: true output forward, the rule's relevance backward."""

    @staticmethod
    def forward(ctx, inputs, layer):
        ctx.layer = layer
        return layer.rule.forward(ctx, layer, inputs)

    @staticmethod
    def backward(ctx, relevance):
        return ctx.layer.rule.backward(ctx, ctx.layer, relevance), None


# --------------------------------------------------------------------------------------
# Fast composites
# --------------------------------------------------------------------------------------

RuleTable = Dict[type, FastRule]

#: composite name (as in :data:`precompute.attribute.COMPOSITES`) -> factory
#: ``(input_low, input_high) -> {zennit rule class: FastRule}`` with the same parameters
#: as the zennit composite that name builds (zennit's defaults: epsilon and stabilisers 1e-6).
FAST_RULES: Registry[Callable[[torch.Tensor, torch.Tensor], RuleTable]] = Registry("fast composite")


def _base(stabilizer: float = 1e-6) -> RuleTable:
    # zennit's layer_map_base: Pass for activations and BatchNorm, Norm for sums and average pools.
    return {zrules.Pass: PassRule(), zrules.Norm: NormRule(stabilizer)}


@FAST_RULES.register("epsilon_plus_flat")
def _epsilon_plus_flat(low, high):
    return {**_base(), zrules.ZPlus: ZPlusRule(), zrules.Epsilon: EpsilonRule(), zrules.Flat: FlatRule()}


@FAST_RULES.register("epsilon_plus")
def _epsilon_plus(low, high):
    return {**_base(), zrules.ZPlus: ZPlusRule(), zrules.Epsilon: EpsilonRule()}


@FAST_RULES.register("epsilon_alpha2_beta1_flat")
def _epsilon_alpha2_beta1_flat(low, high):
    return {**_base(), zrules.AlphaBeta: AlphaBetaRule(2.0, 1.0), zrules.Epsilon: EpsilonRule(),
            zrules.Flat: FlatRule()}


@FAST_RULES.register("epsilon_gamma_box")
def _epsilon_gamma_box(low, high):
    return {**_base(), zrules.Gamma: GammaRule(0.25), zrules.Epsilon: EpsilonRule(),
            zrules.ZBox: ZBoxRule(low, high)}


@FAST_RULES.register("gradient")
def _gradient(low, high):
    return {}  # no rules: the plain gradient, as zennit's empty composite


class _Layer:
    """A module with its fast rule, while installed."""

    def __init__(self, name: str, module: nn.Module, rule: FastRule, owner: "FastLRP"):
        self.name, self.module, self.rule, self.owner = name, module, rule, owner
        self.affine = _Affine(module) if rule.affine else None
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
        A name in :data:`FAST_RULES`.
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
        if composite_name not in FAST_RULES:
            raise UnsupportedModel(f"composite {composite_name!r} has no fast implementation")
        table = FAST_RULES.get(composite_name)(input_low, input_high)
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
