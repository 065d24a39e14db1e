"""DenseNet for LRP: the canonizer against a DenseNet folded by hand, conservation, both backends, restoring.

The reference (:class:`FoldedDenseNet`) is the same network written out plainly: the
BatchNorms after ``conv0`` and each ``conv1`` folded by hand into those convolutions,
every other BatchNorm an explicit per-channel affine layer (``x * scale + shift``)
given zennit's ``Pass`` rule, each transition pooling before its 1x1 convolution, and
the head's ReLU and average pool as modules. zennit explains it with no canonizer at
all; the canonized torchvision DenseNet must give the same heatmaps.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from zennit.composites import EpsilonPlusFlat
from zennit.rules import Pass

from precompute.errors import ModelError
from precompute.lrp import COMPOSITES, Attributor, relative_l2
from precompute.models import canonizers_for, check_canonized, make_merged_batchnorm_exact, normalize
from precompute.models.densenet import (
    PASS_THROUGH,
    DenseNetCanonizer,
    DenseNetMergeBatchNorm,
    PreActivationBatchNorm,
    TransitionPoolFirst,
    merge_pairs,
    pre_activation_batch_norms,
)
from tests.helpers.tiny_models import densenet_like

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STABILIZER_SLACK = 1e-5  # each stabilised division may absorb about 1e-6 of relevance
#: In float64 the two agree to about 3e-14 (relative L2): the same arithmetic, rounded differently.
EXACT_TOLERANCE = 1e-10
#: In float32 the folded weights are rounded differently: measured up to about 6e-7.
FLOAT32_TOLERANCE = 1e-5


def small_densenet(num_classes: int = 3, seed: int = 0, memory_efficient: bool = False) -> nn.Module:
    """torchvision's DenseNet class, two blocks and a transition, for 32x32 inputs."""
    torch.manual_seed(seed)
    return torchvision.models.DenseNet(growth_rate=8, block_config=(2, 3), num_init_features=16, bn_size=2,
                                       num_classes=num_classes, memory_efficient=memory_efficient)


def trained_statistics(model: nn.Module, seed: int = 0, bias_free: bool = False) -> nn.Module:
    """Give every BatchNorm trained-looking statistics, some scales negative; returns the model in eval mode.

    With ``bias_free``, the BatchNorms that get merged (``norm0``, ``norm2``) have no
    shift and the classifier no bias, so the canonized model has no bias anywhere
    relevance could go: the pass-through BatchNorms keep their shifts, which their
    rule gives no relevance.
    """
    generator = torch.Generator().manual_seed(seed)
    merged = {id(norm) for _, norm in merge_pairs(model)}
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                shape = module.weight.shape
                sign = torch.where(torch.rand(shape, generator=generator) < 0.1, -1.0, 1.0)
                module.weight.copy_(sign * (torch.rand(shape, generator=generator) + 0.5))
                module.bias.copy_(0.2 * torch.randn(shape, generator=generator))
                module.running_mean.copy_(0.2 * torch.randn(shape, generator=generator))
                module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
                if bias_free and id(module) in merged:
                    module.bias.zero_()
                    module.running_mean.zero_()
            elif isinstance(module, nn.Linear) and bias_free:
                module.bias.zero_()
    return model.eval()


