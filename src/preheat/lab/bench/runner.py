"""Run the benchmark: one lab store per (tier, task), resumable, sharded by task.

``run_bench`` runs each task's plan (:func:`preheat.lab.bench.plan.runs`) with
:func:`preheat.lab.sweep.run_sweep`, which skips runs already in the store: a killed run of the
benchmark resumes where it stopped (the unfinished runs it left, of a later phase too, run
first), and a rerun computes nothing and gives the same numbers. Only the plan's runs are read
back (:func:`preheat.lab.bench.analysis.load` with their ids), so a store that also holds runs
of an older plan reports the current one.
While the tuned baseline's best over the ladder is at its top or bottom rung and beats the
tuned baseline at the rung next to it (a win, paired by seed: the curve is still falling there;
a tie says it is flat, and a rung beyond would cost a whole rung of runs to find the same), or
no warmup fails or loses to it at the bottom rung by more than ``MATERIAL`` (2 %), it adds a
rung beyond that edge (a doubling or a halving, every method; at most the tier's
``more_rungs``); then, where the tuned baseline's best warmup is the grid's longest, it runs
the extension (:func:`preheat.lab.bench.plan.extension`) into the same store.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from preheat.lab.bench import plan
from preheat.lab.bench.analysis import TaskResult, compare, load
from preheat.lab.bench.tasks import BenchTask
from preheat.lab.sweep import run_sweep

if TYPE_CHECKING:
    from preheat.lab.sweep.driver import Progress
    from preheat.lab.sweep.ray import RayBackend


#: No warmup behind the tuned baseline at the bottom rung by more than this share still makes the
#: ladder grow down. Less is the schedule's shape, not stability: at a peak too low to train
#: well, a long warmup (more LR late in the run) beats cosine from the start by 1-2 % on the GPT
#: at every rung, so a ladder grown for that would never stop.
MATERIAL = 0.02


def store_of(out: str | Path, settings: plan.Tier, task: BenchTask) -> Path:
    """The folder of ``task``'s store in the tier under ``out``: ``out/TIER/TASK``, or
    ``out/TIER-SIZE/TASK`` at a size other than the tier's own."""
    own = plan.tier(settings.name).size
    return Path(out) / (settings.name if settings.size == own else f"{settings.name}-{settings.size}") / task.name


def shard(tasks: list[BenchTask], spec: str | None) -> list[BenchTask]:
    """The tasks of shard ``"i/n"`` (every n-th task from the i-th, 1-based); all for None.

    Raises:
        ValueError: a spec that is not ``i/n`` with ``1 <= i <= n``.
    """
    if spec is None:
        return tasks
    try:
        index, count = (int(part) for part in spec.split("/"))
    except ValueError:
        index = count = 0
    if not 1 <= index <= count:
        raise ValueError(f"shard={spec!r} is invalid; expected i/n with 1 <= i <= n, e.g. 1/2")
    return tasks[index - 1::count]


def run_bench(settings: plan.Tier, tasks: list[BenchTask], out: str | Path, workers: int = 1,
              progress: Progress | None = None, backend: RayBackend | None = None) -> list[TaskResult]:
    """Run (or resume) ``tasks`` in the tier ``settings`` into stores under ``out``; return their
    results."""
    results = []
    for task in tasks:
        directory = store_of(out, settings, task)
        configs = plan.runs(task, settings)
        for added in range(settings.more_rungs + 1):
            run_sweep(configs, directory, workers=workers, progress=progress, backend=backend, leftovers=True)
            result = load(task, directory, {config.fingerprint() for config in configs})
            rung = _next_rung(result)
            if rung is None or added == settings.more_rungs:
                break
            configs += plan.runs(task, settings, (rung,))
        more = plan.extension(task, settings, {peak: plan.warmup_fraction(cell.method) for peak, cell in result.tuned.items()})
        if more:
            configs += more
            run_sweep(configs, directory, workers=workers, progress=progress, backend=backend, leftovers=True)
            result = load(task, directory, {config.fingerprint() for config in configs})
        results.append(result)
    return results


def _next_rung(result: TaskResult) -> float | None:
    """The rung beyond the ladder's edge the task needs: twice the top where the tuned baseline's
    best is there and beats the tuned baseline of the rung below; half the bottom where that
    best is there and beats the rung above, or where no warmup fails or loses to the tuned
    baseline at the bottom rung by more than :data:`MATERIAL` (the whole interval of its ratio
    above ``1 + MATERIAL``: the ladder starts where warmup makes no material difference); None
    otherwise (or when nothing finished)."""
    best = result.best_tuned
    if best is None or len(result.peaks) < 2:
        return None
    peaks = sorted(result.peaks)

    def falling(edge: float, inner: float) -> bool:
        neighbour = result.tuned.get(inner)
        return best.peak_lr == edge and (neighbour is None or compare(best, neighbour).outcome == "win")
    if falling(peaks[-1], peaks[-2]):
        return 2 * peaks[-1]
    no_warmup = result.cells.get(plan.NO_WARMUP, {}).get(peaks[0])
    found = None if no_warmup is None else result.compare(no_warmup)
    unsafe = found is not None and found.outcome == "loss" and (found.ratio is None or found.ratio.low > 1 + MATERIAL)
    return peaks[0] / 2 if falling(peaks[0], peaks[1]) or unsafe else None
