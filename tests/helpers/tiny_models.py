"""Tiny hand-built models whose relevance is known, and model files for ``file.py:function`` specs.

Everything is seeded and small enough for a 2-core CPU.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import torch
import torchvision
from torch import nn

__all__ = [
    "make_bias_free",
    "tiny_vgg_bn",
    "tiny_resnet18",
    "densenet_like",
    "RegionModel",
    "dense_reference_model",
    "MisorderedBatchNorm",
    "ClassifierFirstModel",
    "write_model_file",
    "write_model_and_weights",
    "TINY_MODEL_SOURCE",
]


def make_bias_free(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BatchNorms non-trivial scales but no shifts, and zero every bias.

    BN weight and running_var are drawn from [0.5, 1.5], BN bias and running_mean are
    0, and Conv/Linear biases are 0: after merging, the model has no bias, so LRP
    relevance must sum to the target logit (conservation). Returns ``model`` in eval mode.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.zero_()
                module.running_mean.zero_()
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
            elif isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
                module.bias.zero_()
    return model.eval()


def random_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Trained-looking BatchNorm statistics (an untrained BatchNorm is almost the identity),
    so merged layers get non-zero biases of both signs; returns the model in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                shape = module.weight.shape
                module.weight.copy_(torch.rand(shape, generator=generator) + 0.5)
                module.bias.copy_(0.1 * torch.randn(shape, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
                module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
    return model.eval()


def tiny_vgg_bn(num_classes: int = 3, seed: int = 0) -> nn.Sequential:
    """A VGG-like Sequential conv-bn-relu model for 16x16 (or larger) inputs, bias-free after merging."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 16),
        nn.ReLU(),
        nn.Linear(16, num_classes),
    )
    return make_bias_free(model, seed)


def tiny_resnet18(num_classes: int = 4, seed: int = 0) -> nn.Module:
    """torchvision's resnet18 (random init), bias-free after merging; use 32x32 inputs."""
    torch.manual_seed(seed)
    return make_bias_free(torchvision.models.resnet18(weights=None, num_classes=num_classes), seed)


def densenet_like(num_classes: int = 3, seed: int = 0) -> nn.Sequential:
    """BatchNorm *before* a convolution (after a ReLU), as in DenseNet: no canonizer can merge it."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(8),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        batch_norm = model[2]
        batch_norm.running_mean.copy_(torch.rand(8, generator=generator))
        batch_norm.running_var.copy_(torch.rand(8, generator=generator) + 0.5)
    return model.eval()


class _FixedMask(nn.Module):
    """Multiply by a fixed 0/1 mask (no parameters, so zennit leaves it to the gradient)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features * self.mask


class RegionModel(nn.Module):
    """Its logits depend only on the image inside ``region`` (plus the convolutions' reach).

    Two bias-free 3x3 convolutions (each reaching one pixel further), a fixed spatial
    mask that keeps only ``region`` of the feature map, global average pooling and a
    linear classifier with positive weights.

    Parameters
    ----------
    size : int
        Image height and width.
    region : tuple of slice
        (rows, columns) of the feature map the logits see.
    """

    reach = 2  # two 3x3 convolutions

    def __init__(self, size: int = 24, region=(slice(4, 10), slice(12, 20)), num_classes: int = 2, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.region = region
        mask = torch.zeros(1, 1, size, size)
        mask[..., region[0], region[1]] = 1.0
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.relu2 = nn.ReLU()
        self.mask = _FixedMask(mask)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(8, num_classes, bias=False)
        with torch.no_grad():
            self.classifier.weight.abs_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.relu2(self.conv2(self.relu1(self.conv1(images))))
        return self.classifier(self.flatten(self.pool(self.mask(features))))

    def reach_mask(self, size: int) -> torch.Tensor:
        """Boolean (size, size) mask of the pixels that can influence the logits."""
        rows, columns = self.region
        mask = torch.zeros(size, size, dtype=torch.bool)
        mask[
            max(rows.start - self.reach, 0): rows.stop + self.reach,
            max(columns.start - self.reach, 0): columns.stop + self.reach,
        ] = True
        return mask


def dense_reference_model(height: int = 2, width: int = 3, hidden: int = 6, num_classes: int = 3, seed: int = 0):
    """A one-hidden-layer network whose first layer is a full-image Conv2d.

    ``Conv2d(3, hidden, kernel_size=(height, width))`` is a dense layer that zennit
    treats as a convolution (z-plus, flat or box rule), followed by ReLU, Flatten and
    ``Linear(hidden, num_classes)`` (epsilon rule): small enough to write LRP by hand.
    Biases are non-zero on purpose.
    """
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, hidden, kernel_size=(height, width)),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(hidden, num_classes),
    ).eval()


class MisorderedBatchNorm(nn.Module):
    """Its BatchNorm follows ``conv_a`` in the forward pass but ``conv_b`` in registration order."""

    def __init__(self, num_classes: int = 2, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv_a = nn.Conv2d(3, 4, 3, padding=1)
        self.conv_b = nn.Conv2d(4, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.classifier = nn.Linear(4, num_classes)
        make_bias_free(self, seed)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv_b(torch.relu(self.norm(self.conv_a(images)))))
        return self.classifier(features.mean(dim=(2, 3)))


class ClassifierFirstModel(nn.Module):
    """Registers its classifier before its convolution, which confuses zennit's "first layer"."""

    def __init__(self, num_classes: int = 2):
        super().__init__()
        self.classifier = nn.Linear(4, num_classes)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(torch.relu(self.conv(images))).flatten(1))


TINY_MODEL_SOURCE = textwrap.dedent(
    '''
    """A model file as a user would write it."""
    import torch
    from torch import nn


    def build(num_classes=10):
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4, num_classes),
        )


    def build_fixed():
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 7))


    def build_kwargs(**options):
        return nn.Sequential(nn.Flatten(), nn.Linear(12, options["num_classes"]))


    def not_a_module(num_classes):
        return "a string"


    def broken(num_classes):
        raise ValueError("the builder is broken")
    '''
)


def write_model_file(folder: Path, source: str = TINY_MODEL_SOURCE, name: str = "file.py") -> Path:
    """Write a model module into ``folder`` and return its path."""
    path = Path(folder) / name
    path.write_text(source)
    return path


def write_model_and_weights(folder: Path, source: str, num_classes: int, weights: dict, name: str = "model.py"):
    """Write a model module and, for each ``{function: file name}`` in ``weights``, its state_dict.

    Returns the module's path and the weight files' paths, in ``weights`` order.
    """
    path = write_model_file(folder, source, name)
    namespace: dict = {}
    exec(compile(source, str(path), "exec"), namespace)
    files = []
    for function, file_name in weights.items():
        files.append(Path(folder) / file_name)
        torch.save(namespace[function](num_classes).state_dict(), files[-1])
    return path, files
