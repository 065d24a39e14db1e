"""A small VGG-style CNN for the demo dataset.

The layout mirrors ``torchvision.models.vgg*_bn``: ``features`` (Conv2d, BatchNorm2d,
ReLU, ..., MaxPool2d), ``avgpool`` and ``classifier`` (Linear, ReLU, Dropout, Linear), so
``zennit.torchvision.VGGCanonizer`` merges every BatchNorm into the conv before it.
The input is RGB in [0, 1] without mean/std normalisation.

Default size: six 3x3 convs (16, 32, 64, 64, 128, 128 channels; 64 -> 4 px after four
max pools), a 2x2 average pool and a 512-128-C head, about 0.35 M parameters and 35 M
multiply-adds per 64x64 image, so 15 epochs on 2000 images take about 45 s on 2 CPU cores.
The 2x2 pool keeps coarse position (which quadrant), enough for the fixed-place
artifacts, while the shapes, which move, are still seen by every quadrant.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["DemoVGG", "build_demo_model"]


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
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return DemoVGG(num_classes)
