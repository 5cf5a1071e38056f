"""A benchmark task's ladder pilot: linear warmups of 0, 5, 20 and 50 % at each of a few peak LRs.

How a task's ladder is set before any method runs on it (``src/preheat/lab/bench/tasks.py``):
the lowest rung is one where the warmup makes little difference, and at the top rungs no warmup
diverges, gets stuck or falls clearly behind. Prints the final validation loss of each length at
each peak (the mean over ``--seeds``, one by default; ``div``: some seed diverged). By default it
runs only the linear warmups, so it reveals nothing about any method that needs no tuning;
``--auto`` adds ``auto_warmup`` as the benchmark runs it, for a first look at a size no tier has
run (one or two seeds are a pilot's reading, not the benchmark's statistics).

    python benchmarks/pilot.py --task cnn-batch128 --peaks 0.004 0.008 0.016 0.032 0.064 0.128
    python benchmarks/pilot.py --task gpt-muon --size large --device cuda --workers 12 \\
        --peaks 0.002 0.004 0.008 0.016 0.032 --auto
"""

from __future__ import annotations

import argparse
import statistics

from preheat.lab.bench import plan
from preheat.lab.bench.analysis import load
from preheat.lab.bench.tasks import SIZES, TASKS
from preheat.lab.compare import AUTO
from preheat.lab.config import RunConfig
from preheat.lab.sweep import run_sweep

LENGTHS = (0.0, 0.05, 0.2, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=sorted(TASKS))
    parser.add_argument("--peaks", type=float, nargs="+", required=True, help="peak LRs, increasing")
    parser.add_argument("--size", default="default", choices=SIZES, help="the task's size (large: a GPU)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N for every run")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per cell, from 0")
    parser.add_argument("--auto", action="store_true", help="run auto_warmup too, as the benchmark does")
    parser.add_argument("--out", default=None, help="the store; default runs/pilot/TASK (TASK-SIZE if not default)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    task = TASKS[args.task]
    fields = plan.run_fields(task, plan.tier("full", args.size, args.device))  # a whole tier's: every update
    steps = fields["steps"]
    ways = [(plan.linear_label(length), plan.linear_fields(length, steps)) for length in LENGTHS]
    ways += [AUTO] if args.auto else []
    configs = [RunConfig(**{**fields, **way, "peak_lr": peak, "seed": seed, "label": label})
               for seed in range(args.seeds) for peak in args.peaks for label, way in ways]
    out = args.out or f"runs/pilot/{task.name}" + ("" if args.size == "default" else f"-{args.size}")
    run_sweep(configs, out, workers=args.workers)
    finals: dict[tuple[float, str], str] = {}
    for label, by_peak in load(task, out).cells.items():
        for peak, cell in by_peak.items():
            ended = [run.losses[-1] for run in cell.runs if not run.diverged and run.losses]
            finals[peak, label] = ("div" if len(ended) < len(cell.runs) else f"{statistics.fmean(ended):.4g}")
    labels = [label for label, _ in ways]
    print(f"{task.name} ({args.size}, {steps} updates): final val loss, mean of seeds 0-{args.seeds - 1}")
    print(f"{'peak LR':>9} " + " ".join(f"{label:>11}" for label in labels))
    for peak in args.peaks:
        print(f"{peak:>9g} " + " ".join(f"{finals.get((peak, label), '-'):>11}" for label in labels))


if __name__ == "__main__":
    main()
