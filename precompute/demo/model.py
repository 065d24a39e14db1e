"""The demo's classifiers: a small VGG-style CNN and a small residual network.

The layout mirrors ``torchvision.models.vgg*_bn``: ``features`` (Conv2d, BatchNorm2d,
ReLU, ..., MaxPool2d), ``avgpool`` and ``classifier`` (Linear, ReLU, Dropout, Linear), so
``zennit.torchvision.VGGCanonizer`` merges every BatchNorm into the conv before it.
The input is RGB in [0, 1] without mean/std normalisation.

Default size: six 3x3 convs (16, 32, 64, 64, 128, 128 channels; 64 -> 4 px after four
max pools), a 2x2 average pool and a 512-128-C head, about 0.35 M parameters and 35 M
multiply-adds per 64x64 image, so 15 epochs on 2000 images take about 45 s on 2 CPU cores.
The 2x2 pool keeps coarse position (which quadrant), enough for the fixed-place
artifacts, while the shapes, which move, are still seen by every quadrant.

:class:`DemoResNet` is the demo's second model, of another architecture trained on the
same data (the paper's appendix compares VGG and DenseNet on ImageNet). Its blocks are
torchvision's ``BasicBlock``, so :func:`precompute.models.canonizers.canonizers_for`
picks zennit's ``ResNetCanonizer``, which merges its BatchNorms and makes each residual
sum a module that LRP can hook.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from ..errors import ConfigError

__all__ = ["DemoVGG", "DemoResNet", "build_demo_model", "build_demo_resnet"]


class DemoVGG(nn.Module):
    """VGG-style classifier for small images.

    Parameters
    ----------
    num_classes : int
        Number of output logits.
    widths : sequence of int
        Channels of the conv blocks; each block is ``depth`` times conv-BN-ReLU followed by a
        2x2 max pool.
    depths : sequence of int
        Convolutions per block, one entry per block.
    hidden : int
        Width of the hidden dense layer.
    dropout : float
        Dropout probability before the last layer.
    pool_size : int
        Output side of the adaptive average pool.

    Attributes
    ----------
    features : torch.nn.Sequential
        Conv2d, BatchNorm2d, ReLU, ..., MaxPool2d.
    avgpool : torch.nn.AdaptiveAvgPool2d
    classifier : torch.nn.Sequential
        Linear, ReLU, Dropout, Linear.
    """

    def __init__(self, num_classes: int, widths: Sequence[int] = (16, 32, 64, 128),
                 depths: Sequence[int] = (1, 1, 2, 2), hidden: int = 128, dropout: float = 0.3,
                 pool_size: int = 2):
        super().__init__()
        layers = []
        channels = 3
        if len(depths) != len(widths):
            raise ConfigError(f"depths {tuple(depths)} and widths {tuple(widths)} differ in length")
        for width, depth in zip(widths, depths):
            for _ in range(depth):
                layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
                channels = width
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.classifier = nn.Sequential(
            nn.Linear(channels * pool_size * pool_size, hidden),
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (B, num_classes) for images of shape (B, 3, H, W) in [0, 1]."""
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class DemoResNet(nn.Module):
    """A small residual network: stem, one ``BasicBlock`` a stage, average pool, linear head.

    The layout mirrors ``torchvision.models.resnet18`` (``conv1``, ``bn1``, ``relu``,
    ``maxpool``, ``layer1`` ... ``layerN``, ``avgpool``, ``fc``) with one block a stage and
    small widths. The input is RGB in [0, 1] without mean/std normalisation.

    The defaults were measured on the README demo (2,000 training images, 15 epochs, the
    demo's training): three stages of 32, 64 and 128 channels with dropout 0.3 reach 92 %
    held-out accuracy; four stages of 16 to 128 channels without dropout fit the training
    set as well (100 %) but reach only 42 % held out (43 % with dropout), mostly on the
    artifacts; without the stem's max pool, 91 % at 1.3 times the training time.

    Parameters
    ----------
    num_classes : int
        Number of output logits.
    widths : sequence of int
        Channels of the stages; the first stage keeps the stem's resolution, each
        later one halves it (stride 2, with a 1x1 conv + BatchNorm downsample on the
        identity path).
    stem_pool : bool
        A 2x2 max pool after the stem conv (else the first stage runs at full resolution).
    pool_size : int
        Output side of the adaptive average pool.
    dropout : float
        Dropout probability before the linear head.

    Attributes
    ----------
    conv1, bn1, relu, maxpool : torch.nn.Module
        The stem: 3x3 conv, BatchNorm, ReLU, 2x2 max pool (or identity).
    layer1, layer2, ... : torch.nn.Sequential
        One ``torchvision.models.resnet.BasicBlock`` each.
    avgpool : torch.nn.AdaptiveAvgPool2d
    dropout : torch.nn.Dropout
    fc : torch.nn.Linear
    """

    def __init__(self, num_classes: int, widths: Sequence[int] = (32, 64, 128), stem_pool: bool = True,
                 pool_size: int = 2, dropout: float = 0.3):
        super().__init__()
        widths = [int(width) for width in widths]
        if not widths:
            raise ConfigError("widths must name at least one stage")
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=2, stride=2) if stem_pool else nn.Identity()
        channels = widths[0]
        self.stages = len(widths)
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or width != channels:
                downsample = nn.Sequential(nn.Conv2d(channels, width, kernel_size=1, stride=stride, bias=False),
                                           nn.BatchNorm2d(width))
            self.add_module(f"layer{index + 1}", nn.Sequential(BasicBlock(channels, width, stride, downsample)))
            channels = width
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(channels * pool_size * pool_size, num_classes)
        for module in self.modules():  # torchvision's ResNet initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (B, num_classes) for images of shape (B, 3, H, W) in [0, 1]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for index in range(self.stages):
            x = getattr(self, f"layer{index + 1}")(x)
        x = self.avgpool(x)
        return self.fc(self.dropout(torch.flatten(x, 1)))


def _check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer >= 2, got {num_classes!r}")


def build_demo_model(num_classes: int) -> nn.Module:
    """Build the (untrained) demo classifier.

    Parameters
    ----------
    num_classes : int
        Number of classes, at least 2.

    Returns
    -------
    torch.nn.Module
        Maps images of shape (B, 3, 64, 64), RGB in [0, 1], to logits of shape (B, num_classes).
    """
    _check_num_classes(num_classes)
    return DemoVGG(num_classes)


def build_demo_resnet(num_classes: int) -> nn.Module:
    """The demo's second classifier, an untrained :class:`DemoResNet`; as :func:`build_demo_model` otherwise."""
    _check_num_classes(num_classes)
    return DemoResNet(num_classes)
