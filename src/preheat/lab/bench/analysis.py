"""The benchmark's numbers, from its stores: cells, the tuned baseline, paired comparisons.

The only thing read from elsewhere is each task's ``constant_loss`` (a property of its data, built
once per task and options), which tells a stuck run from a trained one.

Definitions (the tables and figures show exactly these):

- a run **failed** when it diverged or, on a task scored by loss, ended *stuck*: its final
  validation loss within :data:`STUCK_MARGIN` (1 %) of the task's ``constant_loss`` or above it,
  no better than a prediction that ignores the input (a post-LN transformer that collapsed onto
  the common characters ends there, at 3.44 nats at context 16, without diverging);
- a run's **score**: its final validation loss (``inf`` if it failed) on a task scored by
  loss; on a task scored by steps (the river valley), the updates it took to reach the task's
  target loss, interpolated between evaluations (``inf`` if it never did or diverged);
- a **cell**: one method at one peak LR of one task, its runs by seed; its mean score with the
  95 % Student-t interval (:func:`preheat.lab.stats.half_width`), and how many seeds failed
  (diverged, got stuck, or never reached the target);
- the **tuned baseline** at a peak LR: the linear warmup length with the lowest mean score
  there (ties: the shorter warmup). It is chosen on the same seeds it is compared on, which
  favours it: a method that ties it ties a tuned warmup that was lucky too (by about one test
  cell in 25 for a fixed length, ``benchmarks/held_out_tuning.py``). Its **best** is the
  best cell over every (peak LR, warmup): what a user with a tuning budget would get;
- a method's **comparison** at a cell: :func:`preheat.lab.stats.paired_ratio` of its scores to
  the tuned baseline's over the seeds both ran, and :func:`preheat.lab.stats.outcome` (win, tie
  or loss; fewer failed seeds wins first);
- **largest stable peak**: the largest rung such that no seed of the method diverged or got
  stuck at it or at any lower rung (None: unstable at the lowest);
- **steps to target** (tasks scored by loss): the interpolated updates to 1.1 x the tuned
  baseline's mean final loss at that peak (:func:`preheat.lab.metrics.derive_target`); a
  method's **steps ratio** at a cell is its mean over the tuned baseline's mean, over seeds
  that reached it on both sides;
- **ms per update**: mean wall time over updates, over all the method's runs of the task;
- a task **discriminates** when, at its **aggressive peak** (the largest rung where no seed of
  the tuned baseline diverged or got stuck), no warmup loses to the tuned baseline
  (:func:`outcome`).
"""

from __future__ import annotations

import functools
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Collection

import numpy as np

from preheat.lab.bench.plan import LEARNED_STEP, is_linear, warmup_fraction
from preheat.lab.bench.tasks import BenchTask
from preheat.lab.config import RunConfig
from preheat.lab.methods import describe
from preheat.lab.metrics import derive_target
from preheat.lab.stats import Outcome, Ratio, half_width, interpolated_steps, outcome, paired_ratio
from preheat.lab.store import Store
from preheat.lab.tasks import make_task

TARGET_FACTOR = 1.1
#: A final loss above ``(1 - STUCK_MARGIN)`` times the task's constant-prediction loss is stuck.
STUCK_MARGIN = 0.01


@dataclass(frozen=True)
class Run:
    """One finished or diverged run: its seed, final val loss (``inf``: diverged or stuck),
    evaluation curve, whether it diverged, seconds per update, and whether it got stuck
    (finished no better than the constant prediction)."""

    seed: int
    final: float
    steps: tuple[float, ...]
    losses: tuple[float, ...]
    diverged: bool
    seconds_per_update: float
    stuck: bool = False

    @property
    def unstable(self) -> bool:
        """Diverged or stuck."""
        return self.diverged or self.stuck


@dataclass(frozen=True)
class Cell:
    """One method at one peak LR: its runs by seed and their scores (see the module docstring)."""

    method: str
    family: str
    peak_lr: float
    runs: tuple[Run, ...]
    scores: tuple[float, ...]

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(run.seed for run in self.runs)

    @property
    def mean(self) -> float:
        """Mean score; ``inf`` when a seed failed."""
        return statistics.fmean(self.scores) if self.scores else math.nan

    @property
    def half_width(self) -> float:
        """Half-width of the 95 % interval of :attr:`mean` (NaN: fewer than 2 seeds, or a failure)."""
        return half_width(np.array(self.scores))

    @property
    def failed(self) -> int:
        """Seeds whose score is infinite (diverged, stuck, or never reached the target)."""
        return sum(not math.isfinite(score) for score in self.scores)

    @property
    def unstable(self) -> int:
        """Seeds that diverged or got stuck."""
        return sum(run.unstable for run in self.runs)


