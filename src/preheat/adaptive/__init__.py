"""Adaptive warmups: controllers that set the next LR multiplier from training signals.

Use one in place of a schedule: ``preheat.Scheduler(optimizer, controller)``, and pass each
update's signals with ``scheduler.step(loss=..., grad_norm=...)``. See ``docs/adaptive.md``.

The contract every controller follows is in :mod:`preheat.adaptive.base` (bounds, proposals,
state and the rules a loaded state is checked by: :func:`within`, :func:`rule`,
:func:`any_float`; what it needs measured); each controller is one module: :mod:`~.auto` (``auto_warmup()``, the default),
:mod:`~.autowu`
(Kim et al. 2021), :mod:`~.catapult`, :mod:`~.gap` (Riabinin et al. 2026), :mod:`~.nars`,
:mod:`~.sharpness` (with the edge-of-stability thresholds), :mod:`~.smoothness`; :mod:`~.text`
reads controller expressions.
"""

from preheat.adaptive.auto import AutoWarmup
from preheat.adaptive.autowu import AutoWUWarmup
from preheat.adaptive.base import Bounds, Controller, ControllerState, Decision, Proposal, any_float, rule, within
from preheat.adaptive.catapult import CatapultWarmup
from preheat.adaptive.gap import GapWarmup
from preheat.adaptive.nars import NARSWarmup, TruthValue
from preheat.adaptive.sharpness import SharpnessWarmup
from preheat.adaptive.smoothness import SmoothnessWarmup, fit_smoothness_law
from preheat.adaptive.text import parse_controller

#: Every controller, by the name an expression uses (``nars_warmup()``, ...).
CONTROLLERS: tuple[type[Controller], ...] = (AutoWarmup, AutoWUWarmup, CatapultWarmup, GapWarmup, NARSWarmup, SharpnessWarmup,
                                             SmoothnessWarmup)

__all__ = [
    "CONTROLLERS",
    "AutoWarmup",
    "AutoWUWarmup",
    "Bounds",
    "CatapultWarmup",
    "Controller",
    "ControllerState",
    "Decision",
    "GapWarmup",
    "Proposal",
    "NARSWarmup",
    "SharpnessWarmup",
    "SmoothnessWarmup",
    "TruthValue",
    "any_float",
    "fit_smoothness_law",
    "parse_controller",
    "rule",
    "within",
]
