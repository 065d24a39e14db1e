"""The paper's appendix models (Figure 11: VGG-16, VGG-19, DenseNet-121) end to end, and a refused transformer.

Each appendix model runs ``python -m precompute run`` (through :func:`precompute.cli.main`)
on a tiny ImageFolder of 64x64 PNGs with random weights from a ``torch.save``d
state_dict; DenseNet-121's BatchNorms get trained-looking statistics, so that its
canonizer has something to merge and pass through. A vision transformer, whose
attention layers zennit's rules cannot explain, is refused before any image is read.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from precompute.cli import main
from precompute.errors import ModelError
from precompute.lrp import Attributor
from precompute.models import check_canonized
from precompute.models.canonizers import check_explainable
from precompute.store import RunStore

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = ("ant", "bee")
IMAGES_PER_CLASS = 4  # a class needs at least 4 readable images to be analysed
FAST = ["--num-classes", "2", "--image-size", "64", "--workers", "0", "--quiet", "--maps", "tsne"]


def make_folder(root, size: int = 64, seed: int = 0):
    """``root/<class>/<i>.png``: noise with a bright square whose colour depends on the class."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for index in range(IMAGES_PER_CLASS):
            pixels = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
            row, column = rng.integers(4, size - 20, 2)
            pixels[row:row + 16, column:column + 16, label] = 240
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


def trained_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BatchNorm weight, bias, running_mean and running_var (an untrained BatchNorm is nearly the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                shape = module.weight.shape
                module.weight.copy_(torch.rand(shape, generator=generator) + 0.5)
                module.bias.copy_(0.2 * torch.randn(shape, generator=generator))
                module.running_mean.copy_(0.2 * torch.randn(shape, generator=generator))
                module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
    return model


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("appendix") / "data")


@pytest.mark.parametrize("name", ["vgg16", "vgg19", "densenet121"])
def test_appendix_model_runs_end_to_end(name, data, tmp_path, capsys):
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, num_classes=2)
    if name == "densenet121":
        trained_statistics(model)
        assert any(float(m.running_var.min()) < 0.9 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    weights = tmp_path / f"{name}.pt"
    torch.save(model.state_dict(), weights)
    del model
    out = tmp_path / "out"
    try:
        status = main(["run", "--data", str(data), "--model", name, "--weights", str(weights), "--out", str(out),
                       *FAST])
    finally:
        weights.unlink()  # VGG's weights are half a gigabyte
    err = capsys.readouterr().err
    assert status == 0, err[-3000:]
    assert "Traceback" not in err and "using zennit" not in err  # no fallback from the fast path
    store = RunStore(out)
    assert sorted(store.finished_ids()) == sorted(store.id_for_name(name) for name in CLASSES)
    assert store.manifest["run"]["lrp_backend"] == "fast"
    for cid in store.finished_ids():
        heatmaps = np.asarray(store.heatmaps(cid), dtype=np.float32)
        assert heatmaps.shape == (IMAGES_PER_CLASS, 64, 64)
        assert np.isfinite(heatmaps).all()
        assert (np.abs(heatmaps).reshape(len(heatmaps), -1).max(axis=1) > 0).all(), "an all-zero heatmap"


# ---- refused: layers zennit's rules cannot explain -------------------------------------


class TinyAttention(nn.Module):
    """A patch embedding, one attention layer and a linear head, on 8x8 images."""

    def __init__(self, num_classes: int = 2):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Conv2d(3, 8, 4, stride=4)
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, num_classes)

    def forward(self, images):
        tokens = self.embed(images).flatten(2).transpose(1, 2)
        attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return self.head(attended.mean(dim=1))


def test_zennit_really_crashes_on_attention():
    """Why attention is refused: zennit's Pass rule returns one relevance for three inputs."""
    model = TinyAttention().eval()
    with pytest.raises(RuntimeError, match="incorrect number of values"):
        with Attributor(model, device="cpu", backend="zennit", check_batchnorm=False) as attributor:
            attributor.attribute(torch.rand(1, 3, 8, 8), torch.tensor([0]))


def test_attention_is_refused_with_its_layer_named():
    model = TinyAttention().eval()
    with pytest.raises(ModelError) as error:
        check_explainable(model, "tiny_attention")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("model 'tiny_attention' cannot be explained with LRP: layer 'attention'")
    assert "MultiheadAttention" in message
    with pytest.raises(ModelError, match="cannot be explained with LRP"):
        check_canonized(model)
    for backend in ("auto", "zennit"):
        with pytest.raises(ModelError, match="'TinyAttention' cannot be explained with LRP.*MultiheadAttention"):
            with Attributor(model, device="cpu", backend=backend):
                pass
    # The fast path refuses it first, also naming the layer.
    with pytest.raises(ModelError, match="cannot explain model 'TinyAttention'.*'attention' \\(MultiheadAttention\\)"):
        with Attributor(model, device="cpu", backend="fast"):
            pass


def test_attention_models_still_get_gradient_times_input():
    """The "gradient" composite installs no rule, so attention is no problem for it."""
    model = TinyAttention().eval()
    images = torch.rand(2, 3, 8, 8)
    with Attributor(model, composite="gradient", normalization="none", device="cpu") as attributor:
        result = attributor.attribute(images, torch.tensor([0, 1]))
    inputs = images.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(model(inputs)[[0, 1], [0, 1]].sum(), inputs)
    np.testing.assert_allclose(result.heatmaps, (gradient * inputs).sum(1).detach().numpy(), rtol=1e-4, atol=1e-7)


def test_vit_b_16_is_refused_through_the_cli_before_any_image_is_read(data, tmp_path, capsys, monkeypatch):
    import precompute.data

    def never(path):
        raise AssertionError(f"{path} was read")

    monkeypatch.setattr(precompute.data, "load_rgb", never)
    out = tmp_path / "out"
    status = main(["run", "--data", str(data), "--model", "vit_b_16", "--out", str(out), "--num-classes", "2",
                   "--image-size", "224", "--workers", "0", "--quiet"])
    err = capsys.readouterr().err
    assert status == 2, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model "), err
    assert "cannot be explained with LRP" in lines[0] and "MultiheadAttention" in lines[0]
    assert "encoder.layers.encoder_layer_0.self_attention" in lines[0]
    assert "Traceback" not in err
    assert not out.exists() or RunStore(out).finished_ids() == []
