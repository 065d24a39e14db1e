"""The fine-tuning loop: what trains, what stays frozen, the RR-ClArC penalty, cancel."""
import threading

import pytest
import torch
from torch import nn

from precompute.clarc import FinetuneRecipe
from precompute.clarc.finetune import finetune, paste_augment
from precompute.errors import ConfigError
from precompute.lab import Cancelled


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))


def _data(n=48):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % 2
    images[labels == 1, 0, :3, :3] = 255  # a bright corner tells class 1 apart
    return images, labels


def test_linear_recipe_trains_only_the_head_and_keeps_batchnorm_statistics():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, labels = _data()
    figures = finetune(model, images, labels, FinetuneRecipe(epochs=2, lr=0.05, batch_size=8, trainable="linear"),
                       normalization="none")
    after = model.state_dict()
    for key in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"):
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["7.weight"], after["7.weight"])
    assert figures["trained_parameters"] == 16 * 8 + 8 + 8 * 2 + 2
    assert not model.training and all(p.requires_grad for p in model.parameters())


def test_right_reason_penalty_shrinks_the_gradient_along_the_cav():
    images, labels = _data()
    v = torch.zeros(8)
    v[0] = 1.0

    def sensitivity(model):
        x = images.float() / 255
        captured = {}
        model[6].register_forward_hook(lambda m, i, o: captured.setdefault("a", o))
        logits = model(x)
        (grad,) = torch.autograd.grad(torch.log_softmax(logits, 1)[:, 1].sum(), captured["a"])
        return float((grad @ v).pow(2).mean())

    plain, penalised = _model(), _model()
    finetune(plain, images, labels, FinetuneRecipe(epochs=3, lr=0.05, batch_size=8), normalization="none")
    figures = finetune(penalised, images, labels, FinetuneRecipe(epochs=3, lr=0.05, batch_size=8, rr_lambda=10.0),
                       normalization="none", concept=("6", v, 1))
    assert figures["final_rr"] >= 0
    assert sensitivity(penalised) < 0.5 * sensitivity(plain)


def test_paste_augment_skips_samples_that_carry_the_artifact():
    patch = torch.ones(4, 2, 2)
    skip = torch.tensor([True, False, False, True])
    augment = paste_augment(patch, [(0, 0)], skip)
    batch = torch.zeros(4, 3, 4, 4)
    out = augment(batch, torch.arange(4), torch.Generator().manual_seed(0))
    assert out[1, :, :2, :2].eq(1).all() and out[2, :, :2, :2].eq(1).all()
    assert out[0].eq(0).all() and out[3].eq(0).all() and batch.eq(0).all()


def test_cancel_stops_training_and_bad_recipes_are_refused():
    images, labels = _data()
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        finetune(_model(), images, labels, FinetuneRecipe(epochs=1), normalization="none", cancel=stop)
    with pytest.raises(ConfigError):
        FinetuneRecipe(epochs=0).validate()
    with pytest.raises(ConfigError):
        FinetuneRecipe(trainable="convs").validate()
    with pytest.raises(ConfigError, match="RR-ClArC"):
        finetune(_model(), images, labels, FinetuneRecipe(rr_lambda=1.0), normalization="none")
