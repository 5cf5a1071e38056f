"""Metrics of a sweep, computed from the store alone: per run, per method, and the ranking.

Definitions (every function below follows them):

- **method**: what a comparison groups runs by, ``RunConfig.method`` as the store keeps it (a
  run's label, else its peer with its warmup, else its controller expression, else its schedule
  with ``{steps}`` and ``{warmup}`` filled in). A method may span several warmups (a label over
  a warmup sweep); the ranking shows it at its best one.
- **final val loss**: the validation loss of a run's last evaluation; ``inf`` for a run that
  diverged (and for a last evaluation that is NaN/inf); NaN for a run with no evaluation
  (pending, or crashed before its first one).
- **best val loss**: the lowest finite validation loss of a run (NaN if none).
- **target**: the validation loss a run has to reach. Given, or derived as ``target_factor``
  times the best validation loss of any ``finished`` run of the sweep. For a best loss ``b <= 0``
  ``factor * b`` would lie *below* the best (unreachable), so the derivation is written as
  ``b + (target_factor - 1) * |b|``: the same as ``target_factor * b`` for ``b > 0``, ``0`` for
  ``b = 0``, and a target just above ``b`` for ``b < 0``. ``None`` when no finished run has a
  finite validation loss.
- **steps to target**: the step of the first evaluation whose validation loss is ``<= target``
  (a run that diverged later still reached it); ``None`` if it never did.
- **diverged**: the run's status is ``diverged`` (the loop stopped it: loss NaN/inf or above
  ``diverge_factor`` times the initial validation loss). **crashed**: status ``failed`` (an
  exception; its text is the run's ``error``). Neither is **below chance**.
- **below chance** (Kalra & Barkeshli 2024 call such a run failed): the run's final training
  accuracy (the mean of the last 10% of its recorded steps, at least one step, NaN ignored) is
  below ``1.5 x`` the task's chance accuracy, which the store keeps per run
  (``RunResult.chance_accuracy``). ``None`` when the chance accuracy is unknown (a task without
  one, a store from before it was kept) or no accuracy was recorded.
- **spikes**: the number of rising edges of "the training loss at step ``t`` exceeds
  ``spike_factor`` times the exponential moving average (``alpha = 0.1``) of the losses of the
  steps before ``t``, and exceeds it by at least 25% of the initial training loss"; steps
  ``t < 10`` are not tested (the average has not settled yet). The second condition keeps
  minibatch noise out: at a loss of 0.05 one hard batch easily doubles it, which is not a
  spike. A run of consecutive spiking steps is one spike. A NaN/inf loss counts as exceeding
  and is not fed into the average. See :func:`count_spikes`.
- **stable** (one run): ``finished`` and not below chance. A method's **largest stable LR** (at
  one warmup) is the largest swept peak LR ``L`` such that every done run at *every* swept LR
  ``<= L`` is stable: stability must hold from the smallest LR up, so a lucky seed at a large LR
  after a diverged smaller one does not count. ``None`` when the smallest LR is already unstable.
- **good LR range**: the peak LRs whose mean final val loss is within ``(1 + tolerance)`` of the
  method's best mean final val loss (written ``best + tolerance * |best|``, as for the target);
  reported as the list and its (min, max).

Aggregates use only done runs (``finished``, ``diverged``, ``failed``). A mean final val loss
over seeds is ``inf`` as soon as one seed diverged, so an LR where any seed diverged is never a
method's best; crashed runs (NaN) are left out of the means but still make an LR unstable.
Standard deviations are over seeds (``ddof = 1``; NaN for one seed).

- **interval**: the 95% confidence interval of a mean final val loss over ``n`` seeds,
  ``mean ± t(0.975, n - 1) * std / sqrt(n)`` (Student's t); none for one seed or an infinite
  mean. Two means are **within noise** when their intervals overlap; with one seed either way,
  whether they are is unknown (see :func:`within_noise`).
"""


from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from preheat.lab.config import RunConfig
from preheat.lab.stats import CONFIDENCE, half_width, interpolated_steps, sample_std
from preheat.lab.store import DONE, Store, StoredRun

