"""What the benchmark's full tier costs on an idle machine, estimated from timed sample runs.

The run times a store records are inflated whenever anything else shared the cores while the
tier ran, so they cannot say what the tier costs. This script reads which runs the full tier
made (its stores, through ``run_bench``: a complete store computes nothing), then times sample
runs of every method of every task the way the tier runs them: ``--workers`` processes at once
(so the workers' contention for the cores' caches and memory is in the times), one run per
worker of each method (seeds 0, 1, ..., at the lowest rung it ran). Every run of the tier is
charged its method's mean sample time, scaled by the share of the updates it made (a diverged
run stops early); the sum over the workers is the tier's wall time on that many idle cores.
Not counted: starting the worker processes and loading each task's data (once per task and
worker, seconds).

    python benchmarks/tier_cost.py [--out runs/bench] [--tasks NAME ...] [--workers 2]

Run the full tier first (``preheat bench --tier full``); a task whose store is missing is run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
from collections import defaultdict

import torch

from preheat.lab.bench import plan, runner
from preheat.lab.bench.analysis import TaskResult
from preheat.lab.config import RunConfig
from preheat.lab.store import Store
from preheat.lab.sweep import run_sweep


def samples(result: TaskResult, settings: plan.Tier, workers: int) -> list[RunConfig]:
    """Per method of ``result``, ``workers`` runs to time: seeds 0 to ``workers - 1`` at the
    lowest rung it ran."""
    task = result.task
    every = plan.runs(task, settings, result.peaks) + plan.runs(task, settings)
    every += plan.extension(task, settings, {peak: max(settings.grid) for peak in result.peaks})
    return [config for label, cells in result.cells.items() for config in every
            if config.label == label and config.seed < workers and config.peak_lr == min(cells)]


def task_cost(result: TaskResult, settings: plan.Tier, workers: int) -> tuple[int, float]:
    """(runs, seconds of one worker) of the task's runs in the tier, from timed samples."""
    with tempfile.TemporaryDirectory() as folder:
        run_sweep(samples(result, settings, workers), folder, workers=workers)
        timed, steps = defaultdict(list), {}
        for stored in Store(folder, read_only=True).runs():
            timed[stored.config.label].append(stored.wall_time)
            steps[stored.config.label] = stored.config.steps
    runs, seconds = 0, 0.0
    for label, cells in result.cells.items():
        per_run = statistics.fmean(timed[label])
        for run in (run for cell in cells.values() for run in cell.runs):
            runs += 1
            seconds += per_run * (max(max(run.steps), 1.0) / steps[label] if run.diverged else 1.0)
    return runs, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench", help="the folder of the benchmark's stores")
    parser.add_argument("--tasks", nargs="*", default=None, help="some tasks only (default: all)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes, one per idle core")
    args = parser.parse_args()
    settings = plan.tier("full")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.workers} workers, "
          f"load {os.getloadavg()[0]:.2f} at the start; torch {torch.__version__}")
    print(f"{'task':14} {'runs':>6} {'worker-min':>11} {'s/run':>7}")
    total = 0.0
    for task in plan.tasks_of(settings, args.tasks):
        [result] = runner.run_bench(settings, [task], args.out)
        runs, seconds = task_cost(result, settings, args.workers)
        total += seconds
        print(f"{task.name:14} {runs:6d} {seconds / 60:11.1f} {seconds / runs:7.2f}", flush=True)
    print(f"total: {total / 3600:.2f} worker-hours, {total / 3600 / args.workers:.2f} h on {args.workers} "
          f"workers (load {os.getloadavg()[0]:.2f} at the end)")


if __name__ == "__main__":
    main()
