"""ResNet-18 for 32x32 images (CIFAR), as in He et al. 2016 with the usual CIFAR stem.

The CIFAR variant differs from the ImageNet one only in its stem: one 3x3 convolution with
stride 1 and no max-pool, so the four stages see 32, 16, 8 and 4 pixels. Stages have
``width``, ``2 width``, ``4 width`` and ``8 width`` channels (64-128-256-512 at the standard
``width=64``), two :class:`BasicBlock` each; then global average pooling and one linear layer.
A smaller ``width`` gives the same architecture with fewer channels (width 8: ~0.18 M parameters).

Weights use PyTorch's default initialisation (Kaiming-uniform convolutions, BatchNorm weight 1
and bias 0); seed the global torch RNG before building the model for reproducible weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a shortcut: ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``.

    The shortcut is the identity, or a 1x1 conv-BN when the block changes stride or channels.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18: images ``(batch, 3, 32, 32)`` -> logits ``(batch, num_classes)``."""

    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width={width!r} is invalid; expected an integer >= 1 (64 is standard)")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes={num_classes!r} is invalid; expected an integer >= 2")
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        stages = []
        in_channels = width
        for index, channels in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if index == 0 else 2
            stages.append(nn.Sequential(
                BasicBlock(in_channels, channels, stride),
                BasicBlock(channels, channels, 1),
            ))
            in_channels = channels
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)
