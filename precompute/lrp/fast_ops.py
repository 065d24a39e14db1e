"""The arithmetic the fast LRP rules share: zennit's stabiliser, affine layers and their transposes.

:class:`AffineLayer` applies a ``Conv2d`` or ``Linear`` with its own settings to any
weights, and its transpose (the gradient with respect to the input), which is all
the closed forms in :mod:`precompute.lrp.fast_rules` need. The small helpers write
into tensors their caller owns, so that a rule allocates as little as zennit does.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

__all__ = [
    "stabilize",
    "AffineLayer",
    "affine_unsupported",
    "clamped_weights",
    "divide_into",
    "times_into",
    "full_precision",
    "has_negatives",
    "crossed_pair",
]


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


class AffineLayer:
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


def affine_unsupported(module: nn.Module) -> Optional[str]:
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


def clamped_weights(module: nn.Module) -> dict:
    """The layer's weight and bias, and their positive and negative parts (``*_pos``, ``*_neg``)."""
    weight, bias = module.weight.detach(), None if module.bias is None else module.bias.detach()
    return {
        "weight": weight,
        "bias": bias,
        "weight_pos": weight.clamp(min=0),
        "weight_neg": weight.clamp(max=0),
        "bias_pos": None if bias is None else bias.clamp(min=0),
        "bias_neg": None if bias is None else bias.clamp(max=0),
    }


def divide_into(relevance: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``relevance / denominator``, written into ``denominator`` (which the caller owns and drops)."""
    if denominator.shape == relevance.shape and denominator.dtype == torch.result_type(relevance, denominator):
        return torch.div(relevance, denominator, out=denominator)
    return relevance / denominator


def times_into(inputs: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """``inputs * gradient``, written into ``gradient`` (fresh from a transposed layer)."""
    if gradient.shape == inputs.shape and gradient.dtype == torch.result_type(inputs, gradient):
        return gradient.mul_(inputs)
    return inputs * gradient


def full_precision(inputs: torch.Tensor):
    # Cached constants are computed once, at full precision, whatever autocast is doing.
    return torch.autocast(device_type=inputs.device.type, enabled=False)


def has_negatives(inputs: torch.Tensor) -> bool:
    # For x >= 0 the x- terms are exact zeros in zennit too; skipping them saves a layer each.
    return bool(inputs.min() < 0) if inputs.numel() else False


def crossed_pair(affine: "AffineLayer", state: dict, inputs: torch.Tensor, signed: bool, first: str, second: str):
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
