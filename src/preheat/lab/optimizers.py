"""The optimizer registry: every optimizer a lab run may name, and what the loop knows of it.

One entry per name; nothing else in preheat lists optimizers. An entry says:

- ``family``: ``sgd`` (SGD-like: plain or heavy-ball steps) or ``adam`` (Adam-like: a
  per-coordinate second-moment scaling, even if only later in the run);
- ``preconditioned``: whether every update is Adam's ``theta -= eta P^{-1} m``, so the
  preconditioned sharpness (:func:`preheat.probes.adam_preconditioner`) is the curvature that
  matters and the catapult search takes Adam's first step. RAdam is Adam-like but not
  preconditioned: its first updates are un-adapted momentum steps (its first is ``-eta g``);
  schedule-free AdamW is not either (it steps an average of iterates);
- ``stability``: the update rule whose edge of stability applies (``sgd``, ``momentum`` or
  ``adam``, see :func:`preheat.adaptive.sharpness.stability_threshold`), or ``None`` where no
  threshold is known (RAdam, schedule-free);
- ``make``: the factory, from the run's config and its parameters, at ``config.peak_lr`` (the
  schedule's 1). torch and the peers' packages are imported only when an optimizer is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

from preheat.adaptive.sharpness import stability_rule, stability_threshold

if TYPE_CHECKING:
    import torch

    from preheat.lab.config import RunConfig

Factory = Callable[["RunConfig", list[Any]], "torch.optim.Optimizer"]


@dataclass(frozen=True)
class OptimizerEntry:
    """One optimizer of the registry (see the module docstring for each field)."""

    family: Literal["sgd", "adam"]
    preconditioned: bool
    stability: Literal["sgd", "momentum", "adam"] | None
    make: Factory

    def beta(self, config: RunConfig) -> float:
        """The momentum the stability threshold uses: ``momentum`` for heavy ball, else ``beta1``."""
        return config.momentum if self.stability == "momentum" else config.betas[0]

    def threshold(self, config: RunConfig, lr: float) -> float:
        """The stability threshold at LR ``lr`` (NaN where none is known; ``inf`` at ``lr = 0``)."""
        return math.nan if self.stability is None else stability_threshold(self.stability, lr, self.beta(config))

    def threshold_rule(self, config: RunConfig) -> str | None:
        """The threshold's formula as text, or ``None`` where none is known."""
        return None if self.stability is None else stability_rule(self.stability, self.beta(config))


def _sgd(config: RunConfig, params: list[Any]) -> torch.optim.Optimizer:
    import torch

    return torch.optim.SGD(params, lr=config.peak_lr, weight_decay=config.weight_decay)


def _momentum(config: RunConfig, params: list[Any]) -> torch.optim.Optimizer:
    import torch

    return torch.optim.SGD(params, lr=config.peak_lr, momentum=config.momentum, weight_decay=config.weight_decay)


def _adam_like(name: str, **fixed: Any) -> Factory:
    """A factory for an optimizer with Adam's arguments (``lr``, ``betas``, ``eps``, ``weight_decay``)."""

    def make(config: RunConfig, params: list[Any]) -> torch.optim.Optimizer:
        import torch

        from preheat.optim import GIAdam, GIAdamW

        classes = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW, "RAdam": torch.optim.RAdam,
                   "GIAdam": GIAdam, "GIAdamW": GIAdamW}
        return classes[name](params, lr=config.peak_lr, betas=config.betas, eps=config.eps,
                             weight_decay=config.weight_decay, **fixed)

    return make


def _schedulefree_adamw(config: RunConfig, params: list[Any]) -> torch.optim.Optimizer:
    from preheat.lab.peers import peer_module

    return peer_module("schedulefree").AdamWScheduleFree(
        params, lr=config.peak_lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay,
        warmup_steps=config.warmup or 0)


#: Every optimizer a run may name. GI-Adam uses ``init_scale=1``, ``bias_correction2=True``;
#: ``radamw`` is RAdam with AdamW's decoupled weight decay.
OPTIMIZERS: dict[str, OptimizerEntry] = {
    "sgd": OptimizerEntry("sgd", False, "sgd", _sgd),
    "momentum": OptimizerEntry("sgd", False, "momentum", _momentum),
    "adam": OptimizerEntry("adam", True, "adam", _adam_like("Adam")),
    "adamw": OptimizerEntry("adam", True, "adam", _adam_like("AdamW")),
    "giadam": OptimizerEntry("adam", True, "adam", _adam_like("GIAdam")),
    "giadamw": OptimizerEntry("adam", True, "adam", _adam_like("GIAdamW")),
    "radam": OptimizerEntry("adam", False, None, _adam_like("RAdam")),
    "radamw": OptimizerEntry("adam", False, None, _adam_like("RAdam", decoupled_weight_decay=True)),
    "schedulefree_adamw": OptimizerEntry("adam", False, None, _schedulefree_adamw),
}

OptimizerName = Literal[tuple(OPTIMIZERS)]  # type: ignore[valid-type]


def build_optimizer(config: RunConfig, params: list[Any]) -> torch.optim.Optimizer:
    """The optimizer ``config.optimizer`` names, over ``params``, at ``config.peak_lr``."""
    return OPTIMIZERS[config.optimizer].make(config, params)
