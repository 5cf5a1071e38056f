"""``digits``: a ReLU MLP (or a small CNN) on scikit-learn's 8x8 handwritten digits (1797 images,
10 classes).

Data: ``sklearn.datasets.load_digits`` (shipped with scikit-learn, no download). Each image is 64
pixel values in 0..16, divided by 16 so inputs lie in [0, 1]. The split is a permutation drawn from
a ``torch.Generator`` seeded with ``split_seed``: its first ``round(val_fraction * 1797)`` indices
(359 at the default 0.2) are the validation set, the other 1438 the training set. The split does
not depend on the run's seed.

Batches: the training set in epochs, each a fresh permutation from a generator seeded with
``2 * seed + 1``; consecutive batches of ``batch_size`` examples run across epoch boundaries, so
every batch is full and every example is seen once per epoch. Evaluation: loss and accuracy on the
whole validation set. ``chance_accuracy = 0.1``; ``constant_loss`` is the validation loss of
the training labels' frequencies (:func:`~preheat.lab.tasks.base.constant_prediction_loss`, for
the task's loss).

Model ``mlp`` (the default): ``64 -> width -> ... -> width -> 10``, ``depth`` hidden layers, ReLU.
Each layer computes ``y = alpha_w * (x @ W.T) + alpha_b * b`` with fixed multipliers;
``W ~ N(0, sigma^2)`` is drawn from a generator seeded with ``2 * seed`` (layer by layer), ``b = 0``.
With ``m = width / base_width``:

- ``standard``: every ``alpha`` is 1; ``sigma^2 = 2 / fan_in`` (He) for the input and hidden
  layers, ``1 / fan_in`` for the readout.
- ``mup``: input layer ``sigma^2 = 2 / (64 m)``, ``alpha_w = alpha_b = sqrt(m)``; hidden layers
  ``sigma^2 = 2 / width``, ``alpha_w = 1``, ``alpha_b = sqrt(m)``; readout ``sigma^2 = 1 / width``,
  ``alpha_w = 1 / sqrt(m)``, ``alpha_b = 1``.

``mup`` is the maximal-update parameterization for SGD in the abc-form of Yang & Hu 2021 (Tensor
Programs IV: input ``a = -1/2``, hidden ``a = 0``, readout ``a = 1/2``, every ``b = 1/2``, one global
learning rate), relative to ``base_width``. The effective weights ``alpha_w * W`` have the same
distribution as under ``standard`` (readout variance ``base_width / width^2``), but one global SGD
learning rate acts as ``m * lr`` on the input layer and hidden biases and as ``lr / m`` on the
readout, so the per-step change of features and logits does not depend on the width. At
``width == base_width`` both parameterizations are the same network. Adam's update size does not
follow the gradient's scale, so with Adam these multipliers give per-layer effective rates
``sqrt(m) lr`` (input), ``lr`` (hidden), ``lr / sqrt(m)`` (readout) rather than muP-Adam's
``lr, lr / m, lr / m``: full muP for Adam needs per-layer learning rates, which one run's single
LR does not provide.

Model ``cnn``: the pixels as a ``1 x 8 x 8`` image through
:class:`preheat.lab.models.cnn.DigitsCNN` with ``c = width``: conv3x3(1 -> c, pad 1) ReLU,
conv3x3(c -> c, pad 1) ReLU, 2x2 max pool, conv3x3(c -> 2c, pad 1) ReLU, global average pool,
linear 2c -> 10. Weights ``N(0, 2 / fan_in)`` (He, ``fan_in = in_channels * 9``) for the
convolutions and ``N(0, 1 / 2c)`` for the readout, biases 0, drawn layer by layer from a generator
seeded with ``2 * seed`` (not PyTorch's default init). Its depth is fixed, so ``depth`` must stay 2
(the default), and only the ``standard`` parameterization applies (``mup`` is defined for the MLP).

Losses: ``cross_entropy`` (mean over the batch) or ``mse``: ``sum_k (logit_k - onehot_k)^2``
averaged over the batch (summed over the 10 classes, not averaged).
"""

