"""The hook-free LRP path against zennit: equality per composite and architecture, fallback, CLI."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from zennit.core import stabilize as zennit_stabilize
from zennit.layer import Sum
from zennit.rules import Norm

from precompute.cli import main
from precompute.demo.model import build_demo_model
from precompute.errors import ConfigError, ModelError
from precompute.lrp import COMPOSITES, Attributor, FastLRP, fast_rules, relative_l2, stabilize
from precompute.models import canonizers_for, input_bounds, make_merged_batchnorm_exact, normalize
from tests.helpers.tolerance import assert_close_to_scale
from tests.helpers.tiny_data import make_image_folder
from tests.helpers.tiny_models import RegionModel, random_batchnorm, tiny_vgg_bn, write_model_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Every composite the fast path implements ("gradient" has no rules at all).
FAST_COMPOSITES = ["epsilon_plus_flat", "epsilon_plus", "epsilon_alpha2_beta1_flat", "epsilon_gamma_box", "gradient"]
#: Measured: 0 (bitwise equal) for most cases, about 1e-7 for z-box; the goal is 1e-4.
TOLERANCE = 1e-5



def _images(batch, size, seed=0):
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _attribute(model, images, targets, **options):
    with Attributor(model, device="cpu", **options) as attributor:
        result = attributor.attribute(images, targets)
        return result, attributor.backend_, attributor.fallback_reason_


def _assert_same_as_zennit(model, images, targets, composite, **options):
    fast, backend, reason = _attribute(model, images, targets, composite=composite, backend="fast", **options)
    zennit, _, _ = _attribute(model, images, targets, composite=composite, backend="zennit", **options)
    assert backend == "fast" and reason is None
    for index in range(len(images)):  # per heatmap, so a small map is not hidden by a large one
        error = relative_l2(fast.heatmaps[index], zennit.heatmaps[index])
        assert error <= TOLERANCE, (composite, index, error)
    np.testing.assert_allclose(fast.logits, zennit.logits, rtol=1e-6, atol=1e-6)
    assert np.abs(zennit.heatmaps).sum() > 0


# ---- equality with zennit ------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return random_batchnorm(torchvision.models.resnet18(weights=None, num_classes=5))


@pytest.fixture(scope="module")
def vgg11():
    torch.manual_seed(0)
    return torchvision.models.vgg11(weights=None, num_classes=5).eval()


@pytest.fixture(scope="module")
def demo_model():
    torch.manual_seed(0)
    return random_batchnorm(build_demo_model(4))


@pytest.mark.parametrize("composite", FAST_COMPOSITES)
def test_tiny_vgg_bn_equals_zennit(composite):
    _assert_same_as_zennit(tiny_vgg_bn(num_classes=3), _images(3, 16), torch.tensor([0, 1, 2]), composite)


@pytest.mark.parametrize("composite", FAST_COMPOSITES)
def test_resnet18_equals_zennit(resnet, composite):
    # ResNetCanonizer: merged BatchNorms, and the residual sum as a Sum module with the Norm rule.
    _assert_same_as_zennit(resnet, _images(2, 32, seed=1), torch.tensor([4, 1]), composite)


@pytest.mark.parametrize("composite", FAST_COMPOSITES)
def test_vgg11_equals_zennit(vgg11, composite):
    _assert_same_as_zennit(vgg11, _images(2, 32, seed=2), torch.tensor([0, 3]), composite)


@pytest.mark.parametrize("composite", FAST_COMPOSITES)
def test_demo_model_equals_zennit(demo_model, composite):
    _assert_same_as_zennit(demo_model, _images(2, 64, seed=3), torch.tensor([2, 0]), composite,
                           normalization="none")


def test_resnet_sums_get_the_norm_rule(resnet):
    low, high = input_bounds("imagenet")
    composite = COMPOSITES.get("epsilon_plus_flat")(canonizers_for(resnet), low, high)
    handles = []
    for canonizer in composite.canonizers:
        handles += canonizer.apply(resnet)
    try:
        fast = FastLRP(resnet, "epsilon_plus_flat", composite, low, high)
        sums = [name for name, module in resnet.named_modules() if isinstance(module, Sum)]
    finally:
        for handle in handles:
            handle.remove()
    assert len(sums) == 8
    assert [name for name, rule in fast.layers if rule is Norm] == sums + ["avgpool"]


def test_gelu_and_functional_ops_are_exact():
    """zennit gives every activation the Pass rule and leaves functional ops to the gradient, as the fast path."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.GELU(), nn.Conv2d(6, 6, 3, padding=1, groups=2), nn.Tanh(),
        nn.MaxPool2d(2), nn.Conv2d(6, 4, 3, stride=2), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4, 3),
    ).eval()
    for composite in FAST_COMPOSITES:
        _assert_same_as_zennit(model, _images(2, 12, seed=4), torch.tensor([0, 2]), composite)
    _assert_same_as_zennit(RegionModel(), _images(2, 24, seed=5), torch.tensor([1, 0]), "epsilon_plus_flat")