@dataclass(frozen=True)
class Comparison:
    """A cell against the tuned baseline's cell: the paired ``ratio`` (None when fewer than two
    seeds finished on both sides) and the ``outcome`` (None when fewer than two seeds pair)."""

    cell: Cell
    baseline: Cell
    ratio: Ratio | None
    outcome: Outcome | None


@dataclass(frozen=True)
class TaskResult:
    """Every cell of one task, by method and peak LR, and the tuned baseline per peak."""

    task: BenchTask
    peaks: tuple[float, ...]
    cells: dict[str, dict[float, Cell]]
    tuned: dict[float, Cell]

    @property
    def methods(self) -> list[str]:
        """Every method but the linear grid, in the order the menu ran them."""
        return [m for m in self.cells if not is_linear(m)]

    @property
    def best_tuned(self) -> Cell | None:
        """The tuned baseline's best cell over every (peak LR, warmup)."""
        return _best(list(self.tuned.values()))

    def aggressive_peak(self) -> float | None:
        """The largest rung where no seed of the tuned baseline diverged or got stuck."""
        finished = [peak for peak, cell in self.tuned.items() if cell.runs and cell.unstable == 0]
        return max(finished) if finished else None

    def compare(self, cell: Cell) -> Comparison | None:
        """``cell`` against the tuned baseline at its peak; a learned-step optimizer's (no peak LR)
        against the tuned baseline's best. None when there is no baseline."""
        base = self.best_tuned if cell.method in LEARNED_STEP else self.tuned.get(cell.peak_lr)
        return None if base is None else compare(cell, base)

    def comparisons(self, method: str) -> list[Comparison]:
        """The method's cells against the tuned baseline, those with an outcome (two or more
        paired seeds), in ladder order."""
        found = (self.compare(cell) for cell in self.cells.get(method, {}).values())
        return [c for c in found if c is not None and c.outcome is not None]

    def largest_stable(self, method: str) -> float | None:
        """The method's largest stable peak (module docstring)."""
        stable = None
        for peak in self.peaks:
            cell = self.cells.get(method, {}).get(peak)
            if cell is None or not cell.runs or cell.unstable:
                break
            stable = peak
        return stable

    def best_cell(self, method: str) -> Cell | None:
        """The method's best cell over the ladder (lowest mean score)."""
        return _best(list(self.cells.get(method, {}).values()))

    def steps_ratio(self, cell: Cell) -> float | None:
        """Mean updates to the target over the tuned baseline's, at the cell's peak, over the seeds
        that reached it on both sides (None: none did, or the task is scored by steps)."""
        base = self.tuned.get(cell.peak_lr)
        if self.task.score == "steps" or base is None:
            return None
        target = derive_target(base.mean, TARGET_FACTOR)
        if target is None:
            return None
        ours = {run.seed: interpolated_steps(run.steps, run.losses, target) for run in cell.runs}
        theirs = {run.seed: interpolated_steps(run.steps, run.losses, target) for run in base.runs}
        pairs = [(ours[s], theirs[s]) for s in ours if s in theirs and ours[s] is not None and theirs[s] is not None]
        if not pairs:
            return None
        return statistics.fmean(a for a, _ in pairs) / max(statistics.fmean(b for _, b in pairs), 1e-12)

    def ms_per_update(self, method: str) -> float:
        """Mean wall time per update of the method's runs of this task, in milliseconds."""
        times = [run.seconds_per_update for cell in self.cells.get(method, {}).values() for run in cell.runs]
        return 1000 * statistics.fmean(times) if times else math.nan