SPIKE_ALPHA = 0.1
SPIKE_SKIP = 10
SPIKE_MIN_RISE = 0.25
ACCURACY_TAIL = 0.1
CHANCE_FACTOR = 1.5


@dataclass(frozen=True)
class RunMetrics:
    """One run's metrics (see the module docstring). ``method`` is the store's; ``config`` holds
    the run's fields (peak LR, warmup, seed, ...); ``target`` is the sweep's, the same for
    every run."""

    id: str
    method: str
    config: RunConfig
    status: str
    wall_time: float | None
    final_val_loss: float
    best_val_loss: float
    target: float | None
    steps_to_target: float | None
    final_train_accuracy: float
    below_chance: bool | None
    spikes: int

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    @property
    def crashed(self) -> bool:
        return self.status == "failed"

    @property
    def stable(self) -> bool:
        return self.status == "finished" and self.below_chance is not True


@dataclass(frozen=True)
class LrCell:
    """The done runs of one (method, warmup, peak LR), over seeds: how many ``runs`` (``seeds``),
    their mean, std and interval half-width (``ci_final_val_loss``, NaN: no interval) of the
    final val loss, how many ``diverged``, were ``below_chance`` or
    ``crashed``, whether all were ``stable``, and the mean steps to target over the ``reached``
    seeds that reached it (None if none did)."""

    peak_lr: float
    runs: int
    seeds: tuple[int, ...]
    mean_final_val_loss: float
    std_final_val_loss: float
    ci_final_val_loss: float
    diverged: int
    below_chance: int
    crashed: int
    stable: bool
    mean_steps_to_target: float | None
    reached: int


@dataclass(frozen=True)
class MethodWarmup:
    """One method at one warmup (None: a method without one) over the peak LRs swept: its
    ``cells`` (ascending peak LR), ``best`` (the cell of the lowest finite mean final val loss,
    or None), ``largest_stable_lr`` and ``good_lrs`` (see the module docstring)."""

    method: str
    warmup: int | None
    cells: tuple[LrCell, ...]
    best: LrCell | None
    largest_stable_lr: float | None
    good_lrs: tuple[float, ...]

    @property
    def best_peak_lr(self) -> float | None:
        return None if self.best is None else self.best.peak_lr

    @property
    def good_lr_range(self) -> tuple[float, float] | None:
        return (min(self.good_lrs), max(self.good_lrs)) if self.good_lrs else None

    @property
    def runs(self) -> int:
        return sum(cell.runs for cell in self.cells)

    @property
    def diverged(self) -> int:
        return sum(cell.diverged for cell in self.cells)


@dataclass(frozen=True)
class RankedMethod:
    """A row of the ranking: a method at its best warmup (see :func:`ranking`).

    ``title`` is the method with ``(warmup=W)`` added where it spans several warmups and its
    name does not show them (a label over a warmup sweep); ``final_val_loss_mean``/``_ci`` (the
    interval's half-width, NaN for none), ``steps_to_target`` (mean over the
    ``reached`` seeds that reached it), ``seeds`` (runs at the best LR) are its best cell's;
    ``diverged`` and ``runs`` count every done run of the method; ``warmups`` are all it swept;
    ``ms_per_step`` is the mean wall time per update of its finished runs.
    """

    rank: int
    method: str
    title: str
    warmup: int | None
    best_peak_lr: float | None
    final_val_loss_mean: float
    final_val_loss_ci: float
    steps_to_target: float | None
    reached: int
    seeds: int
    diverged: int
    runs: int
    largest_stable_lr: float | None
    good_lr_range: tuple[float, float] | None
    warmups: tuple[int, ...]
    ms_per_step: float

    @property
    def interval(self) -> tuple[float, float] | None:
        """The 95% interval of the mean final val loss over seeds (None: one seed, or diverged)."""
        if math.isnan(self.final_val_loss_ci):
            return None
        return (self.final_val_loss_mean - self.final_val_loss_ci, self.final_val_loss_mean + self.final_val_loss_ci)


