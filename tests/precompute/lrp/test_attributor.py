"""Predictions and LRP heatmaps: references written by hand, conservation, locality, batching."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from zennit.canonizers import SequentialMergeBatchNorm

from precompute.errors import ConfigError, ModelError
from precompute.lrp import COMPOSITES, Attributor, AttributionResult, predictions_from_logits
from precompute.models import input_bounds, normalize
from tests.helpers.tolerance import assert_close_to_scale
from tests.helpers.tiny_models import (
    ClassifierFirstModel,
    MisorderedBatchNorm,
    RegionModel,
    dense_reference_model,
    densenet_like,
    make_bias_free,
    tiny_resnet18,
    tiny_vgg_bn,
)

EPSILON = 1e-6  # zennit's default epsilon and stabilizer
STABILIZER_SLACK = 1e-5  # each epsilon-stabilised division may absorb about EPSILON of relevance


def _images(batch, size, seed=0):
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _target_logits(result: AttributionResult, targets) -> np.ndarray:
    return result.logits[np.arange(len(targets)), np.asarray(targets)]


def _hooks_left(model: nn.Module) -> int:
    return sum(
        len(module._forward_hooks) + len(module._forward_pre_hooks) + len(module._backward_hooks)
        for module in model.modules()
    )


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ---- predictions ---------------------------------------------------------------------


def _reference_predictions(logits, targets, k):
    """Plain loops: sort each row by (-logit, class index)."""
    top_classes, top_probs, true_probs, true_ranks = [], [], [], []
    for row, target in zip(logits, targets):
        order = sorted(range(len(row)), key=lambda index: (-row[index], index))
        probs = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
        top_classes.append(order[:k])
        top_probs.append([probs[index] for index in order[:k]])
        true_probs.append(probs[target])
        true_ranks.append(order.index(target) + 1)
    return np.array(top_classes), np.array(top_probs), np.array(true_probs), np.array(true_ranks)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_predictions_match_a_plain_reference(k):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20, 7)).astype(np.float32)
    targets = rng.integers(0, 7, size=20)
    predictions = predictions_from_logits(logits, targets, k=k)
    top_classes, top_probs, true_prob, true_rank = _reference_predictions(logits.astype(np.float64), targets, k)

    np.testing.assert_array_equal(predictions.top_classes, top_classes)
    np.testing.assert_allclose(predictions.top_probs, top_probs, rtol=1e-6)
    np.testing.assert_allclose(predictions.true_prob, true_prob, rtol=1e-6)
    np.testing.assert_array_equal(predictions.true_rank, true_rank)
    assert predictions.top_classes.dtype == np.int64 and predictions.true_rank.dtype == np.int64
    assert predictions.top_probs.dtype == np.float32 and predictions.true_prob.dtype == np.float32
    assert predictions.top_classes.shape == (20, k) and predictions.true_rank.shape == (20,)


def test_predictions_ties_go_to_the_lower_class_and_ranks_agree():
    logits = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    predictions = predictions_from_logits(logits, np.array([2, 0]), k=2)
    np.testing.assert_array_equal(predictions.top_classes, [[1, 2], [0, 1]])
    np.testing.assert_array_equal(predictions.true_rank, [2, 1])
    np.testing.assert_allclose(predictions.true_prob[1], 0.25)
    reference = _reference_predictions(logits, [2, 0], 2)
    np.testing.assert_array_equal(predictions.top_classes, reference[0])
    np.testing.assert_array_equal(predictions.true_rank, reference[3])


def test_predictions_clip_k_and_accept_tensors():
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    predictions = predictions_from_logits(logits, torch.tensor([0]), k=5)
    np.testing.assert_array_equal(predictions.top_classes, [[2, 1, 0]])
    np.testing.assert_array_equal(predictions.true_rank, [3])
    np.testing.assert_allclose(predictions.top_probs.sum(), 1.0, rtol=1e-6)


def test_predictions_reject_bad_targets():
    with pytest.raises(ConfigError, match=r"targets must lie in \[0, 3\)"):
        predictions_from_logits(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ConfigError, match="targets must be integers of shape"):
        predictions_from_logits(np.zeros((2, 3)), np.array([0.0, 1.0]))


# ---- composites against hand-written LRP ---------------------------------------------


def _stabilize(values):
    """zennit's stabilizer: add epsilon with the sign of each entry (+ for 0)."""
    return values + EPSILON * np.where(values >= 0, 1.0, -1.0)


