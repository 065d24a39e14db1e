"""Where in a model a concept lives: a named module's output, or its input.

A layer is written ``NAME`` (the output of the module ``NAME`` as returned by
``model.named_modules()``) or ``NAME:input`` (the input of that module). The default,
:func:`default_layer`, is the input of the model's last ``nn.Linear``: the penultimate
features, which every classifier with a linear head has, whatever comes before.

For LRP, pick the output of an activation (``ReLU``), a pooling layer or a block, or the
input of a ``Linear``/``Conv``: there the projection of :mod:`precompute.clarc.projection`
is an ordinary differentiable step between rule-carrying layers. The output of a
``Conv``/``Linear``/``BatchNorm`` itself is refused, because its LRP rule recomputes that
output and would not see the projection.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..models import normalize

__all__ = ["LayerRef", "default_layer", "resolve_layer", "attach", "capture_activations"]

_RULED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class LayerRef:
    """A module of a model and which side of it (``"input"`` or ``"output"``).

    Attributes
    ----------
    module : str
        Name in ``model.named_modules()``.
    side : str
        ``"input"`` or ``"output"``.
    """

    module: str
    side: str = "output"

    def __str__(self) -> str:
        return self.module if self.side == "output" else f"{self.module}:input"

    @classmethod
    def parse(cls, text: str) -> "LayerRef":
        """``NAME`` or ``NAME:input`` (``NAME:output`` is the same as ``NAME``)."""
        name, _, side = str(text).strip().partition(":")
        side = side or "output"
        if side not in ("input", "output") or not name:
            raise ConfigError(f"layer {text!r}: expected NAME or NAME:input (a name from model.named_modules())")
        return cls(name, side)


def default_layer(model: nn.Module) -> LayerRef:
    """The input of the last ``nn.Linear`` of ``model`` (its penultimate features).

    Raises
    ------
    ConfigError
        If the model has no ``nn.Linear``; then ``--layer`` must name one.
    """
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ConfigError(f"{type(model).__name__} has no nn.Linear layer; choose a layer with --layer NAME")
    return LayerRef(linears[-1], "input")


def resolve_layer(model: nn.Module, text: Optional[str]) -> LayerRef:
    """Parse and check a layer for ``model``; None gives :func:`default_layer`.

    Raises
    ------
    ConfigError
        Unknown module (the message lists a few names), or the output of a layer with
        its own LRP rule.
    """
    if not text:
        return default_layer(model)
    ref = LayerRef.parse(text)
    modules = dict(model.named_modules())
    if ref.module not in modules or ref.module == "":
        names = [name for name in modules if name][-8:]
        raise ConfigError(f"--layer {text!r}: no module of that name; the last ones are: {', '.join(names)}")
    if ref.side == "output" and isinstance(modules[ref.module], _RULED):
        raise ConfigError(
            f"--layer {text!r}: the output of a {type(modules[ref.module]).__name__} carries its own LRP rule; "
            f"use the activation after it or {ref.module}:input")
    return ref


def attach(model: nn.Module, layer: LayerRef, transform: Callable[[torch.Tensor], Optional[torch.Tensor]]):
    """Run ``transform`` on the layer's tensor in every forward pass; return the hook handle.

    ``transform`` gets the tensor (B, ...) and returns a replacement or None (keep it).
    Registered before any LRP hook, so the rules see the transformed tensor.
    """
    module = dict(model.named_modules())[layer.module]
    if layer.side == "input":
        def pre_hook(_module, args):
            if not args:
                return None
            out = transform(args[0])
            return None if out is None else (out, *args[1:])
        return module.register_forward_pre_hook(pre_hook)

    def hook(_module, _args, output):
        if not isinstance(output, torch.Tensor):
            raise ConfigError(f"layer {layer}: the module returns {type(output).__name__}, not a tensor")
        return transform(output)
    return module.register_forward_hook(hook)


@torch.no_grad()
def capture_activations(model: nn.Module, layer: LayerRef, batches: Iterable[torch.Tensor], *,
                        normalization: str, device: torch.device) -> np.ndarray:
    """Flattened activations of ``layer`` for images in [0, 1].

    Parameters
    ----------
    model : nn.Module
        In eval mode.
    layer : LayerRef
    batches : iterable of Tensor (B, 3, H, W)
        Images in [0, 1], before normalisation.
    normalization : str
        A key of :data:`precompute.models.NORMALIZATIONS`.
    device : torch.device

    Returns
    -------
    ndarray of float32, shape (N, D)
        D is the product of the layer's per-sample shape.
    """
    captured = []

    def keep(tensor):
        captured.append(tensor.detach().flatten(1).float().cpu())
        return None

    handle = attach(model, layer, keep)
    try:
        for images in batches:
            model(normalize(images.to(device, torch.float32), normalization))
    finally:
        handle.remove()
    if not captured:
        return np.zeros((0, 0), np.float32)
    return torch.cat(captured).numpy()