def within_noise(a: RankedMethod, b: RankedMethod) -> bool | None:
    """Whether the 95% intervals of ``a`` and ``b`` overlap (their difference is within the seed
    noise); None when either has no interval (one seed: the noise is unknown)."""
    if a.interval is None or b.interval is None:
        return None
    return a.interval[0] <= b.interval[1] and b.interval[0] <= a.interval[1]


@dataclass(frozen=True)
class SweepMetrics:
    """Everything a sweep's summary and report show, computed once: every run's metrics (store
    order) and the ranking (best first)."""

    runs: tuple[RunMetrics, ...]
    ranking: tuple[RankedMethod, ...]

    @property
    def target(self) -> float | None:
        return self.runs[0].target if self.runs else None


def _loosen(value: float, factor: float) -> float:
    """``factor * value`` for ``value > 0``, generalised as ``value + (factor - 1) * |value|``."""
    return value + (factor - 1.0) * abs(value)
def count_spikes(
    losses: Sequence[float] | np.ndarray,
    factor: float = 2.0,
    alpha: float = SPIKE_ALPHA,
    skip: int = SPIKE_SKIP,
    min_rise: float = SPIKE_MIN_RISE,
) -> int:
    """How many loss spikes ``losses`` has (see the module docstring).

    With ``ema`` the exponential moving average of the finite losses before step ``t``
    (``ema <- alpha * loss + (1 - alpha) * ema``, starting at the first finite loss ``l0``),
    step ``t`` spikes when ``loss[t]`` is NaN/inf, or when both
    ``loss[t] > ema + (factor - 1) * |ema|`` (``factor * ema`` for a positive average) and
    ``loss[t] - ema > min_rise * |l0|``. Steps ``t < skip`` are not tested. The count is the
    number of spiking steps whose previous step did not spike.
    """
    if not factor > 1.0:
        raise ValueError(f"spike_factor={factor!r} is invalid; expected a number above 1")
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha={alpha!r} is invalid; expected a number in (0, 1]")
    if not min_rise >= 0.0:
        raise ValueError(f"min_rise={min_rise!r} is invalid; expected a number >= 0")
    count, ema, first, previous = 0, None, None, False
    for t, loss in enumerate(np.asarray(losses, dtype=np.float64)):
        finite = math.isfinite(loss)
        spiking = False
        if t >= skip and ema is not None:
            spiking = not finite or (loss > _loosen(ema, factor) and loss - ema > min_rise * abs(first))
        if spiking and not previous:
            count += 1
        previous = spiking
        if finite:
            ema = loss if ema is None else alpha * loss + (1.0 - alpha) * ema
            first = loss if first is None else first
    return count


def final_train_accuracy(accuracy: Sequence[float] | np.ndarray) -> float:
    """The mean of the last 10% (at least one) of the recorded training accuracies, NaN ignored;
    NaN when there is none."""
    values = np.asarray(accuracy, dtype=np.float64)
    if values.size == 0:
        return math.nan
    tail = values[-max(1, math.ceil(ACCURACY_TAIL * values.size)):]
    tail = tail[~np.isnan(tail)]
    return float(tail.mean()) if tail.size else math.nan


def derive_target(best: float | None, factor: float) -> float | None:
    """``best + (factor - 1) * |best|`` (``factor * best`` for ``best > 0``); None without a best."""
    if best is None or not math.isfinite(best):
        return None
    return _loosen(best, factor)