def _images(batch, size, seed=0):
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _attribute(model, images, targets, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback from the fast path warns: fail on it
        with Attributor(model, device="cpu", **options) as attributor:
            return attributor.attribute(images, targets), attributor.backend_


# ---- the reference: DenseNet folded by hand --------------------------------------------


class ChannelAffine(nn.Module):
    """``x * scale + shift`` per channel: an eval-mode BatchNorm written out."""

    def __init__(self, norm: nn.BatchNorm2d):
        super().__init__()
        scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
        self.register_buffer("scale", scale[None, :, None, None].clone())
        self.register_buffer("shift", (norm.bias.detach() - norm.running_mean * scale)[None, :, None, None].clone())

    def forward(self, features):
        return features * self.scale + self.shift


def folded_conv(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """``norm(conv(x))`` as one convolution."""
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                       bias=True, dtype=conv.weight.dtype)
    scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
    with torch.no_grad():
        folded.weight.copy_(conv.weight * scale[:, None, None, None])
        folded.bias.copy_(norm.bias - norm.running_mean * scale)
    return folded


class FoldedDenseNet(nn.Module):
    """A torchvision DenseNet rewritten without BatchNorm, registered in the order it runs."""

    def __init__(self, densenet: nn.Module):
        super().__init__()
        features = densenet.features
        self.conv0 = folded_conv(features.conv0, features.norm0)
        self.relu0, self.pool0 = nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        self.blocks, self.transitions = nn.ModuleList(), nn.ModuleList()
        for name, child in features.named_children():
            if name.startswith("denseblock"):
                self.blocks.append(nn.ModuleList(
                    nn.ModuleDict({"affine": ChannelAffine(layer.norm1), "relu1": nn.ReLU(),
                                   "conv1": folded_conv(layer.conv1, layer.norm2), "relu2": nn.ReLU(),
                                   "conv2": layer.conv2})
                    for layer in child.values()))
            elif name.startswith("transition"):
                # Pool first: a 1x1 convolution and an average pool commute.
                self.transitions.append(nn.Sequential(ChannelAffine(child.norm), nn.ReLU(), child.pool, child.conv))
        self.affine5, self.relu5, self.pool5 = ChannelAffine(features.norm5), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        self.classifier = densenet.classifier

    def forward(self, images):
        out = self.pool0(self.relu0(self.conv0(images)))
        for index, block in enumerate(self.blocks):
            features = [out]
            for layer in block:
                bottleneck = layer["relu1"](layer["affine"](torch.cat(features, 1)))
                features.append(layer["conv2"](layer["relu2"](layer["conv1"](bottleneck))))
            out = torch.cat(features, 1)
            if index < len(self.transitions):
                out = self.transitions[index](out)
        out = self.pool5(self.relu5(self.affine5(out)))
        return self.classifier(out.flatten(1))


def _relevance(model, composite, inputs, targets):
    """zennit's relevance (B, H, W) with ``composite`` registered, starting at the target logits."""
    composite.register(model)
    try:
        make_merged_batchnorm_exact(composite.handles)  # as the Attributor does; none in the folded model
        inputs = inputs.clone().requires_grad_(True)
        output = model(inputs)
        one_hot = torch.nn.functional.one_hot(targets, output.shape[1]).to(output.dtype)
        (relevance,) = torch.autograd.grad(output, inputs, grad_outputs=output * one_hot)
    finally:
        composite.remove()
    return relevance.sum(1).detach().numpy(), output.detach().numpy()


def reference_heatmaps(model, inputs, targets):
    """zennit's epsilon_plus_flat on :class:`FoldedDenseNet`, the affine layers given ``Pass``, no canonizer."""
    folded = FoldedDenseNet(model).eval()
    assert not any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in folded.modules())
    return _relevance(folded, EpsilonPlusFlat(layer_map=[(ChannelAffine, Pass())]), inputs, targets)


# ---- choosing and applying the canonizer -----------------------------------------------


@pytest.fixture(scope="module")
def densenet121():
    torch.manual_seed(0)
    return trained_statistics(torchvision.models.densenet121(weights=None, num_classes=2))


def test_densenets_get_the_densenet_canonizer(densenet121):
    assert [type(canonizer) for canonizer in canonizers_for(densenet121)] == [DenseNetCanonizer]
    assert [type(canonizer) for canonizer in canonizers_for(small_densenet())] == [DenseNetCanonizer]
    assert canonizers_for(densenet_like()) == []  # BatchNorm before a conv outside DenseNet's blocks


