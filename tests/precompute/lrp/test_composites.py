"""The one registry of composites: each entry's zennit composite and fast rules belong together."""
from __future__ import annotations

import pytest
import torch
from zennit.composites import EpsilonPlus
from zennit.torchvision import ResNetCanonizer

from precompute.errors import ModelError
from precompute.lrp import COMPOSITES, Attributor, CompositeSpec, GradientTimesInput
from precompute.models import input_bounds
from tests.helpers.tiny_models import tiny_resnet18, tiny_vgg_bn

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _assigned_rules(composite, model):
    """zennit rule classes the composite gives the model's modules, as ``Composite.register`` assigns them."""
    context: dict = {}
    templates = (composite.module_map(context, name, module) for name, module in model.named_modules())
    return {type(template) for template in templates if template is not None}


@pytest.mark.parametrize("name", COMPOSITES.names())
def test_fast_rules_cover_every_rule_the_zennit_composite_assigns(name):
    spec = COMPOSITES.get(name)
    low, high = input_bounds("imagenet")
    assert isinstance(spec, CompositeSpec) and spec.name == name
    rules = spec.fast_rules(low, high)
    assert rules is not None, f"{name} has no fast path"
    for model in (tiny_vgg_bn(), tiny_resnet18()):
        composite = spec([], low, high)
        assigned = _assigned_rules(composite, model)
        assert assigned <= set(rules), (name, assigned - set(rules))
        assert {rule.zennit_rule for rule in rules.values()} == set(rules)
        assert bool(assigned) != isinstance(composite, GradientTimesInput), name  # only "gradient" has no rules


def test_calling_an_entry_builds_its_zennit_composite():
    low, high = input_bounds("imagenet")
    canonizers = [ResNetCanonizer()]
    composite = COMPOSITES.get("epsilon_plus")(canonizers, low, high)
    assert isinstance(composite, EpsilonPlus) and composite.canonizers == canonizers
    assert COMPOSITES.get("epsilon_gamma_box").fast_rules(low, high) is not COMPOSITES.get(
        "epsilon_gamma_box").fast_rules(low, high)  # fresh rules for every attributor


def test_a_composite_without_fast_rules_uses_zennit(monkeypatch):
    spec = CompositeSpec("zennit_only", zennit=lambda canonizers, low, high: EpsilonPlus(canonizers=canonizers))
    monkeypatch.setitem(COMPOSITES._items, spec.name, spec)  # registered for this test only
    model, images, targets = tiny_vgg_bn(), torch.rand(1, 3, 16, 16), torch.tensor([1])
    with Attributor(model, composite="zennit_only", device="cpu") as attributor:
        result = attributor.attribute(images, targets)
        assert attributor.backend_ == "zennit"
        assert "composite 'zennit_only' has no fast implementation" in attributor.fallback_reason_
    with Attributor(model, composite="epsilon_plus", device="cpu", backend="zennit") as attributor:
        reference = attributor.attribute(images, targets)
    torch.testing.assert_close(torch.from_numpy(result.heatmaps), torch.from_numpy(reference.heatmaps),
                               rtol=0, atol=0)
    with pytest.raises(ModelError, match="backend 'fast' cannot explain.*no fast implementation"):
        with Attributor(model, composite="zennit_only", device="cpu", backend="fast"):
            pass
