"""Canonizers: make a model canonical for LRP, and refuse it when that fails.

LRP needs a canonical model: every BatchNorm merged into the Conv/Linear before it
(or, in DenseNet, passed through where no merge exists), and residual additions made
explicit. :func:`canonizers_for` picks the canonizers for an architecture,
:func:`make_merged_batchnorm_exact` makes the merged BatchNorms an exact identity
(see ``docs/lrp.md``), and :func:`check_canonized` refuses models whose BatchNorms
stay un-merged, because LRP through them is silently wrong, and models with layers
that zennit's rules cannot explain (:func:`check_explainable`).
"""
from __future__ import annotations

import inspect
from typing import List, Optional, Tuple

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock as _ResNetBasicBlock
from torchvision.models.resnet import Bottleneck as _ResNetBottleneck
from zennit.canonizers import Canonizer, MergeBatchNorm, SequentialMergeBatchNorm
from zennit.core import collect_leaves
from zennit.layer import Sum
from zennit.torchvision import ResNetCanonizer
from zennit.types import Activation, AvgPool, BatchNorm, Linear

from ..errors import ModelError
from .densenet import PASS_THROUGH, DenseNetCanonizer, has_dense_layers

__all__ = ["canonizers_for", "make_merged_batchnorm_exact", "check_canonized", "check_explainable"]

_MAX_LISTED = 5
_BATCH_NORM = nn.modules.batchnorm._BatchNorm  # BatchNorm1d/2d/3d, SyncBatchNorm, lazy variants
_LINEAR = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _has_resnet_blocks(model: nn.Module) -> bool:
    return any(isinstance(module, (_ResNetBasicBlock, _ResNetBottleneck)) for module in model.modules())


def _batch_norm_after_linear_pairs(model: nn.Module) -> List[Tuple[nn.Module, nn.Module]]:
    """(Conv/Linear, BatchNorm) pairs adjacent in registration order, as SequentialMergeBatchNorm sees them."""
    pairs = []
    previous = None
    for leaf in collect_leaves(model):
        if isinstance(previous, _LINEAR) and isinstance(leaf, _BATCH_NORM):
            pairs.append((previous, leaf))
        previous = leaf
    return pairs


def _output_channels(layer: nn.Module) -> Optional[int]:
    return getattr(layer, "out_channels", getattr(layer, "out_features", None))


def canonizers_for(model: nn.Module, spec: Optional[str] = None) -> List[Canonizer]:
    """Choose the canonizers for a model.

    Rules, first match wins (decided by module types, so user files that reuse
    torchvision blocks are covered too):

    1. torchvision ResNet blocks (resnet*, resnext*, wide_resnet*) -> ``ResNetCanonizer``:
       merges BatchNorms and makes the residual sum a module that LRP can hook.
    2. torchvision DenseNet layers (densenet121/161/169/201) ->
       :class:`precompute.models.densenet.DenseNetCanonizer`: merges the BatchNorms
       that follow a convolution (``norm0``, each ``norm2``) by data flow, marks the
       pre-activation BatchNorms (``norm1``, transition norms, ``norm5``) as
       pass-through layers, whose relevance zennit's ``Pass`` rule conserves
       exactly, runs each transition's average pool before its 1x1 convolution, and
       makes the head's ReLU and average pool modules. See ``docs/lrp.md``, "DenseNet".
    3. A BatchNorm directly after a Conv/Linear in registration order (vgg*_bn, most
       Sequential conv-bn-relu models) -> ``SequentialMergeBatchNorm``, provided every
       such pair agrees on the channel count.
    4. Anything else -> no canonizer. Models without BatchNorm need none; other models
       whose BatchNorm is elsewhere (before a convolution, outside torchvision's
       DenseNet blocks) are refused later by :func:`check_canonized`.

    Parameters
    ----------
    model : torch.nn.Module
        The model to explain.
    spec : str, optional
        The model spec, only used in messages.

    Returns
    -------
    list of zennit.canonizers.Canonizer
        Fresh canonizer instances (possibly empty).
    """
    if _has_resnet_blocks(model):
        return [ResNetCanonizer()]
    if has_dense_layers(model):
        # SequentialMergeBatchNorm would merge norm0, then fail on conv2 -> the next layer's norm1.
        return [DenseNetCanonizer()]
    pairs = _batch_norm_after_linear_pairs(model)
    # A pair whose sizes differ shows that registration order is not data flow (one
    # layer's conv followed by the next layer's norm); merging would be wrong.
    if pairs and all(_output_channels(layer) == norm.num_features for layer, norm in pairs):
        return [SequentialMergeBatchNorm()]
    return []


def make_merged_batchnorm_exact(canonizer_instances) -> int:
    """Make the BatchNorms that zennit merged an exact identity.

    zennit's ``MergeBatchNorm`` sets ``running_var`` to 1, so a merged BatchNorm still
    computes ``x / sqrt(1 + eps)``: each one shrinks the activations by about
    ``eps / 2`` (ResNet-18's logits move by about 1e-4 relative). Setting
    ``running_var = 1 - eps`` makes the canonized model compute what the original one
    does. The canonizer's ``remove()`` restores the original tensors as before.

    Parameters
    ----------
    canonizer_instances : iterable
        What ``Canonizer.apply`` returned, e.g. ``composite.handles`` after
        ``composite.register(model)``; anything that is not a merge is skipped.

    Returns
    -------
    int
        Number of BatchNorms changed.
    """
    changed = 0
    for instance in canonizer_instances:
        if isinstance(instance, MergeBatchNorm) and instance.batch_norm is not None:
            batch_norm = instance.batch_norm
            batch_norm.running_var.data = torch.full_like(batch_norm.running_var.data, 1.0 - batch_norm.eps)
            changed += 1
    return changed


