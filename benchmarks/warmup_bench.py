"""preheat's warmups against what users would otherwise pick: same tasks, seeds and step budget.

Every method trains with AdamW (betas 0.9, 0.99) for the same number of updates, at a moderate
and an aggressive peak LR per task, over several seeds:

- no warmup: cosine decay from the first update;
- linear warmup + cosine, grid-tuned: warmup 0, 1, 2, 5, 10, 20 % of the run; the table shows,
  per peak LR, the length with the best mean final validation loss;
- Hugging Face ``get_cosine_schedule_with_warmup`` (through ``transformers``), 10 % warmup;
- ``pytorch_warmup.UntunedLinearWarmup`` over ``CosineAnnealingLR`` (2 / (1 - beta2) updates);
- torch's ``RAdam`` with cosine decay (``decoupled_weight_decay=True``, as AdamW decays);
- ``schedulefree.AdamWScheduleFree`` with 5 % warmup (its README recommends warmup through
  ``warmup_steps`` without a length; 5 % is our choice);
- preheat's GI-Adam with cosine decay, and each preheat controller with its defaults and no
  warmup length (the menu of ``preheat compare``), handing over to cosine decay.

Tasks: digits (MLP), the Shakespeare character GPT (tiny) and the river valley. For each task a
table: final validation loss (mean and sample std over seeds), mean steps to the target loss
(1.1 x the tuned linear warmup's mean final validation loss at its better peak LR: how soon a
method gets within 10 % of where the tuned baseline ends; "-" if no seed reached it, else the
number that did), diverged runs, and wall time per run. Then one summary line per method:
its mean final loss / the tuned linear warmup's at each task and peak LR (1.00x = as good,
below 1 = better; the river valley's losses fall to 1e-12, so its ratios can be large while both
losses are tiny), and the median of those ratios; ``≈`` marks a ratio whose two means are within
two standard errors of their difference.

Runs go to a lab store per task under ``--out`` (rerunning resumes), on ``--workers`` local
processes. The peers are the ``peers`` extra: ``pip install 'preheat[lab,peers]'``.

    python benchmarks/warmup_bench.py [--quick] [--seeds 3] [--workers 2] [--tasks ...] [--markdown FILE]

``--quick``: half the steps, 2 seeds, warmup grid 0, 5, 10, 20 %. On this project's 2-core
machine with 2 workers the full run (288 runs) took 8.6 min and ``--quick`` (168 runs) 3.0 min;
the tables of the full run are in docs/results.md.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preheat.lab.compare import adaptive_menu
from preheat.lab.config import RunConfig
from preheat.lab.metrics import RunMetrics, derive_target, run_metrics
from preheat.lab.sweep import cores, run_sweep

BETAS = (0.9, 0.99)
TUNED = "linear warmup + cosine (tuned)"
WARMUP_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)
QUICK_WARMUP_GRID = (0.0, 0.05, 0.1, 0.2)


@dataclass(frozen=True)
class Task:
    """One task of the benchmark: its fixed run fields, two peak LRs and the run length."""

    base: dict[str, Any]
    peak_lrs: tuple[float, float]  # moderate, aggressive
    steps: int


TASKS = {
    "digits": Task({"task": "digits", "batch_size": 32}, (3e-3, 3e-2), 400),
    "shakespeare-char": Task({"task": "shakespeare-char", "task_options": {"size": "tiny"}, "batch_size": 32,
                              "weight_decay": 0.1}, (3e-3, 3e-2), 300),
    "river-valley": Task({"task": "river-valley", "batch_size": 1}, (0.3, 3.0), 300),
}


def menu(steps: int, grid: tuple[float, ...]) -> list[tuple[str, dict[str, Any]]]:
    """(label, run fields) of every method, for runs of ``steps`` updates."""
    cosine = {"schedule": "cosine_decay({steps})"}
    linear = [(f"linear {fraction:.0%}", {"schedule": "warmup_cosine({warmup}, {steps})",
                                          "warmup": round(fraction * steps)}) for fraction in grid]
    return linear + [
        ("hf cosine with warmup 10%", {"peer": "hf_cosine", "warmup": round(0.1 * steps)}),
        ("pytorch_warmup untuned", {"peer": "untuned_warmup"}),
        ("torch radam + cosine", {**cosine, "optimizer": "radamw"}),
        ("schedulefree adamw, warmup 5%", {"optimizer": "schedulefree_adamw", "warmup": round(0.05 * steps)}),
    ] + [(f"preheat {label}", fields) for label, fields in adaptive_menu(steps, BETAS)]


def runs_of(task: Task, steps: int, seeds: int, grid: tuple[float, ...]) -> list[RunConfig]:
    base = {"optimizer": "adamw", "betas": BETAS, **task.base, "steps": steps, "eval_every": max(1, steps // 20)}
    return [RunConfig(**{**base, **fields, "label": label, "peak_lr": peak, "seed": seed})
            for peak in task.peak_lrs for label, fields in menu(steps, grid) for seed in range(seeds)]


def summarise(rows: list[RunMetrics]) -> list[dict[str, Any]]:
    """One row per (method, peak LR), the linear grid collapsed to its best length per peak."""
    groups: dict[tuple[str, float], list[RunMetrics]] = {}
    for row in rows:
        groups.setdefault((row.method, row.config.peak_lr), []).append(row)
    table = [_cell(name, peak, runs) for (name, peak), runs in groups.items()]
    out = [c for c in table if not c["method"].startswith("linear ")]
    for peak in sorted({c["peak_lr"] for c in table}):
        linear = [c for c in table if c["method"].startswith("linear ") and c["peak_lr"] == peak]
        no_warmup = next(c for c in linear if c["method"] == "linear 0%")
        best = min(linear, key=lambda c: (c["mean"], c["method"]))
        out += [{**no_warmup, "method": "no warmup"},
                {**best, "method": TUNED, "note": f"best of the grid: {best['method'].split()[1]}"}]
    order = ["no warmup", TUNED] + list(dict.fromkeys(c["method"] for c in out))
    return sorted(out, key=lambda c: (order.index(c["method"]), c["peak_lr"]))


def _cell(name: str, peak: float, runs: list[RunMetrics]) -> dict[str, Any]:
    finals = [r.final_val_loss for r in runs]
    reached = [r.steps_to_target for r in runs if r.steps_to_target is not None]
    return {
        "method": name, "peak_lr": peak, "seeds": len(runs), "note": "",
        "mean": statistics.fmean(finals) if all(math.isfinite(f) for f in finals) else math.inf,
        "std": statistics.stdev(finals) if len(finals) > 1 and all(math.isfinite(f) for f in finals) else math.nan,
        "steps_to_target": statistics.fmean(reached) if reached else None, "reached": len(reached),
        "diverged": sum(r.diverged for r in runs),
        "seconds": statistics.fmean(r.wall_time for r in runs),
    }


def markdown(task: str, cells: list[dict[str, Any]], target: float | None, basis: str) -> str:
    lines = [f"### {task}", "", f"Target loss {'none' if target is None else f'{target:.4g}'} (1.1 x {basis}).", "",
             "| method | peak LR | final val loss (mean ± std) | steps to target | diverged | s/run |",
             "|---|---|---|---|---|---|"]
    for c in cells:
        std = "" if math.isnan(c["std"]) else f" ± {c['std']:.3g}"
        reach = "-" if c["steps_to_target"] is None else f"{c['steps_to_target']:.0f}" + (
            "" if c["reached"] == c["seeds"] else f" ({c['reached']}/{c['seeds']})")
        name = c["method"] + (f" ({c['note']})" if c["note"] else "")
        lines.append(f"| {name} | {c['peak_lr']:g} | {c['mean']:.4g}{std} | {reach} | "
                     f"{c['diverged']}/{c['seeds']} | {c['seconds']:.2f} |")
    return "\n".join(lines)


def summary(tables: dict[str, list[dict[str, Any]]]) -> str:
    """Per method: its mean final loss / the tuned linear warmup's, for each (task, peak LR), and
    the median over them; sorted by that median. A ratio is marked ``≈`` when the two means are
    within two standard errors of their difference (``2 sqrt(s1^2/n1 + s2^2/n2)``): over this
    few seeds, not a difference."""
    columns = [(task, peak) for task, cells in tables.items() for peak in sorted({c["peak_lr"] for c in cells})]
    tuned = {(task, c["peak_lr"]): c for task, cells in tables.items() for c in cells if c["method"] == TUNED}
    pairs: dict[str, dict[tuple[str, float], tuple[dict[str, Any], dict[str, Any]]]] = {}
    for task, cells in tables.items():
        for c in cells:
            if c["method"] != TUNED:
                pairs.setdefault(c["method"], {})[(task, c["peak_lr"])] = (c, tuned[(task, c["peak_lr"])])
    lines = ["| method | " + " | ".join(f"{task} {peak:g}" for task, peak in columns) + " | median | diverged runs |",
             "|---|" + "---|" * (len(columns) + 2)]

    def median(method: str) -> float:
        return statistics.median(c["mean"] / base["mean"] for c, base in pairs[method].values())

    for method in sorted(pairs, key=median):
        cells = [_ratio(c["mean"] / base["mean"]) + (" ≈" if _tie(c, base) else "")
                 for c, base in (pairs[method][column] for column in columns)]
        diverged = sum(c["diverged"] for c, _ in pairs[method].values())
        lines.append(f"| {method} | " + " | ".join(cells + [_ratio(median(method))]) + f" | {diverged} |")
    return "\n".join(lines)


def _tie(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two cells' mean losses are within two standard errors of their difference."""
    if not (math.isfinite(a["mean"]) and math.isfinite(b["mean"]) and a["seeds"] > 1 and b["seeds"] > 1):
        return False
    return abs(a["mean"] - b["mean"]) <= 2.0 * math.sqrt(a["std"] ** 2 / a["seeds"] + b["std"] ** 2 / b["seeds"])


