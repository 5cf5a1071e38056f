"""What a controller measures before update 0 (its ``prepare_needs``), by name: one registry.

:meth:`preheat.Scheduler.prepare <preheat.torch.Scheduler.prepare>` and the lab
(:mod:`preheat.lab.run`) both measure through :func:`measure`, so a new measurement is one
function and one entry in :data:`BEFORE_TRAINING`:

- ``catapult_lr``: Kalra & Barkeshli's initial LR, the catapult search
  (:func:`preheat.probes.catapult_search`) on the batch given, from ``peak_lr / 1000`` up to
  ``peak_lr`` (capped there), with the first step of plain SGD (``kind="sgd"``) or of Adam
  (``kind="adam"``). ``auto_warmup`` with SGD reads its ramp's length off it; the catapult
  warmups start from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from torch import nn

from preheat.probes import LossFn, catapult_search

#: The first LR the catapult search tries, as a fraction of the peak.
CATAPULT_START = 1e-3


@dataclass(frozen=True)
class Before:
    """What a measurement before update 0 sees: the model at its initial weights, the loss
    (``loss_fn(model, batch) -> scalar tensor``), one batch, the peak LR and the kind of the
    optimizer's first step (``"sgd"`` or ``"adam"``, as :func:`~preheat.probes.catapult_search`
    simulates it)."""

    model: nn.Module
    loss_fn: LossFn
    batch: Any
    peak_lr: float
    kind: str


def catapult_lr(before: Before) -> float:
    """The catapult search's LR on ``before.batch``: the smallest LR whose one update raises the
    loss by 10 % (SGD) or 1 % (Adam), capped at the peak; parameters, buffers and gradients are
    left as they were."""
    return catapult_search(before.model, before.loss_fn, before.batch, eta0=before.peak_lr * CATAPULT_START,
                           target_lr=before.peak_lr, kind=before.kind).lr


#: Measurements made once before update 0: name -> function of what it sees.
BEFORE_TRAINING: dict[str, Callable[[Before], float]] = {"catapult_lr": catapult_lr}


def measure(names: Iterable[str], before: Before) -> dict[str, float]:
    """Each measurement ``names`` lists, by its function in :data:`BEFORE_TRAINING`.

    Raises:
        ValueError: a name that is not in :data:`BEFORE_TRAINING` (before anything is measured),
            naming it and what is measured.
    """
    names = tuple(names)
    unknown = sorted(set(names) - set(BEFORE_TRAINING))
    if unknown:
        raise ValueError(f"the controller needs {unknown} before training; what is measured before "
                         f"update 0: {', '.join(BEFORE_TRAINING)}")
    return {name: float(BEFORE_TRAINING[name](before)) for name in names}