def test_batched_equals_one_at_a_time(resnet):
    images, targets = _images(3, 32, seed=6), torch.tensor([3, 0, 1])
    with Attributor(resnet, device="cpu", backend="fast") as attributor:
        batched = attributor.attribute(images, targets)
        singles = [attributor.attribute(images[i: i + 1], targets[i: i + 1]) for i in range(3)]
    assert_close_to_scale(batched.heatmaps, np.concatenate([s.heatmaps for s in singles]), rtol=1e-4, scale_tol=1e-5)
    assert_close_to_scale(batched.logits, np.concatenate([s.logits for s in singles]), rtol=1e-5, scale_tol=1e-5)


def test_stabilize_is_zennits_bit_for_bit():
    values = torch.tensor([-1.0, -1e-7, -0.0, 0.0, 1e-7, 2.0, float("nan"), float("inf"), -float("inf")])
    expected = zennit_stabilize(values, 1e-6)
    assert torch.equal(stabilize(values, 1e-6)[:6], expected[:6])
    assert torch.equal(stabilize(values, 1e-6)[7:], expected[7:])
    assert torch.isnan(stabilize(values, 1e-6)[6])


def test_bf16_autocast_runs_every_rule(resnet):
    """bf16 is for CUDA only; CPU autocast exercises the same dtype handling."""
    images = normalize(_images(2, 32, seed=7), "imagenet")
    low, high = input_bounds("imagenet")
    for name in FAST_COMPOSITES[:4]:
        composite = COMPOSITES.get(name)(canonizers_for(resnet), low, high)
        handles = []
        for canonizer in composite.canonizers:
            handles += canonizer.apply(resnet)
        make_merged_batchnorm_exact(handles)
        fast = FastLRP(resnet, name, composite, low, high).install()
        try:
            maps = []
            for autocast in (False, True):
                inputs = images.clone().requires_grad_(True)
                fast.begin_pass()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    output = resnet(inputs)
                assert output.dtype == (torch.bfloat16 if autocast else torch.float32)
                grad_outputs = output.detach() * nn.functional.one_hot(torch.tensor([0, 1]), 5).to(output.dtype)
                (relevance,) = torch.autograd.grad(output, inputs, grad_outputs)
                assert relevance.dtype == torch.float32 and torch.isfinite(relevance).all()
                maps.append(relevance.sum(1))
        finally:
            fast.remove()
            for handle in handles:
                handle.remove()
        assert relative_l2(maps[1], maps[0]) < 0.2, name


# ---- fallback ------------------------------------------------------------------------


class _CenteredConv(nn.Conv2d):
    """A Conv2d with its own forward: zennit re-runs it with modified weights, the closed forms cannot."""

    def forward(self, inputs):
        weight = self.weight - self.weight.mean(dim=(1, 2, 3), keepdim=True)
        return nn.functional.conv2d(inputs, weight, self.bias, self.stride, self.padding)


def _custom_layer_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), _CenteredConv(4, 4, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2),
    ).eval()


class _SharedConv(nn.Module):
    """Runs the same Conv2d twice: zennit keeps only the layer's last input."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.classifier = nn.Linear(3, 2)

    def forward(self, images):
        features = torch.relu(self.conv(torch.relu(self.conv(images))))
        return self.classifier(features.mean(dim=(2, 3)))


def test_auto_falls_back_to_zennit_for_a_custom_layer():
    model = _custom_layer_model()
    images, targets = _images(2, 8), torch.tensor([0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a model known to be unsupported falls back quietly
        auto, backend, reason = _attribute(model, images, targets)
    zennit, _, _ = _attribute(model, images, targets, backend="zennit")
    assert backend == "zennit" and "'2' (_CenteredConv)" in reason
    np.testing.assert_array_equal(auto.heatmaps, zennit.heatmaps)


def test_auto_falls_back_when_a_layer_runs_twice():
    model = _SharedConv().eval()
    images, targets = _images(2, 8), torch.tensor([0, 1])
    with pytest.warns(RuntimeWarning, match="'conv' .* runs twice"):
        with Attributor(model, device="cpu") as attributor:
            assert attributor.backend_ == "fast"  # noticed only while running
            first = attributor.attribute(images, targets)
            assert attributor.backend_ == "zennit"
            second = attributor.attribute(images, targets)
    zennit, _, _ = _attribute(model, images, targets, backend="zennit")
    np.testing.assert_array_equal(first.heatmaps, zennit.heatmaps)
    np.testing.assert_array_equal(second.heatmaps, zennit.heatmaps)


class _OverwrittenInput(nn.Module):
    """An in-place ReLU overwrites what conv2 read: zennit clones layer inputs, the fast path does not."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.classifier = nn.Linear(8, 2)

    def forward(self, images):
        hidden = self.conv1(images)
        other = self.conv2(hidden)
        hidden = self.relu(hidden)
        return self.classifier(torch.cat([hidden.mean(dim=(2, 3)), other.mean(dim=(2, 3))], dim=1))