def test_every_batchnorm_is_merged_or_passed_through_by_data_flow(densenet121):
    names = {id(module): name for name, module in densenet121.named_modules()}
    merged = {names[id(layer)]: names[id(norm)] for layer, norm in merge_pairs(densenet121)}
    passed = {names[id(norm)] for norm in pre_activation_batch_norms(densenet121)}
    all_norms = {name for name, module in densenet121.named_modules() if isinstance(module, nn.BatchNorm2d)}
    assert merged["features.conv0"] == "features.norm0"
    assert merged["features.denseblock1.denselayer1.conv1"] == "features.denseblock1.denselayer1.norm2"
    assert all(norm == layer[:-len("conv1")] + "norm2" for layer, norm in merged.items() if layer.endswith("conv1"))
    assert len(merged) == 1 + 58  # norm0 and the norm2 of DenseNet-121's 6 + 12 + 24 + 16 dense layers
    assert "features.norm5" in passed and "features.transition3.norm" in passed
    assert len(passed) == 58 + 3 + 1  # every norm1, the three transitions' norm, norm5
    assert set(merged.values()) | passed == all_norms and not set(merged.values()) & passed


def test_the_canonized_model_computes_the_same_function_and_is_restored(densenet121):
    images = normalize(_images(2, 64), "imagenet")
    state = {key: value.clone() for key, value in densenet121.state_dict().items()}
    modules_before = [name for name, _ in densenet121.named_modules()]
    with torch.no_grad():
        expected = densenet121(images)
        with pytest.raises(ModelError, match="unsupported for LRP"):
            check_canonized(densenet121, "densenet121")  # trained statistics, not canonized
        composite = EpsilonPlusFlat(canonizers=canonizers_for(densenet121))
        with composite.context(densenet121):
            assert make_merged_batchnorm_exact(composite.handles) == 59
            check_canonized(densenet121, "densenet121")
            canonized = densenet121(images)
            assert sum(bool(getattr(module, PASS_THROUGH, False)) for module in densenet121.modules()) == 62
            assert "forward" in vars(densenet121)
        after = densenet121(images)
    torch.testing.assert_close(canonized, expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(after, expected)
    assert [name for name, _ in densenet121.named_modules()] == modules_before
    assert "forward" not in vars(densenet121)
    assert not any(hasattr(module, PASS_THROUGH) for module in densenet121.modules())
    for key, value in densenet121.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_pass_through_batchnorms_must_use_running_statistics():
    model = trained_statistics(small_densenet())
    composite = EpsilonPlusFlat(canonizers=canonizers_for(model))
    with composite.context(model):
        model.features.transition1.norm.train()
        with pytest.raises(ModelError, match=r"1 of \d+ BatchNorm layers \('features.transition1.norm'\)"):
            check_canonized(model)
    model.eval()


# ---- relevance ---------------------------------------------------------------------------


def test_the_canonizer_equals_the_densenet_folded_by_hand_in_float64():
    """The same arithmetic: equal to rounding, with shifts everywhere and some negative scales."""
    model = trained_statistics(small_densenet()).double()
    inputs, targets = normalize(_images(3, 32, seed=1), "imagenet").double(), torch.tensor([0, 1, 2])
    expected, logits = reference_heatmaps(model, inputs, targets)
    heatmaps, canonized_logits = _relevance(model, EpsilonPlusFlat(canonizers=canonizers_for(model)), inputs,
                                            targets)
    np.testing.assert_allclose(canonized_logits, logits, rtol=1e-12, atol=1e-12)
    assert (np.abs(expected).sum(axis=(1, 2)) > 0).all()
    for index in range(len(inputs)):
        error = relative_l2(heatmaps[index], expected[index])
        assert error <= EXACT_TOLERANCE, (index, error)


@pytest.mark.parametrize("backend", ["fast", "zennit"])
def test_attributor_heatmaps_equal_the_densenet_folded_by_hand(backend):
    model = trained_statistics(small_densenet())
    images, targets = _images(3, 32, seed=1), torch.tensor([0, 1, 2])
    expected, logits = reference_heatmaps(model, normalize(images, "imagenet"), targets)
    result, used = _attribute(model, images, targets, backend=backend)
    assert used == backend
    np.testing.assert_allclose(result.logits, logits, rtol=1e-5, atol=1e-6)
    for index in range(len(images)):
        error = relative_l2(result.heatmaps[index], expected[index])
        assert error <= FLOAT32_TOLERANCE, (index, error)


@pytest.mark.parametrize("composite", sorted(set(COMPOSITES.names()) - {"gradient"}))
def test_relevance_is_conserved(composite):
    """With no bias left after merging, every map sums to the explained logit, on both backends.

    The pass-through BatchNorms keep their shifts, which their rule gives no relevance;
    "gradient" is left out, since gradient x input sums to the logit only without any bias.
    """
    model = trained_statistics(small_densenet(), bias_free=True)
    images, targets = _images(3, 32, seed=2), torch.tensor([0, 1, 2])
    results = {}
    for backend in ("fast", "zennit"):
        results[backend], used = _attribute(model, images, targets, composite=composite, backend=backend)
        assert used == backend
        result = results[backend]
        logits = result.logits[np.arange(3), targets.numpy()]
        assert np.abs(logits).min() > 1e-2  # so the sums are not trivially 0
        np.testing.assert_allclose(result.heatmaps.sum(axis=(1, 2)), logits, rtol=1e-4, atol=STABILIZER_SLACK,
                                   err_msg=f"{composite} {backend}")
    assert relative_l2(results["fast"].heatmaps, results["zennit"].heatmaps) <= 1e-5


@pytest.mark.parametrize("seed", range(5))
def test_heatmaps_are_well_conditioned(seed):
    """float32 heatmaps agree with float64 ones: no division by a near-zero sum amplifies rounding.

    With the transitions' pool after their convolution (as torchvision runs them), the
    ``Norm`` rule divides by averages of signed values; for seed 3 the float32 map then
    differed from the float64 one by 3.5e-3 and the fast path's first-image check
    (1e-4) failed on rounding alone.
    """
    images, targets = _images(2, 32, seed=3), torch.tensor([1, 2])
    inputs = normalize(images, "imagenet")
    maps = [_relevance(trained_statistics(small_densenet(), seed=seed).to(dtype),
                       EpsilonPlusFlat(canonizers=[DenseNetCanonizer()]), inputs.to(dtype), targets)[0]
            for dtype in (torch.float32, torch.float64)]
    assert relative_l2(maps[0], maps[1]) <= 1e-5


def test_without_the_head_canonizer_relevance_is_lost():
    """Why the head is canonized: the functional pool and ReLU drop the relevance of switched-off positions."""
    model = trained_statistics(small_densenet(), bias_free=True)
    images, targets = _images(3, 32, seed=2), torch.tensor([0, 1, 2])
    canonizers = [DenseNetMergeBatchNorm(), PreActivationBatchNorm(), TransitionPoolFirst()]
    result, _ = _attribute(model, images, targets, canonizers=canonizers, backend="zennit")
    logits = result.logits[np.arange(3), targets.numpy()]
    assert np.abs(result.heatmaps.sum(axis=(1, 2)) - logits).max() > 1e-2 * np.abs(logits).max()


def test_memory_efficient_dense_layers_run_without_checkpoints_while_explained():
    plain = trained_statistics(small_densenet(), seed=3)
    checkpointed = trained_statistics(small_densenet(memory_efficient=True), seed=3)
    images, targets = _images(2, 32, seed=3), torch.tensor([1, 2])
    expected, _ = _attribute(plain, images, targets, backend="fast")
    result, used = _attribute(checkpointed, images, targets, backend="fast")
    assert used == "fast"
    assert relative_l2(result.heatmaps, expected.heatmaps) <= 1e-6
    layers = [module for module in checkpointed.modules() if hasattr(module, "memory_efficient")]
    assert layers and all(layer.memory_efficient for layer in layers)  # restored


def test_densenet121_heatmaps_at_64_pixels(densenet121):
    """The paper's appendix model: fast path without fallback, equal to zennit, finite and not all zero."""
    images, targets = _images(2, 64, seed=4), torch.tensor([0, 1])
    fast, used = _attribute(densenet121, images, targets, backend="auto")
    assert used == "fast"
    zennit, _ = _attribute(densenet121, images, targets, backend="zennit")
    assert np.isfinite(fast.heatmaps).all() and (np.abs(fast.heatmaps).sum(axis=(1, 2)) > 0).all()
    assert relative_l2(fast.heatmaps, zennit.heatmaps) <= 1e-5