def run_metrics(
    store: Store,
    target: float | None = None,
    target_factor: float = 1.1,
    spike_factor: float = 2.0,
    chance: Mapping[str, float | None] | None = None,
) -> list[RunMetrics]:
    """Every run of ``store`` (store order) with the metrics the module docstring defines.

    ``target`` is given or derived with ``target_factor``. The chance accuracy is the one the
    store kept for the run; ``chance`` (task name -> chance accuracy) fills it in for runs whose
    store has none (a store from before it was kept). Reads only the store.
    """
    if target is not None and not math.isfinite(target):
        raise ValueError(f"target={target!r} is invalid; expected a finite number or None")
    if not (math.isfinite(target_factor) and target_factor >= 1.0):
        raise ValueError(f"target_factor={target_factor!r} is invalid; expected a finite number >= 1")
    if not spike_factor > 1.0:
        raise ValueError(f"spike_factor={spike_factor!r} is invalid; expected a number above 1")
    runs = store.runs()
    evals = [store.evals(run.id) for run in runs]
    if target is None:
        best = [_best(e["val_loss"]) for run, e in zip(runs, evals) if run.status == "finished"]
        finite = [b for b in best if math.isfinite(b)]
        target = derive_target(min(finite) if finite else None, target_factor)
    chances = dict(chance or {})
    return [_measure(run, store.steps(run.id), e, target, spike_factor, chances) for run, e in zip(runs, evals)]


def _best(losses: np.ndarray) -> float:
    finite = losses[np.isfinite(losses)]
    return float(finite.min()) if finite.size else math.nan


def _final(status: str, losses: np.ndarray) -> float:
    if status == "diverged":
        return math.inf
    if losses.size:
        return float(losses[-1]) if math.isfinite(losses[-1]) else math.inf
    return math.nan


def _measure(run: StoredRun, steps: dict[str, np.ndarray], evals: dict[str, np.ndarray], target: float | None,
             spike_factor: float, chance: Mapping[str, float | None]) -> RunMetrics:
    """One run's metrics from its store rows."""
    losses = evals["val_loss"]
    accuracy = final_train_accuracy(steps["train_accuracy"])
    chance_accuracy = run.chance_accuracy if run.chance_accuracy is not None else chance.get(run.config.task)
    below = None
    if chance_accuracy is not None and not math.isnan(accuracy):
        below = accuracy < CHANCE_FACTOR * chance_accuracy
    return RunMetrics(
        id=run.id, method=run.method, config=run.config, status=run.status, wall_time=run.wall_time,
        final_val_loss=_final(run.status, losses), best_val_loss=_best(losses), target=target,
        steps_to_target=None if target is None else interpolated_steps(evals["step"], losses, target),
        final_train_accuracy=accuracy, below_chance=below,
        spikes=count_spikes(steps["train_loss"], spike_factor),
    )


def _lr_cell(peak_lr: float, runs: list[RunMetrics]) -> LrCell:
    """Aggregate the done runs of one (method, warmup, peak LR) over seeds."""
    finals = np.array([r.final_val_loss for r in runs if not np.isnan(r.final_val_loss)])
    reached = [r.steps_to_target for r in runs if r.steps_to_target is not None]
    return LrCell(
        peak_lr=peak_lr,
        runs=len(runs),
        seeds=tuple(sorted(r.config.seed for r in runs)),
        mean_final_val_loss=float(finals.mean()) if finals.size else math.nan,
        std_final_val_loss=sample_std(finals),
        ci_final_val_loss=half_width(finals),
        diverged=sum(r.diverged for r in runs),
        below_chance=sum(r.below_chance is True for r in runs),
        crashed=sum(r.crashed for r in runs),
        stable=all(r.stable for r in runs),
        mean_steps_to_target=float(np.mean(reached)) if reached else None,
        reached=len(reached),
    )


def _method_warmup(method: str, warmup: int | None, by_lr: dict[float, list[RunMetrics]],
                   tolerance: float) -> MethodWarmup:
    cells = tuple(_lr_cell(lr, by_lr[lr]) for lr in sorted(by_lr))
    finite = [c for c in cells if math.isfinite(c.mean_final_val_loss)]
    best = min(finite, key=lambda c: c.mean_final_val_loss) if finite else None
    largest = None
    for cell in cells:
        if not cell.stable:
            break
        largest = cell.peak_lr
    good: tuple[float, ...] = ()
    if best is not None:
        limit = _loosen(best.mean_final_val_loss, 1.0 + tolerance)
        good = tuple(c.peak_lr for c in finite if c.mean_final_val_loss <= limit)
    return MethodWarmup(method=method, warmup=warmup, cells=cells, best=best, largest_stable_lr=largest,
                        good_lrs=good)