def _reference_heatmap(model, images, target, first_rule):
    """LRP by hand for ``dense_reference_model``: first rule on the full-image conv, epsilon on the Linear.

    Returns relevance of shape (H, W), summed over channels, for one image (3, H, W).
    """
    conv, _, _, linear = model
    x = normalize(images[None], "imagenet")[0].double().numpy().ravel()  # (D,)
    w1 = conv.weight.detach().double().numpy().reshape(conv.out_channels, -1)  # (J, D)
    b1 = conv.bias.detach().double().numpy()
    w2 = linear.weight.detach().double().numpy()  # (C, J)
    b2 = linear.bias.detach().double().numpy()

    hidden = np.maximum(w1 @ x + b1, 0)
    logits = w2 @ hidden + b2
    # Epsilon rule on the Linear, relevance starting at the target's logit.
    relevance_hidden = hidden * w2[target] * logits[target] / _stabilize(logits[target])  # (J,)

    w_pos, w_neg = np.clip(w1, 0, None), np.clip(w1, None, 0)
    if first_rule == "zplus":  # alpha1-beta0 for signed inputs, positive bias in the denominator
        x_pos, x_neg = np.clip(x, 0, None), np.clip(x, None, 0)
        contributions = x_pos * w_pos + x_neg * w_neg  # (J, D)
        denominator = contributions.sum(axis=1) + np.clip(b1, 0, None)
    elif first_rule == "flat":  # every input of the receptive field counts the same
        contributions = np.ones_like(w1)
        denominator = contributions.sum(axis=1)
    elif first_rule == "zbox":  # bounded by the normalised images of 0 and 1
        low, high = (bound.double().numpy().repeat(x.size // 3) for bound in input_bounds("imagenet"))
        contributions = x * w1 - low * w_pos - high * w_neg
        denominator = contributions.sum(axis=1)
    else:
        raise ValueError(first_rule)
    relevance_input = (contributions * (relevance_hidden / _stabilize(denominator))[:, None]).sum(axis=0)
    return relevance_input.reshape(3, *images.shape[1:]).sum(axis=0)


@pytest.mark.parametrize(
    "composite, first_rule",
    [("epsilon_plus", "zplus"), ("epsilon_plus_flat", "flat"), ("epsilon_gamma_box", "zbox")],
)
def test_composites_match_hand_written_lrp(composite, first_rule):
    model = dense_reference_model()
    images = torch.rand(4, 3, 2, 3, generator=torch.Generator().manual_seed(3))
    targets = torch.tensor([0, 1, 2, 1])
    with Attributor(model, composite=composite, device="cpu") as attributor:
        result = attributor.attribute(images, targets)
    for index in range(4):
        expected = _reference_heatmap(model, images[index], int(targets[index]), first_rule)
        np.testing.assert_allclose(result.heatmaps[index], expected, rtol=1e-4, atol=1e-6)


def test_gradient_composite_is_gradient_times_normalised_input():
    model = dense_reference_model()
    images = torch.rand(2, 3, 2, 3, generator=torch.Generator().manual_seed(4))
    targets = torch.tensor([2, 0])
    with Attributor(model, composite="gradient", device="cpu") as attributor:
        result = attributor.attribute(images, targets)
    inputs = normalize(images, "imagenet").requires_grad_()
    (gradient,) = torch.autograd.grad(model(inputs)[[0, 1], targets].sum(), inputs)
    np.testing.assert_allclose(result.heatmaps, (gradient * inputs).sum(1).detach().numpy(), rtol=1e-5, atol=1e-7)


def test_every_registered_composite_conserves_the_logit_of_a_bias_free_model():
    """Every rule here is conservative without biases: each map sums to the explained logit."""
    model = tiny_vgg_bn(num_classes=3)  # bias-free once its BatchNorms are merged
    images, targets = _images(2, 16), torch.tensor([0, 2])
    required = {"epsilon_plus_flat", "epsilon_plus", "epsilon_alpha2_beta1_flat", "epsilon_gamma_box", "gradient"}
    assert required <= set(COMPOSITES.names())
    for name in COMPOSITES:
        with Attributor(model, composite=name, device="cpu") as attributor:
            result = attributor.attribute(images, targets)
        assert result.heatmaps.shape == (2, 16, 16) and result.heatmaps.dtype == np.float32, name
        assert result.logits.shape == (2, 3) and result.logits.dtype == np.float32, name
        with torch.no_grad():
            logits = model(normalize(images, "imagenet")).numpy()
        assert_close_to_scale(result.logits, logits, rtol=1e-5, scale_tol=1e-5)
        np.testing.assert_allclose(result.heatmaps.sum(axis=(1, 2)), _target_logits(result, targets),
                                   rtol=1e-4, atol=STABILIZER_SLACK, err_msg=name)
        assert np.abs(_target_logits(result, targets)).min() > 1e-2, name  # so the sums are not trivially 0


def test_unknown_composite():
    with pytest.raises(ConfigError, match="unknown composite 'lrp_magic'; known: epsilon_alpha2_beta1_flat"):
        with Attributor(tiny_vgg_bn(), composite="lrp_magic", device="cpu"):
            pass


# ---- conservation with canonizers ----------------------------------------------------


@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "gradient"])
def test_vgg_with_batchnorm_conserves_relevance(composite):
    model = tiny_vgg_bn(num_classes=3)
    images, targets = _images(4, 16, seed=1), torch.tensor([0, 1, 2, 0])
    with Attributor(model, composite=composite, device="cpu") as attributor:
        result = attributor.attribute(images, targets)
    np.testing.assert_allclose(
        result.heatmaps.sum(axis=(1, 2)), _target_logits(result, targets), rtol=1e-4, atol=STABILIZER_SLACK
    )


