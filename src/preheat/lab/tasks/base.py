"""What a lab task is: a model, an endless stream of training batches, a loss and an evaluation.

Every built-in task and every user task (``--task package.module:function``) is a ``Task``. The
training loop (``preheat.lab.run``) only ever calls the four methods below, so a task decides
everything about its data and model, and nothing about the optimizer or the schedule.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterator

import torch


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
    """

    name: str = "task"
    chance_accuracy: float | None = None

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