def _ratio(value: float) -> str:
    return "diverged" if math.isinf(value) else "—" if math.isnan(value) else f"{value:.3g}x"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="half the steps, 2 seeds, a 4-point warmup grid")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per setting (default 3, quick 2)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--steps", type=int, default=None, help="updates per run for every task (a smoke test)")
    parser.add_argument("--out", type=Path, default=Path("runs/warmup_bench"))
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables to this file")
    args = parser.parse_args(argv)
    seeds = args.seeds or (2 if args.quick else 3)
    grid = QUICK_WARMUP_GRID if args.quick else WARMUP_GRID
    started = time.perf_counter()
    tables: dict[str, list[dict[str, Any]]] = {}
    parts = []
    for name in args.tasks:
        task = TASKS[name]
        steps = args.steps or (task.steps // 2 if args.quick else task.steps)
        directory = args.out / ("quick" if args.quick else "full") / name
        store = run_sweep(runs_of(task, steps, seeds, grid), directory, workers=args.workers)
        tuned = derive_target(min(c["mean"] for c in summarise(run_metrics(store)) if c["method"] == TUNED), 1.1)
        basis = "the tuned linear warmup's final loss" if tuned is not None else "the best run's loss: every tuned run diverged"
        rows = run_metrics(store, target=tuned)
        tables[name] = summarise(rows)
        parts.append(markdown(f"{name} ({steps} updates, {seeds} seeds)", tables[name], rows[0].target, basis))
        print(parts[-1], "\n", flush=True)
    minutes = (time.perf_counter() - started) / 60
    parts.append("### Summary\n\n" + summary(tables))
    footer = (f"Machine: {platform.machine()}, {cores()} cores, {args.workers} workers; "
              f"wall time {minutes:.1f} min (runs already in the store are not redone).")
    parts.append(footer)
    print(parts[-2], "\n\n" + footer)
    if args.markdown is not None:
        args.markdown.write_text("\n\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