@pytest.fixture(scope="module")
def resnet():
    return tiny_resnet18(num_classes=4)


def test_resnet_with_canonizer_conserves_relevance(resnet):
    images, targets = _images(4, 32, seed=2), torch.tensor([0, 1, 2, 3])
    with Attributor(resnet, composite="epsilon_plus_flat", device="cpu") as attributor:
        result = attributor.attribute(images, targets)
    np.testing.assert_allclose(
        result.heatmaps.sum(axis=(1, 2)), _target_logits(result, targets), rtol=1e-4, atol=STABILIZER_SLACK
    )


def test_resnet_without_canonizer_breaks_conservation(resnet):
    """Without ResNetCanonizer the residual '+' copies relevance into both branches."""
    images, targets = _images(4, 32, seed=2), torch.tensor([0, 1, 2, 3])
    with Attributor(
        resnet, composite="epsilon_plus_flat", canonizers=[], device="cpu", check_batchnorm=False
    ) as attributor:
        result = attributor.attribute(images, targets)
    ratio = result.heatmaps.sum(axis=(1, 2)) / _target_logits(result, targets)
    assert np.all(np.abs(ratio) > 10), ratio


def test_resnet_without_canonizer_is_refused_by_default(resnet):
    with pytest.raises(ModelError, match="BatchNorm"):
        with Attributor(resnet, canonizers=[], device="cpu"):
            pass
    assert _hooks_left(resnet) == 0


def test_densenet_like_model_is_refused_and_left_clean():
    model = densenet_like()
    state = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(ModelError, match="unsupported for LRP.*DenseNet"):
        with Attributor(model, device="cpu"):
            pass
    assert _hooks_left(model) == 0
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_canonizers_that_change_the_outputs_are_refused():
    model = MisorderedBatchNorm()
    state = {key: value.clone() for key, value in model.state_dict().items()}
    with Attributor(model, device="cpu") as attributor:
        with pytest.raises(ModelError, match="unsupported for LRP.*change its outputs"):
            attributor.attribute(_images(1, 8), torch.tensor([0]))
    assert _hooks_left(model) == 0
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_canonizer_that_cannot_merge_is_refused_and_undone():
    # Registration order pairs conv(8 outputs) with a fitting BatchNorm, then conv(5 outputs) with one of 8.
    model = make_bias_free(
        nn.Sequential(
            nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 5, 3), nn.BatchNorm2d(8)
        )
    )
    state = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(ModelError, match=r"unsupported for LRP: its canonizers \(SequentialMergeBatchNorm\) failed"):
        with Attributor(model, canonizers=[SequentialMergeBatchNorm()], device="cpu"):
            pass
    assert _hooks_left(model) == 0
    assert model[0].bias is None  # the bias zennit added for the first merge is gone again
    assert model.state_dict().keys() == state.keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_torchvision_densenet_is_explained_and_conserves_relevance():
    # Trained statistics: a freshly initialised BatchNorm is (almost) the identity and would pass anyway.
    # DenseNetCanonizer merges or passes through every BatchNorm (tests/precompute/test_densenet.py).
    model = make_bias_free(torchvision.models.densenet121(weights=None, num_classes=2))
    images, targets = _images(2, 32, seed=5), torch.tensor([0, 1])
    with Attributor(model, device="cpu") as attributor:
        result = attributor.attribute(images, targets)
    np.testing.assert_allclose(
        result.heatmaps.sum(axis=(1, 2)), _target_logits(result, targets), rtol=1e-4, atol=STABILIZER_SLACK
    )


