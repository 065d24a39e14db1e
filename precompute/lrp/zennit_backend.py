"""zennit's side of an attribution: canonizers, hooks, and the checks that zennit's rules land right.

:class:`precompute.lrp.Attributor` applies the canonizers itself rather than through
``Composite.register``, so that it can undo a half-done merge, make the merged
BatchNorms exact (:func:`precompute.models.make_merged_batchnorm_exact`) and choose
between zennit's hooks and the fast path afterwards. The functions here do each of
those steps exactly as zennit would, and refuse (``ModelError``) two kinds of model
that zennit would explain wrongly without a word:

* canonizers that change the model's outputs (:func:`check_canonizers_keep_the_function`);
* a "first layer" rule that lands on a layer that does not run first
  (:func:`check_first_layer_runs_first`).
"""
from __future__ import annotations

import contextlib
from typing import Callable, List

import torch
from torch import nn
from zennit.core import Composite
from zennit.types import Linear as ZennitLinear

from ..errors import ModelError
from ..models import make_merged_batchnorm_exact

__all__ = [
    "apply_canonizers",
    "register_hooks",
    "free_hook_state",
    "check_canonizers_keep_the_function",
    "check_first_layer_runs_first",
]


def _canonizer_names(composite: Composite) -> str:
    return ", ".join(type(canonizer).__name__ for canonizer in composite.canonizers)


def apply_canonizers(model: nn.Module, composite: Composite) -> None:
    """Apply the composite's canonizers (what ``Composite.register`` does before its hooks).

    Their handles go to ``composite.handles``, so ``composite.remove()`` reverts them;
    the BatchNorms they merge are then made an exact identity.

    Raises
    ------
    ModelError
        If a canonizer fails (it merged layers whose shapes do not fit); every change
        made until then is undone first.
    """
    # zennit replaces ``.data`` (and adds missing biases) when merging; a canonizer that
    # fails half-way cannot undo its earlier merges, so keep references to restore them.
    before = [
        (module, name, None if value is None else value.data)
        for module in model.modules()
        for name, value in list(module._parameters.items()) + list(module._buffers.items())
    ]
    try:
        composite.remove()
        for canonizer in composite.canonizers:
            composite.handles += canonizer.apply(model)
    except RuntimeError as error:  # a canonizer merged layers whose shapes do not fit
        composite.remove()
        for module, name, data in before:
            if data is None:
                module._parameters[name] = None
            else:
                getattr(module, name).data = data
        raise ModelError(
            f"model {type(model).__name__!r} is unsupported for LRP: its canonizers "
            f"({_canonizer_names(composite)}) failed: {error}"
        ) from None
    make_merged_batchnorm_exact(composite.handles)


def register_hooks(model: nn.Module, composite: Composite, handles: list, hook_refs=None) -> None:
    """zennit's hooks, placed on the canonized model exactly as ``Composite.register`` places them.

    Parameters
    ----------
    model : torch.nn.Module
        The canonized model.
    composite : zennit.core.Composite
    handles : list
        Receives the hooks' removable handles.
    hook_refs : set, optional
        Receives the hooks themselves (``composite.hook_refs``), so that
        :func:`free_hook_state` can reach them.
    """
    context: dict = {}
    for name, module in model.named_modules():
        template = composite.module_map(context, name, module)
        if template is not None:
            hook = template.copy()
            if hook_refs is not None:
                hook_refs.add(hook)
            handles.append(hook.register(module))


def free_hook_state(composite: Composite) -> None:
    """Drop the inputs and tensor-hook handles that zennit's hooks keep until removal.

    Called after each batch, it keeps memory flat over a long run.
    """
    for hook in list(composite.hook_refs):
        hook.stored_tensors.clear()
        hook.tensor_handles.remove()


def check_canonizers_keep_the_function(model: nn.Module, inputs: torch.Tensor, composite: Composite,
                                       unregister: Callable[[], None], register: Callable[[], None]) -> None:
    """Refuse canonizers that change the model's outputs.

    ``SequentialMergeBatchNorm`` pairs layers by registration order, not by data flow,
    so it can merge a BatchNorm into a layer that does not feed it.

    Parameters
    ----------
    model : torch.nn.Module
        The model, canonized (rules installed).
    inputs : torch.Tensor of shape (B, C, H, W)
        Normalised images.
    composite : zennit.core.Composite
        The composite whose canonizers are checked (named in the message).
    unregister, register : callable
        Remove the canonizers (and rules), and apply them again.

    Raises
    ------
    ModelError
        If a logit moves by more than ``1e-3`` of the largest one (plus ``1e-6``).
    """
    with torch.no_grad():
        canonized = model(inputs)
        unregister()
        try:
            original = model(inputs)
        finally:
            register()
    scale = float(original.abs().max()) if original.numel() else 0.0
    difference = float((canonized - original).abs().max()) if original.numel() else 0.0
    if difference > 1e-3 * scale + 1e-6:
        raise ModelError(
            f"model {type(model).__name__!r} is unsupported for LRP: its canonizers "
            f"({_canonizer_names(composite)}) change its outputs "
            f"(largest difference {difference:.3g} for logits up to {scale:.3g}). They merge each BatchNorm "
            "into the layer registered just before it; in this model that layer does not feed it."
        )


@contextlib.contextmanager
def check_first_layer_runs_first(model: nn.Module, composite_name: str):
    """Around a forward pass, check that zennit's "first layer" (first in registration order) runs first.

    ``SpecialFirstLayerMapComposite`` gives the flat/box rule to the first Conv/Linear
    in ``named_modules`` order; a model that registers its classifier before its
    features would get the rule on the wrong layer.

    Raises
    ------
    ModelError
        After the ``with`` block, if another Conv/Linear ran first.
    """
    layers = [name for name, module in model.named_modules() if isinstance(module, ZennitLinear)]
    executed: List[str] = []

    def record(name):
        return lambda module, args: None if executed else executed.append(name)

    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_pre_hook(record(name)) for name in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
    if layers and executed and executed[0] != layers[0]:
        raise ModelError(
            f"composite {composite_name!r} gives its first-layer rule to {layers[0]!r}, the first layer in "
            f"registration order, but {executed[0]!r} runs first. Register the model's modules in the order "
            "of the forward pass (or pick a composite without a first-layer rule, such as 'epsilon_plus')."
        )