def method_metrics(rows: Sequence[RunMetrics], tolerance: float = 0.05) -> list[MethodWarmup]:
    """One :class:`MethodWarmup` per (method, warmup) over the peak LRs swept, from the done runs
    of ``rows``, in order of first appearance; ``tolerance`` sets the good LR range."""
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance={tolerance!r} is invalid; expected a finite number >= 0")
    groups: dict[tuple[str, int | None], dict[float, list[RunMetrics]]] = {}
    for row in rows:
        if row.status in DONE:
            groups.setdefault((row.method, row.config.warmup), {}).setdefault(row.config.peak_lr, []).append(row)
    return [_method_warmup(method, warmup, by_lr, tolerance) for (method, warmup), by_lr in groups.items()]


def _sort_key(group: MethodWarmup) -> tuple[float, float]:
    best = group.best
    if best is None:
        return (math.inf, math.inf)
    steps = best.mean_steps_to_target
    return (best.mean_final_val_loss, math.inf if steps is None else steps)


def _shows_warmup(row: RunMetrics) -> bool:
    """Whether the method's name was made with the run's warmup filled in (it is neither the
    run's label nor its template, which do not show it)."""
    return row.method not in (row.config.label, row.config.template)


def _ranked(rank: int, method: str, groups: list[MethodWarmup], rows: list[RunMetrics]) -> RankedMethod:
    chosen = min(groups, key=_sort_key)
    best = chosen.best
    named = len(groups) == 1 or any(_shows_warmup(r) for r in rows)
    return RankedMethod(
        rank=rank, method=method, title=method if named else f"{method} (warmup={chosen.warmup})",
        warmup=chosen.warmup, best_peak_lr=chosen.best_peak_lr,
        final_val_loss_mean=best.mean_final_val_loss if best else math.nan,
        final_val_loss_ci=best.ci_final_val_loss if best else math.nan,
        steps_to_target=best.mean_steps_to_target if best else None,
        reached=best.reached if best else 0, seeds=best.runs if best else 0,
        diverged=sum(g.diverged for g in groups), runs=sum(g.runs for g in groups),
        largest_stable_lr=chosen.largest_stable_lr, good_lr_range=chosen.good_lr_range,
        warmups=tuple(sorted(g.warmup for g in groups if g.warmup is not None)),
        ms_per_step=_ms_per_step(rows),
    )


def ranking(rows: Sequence[RunMetrics], tolerance: float = 0.05) -> list[RankedMethod]:
    """The comparison table: one :class:`RankedMethod` per method, best first.

    A method swept over warmup has one group per warmup (:func:`method_metrics`); its row is
    the group with the lowest best mean final val loss (ties: fewer mean steps to target), and
    ``warmup``, ``best_peak_lr``, the loss, steps to target, ``largest_stable_lr`` and
    ``good_lr_range`` are that group's. ``diverged`` and ``runs`` count all done runs of the
    method (every warmup and LR). Rows are ranked by best mean final val loss, ties by mean
    steps to target (never reached counts as infinite), then method; a method without a finite
    loss comes last.
    """
    by_method: dict[str, list[MethodWarmup]] = {}
    for group in method_metrics(rows, tolerance):
        by_method.setdefault(group.method, []).append(group)
    order = sorted(by_method, key=lambda m: (*_sort_key(min(by_method[m], key=_sort_key)), m))
    return [_ranked(rank, method, by_method[method], [r for r in rows if r.method == method])
            for rank, method in enumerate(order, start=1)]


def sweep_metrics(
    store: Store,
    target: float | None = None,
    target_factor: float = 1.1,
    spike_factor: float = 2.0,
    tolerance: float = 0.05,
    chance: Mapping[str, float | None] | None = None,
) -> SweepMetrics:
    """:func:`run_metrics` and their :func:`ranking`, once, for the summary and the report."""
    rows = run_metrics(store, target, target_factor, spike_factor, chance)
    return SweepMetrics(runs=tuple(rows), ranking=tuple(ranking(rows, tolerance)))


