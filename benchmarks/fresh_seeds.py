"""One benchmark cell again on fresh seeds: is ``auto_warmup``'s loss there the schedule or the seeds?

Where the benchmark scores ``auto_warmup`` a loss against the linear warmup tuned at a peak, this
reruns the cell (the task's own config at that peak) on seeds the benchmark did not use, three
ways: the tuned length (read from the tier's stored grid), ``auto`` as the benchmark runs it, and
``rules off``: ``auto_warmup`` with every rule off (its ramp alone: the linear warmup over 40 %
of the run, shifted by one update). It prints each against the tuned length with the
benchmark's statistics (paired by seed, 95 % interval, W/T/L) and its steps ratio (updates to
1.1 x the tuned length's mean final loss, over the tuned length's). A systematic cost would
show as a loss on the fresh seeds too; a tie says the benchmark's loss came from its seeds.
(The tuned length was chosen on the benchmark's seeds; on fresh ones it has no such edge, which
also makes this the fairer test of a win.) Without the tier's stored grid, give the tuned length
as ``--tuned`` (the benchmark's table names it). ``benchmarks/aggressive_fresh.sh`` runs it at
every judged task's aggressive peak.

    python benchmarks/fresh_seeds.py --tier novel --task gpt-batch32 --peak 0.002 [--seeds 20]
    python benchmarks/fresh_seeds.py --tier novel --task gpt-batch32 --peak 0.002 --tuned "linear 50%"
"""

from __future__ import annotations

import argparse

from preheat.lab.bench import plan, runner
from preheat.lab.bench.analysis import compare, load
from preheat.lab.bench.tables import ratio_text
from preheat.lab.store import StoreError
from preheat.lab.sweep import run_sweep

RULES_OFF_LABEL = "rules off"
RULES_OFF = "auto_warmup(spike_limit=1e9, grad_limit=1e9, window=1.0, watch=0.0)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="full", help="the tier the task is in: full, holdout, reserve, fresh, novel, blind or sealed")
    parser.add_argument("--task", required=True)
    parser.add_argument("--peak", type=float, required=True, help="a peak LR of the task's ladder")
    parser.add_argument("--seeds", type=int, default=20, help="fresh seeds, after the benchmark's")
    parser.add_argument("--bench", default="runs/bench", help="the benchmark's stores, with the tier's grid")
    parser.add_argument("--tuned", default=None,
                        help="the tuned warmup at the peak, e.g. 'linear 50%%'; default: read from --bench")
    parser.add_argument("--out", default=None, help="the store; default runs/fresh-seeds/TASK-PEAK")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    settings = plan.tier(args.tier, methods=["auto"])
    [task] = plan.tasks_of(settings, [args.task])
    cell = plan.runs(task, settings, (args.peak,))
    tuned = args.tuned or stored_tuned(task, settings, args)
    if tuned not in {plan.linear_label(f) for f in (*settings.grid, *plan.EXTENSION)}:
        raise SystemExit(f"--tuned={tuned!r} is not a length of the grid; expected e.g. "
                         f"{plan.linear_label(max(settings.grid))!r}")
    first = {config.label: config for config in cell if config.seed == 0}
    auto = first["auto"]
    baseline = auto.model_copy(update={"label": tuned, "controller": None, "note": None,
                                       **plan.linear_fields(plan.warmup_fraction(tuned), auto.steps)})
    rules_off = auto.model_copy(update={"label": RULES_OFF_LABEL, "controller": RULES_OFF,
                                        "note": "auto_warmup with every rule off: its ramp alone"})
    start = max(config.seed for config in cell) + 1
    configs = [base.model_copy(update={"seed": seed}) for seed in range(start, start + args.seeds)
               for base in (baseline, auto, rules_off)]
    out = args.out or f"runs/fresh-seeds/{task.name}-{args.peak:g}"
    run_sweep(configs, out, workers=args.workers)
    result = load(task, out, {config.fingerprint() for config in configs})
    reference = result.cells[tuned][args.peak]
    print(f"{task.name} at {args.peak:g}, seeds {start}-{start + args.seeds - 1}, against the tuned {tuned} "
          f"(mean {reference.mean:.4g}):")
    for label in (RULES_OFF_LABEL, "auto"):
        ours = result.cells[label][args.peak]
        steps = result.steps_ratio(ours)
        print(f"  {label}: {ratio_text(compare(ours, reference), digits=4)} (mean {ours.mean:.4g}); steps to "
              f"the tuned loss: {'-' if steps is None else f'{steps:.3g}'}x")


def stored_tuned(task: plan.BenchTask, settings: plan.Tier, args: argparse.Namespace) -> str:
    """The label of the linear warmup the tier's stored grid tuned at ``args.peak``."""
    hint = f"give --tuned or run preheat bench --tier {args.tier} --tasks {task.name} first"
    try:
        grid = load(task, runner.store_of(args.bench, settings, task))
    except StoreError as error:
        raise SystemExit(f"--bench={args.bench}: {error}; {hint}") from error
    if args.peak not in grid.tuned:
        raise SystemExit(f"--peak={args.peak:g}: {args.bench} holds no tuned warmup of {task.name} there; "
                         f"{hint}")
    return grid.tuned[args.peak].method


if __name__ == "__main__":
    main()
