"""One benchmark cell again on fresh seeds: is ``auto_warmup``'s loss there the schedule or the seeds?

``auto_warmup`` undisturbed is the 20 % linear warmup shifted by one update (update 0 trains at
``1 / W`` of the peak, the grid's ``warmup_cosine`` gives it 0). Where the benchmark scores a loss
against that 20 % warmup, this reruns the cell (the task's own config at that peak) on seeds the
benchmark did not use, three ways: the 20 % warmup, ``auto`` as the benchmark runs it, and
``shift only``: ``auto_warmup`` with every rule off (the shifted ramp alone). It prints each
against the 20 % warmup with the benchmark's statistics (paired by seed, 95 % interval, W/T/L).
A systematic cost of the shift would show as a loss on the fresh seeds too; a tie says the
benchmark's loss came from its five seeds.

    python benchmarks/fresh_seeds.py --tier holdout --task mlp-deep --peak 0.008 [--seeds 20]
"""

from __future__ import annotations

import argparse

from preheat.lab.bench import plan
from preheat.lab.bench.analysis import compare, load
from preheat.lab.bench.tables import ratio_text
from preheat.lab.sweep import run_sweep

BASELINE = "linear 20%"
SHIFT_ONLY = "shift only"
RULES_OFF = "auto_warmup(spike_limit=1e9, grad_limit=1e9, window=1.0, watch=0.0)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="full", help="the tier the task is in: full, holdout, reserve, fresh or novel")
    parser.add_argument("--task", required=True)
    parser.add_argument("--peak", type=float, required=True, help="a peak LR of the task's ladder")
    parser.add_argument("--seeds", type=int, default=20, help="fresh seeds, after the benchmark's")
    parser.add_argument("--out", default=None, help="the store; default runs/fresh-seeds/TASK-PEAK")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    settings = plan.tier(args.tier, methods=["auto"])
    [task] = plan.tasks_of(settings, [args.task])
    cell = plan.runs(task, settings, (args.peak,))
    first = {config.label: config for config in cell if config.seed == 0}
    shifted = first["auto"].model_copy(update={"label": SHIFT_ONLY, "controller": RULES_OFF,
                                               "note": "auto_warmup with every rule off: the shifted ramp"})
    start = max(config.seed for config in cell) + 1
    configs = [base.model_copy(update={"seed": seed}) for seed in range(start, start + args.seeds)
               for base in (first[BASELINE], first["auto"], shifted)]
    out = args.out or f"runs/fresh-seeds/{task.name}-{args.peak:g}"
    run_sweep(configs, out, workers=args.workers)
    result = load(task, out)
    baseline = result.cells[BASELINE][args.peak]
    print(f"{task.name} at {args.peak:g}, seeds {start}-{start + args.seeds - 1}, against {BASELINE} "
          f"(mean {baseline.mean:.4g}):")
    for label in (SHIFT_ONLY, "auto"):
        cell = result.cells[label][args.peak]
        print(f"  {label}: {ratio_text(compare(cell, baseline))} (mean {cell.mean:.4g})")


if __name__ == "__main__":
    main()
