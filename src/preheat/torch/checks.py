"""Warmup mistakes in a PyTorch setup, found before or while training.

:func:`check` looks at a scheduler, a schedule and an optimizer and returns every
:class:`~preheat.schedules.checks.Finding`; a :class:`~preheat.torch.Scheduler` runs the same
rules as it goes and warns (:class:`~preheat.schedules.checks.WarmupMistake`) on each error:

- the LR rules of :mod:`preheat.schedules.checks` (warmup as long as the run, a decay that ends
  early, LR 0 at update 0), when the run's ``total`` is known;
- ``prodigy-no-safeguard`` (error): Prodigy with a warmup and ``safeguard_warmup=False``; its
  authors ask for ``safeguard_warmup=True`` with a warmup, since the small early LRs in the
  denominator of its step-size estimate make that estimate overshoot;
- ``schedule-free-train-mode`` (error when checkpointing): a schedule-free optimizer
  (facebookresearch/schedule_free) in train mode holds the training sequence in the weights,
  not the average it evaluates and should save: call ``optimizer.eval()`` before saving;
- ``stepped-per-epoch`` (error, while training): the scheduler is stepped once per several
  optimizer updates - Lightning's default ``interval="epoch"`` - so a 200-update warmup lasts
  200 epochs;
- ``stepped-per-micro-batch`` (error, while training): the scheduler is stepped more often than
  the optimizer - once per micro-batch under gradient accumulation - so the warmup ends early.

Optimizers are recognised by their param groups' keys (``safeguard_warmup``, ``train_mode``), so
nothing here imports prodigyopt or schedulefree.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from preheat.schedules import Schedule
from preheat.schedules.checks import Finding, WarmupMistake, check_steps, lr_findings
from preheat.schedules.validate import check_int, shorten

#: Scheduler steps before "more scheduler steps than updates" is called a habit, not a few
#: updates a gradient scaler skipped at the start of mixed-precision training.
MICRO_BATCH_EVIDENCE = 32


def schedule_findings(schedule: Schedule | Callable[[Any], Any], total: int) -> list[Finding]:
    """The LR rules over updates ``0 .. total - 1`` of a preheat schedule (durations in units
    resolved against ``total``) or of any ``step -> LR`` callable (an optax schedule, a Keras
    ``LearningRateSchedule``, a ``LambdaLR``'s lambda)."""
    total = check_int("check", "total", total, minimum=1)
    steps = check_steps(total)
    if isinstance(schedule, Schedule):
        values = schedule.resolve(total=total)(steps)
    else:
        values = _evaluate(schedule, steps)
    return lr_findings(steps, values, total)


def _evaluate(function: Callable[[Any], Any], steps: np.ndarray) -> np.ndarray:
    """``function`` at every step: at once where it takes an array (optax, Keras), else one by one."""
    try:
        values = np.asarray(function(steps), dtype=np.float64)
        if values.shape == steps.shape:
            return values
    except Exception:  # a Python step -> float function (a LambdaLR's lambda) refuses arrays
        pass
    return np.array([float(function(int(t))) for t in steps])


def optimizer_findings(optimizer: Optimizer, warms_up: bool) -> list[Finding]:
    """Prodigy with a warmup and no safeguard (``warms_up``: update 0's LR is below the peak)."""
    unsafe = [i for i, g in enumerate(optimizer.param_groups) if g.get("safeguard_warmup") is False]
    if not (warms_up and unsafe):
        return []
    return [Finding(
        "prodigy-no-safeguard", "error",
        f"{type(optimizer).__name__} runs with a warmup and safeguard_warmup=False "
        f"(param groups {unsafe})",
        "build it with safeguard_warmup=True, as Prodigy's authors ask for with a warmup",
    )]


def train_mode_findings(optimizer: Optimizer | Mapping[str, Any], where: str = "the optimizer") -> list[Finding]:
    """A schedule-free optimizer (or its ``state_dict``) in train mode."""
    groups = optimizer["param_groups"] if isinstance(optimizer, Mapping) else optimizer.param_groups
    if not any(isinstance(g, Mapping) and g.get("train_mode") is True for g in groups):
        return []
    return [Finding(
        "schedule-free-train-mode", "error",
        f"{where} is schedule-free and in train mode: its weights are the training sequence, not "
        "the average it evaluates with",
        "call optimizer.eval() (and model.eval()) before saving or evaluating, optimizer.train() after",
    )]


def cadence_findings(calls: int, updates: int) -> list[Finding]:
    """How often the scheduler was stepped (``calls``) against the optimizer's updates."""
    if calls >= 1 and updates >= 2 * calls:
        return [Finding(
            "stepped-per-epoch", "error",
            f"scheduler.step() was called {calls} time(s) in {updates} optimizer updates, so the "
            f"schedule runs about {updates / calls:.0f}x slower than written",
            "call scheduler.step() after every optimizer.step() (Lightning: return "
            "{'scheduler': scheduler, 'interval': 'step'}; its default 'epoch' steps it once an epoch)",
        )]
    if calls >= MICRO_BATCH_EVIDENCE and calls >= 2 * updates:
        return [Finding(
            "stepped-per-micro-batch", "error",
            f"scheduler.step() was called {calls} times in {updates} optimizer updates, so the "
            "warmup ends early (counted in micro-batches)",
            "with gradient accumulation call scheduler.step() once per optimizer update, after "
            "optimizer.step(), and count the run's length in updates",
        )]
    return []


def checkpoint_findings(data: Any, depth: int = 8) -> list[Finding]:
    """Schedule-free optimizer states saved in train mode anywhere in a loaded checkpoint (dicts
    and lists, ``depth`` levels deep): ``{"optimizer": opt.state_dict()}``, Lightning's
    ``optimizer_states``, ..."""
    found: list[Finding] = []
    if depth < 0:
        return found
    if isinstance(data, Mapping):
        if isinstance(data.get("param_groups"), list):
            return train_mode_findings(data, "an optimizer state in the checkpoint")
        items: Iterable[Any] = data.values()
    elif isinstance(data, (list, tuple)):
        items = data
    else:
        return found
    for item in items:
        for finding in checkpoint_findings(item, depth - 1):
            if finding not in found:
                found.append(finding)
    return found


def check(
    scheduler: LRScheduler | None = None,
    *,
    schedule: Schedule | Callable[[Any], Any] | None = None,
    optimizer: Optimizer | None = None,
    total: int | None = None,
) -> list[Finding]:
    """Every warmup mistake visible in this setup, errors first.

    - ``scheduler``: a :class:`~preheat.torch.Scheduler` (its first group's schedule; a
      controller has no LRs to read ahead) or a torch ``LambdaLR`` (Hugging Face's
      ``get_*_schedule_with_warmup``); its optimizer is checked too.
    - ``schedule``: a preheat schedule, an optax schedule or a Keras ``LearningRateSchedule``.
    - ``optimizer``: checked for Prodigy's safeguard and a schedule-free train mode.
    - ``total``: the run's updates; the LR rules need it.

    Returns a list of :class:`~preheat.schedules.checks.Finding` (empty: nothing found).

    Raises:
        ValueError: ``scheduler`` is not a torch LR scheduler (a schedule goes in ``schedule=``).
    """
    function: Schedule | Callable[[Any], Any] | None = schedule
    if scheduler is not None and not isinstance(scheduler, LRScheduler):
        raise ValueError(f"check: scheduler={shorten(scheduler)} is invalid; expected a torch LR scheduler "
                         "(preheat.Scheduler, LambdaLR, ...); pass a schedule as check(schedule=..., total=...)")
    if scheduler is not None:
        optimizer = optimizer or scheduler.optimizer
        if function is None:
            function = _scheduler_function(scheduler)
    found: list[Finding] = []
    if function is not None and total is not None:
        found += schedule_findings(function, total)
    if optimizer is not None:
        first = _first_multiplier(function, scheduler)
        found += optimizer_findings(optimizer, warms_up=first is not None and first < 1.0)
        found += train_mode_findings(optimizer)
    return sorted(found, key=lambda f: f.severity != "error")


def _scheduler_function(scheduler: LRScheduler) -> Schedule | Callable[[Any], Any] | None:
    """What a scheduler multiplies the peak by at each step, where that can be read ahead."""
    schedules = getattr(scheduler, "schedules", None)
    if schedules:
        return schedules[0]  # type: ignore[no-any-return]
    if isinstance(scheduler, LambdaLR):
        return scheduler.lr_lambdas[0]  # type: ignore[no-any-return]
    return None


def _first_multiplier(function: Any, scheduler: LRScheduler | None) -> float | None:
    """Update 0's multiplier of the peak, where the setup gives one (a schedule, a ``LambdaLR``'s
    lambda, a controller); None for an optax or Keras schedule, which gives LRs."""
    controller = getattr(scheduler, "controller", None)
    if controller is not None:
        return float(controller.multiplier())
    if isinstance(function, Schedule):
        return None if function.has_units else function(0)
    if isinstance(scheduler, LambdaLR) and function is scheduler.lr_lambdas[0]:
        return float(function(0))
    return None


def warn(findings: Iterable[Finding], stacklevel: int = 3) -> None:
    """Warn (:class:`WarmupMistake`) once for each error among ``findings``; notes stay quiet."""
    for finding in findings:
        if finding.severity == "error":
            warnings.warn(str(finding), WarmupMistake, stacklevel=stacklevel)