def test_gradient_allows_unmerged_batchnorm():
    """Through an un-merged BatchNorm, "gradient" is still plain autograd's gradient x input."""
    model = densenet_like()
    images, targets = _images(2, 8), torch.tensor([1, 2])
    with Attributor(model, composite="gradient", device="cpu") as attributor:
        result = attributor.attribute(images, targets)
    inputs = normalize(images, "imagenet").requires_grad_()
    (gradient,) = torch.autograd.grad(model(inputs)[[0, 1], targets].sum(), inputs)
    expected = (gradient * inputs).sum(1).detach().numpy()
    assert np.abs(expected).max() > 0
    assert_close_to_scale(result.heatmaps, expected, rtol=1e-5, scale_tol=1e-6)


def test_exit_restores_parameters_and_removes_hooks(resnet):
    state = {key: value.clone() for key, value in resnet.state_dict().items()}
    with Attributor(resnet, device="cpu") as attributor:
        attributor.attribute(_images(1, 32), torch.tensor([0]))
    assert _hooks_left(resnet) == 0
    for key, value in resnet.state_dict().items():
        assert torch.equal(value, state[key]), key


# ---- the heatmaps are not noise ------------------------------------------------------


def test_relevance_concentrates_where_the_logit_looks():
    size = 24
    model = RegionModel(size=size)
    images = _images(3, size, seed=5)
    with Attributor(model, composite="epsilon_plus_flat", device="cpu") as attributor:
        result = attributor.attribute(images, torch.tensor([0, 1, 0]))
    inside = model.reach_mask(size).numpy()
    positive = np.clip(result.heatmaps, 0, None)
    assert positive.sum() > 0
    fraction_inside = positive[:, inside].sum() / positive.sum()
    assert fraction_inside > 0.999, fraction_inside
    # ... and it is spread over the region rather than on a few pixels.
    assert (positive[:, inside] > 0).mean() > 0.5


# ---- batching, prediction, devices ---------------------------------------------------


def test_batched_attribution_equals_one_at_a_time(resnet):
    images, targets = _images(3, 32, seed=6), torch.tensor([3, 0, 1])
    with Attributor(resnet, device="cpu") as attributor:
        batched = attributor.attribute(images, targets)
        singles = [attributor.attribute(images[i: i + 1], targets[i: i + 1]) for i in range(3)]
    one_at_a_time = np.concatenate([single.heatmaps for single in singles])
    # Batch size changes the order of float sums: tolerances scale with the values.
    assert_close_to_scale(batched.heatmaps, one_at_a_time, rtol=1e-4, scale_tol=1e-5)
    assert_close_to_scale(batched.logits, np.concatenate([s.logits for s in singles]), rtol=1e-5, scale_tol=1e-5)


def test_hook_state_is_dropped_after_each_batch():
    """zennit keeps the last inputs and every tensor-hook handle until removal: memory would grow per batch."""
    with Attributor(tiny_vgg_bn(), device="cpu", backend="zennit") as attributor:
        for _ in range(3):
            attributor.attribute(_images(2, 16), torch.tensor([0, 1]))
        attributor.predict(_images(2, 16))
        hooks = list(attributor.composite_.hook_refs)
        assert hooks
        assert all(not hook.tensor_handles and not hook.stored_tensors for hook in hooks)


def test_batch_size_splits_the_input():
    model = tiny_vgg_bn()
    images, targets = _images(5, 16, seed=7), torch.tensor([0, 1, 2, 0, 1])
    with Attributor(model, device="cpu") as attributor:
        whole = attributor.attribute(images, targets)
    with Attributor(model, device="cpu", batch_size=2) as attributor:
        split = attributor.attribute(images, targets)
    assert_close_to_scale(split.heatmaps, whole.heatmaps, rtol=1e-4, scale_tol=1e-5)
    assert_close_to_scale(split.logits, whole.logits, rtol=1e-5, scale_tol=1e-5)


