"""Warmups from other packages, run by the lab through those packages themselves.

A run names one in ``RunConfig.peer`` instead of a preheat schedule, so a sweep can put what
users would otherwise pick beside preheat's warmups, on the same tasks, seeds and step budget:

- ``hf_cosine``: ``transformers.get_cosine_schedule_with_warmup(optimizer, warmup, steps)``,
  Hugging Face's linear warmup from 0 and cosine decay to 0 (a ``LambdaLR``).
- ``untuned_warmup``: ``pytorch_warmup.UntunedLinearWarmup(optimizer)`` dampening
  ``CosineAnnealingLR(optimizer, T_max=steps)``, as that package's README pairs them: the
  warmup lasts ``2 / (1 - beta2)`` updates, read from the optimizer's ``betas``.
- ``untuned_exponential``: ``pytorch_warmup.UntunedExponentialWarmup(optimizer)`` dampening
  the same ``CosineAnnealingLR``: the factor ``1 - exp(-(t + 1) / tau)`` with the time constant
  ``tau = 1 / (1 - beta2)`` (both untuned warmups are Ma and Yarats' rules of thumb).

(Schedule-free AdamW, Prodigy, D-Adaptation and DoG are optimizers, see
:mod:`preheat.lab.optimizers`.) The packages are the ``peers`` extra:
``pip install 'preheat[peers]'``.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import torch

PEERS = ("hf_cosine", "untuned_warmup", "untuned_exponential")


class Stepper(Protocol):
    """What the loop calls once after every update."""

    def step(self) -> None: ...


def peer_module(name: str) -> Any:
    """Import a peer package, naming the extra to install when it is missing."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"{name} is not installed; pip install 'preheat[peers]'") from None


def peer_scheduler(peer: str, optimizer: torch.optim.Optimizer, warmup: int | None, steps: int) -> Stepper:
    """The LR schedule ``peer`` names (see the module docstring), driving ``optimizer``.

    Update 0 gets what the peer gives it: 0 for ``hf_cosine`` (warmup > 0), ``peak / 2000`` for
    ``untuned_warmup`` and ``peak * (1 - exp(-1/1000))`` (about ``peak / 1000``) for
    ``untuned_exponential``, with beta2 = 0.999.
    """
    if peer == "hf_cosine":
        transformers = peer_module("transformers")
        return transformers.get_cosine_schedule_with_warmup(optimizer, warmup or 0, steps)
    if peer == "untuned_warmup":
        return _Dampened(peer_module("pytorch_warmup").UntunedLinearWarmup(optimizer),
                         torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps))
    if peer == "untuned_exponential":
        return _Dampened(peer_module("pytorch_warmup").UntunedExponentialWarmup(optimizer),
                         torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps))
    raise ValueError(f"peer={peer!r} is invalid; expected one of {', '.join(PEERS)}")


class _Dampened:
    """pytorch_warmup's protocol: the scheduler steps inside the warmup's ``dampening()``."""

    def __init__(self, warmup: Any, scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
        self.warmup, self.scheduler = warmup, scheduler

    def step(self) -> None:
        with self.warmup.dampening():
            self.scheduler.step()
