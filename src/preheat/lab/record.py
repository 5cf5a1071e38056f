"""A run's record as the loop produces it and the store keeps it: plain data, no torch.

Reading a store imports this module, never the training code (:mod:`preheat.lab.run`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from preheat.adaptive import Decision

STEP_COLUMNS = ("step", "lr", "train_loss", "train_accuracy", "grad_norm", "update_norm")
EVAL_COLUMNS = ("step", "val_loss", "val_accuracy")


@dataclass
class RunResult:
    """What one run produced. ``steps`` and ``evals`` are columns (lists of equal length).

    ``status`` is ``finished`` (all steps ran), ``diverged`` (stopped early, see
    ``RunConfig.diverge_factor``) or ``failed`` (an exception; its text is in ``error``). A
    sweep reports ``lost`` to its progress (never to the store) for a run whose process died.
    Missing values (no accuracy for the task) are NaN. ``chance_accuracy`` is the task's (``None``
    where it has none), kept so that metrics never build a task.
    """

    status: str
    steps: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in STEP_COLUMNS})
    evals: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in EVAL_COLUMNS})
    wall_time: float = 0.0
    error: str | None = None
    decisions: list[Decision] = field(default_factory=list)  # a controller's, one per update
    signal_seconds: float = 0.0  # time spent measuring signals for the controller
    chance_accuracy: float | None = None  # the task's, for metrics that read only the store
