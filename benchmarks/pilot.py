"""A benchmark task's ladder pilot: linear warmups of 0, 5, 20 and 50 % at each of a few peak LRs, one seed.

How a task's ladder is set before any method runs on it (``src/preheat/lab/bench/tasks.py``):
the lowest rung is one where the warmup makes little difference, and at the top rungs no warmup
diverges, gets stuck or falls clearly behind. Prints the final validation loss of each length at
each peak (``div``: diverged). Runs only the linear warmups, so it reveals nothing about any
method that needs no tuning.

    python benchmarks/pilot.py --task cnn-batch128 --peaks 0.004 0.008 0.016 0.032 0.064 0.128
"""

from __future__ import annotations

import argparse

from preheat.lab.bench.analysis import load
from preheat.lab.bench.plan import WARMUP_TEMPLATE, linear_label
from preheat.lab.bench.tasks import TASKS
from preheat.lab.config import RunConfig
from preheat.lab.sweep import run_sweep

LENGTHS = (0.0, 0.05, 0.2, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=sorted(TASKS))
    parser.add_argument("--peaks", type=float, nargs="+", required=True, help="peak LRs, increasing")
    parser.add_argument("--out", default=None, help="the store; default runs/pilot/TASK")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    task = TASKS[args.task]
    fields = task.fields("default")
    configs = [RunConfig(**fields, peak_lr=peak, seed=0, warmup=round(length * fields["steps"]),
                         schedule=WARMUP_TEMPLATE, label=linear_label(length))
               for peak in args.peaks for length in LENGTHS]
    out = args.out or f"runs/pilot/{task.name}"
    run_sweep(configs, out, workers=args.workers)
    finals = {(peak, label): "div" if run.diverged or not run.losses else f"{run.losses[-1]:.4g}"
              for label, by_peak in load(task, out).cells.items()
              for peak, cell in by_peak.items() for run in cell.runs}
    labels = [linear_label(length) for length in LENGTHS]
    print(f"{task.name}: final val loss, seed 0")
    print(f"{'peak LR':>9} " + " ".join(f"{label:>11}" for label in labels))
    for peak in args.peaks:
        print(f"{peak:>9g} " + " ".join(f"{finals.get((peak, label), '-'):>11}" for label in labels))


if __name__ == "__main__":
    main()
