"""A small CNN for 8x8 single-channel images (the ``digits`` task's ``model="cnn"``).

Read top to bottom, with ``c = width`` and a batch of ``B`` images given as ``(B, 64)`` rows of
pixels (reshaped to ``(B, 1, 8, 8)``, row-major, as ``load_digits`` stores them):

=================================  ==================  ===========================================
layer                              output               init (weights; every bias starts at 0)
=================================  ==================  ===========================================
``conv1``: 3x3, 1 -> c, pad 1      ``(B, c, 8, 8)``     He: ``N(0, 2 / 9)``
ReLU
``conv2``: 3x3, c -> c, pad 1      ``(B, c, 8, 8)``     He: ``N(0, 2 / (9 c))``
ReLU, 2x2 max pool (stride 2)      ``(B, c, 4, 4)``
``conv3``: 3x3, c -> 2c, pad 1     ``(B, 2c, 4, 4)``    He: ``N(0, 2 / (9 c))``
ReLU, global average pool          ``(B, 2c)``
``readout``: linear 2c -> 10       ``(B, 10)``          ``N(0, 1 / (2c))``
=================================  ==================  ===========================================

The initialisation is He (``2 / fan_in``, ``fan_in = in_channels * 3 * 3``) for the convolutions,
which ReLU follows, and ``1 / fan_in`` for the readout: the same rule as the ``digits`` MLP's
``standard`` parameterization, not PyTorch's default (Kaiming-uniform with ``a = sqrt(5)``). The
weights are drawn from the ``torch.Generator`` given to :class:`DigitsCNN`, layer by layer in the
order of the table (each a ``torch.randn`` of the weight's shape, scaled), so they depend only on
that generator's seed; building the model does not touch the global RNG.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

SIDE, CLASSES = 8, 10


def _filled(module: nn.Module, std: float, generator: torch.Generator) -> nn.Module:
    """``module`` with its weight drawn from ``N(0, std^2)`` by ``generator`` and its bias zero."""
    with torch.no_grad():
        module.weight.copy_(std * torch.randn(module.weight.shape, generator=generator))
        module.bias.zero_()
    return module


class DigitsCNN(nn.Module):
    """conv3x3(1->c) ReLU, conv3x3(c->c) ReLU, max pool 2, conv3x3(c->2c) ReLU, global average
    pool, linear 2c -> 10; ``c = width``. Input ``(B, 64)`` (or ``(B, 1, 8, 8)``), output logits
    ``(B, 10)``. Initialisation (He, from ``generator``) in the module docstring."""

    def __init__(self, width: int, generator: torch.Generator) -> None:
        super().__init__()
        c = width
        # skip_init builds each layer without PyTorch's default init (and without the global RNG).
        self.conv1 = nn.utils.skip_init(nn.Conv2d, 1, c, 3, padding=1)
        self.conv2 = nn.utils.skip_init(nn.Conv2d, c, c, 3, padding=1)
        self.conv3 = nn.utils.skip_init(nn.Conv2d, c, 2 * c, 3, padding=1)
        self.readout = nn.utils.skip_init(nn.Linear, 2 * c, CLASSES)
        for conv in (self.conv1, self.conv2, self.conv3):
            fan_in = conv.in_channels * 3 * 3
            _filled(conv, math.sqrt(2.0 / fan_in), generator)
        _filled(self.readout, math.sqrt(1.0 / (2 * c)), generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 10)`` of images ``x``: ``(B, 64)`` pixel rows or ``(B, 1, 8, 8)``."""
        x = x.reshape(-1, 1, SIDE, SIDE)
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x)).mean(dim=(2, 3))
        return self.readout(x)