def _is_identity_batch_norm(module: nn.Module, tolerance: float = 1e-6) -> bool:
    if module.running_mean is None or module.running_var is None:
        return False  # normalises with batch statistics: never the identity
    eps = float(module.eps)
    checks = [
        torch.all(module.running_mean.abs() <= tolerance),
        # zennit sets running_var to 1 (BN then scales by 1/sqrt(1 + eps)); 1 - eps is exact identity
        torch.all((module.running_var - 1).abs() <= eps + tolerance),
    ]
    if module.weight is not None:
        checks.append(torch.all((module.weight - 1).abs() <= tolerance))
    if module.bias is not None:
        checks.append(torch.all(module.bias.abs() <= tolerance))
    return bool(all(checks))


def check_canonized(model: nn.Module, spec: Optional[str] = None) -> None:
    """Refuse a model that LRP would explain wrongly or not at all.

    Call it while the composite (with its canonizers) is registered. Every BatchNorm
    must then be merged, that is the identity (weight 1, bias 0, running_mean 0,
    running_var 1 or 1 - eps), or marked pass-through by a canonizer
    (:data:`precompute.models.densenet.PASS_THROUGH`: DenseNet's pre-activation
    BatchNorms) and in eval mode with running statistics. zennit passes relevance
    through a BatchNorm unchanged, which is wrong for a BatchNorm that should have
    been merged into the layer before it. Layers that zennit's rules cannot explain
    are refused first (:func:`check_explainable`).

    Parameters
    ----------
    model : torch.nn.Module
        The model, canonized.
    spec : str, optional
        The model spec, only used in the message.

    Raises
    ------
    ModelError
        If a layer cannot be explained, or a BatchNorm is neither the identity nor a
        marked pass-through layer, or uses batch statistics (train mode,
        ``track_running_stats=False``).
    """
    check_explainable(model, spec)
    batch_norms = [(name, module) for name, module in model.named_modules() if isinstance(module, _BATCH_NORM)]
    left = [name for name, module in batch_norms
            if module.training or not (_is_identity_batch_norm(module) or _is_pass_through(module))]
    if not left:
        return
    label = spec or type(model).__name__
    raise ModelError(
        f"model {label!r} is unsupported for LRP: {len(left)} of {len(batch_norms)} BatchNorm layers "
        f"({_listed(left)}) are not merged into a Conv/Linear directly before them. LRP through an un-merged "
        "BatchNorm gives wrong relevance, so it is refused. BatchNorm must directly follow a Conv or Linear "
        "layer (as in VGG-BN or ResNet) and the model must be in eval mode; BatchNorm before the convolution "
        "is supported only in torchvision's DenseNet blocks."
    )


def _is_pass_through(module: nn.Module) -> bool:
    # Running statistics make it a fixed per-channel affine map; batch statistics do not.
    return bool(getattr(module, PASS_THROUGH, False)) and module.running_mean is not None \
        and module.running_var is not None


#: Module types that zennit's composites give a rule (``layer_map_base`` and the linear rules).
_RULED = (Activation, Linear, AvgPool, BatchNorm, Sum)


def check_explainable(model: nn.Module, spec: Optional[str] = None) -> None:
    """Refuse a model with a layer that zennit's rules cannot explain.

    zennit's composites hook every module of their layer types with a rule that
    returns one relevance tensor. ``nn.MultiheadAttention`` is one of those types
    (an "activation", with the ``Pass`` rule), but it takes three inputs (query, key
    and value): the backward pass then stops with ``RuntimeError: hook 'backward' has
    returned an incorrect number of values`` (vision transformers: ``vit_b_16``, ...).
    Such layers are refused here, before any image is read. Layers without a rule
    (LayerNorm, functional code) get their plain gradient and are not refused: zennit
    explains them, if not by an LRP rule.

    Parameters
    ----------
    model : torch.nn.Module
    spec : str, optional
        The model spec, used in the message (else the model's class name).

    Raises
    ------
    ModelError
        One line naming the model, the first offending layer and its type.
    """
    offending = [(name, module) for name, module in model.named_modules()
                 if isinstance(module, _RULED) and _takes_several_inputs(module)]
    if not offending:
        return
    name, module = offending[0]
    label = spec or type(model).__name__
    others = f" (and {len(offending) - 1} more like it)" if len(offending) > 1 else ""
    raise ModelError(
        f"model {label!r} cannot be explained with LRP: layer {name!r}{others} is a {type(module).__name__}, "
        "which takes several inputs, and zennit's rule for it returns one relevance, so the backward pass "
        "fails; attention layers are unsupported (use composite 'gradient' for gradient x input)"
    )


def _takes_several_inputs(module: nn.Module) -> bool:
    if isinstance(module, nn.MultiheadAttention):
        return True
    try:
        # The class's forward: an installed fast path replaces the instance's with forward(*args).
        parameters = list(inspect.signature(type(module).forward).parameters.values())[1:]  # without self
    except (TypeError, ValueError):
        return False
    required = [parameter for parameter in parameters if parameter.default is parameter.empty
                and parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)]
    return len(required) > 1


def _listed(names: List[str]) -> str:
    shown = ", ".join(repr(name) for name in names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")