def compare(cell: Cell, baseline: Cell) -> Comparison:
    """``cell`` against ``baseline`` over the seeds both ran (module docstring)."""
    common = sorted(set(cell.seeds) & set(baseline.seeds))
    ours = dict(zip(cell.seeds, cell.scores))
    theirs = dict(zip(baseline.seeds, baseline.scores))
    a, b = [ours[s] for s in common], [theirs[s] for s in common]
    if len(common) < 2:
        return Comparison(cell, baseline, None, None)
    both = [(x, y) for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y) and x > 0 and y > 0]
    ratio = paired_ratio(*zip(*both)) if len(both) >= 2 else None
    return Comparison(cell, baseline, ratio, outcome(a, b))


def load(task: BenchTask, directory: str | Path, ids: Collection[str] | None = None) -> TaskResult:
    """The task's cells from the store in ``directory``: its done runs (pending ones are left out)
    whose id is in ``ids`` (the plan's fingerprints; None: every run), so runs of an older plan
    left in the store never mix into a cell.

    Raises:
        ValueError: two runs of one method, peak LR and seed (give ``ids``).
    """
    store = Store(directory, read_only=True)
    constant = _constant_loss if task.score == "loss" else (lambda config: None)
    try:
        grouped: dict[str, dict[float, list[Run]]] = {}
        families: dict[str, str] = {}
        for stored in store.runs():
            if stored.status not in ("finished", "diverged") or (ids is not None and stored.id not in ids):
                continue
            evals = store.evals(stored.id)
            losses = tuple(float(v) for v in evals["val_loss"])
            diverged = stored.status == "diverged"
            final = math.inf if diverged or not losses or not math.isfinite(losses[-1]) else losses[-1]
            floor = constant(stored.config)
            stuck = floor is not None and math.isfinite(final) and final >= (1 - STUCK_MARGIN) * floor
            seconds = (stored.wall_time or math.nan) / stored.config.steps
            run = Run(stored.config.seed, math.inf if stuck else final, tuple(float(s) for s in evals["step"]),
                      losses, diverged, seconds, stuck)
            families.setdefault(stored.method, describe(stored.config).family)
            grouped.setdefault(stored.method, {}).setdefault(stored.config.peak_lr, []).append(run)
    finally:
        store.close()
    cells = {method: {peak: _cell(task, method, families[method], peak, runs) for peak, runs in sorted(by_peak.items())}
             for method, by_peak in grouped.items()}
    peaks = tuple(sorted({peak for method, by_peak in cells.items() if method not in LEARNED_STEP
                          for peak in by_peak}))
    tuned = {}
    for peak in peaks:
        best = _best(grid_at(cells, peak))
        if best is not None:
            tuned[peak] = best
    return TaskResult(task, peaks, cells, tuned)


def grid_at(cells: dict[str, dict[float, Cell]], peak: float) -> list[Cell]:
    """The linear grid's cells at ``peak`` (``cells``: method -> peak LR -> cell), shortest warmup
    first: the order that breaks ties in the tuned baseline's favour of the shorter warmup."""
    grid = [by_peak[peak] for method, by_peak in cells.items() if is_linear(method) and peak in by_peak]
    return sorted(grid, key=lambda cell: warmup_fraction(cell.method))


@functools.lru_cache(maxsize=None)
def _task_constant_loss(name: str, options: str) -> float | None:
    return make_task(name, json.loads(options)).constant_loss


def _constant_loss(config: RunConfig) -> float | None:
    """The constant-prediction loss of the run's task (with its options), loaded once per task."""
    return _task_constant_loss(config.task, json.dumps(config.task_options, sort_keys=True))


def _cell(task: BenchTask, method: str, family: str, peak: float, runs: list[Run]) -> Cell:
    runs = sorted(runs, key=lambda run: run.seed)
    seeds = [run.seed for run in runs]
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"{task.name}: {method} at peak LR {peak:g} has two runs of one seed ({seeds}): "
                         "the store holds runs of another plan; load the plan's runs (ids=...)")
    if task.score == "loss":
        scores = tuple(run.final for run in runs)
    else:
        reached = (None if run.diverged else interpolated_steps(run.steps, run.losses, task.target) for run in runs)
        scores = tuple(math.inf if s is None else s for s in reached)
    return Cell(method, family, peak, tuple(runs), scores)


def _best(cells: list[Cell]) -> Cell | None:
    """The cell with the lowest mean score (the first among equals); None if there is none."""
    done = [cell for cell in cells if cell.scores]
    return min(done, key=lambda cell: cell.mean) if done else None
