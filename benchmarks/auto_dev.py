"""``auto_warmup`` on the seen tasks against the stored linear grid: the design loop.

A run's id is its configuration, not the code of the rule it runs, so after a change to the rule
the benchmark would find ``auto``'s runs already stored and compute nothing. This runs the rule
as it is now under the label ``auto VARIANT`` (a new id) in the full tier's dev stores, beside
the grid as the benchmark grew it (extensions and added rungs included), every rung and seed;
then prints its win / tie / loss against the tuned warmup, beside ``auto`` as stored and the
fixed 20, 30 and 50 %, and at every cell its ratio, its ratio to ``auto`` (paired by seed: the
closer comparison) and on how many runs a rule lowered the LR (the variant's, then ``auto``'s). Edit the rule in ``src/preheat/adaptive/auto.py``,
run with a new ``--variant``, compare; a reused name reads its old runs back (while ``auto``'s
note in ``preheat.lab.compare`` is unchanged: the note is part of a run's id). The labelled runs
never enter the benchmark's own tables (they are not in its plan). ``--splits`` names the
splits designed on: the dev tasks at first; once a split has judged a revision it is seen, and
a next revision may design on it too. Test, holdout, reserve, fresh, novel, sealed and vault
have each judged one, blind the third once more (``docs/auto-warmup.md``), so a next revision is to be judged
on tasks nothing has run on yet: a new split's (leave it out of ``--splits`` until then).
``--tasks`` keeps only the named tasks of those splits (a change that can only matter on some).

    python benchmarks/auto_dev.py --variant v1 [--splits dev,test,holdout,reserve,fresh,novel] [--tasks mlp-ce,mlp-muon]
        [--out runs/bench] [--workers 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from preheat.lab.bench import plan, runner
from preheat.lab.bench.analysis import Comparison, TaskResult, compare, load
from preheat.lab.bench.tasks import SPLITS, BenchTask
from preheat.lab.bench.tables import matrix, ratio_text
from preheat.lab.store import Store
from preheat.lab.sweep import run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True, help="a new name for the rule as it is now")
    parser.add_argument("--out", default="runs/bench", help="the benchmark's stores, with the full tier's grid")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--splits", default="dev", help="comma-separated splits designed on")
    parser.add_argument("--tasks", default=None, help="comma-separated tasks of those splits; default: all")
    args = parser.parse_args()
    splits = args.splits.split(",")
    unknown = [split for split in splits if split not in SPLITS]
    if unknown:
        raise SystemExit(f"--splits={args.splits!r}: {', '.join(unknown)} is no split; expected some of "
                         f"{', '.join(SPLITS)}")
    named = args.tasks.split(",") if args.tasks else None
    chosen = [(task, settings) for settings in (plan.tier(name, methods=["auto"]) for name in plan.WHOLE_TIERS)
              for task in plan.tasks_of(settings) if task.split in splits and (named is None or task.name in named)]
    missing = set(named or ()) - {task.name for task, _ in chosen}
    if missing:
        raise SystemExit(f"--tasks={args.tasks!r}: {', '.join(sorted(missing))} is in none of the splits "
                         f"{args.splits}")
    label = f"auto {args.variant}"
    stores = [_run(task, settings, label, args) for task, settings in chosen]
    results = [load(task, store) for (task, _), store in zip(chosen, stores)]
    print(matrix(results, [label, "auto", "linear 20%", "linear 30%", "linear 50%"]))
    for result, store in zip(results, stores):
        ours, stored = _lowered(store, label), _lowered(store, "auto")
        for c in result.comparisons(label):
            peak = c.cell.peak_lr
            print(f"{result.task.name} {peak:g}: {ratio_text(c)}; vs auto {ratio_text(_against_auto(result, c))}; "
                  f"lowered {ours.get(peak, '-')}, auto {stored.get(peak, '-')}")


def _run(task: BenchTask, settings: plan.Tier, label: str, args: argparse.Namespace) -> Path:
    """Run ``label`` at every cell of ``task`` beside its stored grid; the task's store."""
    store = runner.store_of(args.out, settings, task)
    grid = load(task, store)
    if not grid.tuned:
        raise SystemExit(f"{store} holds no linear grid: run "
                         f"preheat bench --tier {settings.name} --tasks {task.name} first")
    configs = [config.model_copy(update={"label": label})
               for config in plan.runs(task, settings, grid.peaks) if config.label == "auto"]
    run_sweep(configs, store, workers=args.workers)
    return store


def _against_auto(result: TaskResult, comparison: Comparison) -> Comparison | None:
    """The variant's cell of ``comparison`` against ``auto``'s at the same peak (None without it)."""
    stored = result.cells.get("auto", {}).get(comparison.cell.peak_lr)
    return None if stored is None else compare(comparison.cell, stored)


def _lowered(store: Path, label: str) -> dict[float, str]:
    """Per peak LR, on how many of ``label``'s finished runs a rule lowered the LR: ``k/n``."""
    runs = Store(store, read_only=True)
    try:
        counts: dict[float, list[int]] = {}
        for run in runs.runs():
            if run.config.label == label and run.status == "finished":
                lowered = any(decision.action == "lower" for decision in runs.decisions(run.id))
                count = counts.setdefault(run.config.peak_lr, [0, 0])
                count[0], count[1] = count[0] + lowered, count[1] + 1
    finally:
        runs.close()
    return {peak: f"{k}/{n}" for peak, (k, n) in counts.items()}


if __name__ == "__main__":
    main()
