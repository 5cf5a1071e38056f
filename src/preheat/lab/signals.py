"""What the loop measures beyond the loss and the gradient norm: one registry, by name.

A controller declares what it needs (:mod:`preheat.adaptive.base`): ``needs`` after updates
(name -> every how many updates) and ``prepare_needs`` before update 0. The loop looks each name
up here, so a new signal is one function and one entry, with no edit of the loop:

- ``smoothness`` (:data:`AFTER_UPDATE`): the local smoothness along the step,
  ``||g(theta_{t+1}) - g(theta_t)|| / ||theta_{t+1} - theta_t||``, both gradients of the loss of
  update ``t``'s batch (one extra forward and backward; under ``torchrun`` the new gradient is
  averaged over ranks like the old one, so it is the whole batch's). ``g(theta_t)`` is the
  gradient before any clipping. NaN when the update did not move the parameters;
- ``sharpness`` (:data:`AFTER_UPDATE`): the top eigenvalue of the loss Hessian on the update's
  batch at the new parameters (Lanczos on Hessian-vector products, warm-started from the last
  eigenvector), preconditioned by Adam's second moment for preconditioned optimizers
  (:mod:`preheat.lab.optimizers`; under ``torchrun``, of each rank's share: the Scheduler
  averages the ranks' values);
- before update 0, what ``prepare_needs`` names, through the one registry of
  :mod:`preheat.torch.prepare` (:meth:`preheat.torch.Scheduler.prepare`), on a batch the run
  does not train on (:func:`prepare`), with Adam's first step for preconditioned optimizers and
  plain SGD's otherwise; the same value on every rank.

:class:`Feed` is the loop's observer that measures what a controller needs after each update
and passes it on with the loss and gradient norm; the seconds it spends measuring are counted,
so a report can state what a controller costs. ``preheat diagnose`` measures with the same
functions (:mod:`preheat.lab.diagnose`).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Callable

import torch

from preheat.lab import distributed
from preheat.probes import SharpnessResult, adam_preconditioner, sharpness

if TYPE_CHECKING:
    from preheat.lab.run import Run, Update
    from preheat.torch import Scheduler

#: The batch measured before update 0 comes from this offset of the run's seed, a seed its
#: training never uses.
PREPARE_SEED_OFFSET = 1_000_003


def smoothness(run: Run, update: Update) -> float:
    """``||g(theta_{t+1}) - g(theta_t)|| / ||theta_{t+1} - theta_t||`` on update ``t``'s batch
    (see the module docstring); NaN when the update did not move the parameters."""
    moved = torch.linalg.vector_norm(update.after - update.before).item()
    if moved == 0:
        return math.nan
    fresh = torch.autograd.grad(run.loss(run.model, update.batch), run.params, allow_unused=True)
    new = flat([torch.zeros_like(p) if g is None else g for g, p in zip(fresh, run.params)])
    assert update.gradient is not None  # kept for every run with observers, which measure here
    return torch.linalg.vector_norm(distributed.mean_tensor(new) - update.gradient).item() / moved


def top_eigenvalue(run: Run, batch: Any, init: torch.Tensor | None, preconditioned: bool) -> SharpnessResult:
    """The top Hessian eigenvalue of ``batch``'s loss at the model's current parameters,
    preconditioned by Adam's ``P`` when ``preconditioned`` (warm-started from ``init``)."""
    preconditioner = adam_preconditioner(run.optimizer, run.model) if preconditioned else None
    return sharpness(run.model, run.loss, batch, init=init, preconditioner=preconditioner)


class _Sharpness:
    """``sharpness`` after an update, warm-started from the eigenvector it found last time."""

    def __init__(self) -> None:
        self.vector: torch.Tensor | None = None

    def __call__(self, run: Run, update: Update) -> float:
        result = top_eigenvalue(run, update.batch, self.vector, run.entry.preconditioned)
        self.vector = result.vector
        return result.value


#: Signals measured after an update: name -> a maker of the measuring function (one per run,
#: which may keep what it learnt, like the last eigenvector).
AFTER_UPDATE: dict[str, Callable[[], Callable[[Run, Update], float]]] = {
    "smoothness": lambda: smoothness,
    "sharpness": _Sharpness,
}
def _known(names: Any, registry: dict[str, Any], when: str) -> None:
    unknown = sorted(set(names) - set(registry))
    if unknown:
        raise ValueError(f"the controller needs {unknown} {when}; the lab measures {', '.join(registry)}")


def before_training(run: Run) -> tuple[Any, str]:
    """What a measurement before update 0 uses: a batch from the run's seed plus
    :data:`PREPARE_SEED_OFFSET`, and the first step's kind, Adam's for preconditioned
    optimizers and plain SGD's otherwise."""
    config = run.config
    batch = next(run.task.batches(config.seed + PREPARE_SEED_OFFSET, config.batch_size))
    return batch, "adam" if run.entry.preconditioned else "sgd"


def prepare(run: Run, scheduler: Scheduler) -> dict[str, float]:
    """Measure what the scheduler's controller names in ``prepare_needs`` and give it to it
    (:meth:`preheat.torch.Scheduler.prepare`), as :func:`before_training` says; ``{}`` and
    nothing drawn where it needs nothing."""
    if not scheduler.controller.prepare_needs:
        return {}
    batch, kind = before_training(run)
    return scheduler.prepare(run.model, run.loss, batch, kind=kind)


class Feed:
    """The observer that feeds a controller: after each update, the signals its ``needs`` asks
    for (when due: ``step % every == 0``; NaN measurements are left out) with the loss and the
    gradient norm, through ``scheduler.observe`` (which averages them over ranks)."""

    def __init__(self, controller: Any, scheduler: Scheduler) -> None:
        _known(controller.needs, AFTER_UPDATE, "after updates")
        self.controller, self.scheduler = controller, scheduler
        self.every = dict(controller.needs)
        self.measures = {name: AFTER_UPDATE[name]() for name in self.every}
        self.seconds = 0.0

    def updated(self, run: Run, update: Update) -> None:
        started = time.perf_counter()
        found = {}
        for name, every in self.every.items():
            if update.step % every == 0:
                value = self.measures[name](run, update)
                if not math.isnan(value):
                    found[name] = value
        self.seconds += time.perf_counter() - started
        self.scheduler.observe(loss=update.loss, grad_norm=update.grad_norm, **found)


def flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The tensors as one flat vector (a new tensor: a snapshot of their values)."""
    return torch.cat([t.reshape(-1) for t in tensors])
