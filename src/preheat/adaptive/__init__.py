"""Adaptive warmups: controllers that set the next LR multiplier from training signals.

Use one in place of a schedule: ``preheat.Scheduler(optimizer, controller)``, and pass each
update's signals with ``scheduler.step(loss=..., grad_norm=...)``. See ``docs/adaptive.md``.
"""

from preheat.adaptive.base import Controller, Decision
from preheat.adaptive.catapult import CatapultWarmup
from preheat.adaptive.nars import NARSWarmup, TruthValue
from preheat.adaptive.sharpness import SharpnessWarmup
from preheat.adaptive.smoothness import SmoothnessWarmup, fit_smoothness_law
from preheat.adaptive.text import parse_controller

#: Every controller, by the name an expression uses (``nars_warmup()``, ...).
CONTROLLERS: tuple[type[Controller], ...] = (CatapultWarmup, NARSWarmup, SharpnessWarmup, SmoothnessWarmup)

__all__ = [
    "CONTROLLERS",
    "CatapultWarmup",
    "Controller",
    "Decision",
    "NARSWarmup",
    "SharpnessWarmup",
    "SmoothnessWarmup",
    "TruthValue",
    "fit_smoothness_law",
    "parse_controller",
]