def test_out_of_memory_halves_the_batch_and_retries(monkeypatch):
    model = tiny_vgg_bn()
    images, targets = _images(5, 16, seed=8), torch.tensor([0, 1, 2, 0, 1])
    with Attributor(model, device="cpu") as attributor:
        expected = attributor.attribute(images, targets)

    attempts = []
    with Attributor(model, device="cpu", batch_size=4) as attributor:
        real_batch = attributor._attribute_batch

        def fits_two(batch_images, batch_targets):
            attempts.append(len(batch_images))
            if len(batch_images) > 2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
            return real_batch(batch_images, batch_targets)

        monkeypatch.setattr(attributor, "_attribute_batch", fits_two)
        result = attributor.attribute(images, targets)
        assert attributor.batch_size_ == 2
        assert attempts == [4, 2, 2, 1]
        np.testing.assert_allclose(result.heatmaps, expected.heatmaps, rtol=1e-4, atol=1e-7)

        monkeypatch.setattr(attributor, "_attribute_batch", lambda *args: (_ for _ in ()).throw(
            torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        ))
        with pytest.raises(torch.cuda.OutOfMemoryError):
            attributor.attribute(images[:1], targets[:1])  # one image that does not fit is raised


def test_predict_equals_a_plain_forward(resnet):
    images = _images(3, 32, seed=9)
    with torch.no_grad():
        expected = resnet(normalize(images, "imagenet")).numpy()
    with Attributor(resnet, device="cpu") as attributor:
        logits = attributor.predict(images)
        attributed = attributor.attribute(images, torch.tensor([0, 1, 2])).logits
    assert logits.dtype == np.float32 and logits.shape == (3, 4)
    # Merging the BatchNorms reorders float sums: rounding is relative to the largest logit.
    assert_close_to_scale(logits, expected, rtol=1e-5, scale_tol=1e-5)
    assert_close_to_scale(attributed, logits, rtol=1e-5, scale_tol=1e-5)


def test_normalization_none_feeds_raw_images():
    model = tiny_vgg_bn()
    images = _images(2, 16)
    with Attributor(model, normalization="none", device="cpu") as attributor:
        logits = attributor.predict(images)
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(images).numpy(), rtol=1e-5, atol=1e-6)


def test_input_validation():
    with Attributor(tiny_vgg_bn(), device="cpu") as attributor:
        with pytest.raises(ConfigError, match=r"images must be in \[0, 1\]"):
            attributor.attribute(normalize(_images(1, 16), "imagenet"), torch.tensor([0]))
        with pytest.raises(ConfigError, match="images must be a float tensor"):
            attributor.attribute((_images(1, 16) * 255).to(torch.uint8), torch.tensor([0]))
        with pytest.raises(ConfigError, match="targets must be integers of shape"):
            attributor.attribute(_images(2, 16), torch.tensor([0]))
        with pytest.raises(ConfigError, match=r"targets must lie in \[0, 3\)"):
            attributor.attribute(_images(1, 16), torch.tensor([3]))
    with pytest.raises(RuntimeError, match="context manager"):
        Attributor(tiny_vgg_bn()).attribute(_images(1, 16), torch.tensor([0]))


def test_first_layer_rule_on_a_model_registered_out_of_order():
    model = ClassifierFirstModel()
    with Attributor(model, device="cpu") as attributor:
        for _ in range(2):  # not only the first call
            with pytest.raises(ModelError, match="'classifier'.*but 'conv' runs first"):
                attributor.attribute(_images(1, 8), torch.tensor([0]))
    with Attributor(model, composite="epsilon_plus", device="cpu") as attributor:
        attributor.attribute(_images(1, 8), torch.tensor([0]))  # no first-layer rule: fine


def test_auto_device_is_cpu_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with Attributor(tiny_vgg_bn(), device="auto") as attributor:
        assert attributor.device_ == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        with Attributor(tiny_vgg_bn(), device="cuda"):
            pass


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_disables_tf32_and_matches_cpu():
    model = tiny_vgg_bn()
    images, targets = _images(2, 16), torch.tensor([0, 1])
    with Attributor(model, device="cpu") as attributor:
        on_cpu = attributor.attribute(images, targets)
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with Attributor(model, device="cuda") as attributor:
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        on_gpu = attributor.attribute(images, targets)
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    np.testing.assert_allclose(on_gpu.heatmaps, on_cpu.heatmaps, rtol=1e-3, atol=1e-6)
