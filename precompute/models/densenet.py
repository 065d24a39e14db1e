"""A canonizer for torchvision's DenseNet: merge the BatchNorms that follow a convolution, pass through the rest.

zennit 0.5.1 has no DenseNet canonizer, and ``SequentialMergeBatchNorm`` pairs layers
by registration order, which in DenseNet is not data flow. A DenseNet has three kinds
of BatchNorm and two pooling steps, and :class:`DenseNetCanonizer` treats them as
follows (``docs/lrp.md`` gives the reasoning):

==============================  ====================================================
``features.norm0``,             follow a convolution directly (``conv0``, each dense
each dense layer's ``norm2``    layer's ``conv1``): merged into it, exactly as
                                zennit's ``MergeBatchNorm`` does
each dense layer's ``norm1``,   pre-activation (BatchNorm -> ReLU -> conv) on a
each transition's ``norm``,     concatenation of several layers' outputs: neither
``features.norm5``              merge exists, so they stay, a per-channel affine map
                                that zennit's ``Pass`` rule crosses unchanged
                                (exactly conservative); they are marked with
                                :data:`PASS_THROUGH` so that
                                :func:`precompute.models.check_canonized` accepts them
each transition                BN -> ReLU -> 1x1 conv -> average pool runs the pool
                                before the convolution (they commute), so that the
                                pool's ``Norm`` rule never divides by an average of
                                signed values
``DenseNet.forward``            its functional ``relu`` and ``adaptive_avg_pool2d``
                                become modules, so that the average pool gets LRP's
                                ``Norm`` rule as in ResNet and VGG
==============================  ====================================================

Dense layers built with ``memory_efficient=True`` recompute their bottleneck in the
backward pass (gradient checkpointing), which would run hooked layers twice; while
canonized they run the plain forward, which computes the same function.

Structures are recognised by module type (torchvision's dense layer, transition and
dense block, and ``nn.Sequential`` whose data flow is its order of children), so user
files that build a DenseNet from torchvision's blocks are covered too.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import nn
from torchvision.models import DenseNet
from torchvision.models.densenet import _DenseBlock as _TorchvisionDenseBlock
from torchvision.models.densenet import _DenseLayer as _TorchvisionDenseLayer
from torchvision.models.densenet import _Transition as _TorchvisionTransition
from zennit.canonizers import AttributeCanonizer, Canonizer, CompositeCanonizer, MergeBatchNorm

__all__ = [
    "PASS_THROUGH",
    "DenseNetCanonizer",
    "DenseNetMergeBatchNorm",
    "PreActivationBatchNorm",
    "DenseLayerWithoutCheckpoints",
    "TransitionPoolFirst",
    "DenseNetHeadCanonizer",
    "has_dense_layers",
    "merge_pairs",
    "pre_activation_batch_norms",
]

#: Attribute set to True on a BatchNorm while a canonizer has made it a pass-through layer for LRP.
PASS_THROUGH = "lrp_pass_through"

_BATCH_NORM = nn.modules.batchnorm._BatchNorm
_LINEAR = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_MISSING = object()


def has_dense_layers(model: nn.Module) -> bool:
    """Whether ``model`` contains torchvision DenseNet layers (densenet121/161/169/201 or their blocks)."""
    return any(isinstance(module, _TorchvisionDenseLayer) for module in model.modules())


def _plain_dense_layer(module: nn.Module) -> bool:
    # torchvision's own forward: norm1 -> relu1 -> conv1 -> norm2 -> relu2 -> conv2.
    return (isinstance(module, _TorchvisionDenseLayer) and type(module).forward is _TorchvisionDenseLayer.forward
            and type(module).bn_function is _TorchvisionDenseLayer.bn_function)


def _plain_sequential(module: nn.Module) -> bool:
    # Only then is the order of children the data flow.
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _output_channels(layer: nn.Module) -> int:
    return getattr(layer, "out_channels", getattr(layer, "out_features", -1))


def merge_pairs(model: nn.Module) -> List[Tuple[nn.Module, nn.Module]]:
    """(Conv/Linear, BatchNorm) pairs in which the BatchNorm reads the layer's output, and nothing else.

    These are each dense layer's ``(conv1, norm2)`` (if it runs torchvision's forward)
    and, in every plain ``nn.Sequential``, a BatchNorm child right after a Conv/Linear
    child with as many outputs as the BatchNorm has features (DenseNet's
    ``(conv0, norm0)``).

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    list of (nn.Module, nn.Module)
        In ``named_modules`` order, each BatchNorm at most once.
    """
    pairs = []
    for module in model.modules():
        if _plain_dense_layer(module):
            pairs.append((module.conv1, module.norm2))
        elif _plain_sequential(module):
            children = list(module.children())
            pairs += [(layer, norm) for layer, norm in zip(children, children[1:])
                      if isinstance(layer, _LINEAR) and isinstance(norm, _BATCH_NORM)
                      and _output_channels(layer) == norm.num_features]
    unique: Dict[int, Tuple[nn.Module, nn.Module]] = {}
    for layer, norm in pairs:
        unique.setdefault(id(norm), (layer, norm))
    return list(unique.values())


def pre_activation_batch_norms(model: nn.Module) -> List[nn.Module]:
    """The BatchNorms that normalise a concatenation of several layers' outputs.

    Each dense layer's ``norm1``, each transition's ``norm`` (its first child) and a
    BatchNorm right after a dense block in a plain ``nn.Sequential`` (``norm5``). Their
    input channels come from several convolutions and the stem or transition pooling,
    and each of these BatchNorms has its own statistics, so none can be merged into the
    layers that produced its input; a ReLU follows each, so none can be merged into the
    convolution after it either.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    list of nn.Module
        In ``named_modules`` order, each at most once.
    """
    found = []
    for module in model.modules():
        if _plain_dense_layer(module):
            found.append(module.norm1)
        elif isinstance(module, _TorchvisionTransition):
            first = next(iter(module.children()), None)
            if isinstance(first, _BATCH_NORM):
                found.append(first)
        elif _plain_sequential(module):
            children = list(module.children())
            found += [norm for block, norm in zip(children, children[1:])
                      if isinstance(block, _TorchvisionDenseBlock) and isinstance(norm, _BATCH_NORM)]
    return list({id(norm): norm for norm in found}.values())


class DenseNetMergeBatchNorm(MergeBatchNorm):
    """Merge each BatchNorm of :func:`merge_pairs` into the convolution that feeds it.

    The arithmetic and the undo are zennit's ``MergeBatchNorm`` (so
    :func:`precompute.models.make_merged_batchnorm_exact` applies); only the pairing
    follows data flow instead of registration order.
    """

    def apply(self, root_module: nn.Module) -> List[Canonizer]:
        """Merge every pair of ``root_module``; returns the applied instances."""
        pairs = merge_pairs(root_module)
        for layer, norm in pairs:
            # Checked before any merge, so that a failure leaves the model untouched.
            if _output_channels(layer) != norm.num_features:
                raise RuntimeError(f"{type(layer).__name__} with {_output_channels(layer)} outputs feeds a "
                                   f"BatchNorm of {norm.num_features} features")
        instances = []
        for layer, norm in pairs:
            instance = self.copy()
            instance.register((layer,), norm)
            instances.append(instance)
        return instances


class _AttributeChange(Canonizer):
    """Set attributes of modules, and restore their previous values (or absence) on removal.

    Subclasses say which in :meth:`changes`. zennit's ``AttributeCanonizer`` deletes
    the attributes on removal, which would delete one the module had before
    (``memory_efficient``).
    """

    def __init__(self):
        self.module = None
        self.previous: Dict[str, object] = {}

    def changes(self, root_module: nn.Module) -> List[Tuple[nn.Module, Dict[str, object]]]:
        """(module, {attribute: value}) to set in ``root_module``."""
        return []

    def apply(self, root_module: nn.Module) -> List[Canonizer]:
        """Make every change of :meth:`changes`; returns one applied instance per module."""
        instances = []
        for module, values in self.changes(root_module):
            instance = _AttributeChange()
            instance.register(module, values)
            instances.append(instance)
        return instances

    def register(self, module: nn.Module, values: Dict[str, object]) -> None:
        """Set ``values`` on ``module``, remembering what was there."""
        self.module = module
        self.previous = {key: vars(module).get(key, _MISSING) for key in values}
        for key, value in values.items():
            setattr(module, key, value)

    def remove(self) -> None:
        """Restore the attributes as they were before :meth:`register`."""
        for key, value in self.previous.items():
            if value is _MISSING:
                vars(self.module).pop(key, None)
            else:
                setattr(self.module, key, value)


class PreActivationBatchNorm(_AttributeChange):
    """Mark the BatchNorms of :func:`pre_activation_batch_norms` as pass-through (:data:`PASS_THROUGH`).

    Their parameters stay as they are. zennit's composites give every BatchNorm the
    ``Pass`` rule (``layer_map_base``): the relevance of its output reaches its input
    unchanged. The mark only records that this is intended, and correct, for these
    BatchNorms (see ``docs/lrp.md``).
    """

    def changes(self, root_module):
        return [(norm, {PASS_THROUGH: True}) for norm in pre_activation_batch_norms(root_module)]


class DenseLayerWithoutCheckpoints(_AttributeChange):
    """Run dense layers built with ``memory_efficient=True`` without gradient checkpointing.

    Checkpointing recomputes the bottleneck during the backward pass, which would run
    its hooked layers a second time; the plain forward computes the same function.
    """

    def changes(self, root_module):
        return [(module, {"memory_efficient": False}) for module in root_module.modules()
                if isinstance(module, _TorchvisionDenseLayer) and module.memory_efficient]


class DenseNetHeadCanonizer(AttributeCanonizer):
    """Give torchvision's ``DenseNet`` a forward whose final ReLU and average pool are modules.

    ``DenseNet.forward`` ends with ``F.relu``, ``F.adaptive_avg_pool2d`` and the
    classifier. zennit gives rules to modules only, so the functional pool would pass
    relevance by its plain gradient (evenly over positions, whatever their
    activation) and lose the relevance of positions where the ReLU is off. As
    modules, they get the ``Pass`` and ``Norm`` rules, as in ResNet. The attributes
    are removed again on removal, which restores the class's ``forward``.
    """

    def __init__(self):
        super().__init__(self._attribute_map)

    @classmethod
    def _attribute_map(cls, name: str, module: nn.Module):
        if isinstance(module, DenseNet) and type(module).forward is DenseNet.forward:
            return {
                "forward": cls.forward.__get__(module),
                "canonizer_relu": nn.ReLU(),
                "canonizer_pool": nn.AdaptiveAvgPool2d((1, 1)),
            }
        return None

    @staticmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """torchvision's ``DenseNet.forward`` with the head's functions as modules."""
        features = self.features(x)
        out = self.canonizer_pool(self.canonizer_relu(features))
        return self.classifier(torch.flatten(out, 1))

    def copy(self) -> "DenseNetHeadCanonizer":
        return DenseNetHeadCanonizer()


class TransitionPoolFirst(AttributeCanonizer):
    """Run each transition's average pool before its 1x1 convolution instead of after it.

    A transition is BatchNorm -> ReLU -> 1x1 conv -> 2x2 average pool. The convolution's
    output is signed, and LRP's ``Norm`` rule for the pool divides by the average of
    signed values, which can be near 0: the relevance then grows by orders of
    magnitude, with both signs. A 1x1 convolution and an average pool without padding
    commute exactly (both are linear, one over channels, one over positions), and with
    the pool first the ``Norm`` rule sees the ReLU's non-negative output. The pair is
    then explained as the merged 2x2 stride-2 convolution would be under the
    convolution's rule: relevance in proportion to each input's contribution.
    """

    def __init__(self):
        super().__init__(self._attribute_map)

    @classmethod
    def _attribute_map(cls, name: str, module: nn.Module):
        if isinstance(module, _TorchvisionTransition) and cls._commutes(module):
            return {"forward": cls.forward.__get__(module)}
        return None

    @staticmethod
    def _commutes(transition: nn.Module) -> bool:
        children = dict(transition.named_children())
        conv, pool = children.get("conv"), children.get("pool")
        return (type(transition).forward is nn.Sequential.forward and list(children) == ["norm", "relu", "conv", "pool"]
                and isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.stride == (1, 1)
                and conv.padding in ((0, 0), "valid") and conv.dilation == (1, 1)
                and isinstance(pool, nn.AvgPool2d) and pool.padding in (0, (0, 0)) and pool.divisor_override is None)

    @staticmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """torchvision's transition with the pool and the convolution swapped."""
        return self.conv(self.pool(self.relu(self.norm(x))))

    def copy(self) -> "TransitionPoolFirst":
        return TransitionPoolFirst()


class DenseNetCanonizer(CompositeCanonizer):
    """Canonizer for torchvision DenseNets (densenet121/161/169/201) and models built from their blocks.

    Applies, in this order, :class:`DenseNetMergeBatchNorm` (``norm0`` and every
    ``norm2`` merged into the convolution before them), :class:`PreActivationBatchNorm`
    (``norm1``, transition norms and ``norm5`` marked as pass-through),
    :class:`DenseLayerWithoutCheckpoints`, :class:`TransitionPoolFirst` (each
    transition pools before its 1x1 convolution) and :class:`DenseNetHeadCanonizer`
    (the head's ReLU and average pool as modules).
    The merges come first: they are the only step that can fail, and then nothing
    else has been changed yet. ``remove()`` on the returned instances restores the
    model exactly.
    """

    def __init__(self):
        super().__init__((DenseNetMergeBatchNorm(), PreActivationBatchNorm(), DenseLayerWithoutCheckpoints(),
                          TransitionPoolFirst(), DenseNetHeadCanonizer()))