def test_auto_falls_back_when_an_inplace_op_overwrites_a_layer_input():
    model = _OverwrittenInput().eval()
    images, targets = _images(2, 8), torch.tensor([0, 1])
    with pytest.warns(RuntimeWarning, match="modified by an inplace operation"):
        auto, backend, _ = _attribute(model, images, targets)
    zennit, _, _ = _attribute(model, images, targets, backend="zennit")
    assert backend == "zennit"
    np.testing.assert_array_equal(auto.heatmaps, zennit.heatmaps)


def test_auto_falls_back_when_the_first_image_differs(monkeypatch):
    """The first-batch check against zennit catches a fast rule that is wrong."""
    original = fast_rules.EpsilonRule.backward
    monkeypatch.setattr(fast_rules.EpsilonRule, "backward", lambda self, *args: 2 * original(self, *args))
    model = tiny_vgg_bn()
    images, targets = _images(2, 16), torch.tensor([0, 1])
    with pytest.warns(RuntimeWarning, match="differs from zennit's"):
        auto, backend, _ = _attribute(model, images, targets)
    zennit, _, _ = _attribute(model, images, targets, backend="zennit")
    assert backend == "zennit"
    np.testing.assert_array_equal(auto.heatmaps, zennit.heatmaps)
    with Attributor(model, device="cpu", backend="fast") as attributor:
        with pytest.raises(ModelError, match="backend 'fast' cannot explain.*differs from zennit's"):
            attributor.attribute(images, targets)


def test_backend_fast_refuses_unsupported_models():
    with pytest.raises(ModelError, match=r"backend 'fast' cannot explain model 'Sequential'.*"
                                         r"layer '2' \(_CenteredConv\).*Use backend 'auto'"):
        with Attributor(_custom_layer_model(), device="cpu", backend="fast"):
            pass
    with Attributor(_SharedConv().eval(), device="cpu", backend="fast") as attributor:
        with pytest.raises(ModelError, match="'conv' .* runs twice in one forward pass"):
            attributor.attribute(_images(1, 8), torch.tensor([0]))


def test_exit_restores_forwards_and_parameters(resnet):
    state = {key: value.clone() for key, value in resnet.state_dict().items()}
    with Attributor(resnet, device="cpu", backend="fast") as attributor:
        attributor.attribute(_images(1, 32), torch.tensor([0]))
        assert any("forward" in vars(module) for module in resnet.modules())
    assert not any("forward" in vars(module) for module in resnet.modules())
    for key, value in resnet.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_options_are_validated():
    model = tiny_vgg_bn()
    with pytest.raises(ConfigError, match="unknown LRP backend 'hooks'; known: auto, fast, zennit"):
        with Attributor(model, device="cpu", backend="hooks"):
            pass
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        with Attributor(model, device="cpu", precision="fp16"):
            pass
    for precision in ("tf32", "bf16"):
        with pytest.raises(ConfigError, match=f"precision '{precision}' is only for CUDA"):
            with Attributor(model, device="cpu", precision=precision):
                pass


# ---- command line --------------------------------------------------------------------


def test_cli_run_with_each_backend(tmp_path, capsys):
    data, _ = make_image_folder(tmp_path / "data", n=6, size=(32, 32))
    model_file = write_model_file(tmp_path)
    common = ["--data", str(data), "--model", f"{model_file}:build", "--num-classes", "3", "--image-size", "24",
              "--normalize", "none", "--classes", "bee", "--quiet", "--workers", "0", "--maps", "tsne"]
    stores = {}
    for backend in ("fast", "zennit"):
        out = tmp_path / backend
        assert main(["run", *common, "--out", str(out), "--lrp-backend", backend]) == 0
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["run"]["lrp_backend"] == backend and manifest["run"]["precision"] == "fp32"
        stores[backend] = np.load(out / "classes" / "c0001" / "heatmaps.npy").astype(np.float32)
    assert relative_l2(stores["fast"], stores["zennit"]) < 1e-3  # stored as float16

    out = tmp_path / "bf16"
    assert main(["run", *common, "--out", str(out), "--device", "cpu", "--precision", "bf16"]) == 2
    assert "precision 'bf16' is only for CUDA" in capsys.readouterr().err
