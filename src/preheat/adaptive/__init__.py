"""Adaptive warmups: controllers that set the next LR multiplier from training signals.

Use one in place of a schedule: ``preheat.Scheduler(optimizer, controller)``, and pass each
update's signals with ``scheduler.step(loss=..., grad_norm=...)``. See ``docs/adaptive.md``.
"""

from preheat.adaptive.base import Controller, Decision

__all__ = ["Controller", "Decision"]