from __future__ import annotations

import math
from typing import ClassVar, Iterator

import torch
from torch.nn import functional as F

from preheat.lab.models.cnn import DigitsCNN
from preheat.lab.tasks.base import Task, constant_prediction_loss
from preheat.schedules.validate import check_choice, check_int, check_real

MODELS = ("mlp", "cnn")
PARAMETERIZATIONS = ("standard", "mup")
LOSSES = ("cross_entropy", "mse")
INPUTS, CLASSES, IMAGES = 64, 10, 1797


class ScaledLinear(torch.nn.Module):
    """``y = weight_multiplier * (x @ weight.T) + bias_multiplier * bias`` (multipliers fixed)."""

    def __init__(self, weight: torch.Tensor, weight_multiplier: float, bias_multiplier: float) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(weight)
        self.bias = torch.nn.Parameter(torch.zeros(weight.shape[0]))
        self.weight_multiplier = weight_multiplier
        self.bias_multiplier = bias_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight_multiplier * (x @ self.weight.T) + self.bias_multiplier * self.bias


class MLP(torch.nn.Module):
    """ReLU MLP: ``layers[:-1]`` each followed by ReLU, then the readout ``layers[-1]``."""

    def __init__(self, layers: list[ScaledLinear]) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


class Digits(Task):
    """An MLP or a CNN classifying scikit-learn's digits; see the module docstring for data, init
    and losses.

    A plain class rather than a dataclass because the options ``loss`` and ``model`` would shadow
    the methods :meth:`loss` and :meth:`model`; they are kept as :attr:`loss_name` and
    :attr:`model_name`.

    Args:
        width: hidden units per layer (``mlp``), or ``c``, the channels of the first two
            convolutions (``cnn``; the third has ``2c``).
        depth: number of hidden layers (>= 1) of the MLP; the CNN's depth is fixed (keep 2).
        parameterization: ``standard`` or ``mup`` (relative to ``base_width``; MLP only).
        loss: ``cross_entropy`` or ``mse`` (on one-hot targets).
        base_width: the width at which ``mup`` equals ``standard``.
        split_seed: seed of the train/validation split.
        val_fraction: share of the 1797 images held out for validation, in (0, 1).
        model: ``mlp`` (default) or ``cnn``.
    """

    name: ClassVar[str] = "digits"
    chance_accuracy: ClassVar[float | None] = 0.1

    def __init__(
        self,
        width: int = 128,
        depth: int = 2,
        parameterization: str = "standard",
        loss: str = "cross_entropy",
        base_width: int = 32,
        split_seed: int = 0,
        val_fraction: float = 0.2,
        model: str = "mlp",
    ) -> None:
        owner = "Digits"
        self.model_name = check_choice(owner, "model", model, MODELS)
        self.width = check_int(owner, "width", width, minimum=1)
        self.depth = check_int(owner, "depth", depth, minimum=1)
        self.parameterization = check_choice(owner, "parameterization", parameterization, PARAMETERIZATIONS)
        self.loss_name = check_choice(owner, "loss", loss, LOSSES)
        self.base_width = check_int(owner, "base_width", base_width, minimum=1)
        self.split_seed = check_int(owner, "split_seed", split_seed)
        self.val_fraction = check_real(
            owner, "val_fraction", val_fraction, 0.0, 1.0, low_open=True, high_open=True
        )
        if not 0 < round(self.val_fraction * IMAGES) < IMAGES:
            raise ValueError(
                f"Digits: val_fraction={val_fraction!r} is invalid; expected a fraction that leaves "
                f"at least one of the {IMAGES} images in each set"
            )
        if self.model_name == "cnn" and self.parameterization != "standard":
            raise ValueError(
                f"Digits: parameterization={parameterization!r} is invalid; expected 'standard' with "
                "model='cnn' (mup is defined for the MLP only), or model='mlp'"
            )
        if self.model_name == "cnn" and self.depth != 2:
            raise ValueError(
                f"Digits: depth={depth!r} is invalid; expected 2 (the default) with model='cnn' (the "
                "CNN's depth is fixed; width sets its channels), or model='mlp'"
            )
        self._data: dict[str, torch.Tensor] | None = None

    def __repr__(self) -> str:
        return (
            f"Digits(width={self.width}, depth={self.depth}, parameterization={self.parameterization!r}, "
            f"loss={self.loss_name!r}, base_width={self.base_width}, split_seed={self.split_seed}, "
            f"val_fraction={self.val_fraction}, model={self.model_name!r})"
        )

    # -- data --------------------------------------------------------------------------------

    @property
    def data(self) -> dict[str, torch.Tensor]:
        """``x_train, y_train, x_val, y_val`` and the split (``train_index, val_index``), loaded once."""
        if self._data is None:
            from sklearn.datasets import load_digits

            digits = load_digits()
            x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
            y = torch.tensor(digits.target, dtype=torch.int64)
            order = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.split_seed))
            n_val = round(self.val_fraction * len(y))
            val, train = order[:n_val], order[n_val:]
            self._data = {"x_train": x[train], "y_train": y[train], "x_val": x[val], "y_val": y[val],
                          "train_index": train, "val_index": val}
        return self._data

    @property
    def constant_loss(self) -> float:  # type: ignore[override]
        """The validation loss of predicting the training labels' frequencies (see the module docstring)."""
        return constant_prediction_loss(self.data["y_train"], self.data["y_val"], CLASSES, self.loss_name)

    # -- the Task contract -------------------------------------------------------------------

    def model(self, seed: int) -> MLP | DigitsCNN:
        """A fresh MLP or CNN; ``W ~ N(0, sigma^2)`` and multipliers as in the module docstring."""
        generator = torch.Generator().manual_seed(2 * seed)
        if self.model_name == "cnn":
            return DigitsCNN(self.width, generator)
        m = self.width / self.base_width if self.parameterization == "mup" else 1.0
        root = math.sqrt(m)
        sizes = [INPUTS] + [self.width] * self.depth + [CLASSES]
        last = len(sizes) - 2
        layers = []
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            if index == 0:  # input layer
                variance, weight_multiplier, bias_multiplier = 2.0 / (fan_in * m), root, root
            elif index < last:  # hidden layer
                variance, weight_multiplier, bias_multiplier = 2.0 / fan_in, 1.0, root
            else:  # readout
                variance, weight_multiplier, bias_multiplier = 1.0 / fan_in, 1.0 / root, 1.0
            weight = math.sqrt(variance) * torch.randn(fan_out, fan_in, generator=generator)
            layers.append(ScaledLinear(weight, weight_multiplier, bias_multiplier))
        return MLP(layers)

    def batches(self, seed: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(x, y)`` batches from shuffled epochs of the training set, endless."""
        x, y = self.data["x_train"], self.data["y_train"]
        generator = torch.Generator().manual_seed(2 * seed + 1)
        pending = torch.empty(0, dtype=torch.int64)
        while True:
            while len(pending) < batch_size:
                pending = torch.cat([pending, torch.randperm(len(y), generator=generator)])
            index, pending = pending[:batch_size], pending[batch_size:]
            yield x[index], y[index]

    def loss(
        self, model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, accuracy)`` of ``model`` on ``batch = (x, y)`` (moved to the model's device)."""
        device = next(model.parameters()).device
        x, y = (t.to(device) for t in batch)
        logits = model(x)
        if self.loss_name == "cross_entropy":
            value = F.cross_entropy(logits, y)
        else:
            target = F.one_hot(y, CLASSES).to(logits.dtype)
            value = ((logits - target) ** 2).sum(dim=1).mean()
        accuracy = (logits.argmax(dim=1) == y).to(torch.float32).mean()
        return value, accuracy

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Loss and accuracy on the whole validation set."""
        with torch.no_grad():
            value, accuracy = self.loss(model, (self.data["x_val"], self.data["y_val"]))
        return {"val_loss": float(value), "val_accuracy": float(accuracy)}