def _ms_per_step(rows: list[RunMetrics]) -> float:
    """Mean wall time per update of the finished runs, in ms (training, evaluation and any
    signals a controller measured): what a method costs next to another on the same task."""
    times = [1000.0 * r.wall_time / r.config.steps for r in rows if r.status == "finished" and r.wall_time]
    return float(np.mean(times)) if times else math.nan


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}g}"


def _range(good: tuple[float, float] | None) -> str:
    if good is None:
        return "—"
    return _number(good[0], 3) if good[0] == good[1] else f"{_number(good[0], 3)} – {_number(good[1], 3)}"


def loss_text(row: RankedMethod) -> str:
    """``mean ± half-width`` of the 95% interval (``mean`` alone without one), the mean to 4
    significant digits and the half-width to 2."""
    loss = _number(row.final_val_loss_mean)
    return loss if math.isnan(row.final_val_loss_ci) else f"{loss} ± {_number(row.final_val_loss_ci, 2)}"


def seeds_text(table: Sequence[RankedMethod]) -> str:
    """How many seeds the ranked losses are over: ``3 seeds``, ``1 seed`` or ``1-3 seeds``."""
    counts = sorted({row.seeds for row in table if row.seeds})
    if not counts:
        return "no seeds"
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{span} seed{'' if counts[-1] == 1 else 's'}"


# (header, cell of a row, numeric, in the narrow table): the ranking's columns, in order
_COLUMNS = (
    ("#", lambda r: str(r.rank), True, True),
    ("method", lambda r: r.title, False, True),
    ("warmup", lambda r: "—" if r.warmup is None else str(r.warmup), True, False),
    ("peak LR", lambda r: _number(r.best_peak_lr, 3), True, True),
    ("final val loss", loss_text, True, True),
    ("steps to target", lambda r: ("—" if r.steps_to_target is None else f"{r.steps_to_target:.0f}")
     + (f" ({r.reached}/{r.seeds})" if r.steps_to_target is not None and r.reached < r.seeds else ""), True, True),
    ("diverged", lambda r: f"{r.diverged} / {r.runs}", True, True),
    ("largest stable LR", lambda r: _number(r.largest_stable_lr, 3), True, False),
    ("good LR range", lambda r: _range(r.good_lr_range), True, False),
    ("ms / step", lambda r: _number(r.ms_per_step, 3), True, True),
)


def format_ranking(table: Sequence[RankedMethod], narrow: bool = False) -> tuple[list[str], list[list[str]], set[int]]:
    """The :func:`ranking` as text: headers, a row of cells per method, and which columns are
    numeric; for the CLI (``narrow``: the columns that fit 80 characters) and the report.

    A column whose cells are the same in every row (of two or more) is left out. The loss is
    :func:`loss_text` (its header says over how many seeds); steps to target is in whole updates
    (interpolated between evaluations, so a fraction says nothing) and gets ``(k/n)``
    when only ``k`` of the ``n`` seeds at the best LR reached it; the warmup is ``—`` for a
    method without one. A method's name is its :attr:`RankedMethod.title`.
    """
    columns = [c for c in _COLUMNS if c[3] or not narrow]
    cells = [[cell(row) for _, cell, _, _ in columns] for row in table]
    keep = [i for i in range(len(columns)) if len(cells) < 2 or i <= 1 or len({row[i] for row in cells}) > 1]
    interval = "mean ± 95% CI, " if any(not math.isnan(r.final_val_loss_ci) for r in table) else ""
    headers = [f"final val loss ({interval}{seeds_text(table)})" if c[0] == "final val loss" else c[0]
               for c in columns]
    return ([headers[i] for i in keep], [[row[i] for i in keep] for row in cells],
            {k for k, i in enumerate(keep) if columns[i][2]})
