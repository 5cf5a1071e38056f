"""What a lab task is: a model, an endless stream of training batches, a loss and an evaluation.

Every built-in task and every user task (``--task package.module:function``) is a ``Task``. The
training loop (``preheat.lab.run``) only ever calls the four methods below, so a task decides
everything about its data and model, and nothing about the optimizer or the schedule.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterator

import torch


def constant_prediction_loss(train: torch.Tensor, val: torch.Tensor, classes: int,
                             loss: str = "cross_entropy") -> float:
    """The loss on the labels ``val`` of the best prediction that ignores the input, fit on the
    labels ``train`` (class ids in ``0..classes-1``).

    ``cross_entropy``: ``-mean_i log p[val_i]`` with ``p_c = (n_c + 1) / (N + classes)`` the
    training frequencies, add-one smoothed so a class missing from ``train`` costs a finite loss.
    ``mse`` on one-hot targets (summed over classes, averaged over examples):
    ``mean_i sum_c (q_c - onehot(val_i)_c)^2`` with ``q`` the training one-hot mean.

    Raises:
        ValueError: ``loss`` is neither.
    """
    counts = torch.bincount(train.reshape(-1), minlength=classes).double()
    if loss == "cross_entropy":
        p = (counts + 1) / (counts.sum() + classes)
        return float(-p.log()[val.reshape(-1)].mean())
    if loss == "mse":
        q = counts / counts.sum()
        onehot = torch.nn.functional.one_hot(val.reshape(-1), classes).double()
        return float(((q - onehot) ** 2).sum(dim=1).mean())
    raise ValueError(f"loss={loss!r} is invalid; expected 'cross_entropy' or 'mse'")


class Task(ABC):
    """A training problem the lab can run under any optimizer, peak LR and schedule.

    Contract (the same ``seed`` must give the same numbers on the same machine):

    - ``model(seed)`` builds a fresh model whose initial weights depend only on ``seed``.
    - ``batches(seed, batch_size)`` yields training batches forever; the sequence depends only
      on ``seed`` and ``batch_size``.
    - ``loss(model, batch)`` returns ``(loss, accuracy)``: the scalar to minimise on this batch
      and the batch's accuracy in [0, 1] (or ``None`` when the task has no accuracy). It moves
      the batch to the model's device (runs may be on a GPU).
    - ``evaluate(model)`` returns at least ``{"val_loss": float}``, and ``"val_accuracy"`` when
      the task has one; it runs under ``torch.no_grad()`` in eval mode (the loop sees to that).

    ``shard(batch, rank, size)`` is the part of a training batch that rank ``rank`` of ``size``
    processes trains on when one run is spread over processes (``preheat.lab.distributed``).

    ``chance_accuracy`` is the accuracy of guessing (1 / classes), used to call an Adam run
    failed when its training accuracy stays below 1.5x chance (Kalra & Barkeshli 2024); ``None``
    when the task has no accuracy.

    ``constant_loss`` is the validation loss of the best prediction that ignores the input
    (:func:`constant_prediction_loss`: the training targets' frequencies): a run that ends there
    learned nothing from its inputs, like a transformer stuck on predicting the most common
    characters. ``None`` where the task has no such prediction.
    """

    name: str = "task"
    chance_accuracy: float | None = None
    constant_loss: float | None = None

    @abstractmethod
    def model(self, seed: int) -> torch.nn.Module:
        """A fresh model, initialised from ``seed``."""

    @abstractmethod
    def batches(self, seed: int, batch_size: int) -> Iterator[Any]:
        """Training batches, endless and deterministic in ``seed`` and ``batch_size``."""

    @abstractmethod
    def loss(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(loss, accuracy)`` of ``model`` on ``batch``; accuracy ``None`` if the task has none."""

    def shard(self, batch: Any, rank: int, size: int) -> Any:
        """Rank ``rank``'s share of ``batch`` out of ``size`` equal shares.

        The default splits a tensor, or each tensor of a tuple or list, into ``size`` equal
        parts along dim 0 and returns part ``rank``. With a mean loss, the average of the
        shares' gradients (what DDP computes) is then the gradient of the whole batch. Override
        it for a batch that is not a stack of examples. ``size == 1`` returns ``batch``.
        """
        if size == 1:
            return batch
        if isinstance(batch, torch.Tensor):
            return batch.tensor_split(size)[rank]
        if isinstance(batch, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in batch):
            return type(batch)(t.tensor_split(size)[rank] for t in batch)
        raise TypeError(f"{type(self).__name__}.shard: a batch of type {type(batch).__name__} cannot be "
                        "split by default; expected a tensor or a tuple/list of tensors, or override shard()")

    @abstractmethod
    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Validation metrics: ``val_loss`` and, where it applies, ``val_accuracy``."""
