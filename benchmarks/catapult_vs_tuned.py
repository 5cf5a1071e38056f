"""Does a probe before training tell how long the warmup should be?

For every benchmark task, Kalra & Barkeshli's catapult search (:func:`preheat.probes.
catapult_search`: the smallest LR whose one update from the initial weights raises the loss,
by 1 % with the Adam family's first step, 10 % with SGD's) on one batch the runs never train
on, at ``--seeds`` initial weights; then, for every rung of the task's ladder, the peak over
that ``eta_c`` beside the linear warmup length the benchmark tuned there. If warmup is what
lets a network reach a peak above ``eta_c`` (their account), the tuned length should be short
where the peak is below it and grow with the ratio.

The tuned lengths are read from the per-task tables of ``docs/results.md`` (the benchmark's own
printed tables; most tiers' stores are not kept), so rerun ``preheat bench`` for a task whose
table changed. Muon's first update is not a step the search simulates: its tasks are probed
with SGD's and marked. Forward passes and one gradient per probe; seconds per task.

    python benchmarks/catapult_vs_tuned.py [--seeds 3] [--figure catapult-vs-tuned.png]
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path

from scipy.stats import spearmanr

from preheat.lab.bench import plan
from preheat.lab.bench.tasks import TASKS, BenchTask
from preheat.lab.config import RunConfig
from preheat.lab.run import Run, start
from preheat.lab.signals import before_training
from preheat.lab.tasks import make_task
from preheat.probes import catapult_search

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results.md"
TIER_OF_SPLIT = {"dev": "full", "test": "full"}  # the other splits' tiers are named after them
SEARCH_RANGE = 1e4  # the search may go this far above the task's top rung
TRANSFORMERS = ("GPT (pre-LN)", "post-LN transformer")
HEADING = re.compile(r"^##### (\S+) \(")
ROW = re.compile(r"^\| ([0-9.e-]+) \| (no warmup|linear (\d+)%) \| (fail)?")


def tuned_lengths(text: str) -> dict[tuple[str, float], float]:
    """(task, peak) -> the tuned warmup's fraction of the run, from the per-task tables; cells
    where every length failed on every seed are left out (their "tuned" length means nothing)."""
    found: dict[tuple[str, float], float] = {}
    task = None
    for line in text.splitlines():
        heading = HEADING.match(line)
        if heading:
            task = heading.group(1)
        row = ROW.match(line)
        if task is not None and row and row.group(4) is None:
            found.setdefault((task, float(row.group(1))), 0.0 if row.group(3) is None else int(row.group(3)) / 100)
    return found


def lab_run(config: RunConfig) -> Run:
    """``config``'s run as the lab's loop builds it before update 0 (:func:`preheat.lab.run.start`)."""
    return start(config, make_task(config.task, config.task_options))


def eta_c(task: BenchTask, seed: int) -> float:
    """The catapult LR of ``task``'s model at initial weights ``seed``, on the batch the lab's
    catapult signal uses (one its runs never train on), searched up to far above the ladder."""
    settings = plan.tier(TIER_OF_SPLIT.get(task.split, task.split))
    config = plan.runs(task, settings, peaks=(task.peaks[0],))[0].model_copy(update={"seed": seed})
    run = lab_run(config)
    batch, kind = before_training(run)
    found = catapult_search(run.model, run.loss, batch, eta0=task.peaks[0] * 1e-3,
                            target_lr=task.peaks[-1] * SEARCH_RANGE, kind=kind)
    return found.lr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="initial weights probed per task")
    parser.add_argument("--figure", default=None, help="a PNG path for the figure; default: none")
    args = parser.parse_args()
    tuned = tuned_lengths(RESULTS.read_text())
    cells = []
    print("| task | split | optimizer | eta_c (median; range) | peak / eta_c at each rung: tuned length |")
    print("|---|---|---|---|---|")
    for task in TASKS.values():
        peaks = sorted(peak for name, peak in tuned if name == task.name)  # the ladder as the tier grew it
        if not peaks:
            continue
        found = [eta_c(task, seed) for seed in range(args.seeds)]
        middle = statistics.median(found)
        optimizer = task.base["optimizer"] + (" (probed as SGD)" if task.family == "muon" else "")
        rungs = []
        for peak in peaks:
            length = tuned[task.name, peak]
            cells.append((peak / middle, length, task))
            rungs.append(f"{peak / middle:.3g}: {length:.0%}")
        print(f"| {task.name} | {task.split} | {optimizer} | {middle:.3g} ({min(found):.3g}-{max(found):.3g}) "
              f"| {'; '.join(rungs)} |")
    print()
    print("| peak / eta_c | cells | tuned: none | 1-10 % | 20-30 % | 50 % or more | median tuned length |")
    print("|---|---|---|---|---|---|---|")
    for low, high in [(0, 1), (1, 4), (4, 16), (16, 64), (64, float("inf"))]:
        chosen = [length for ratio, length, _ in cells if low <= ratio < high]
        if chosen:
            counts = [sum(1 for x in chosen if x == 0), sum(1 for x in chosen if 0 < x <= 0.1),
                      sum(1 for x in chosen if 0.1 < x <= 0.3), sum(1 for x in chosen if x > 0.3)]
            print(f"| {low:g} - {high:g} | {len(chosen)} | " + " | ".join(map(str, counts))
                  + f" | {statistics.median(chosen):.0%} |")
    print()
    for group, members in groups(cells).items():
        rho = spearmanr([ratio for ratio, _, _ in members], [length for _, length, _ in members]).statistic
        print(f"{group}: {len(members)} cells, rank correlation of peak / eta_c with the tuned length {rho:.2f}")
    if args.figure:
        draw(cells, args.figure)


def groups(cells: list[tuple[float, float, BenchTask]]) -> dict[str, list[tuple[float, float, BenchTask]]]:
    """The cells by optimizer family, the Adam family's split into transformers and the rest."""
    found: dict[str, list[tuple[float, float, BenchTask]]] = {}
    for cell in cells:
        task = cell[2]
        name = task.family if task.family != "adam" else (
            "adam, transformers" if task.kind in TRANSFORMERS else "adam, MLPs and CNNs")
        found.setdefault(name, []).append(cell)
    return found


def draw(cells: list[tuple[float, float, BenchTask]], path: str) -> None:
    """The tuned length over the peak's ratio to ``eta_c``, one marker per optimizer family and
    one colour per kind of model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"adam": "o", "sgd": "s", "muon": "^"}
    kinds = sorted({task.kind for _, _, task in cells})
    colours = dict(zip(kinds, plt.get_cmap("tab10").colors))
    figure, axes = plt.subplots(figsize=(8, 4.5))
    shown = set()
    for ratio, length, task in cells:
        label = f"{task.kind}, {task.family}"
        axes.scatter(ratio, 100 * length, marker=markers[task.family], color=colours[task.kind], alpha=0.7,
                     label=None if label in shown else label)
        shown.add(label)
    axes.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    axes.set_xscale("log")
    axes.set_xlabel("peak LR / catapult LR at init (eta_c)")
    axes.set_ylabel("tuned linear warmup (% of the run)")
    axes.set_title("Does the catapult LR at init predict the tuned warmup?")
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
