"""The warmup mistakes that show in the learning rates themselves, whatever made them.

:func:`lr_findings` reads the LR (or its multiplier) of updates ``0 .. total - 1`` - from a
preheat schedule, a torch ``LambdaLR``, an optax or Keras schedule - and reports:

- ``warmup-too-long`` (error): the LR still rises at the run's last update, so the warmup is as
  long as the run or longer and the peak is never trained at;
- ``decay-ends-early`` (error): the LR decays smoothly to its end value and then holds it for
  the last updates: the decay was given a length shorter than the run (optax's ``decay_steps``
  of ``warmup_cosine_decay_schedule`` counts the warmup too; a decay of ``total - warmup``
  after the warmup, as a ``join`` expects, ends ``warmup`` updates early there);
- ``zero-first-update`` (note): update 0 gets LR 0 exactly, so that update changes no weight
  (Hugging Face's and preheat's default ``start=0``); give ``start > 0`` unless it is wanted.

The optimizer and stepping mistakes are in :mod:`preheat.torch.checks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

#: Runs up to this many updates are checked at every update; longer ones on an even grid of this
#: many updates plus the last :data:`EXACT_TAIL`, and the numbers they report are rounded to it.
GRID = 2**20
EXACT_TAIL = 4096
#: A decay's flat tail this long or longer (updates, and fraction of the run) is reported.
MIN_TAIL = 2
MIN_TAIL_FRACTION = 0.005


class WarmupMistake(UserWarning):
    """The warning a :class:`~preheat.torch.Scheduler` gives for an ``error`` finding; filter it
    with ``warnings.filterwarnings("ignore", category=preheat.WarmupMistake)``."""


@dataclass(frozen=True)
class Finding:
    """One mistake found: ``code`` (stable, for filtering), ``severity`` (``"error"``: almost
    surely not what was meant; ``"note"``: often unintended), what was seen and how to fix it."""

    code: str
    severity: Literal["error", "note"]
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}; {self.fix}"


def check_steps(total: int) -> np.ndarray:
    """The updates a run of ``total`` updates is checked at: all of them up to :data:`GRID`, else
    an even grid of :data:`GRID` and the last :data:`EXACT_TAIL` (sorted, unique, int64)."""
    if total <= GRID:
        return np.arange(total, dtype=np.int64)
    grid = np.linspace(0, total - 1, GRID).astype(np.int64)
    return np.unique(np.concatenate([grid, np.arange(total - EXACT_TAIL, total, dtype=np.int64)]))


def lr_findings(steps: np.ndarray, values: np.ndarray, total: int) -> list[Finding]:
    """The mistakes visible in ``values``, the LR (or multiplier) at updates ``steps`` (increasing,
    from 0 to ``total - 1``, as :func:`check_steps` gives them) of a run of ``total`` updates."""
    values = np.asarray(values, dtype=np.float64)
    found: list[Finding] = []
    if values.size < 2 or not np.all(np.isfinite(values)):
        return found
    peak = values.max()
    first_peak = int(np.argmax(values >= peak))
    if first_peak == values.size - 1 and values[0] < peak:
        found.append(Finding(
            "warmup-too-long", "error",
            f"the LR still rises at the last update ({total - 1}) of the run: the warmup is as long "
            "as the run or longer, and the peak LR is never used",
            "make the warmup a small part of the run (1-10 % is usual), or give the scheduler "
            "the run's real length",
        ))
    end = values[-1]
    if end < peak:
        flat = values == end
        tail_start = values.size - int(np.argmin(flat[::-1])) if not flat.all() else 0
        tail = total - int(steps[tail_start]) if tail_start < values.size else 0
        smooth = tail_start >= 4 and np.all(np.diff(values[tail_start - 4:tail_start + 1]) < 0)
        if smooth and tail >= max(MIN_TAIL, MIN_TAIL_FRACTION * total):
            found.append(Finding(
                "decay-ends-early", "error",
                f"the LR decays to its end value ({end:.3g}) by update {int(steps[tail_start])} and "
                f"holds it for the last {tail} of {total} updates",
                "give the decay the run's length (optax's decay_steps includes the warmup: pass "
                "the total; after a warmup in a join or >>, decay over total - warmup)",
            ))
    if values[0] == 0.0 and peak > 0.0:
        found.append(Finding(
            "zero-first-update", "note",
            "update 0 gets LR 0 exactly, so it changes no weight",
            "start the warmup above 0 (e.g. linear_warmup(W, start=1/W)) unless that is wanted",
        ))
    return found
