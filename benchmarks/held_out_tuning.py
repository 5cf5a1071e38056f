"""How much the tuned baseline gains from being chosen on the seeds it is compared on.

The benchmark's tuned linear warmup at a peak LR is the length with the lowest mean over the
cell's seeds, and it is then compared, seed by seed, on those same seeds: a lucky length is
chosen for its luck (``preheat.lab.bench.analysis``). A user who tunes gets instead the length
that was best on other runs. This prints, for the fixed linear lengths and no warmup, the win /
tie / loss over every (task, peak LR) cell, per split, against both:

- **same seeds**: the benchmark's tuned baseline;
- **held out**: for each seed, the length with the lowest mean over the *other* seeds of the
  cell (leave one seed out; ties: the shorter), scored on that seed.

If the fixed lengths lost far fewer cells against the held-out baseline, the benchmark's losses
would be mostly the selection's luck; if about as many, they are real. It reads the full tier's
grid from its stores (``preheat bench --tier full`` first) and runs nothing already there.

    python benchmarks/held_out_tuning.py [--out runs/bench]
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter

from preheat.lab.bench import plan, runner
from preheat.lab.bench.analysis import Cell, TaskResult, compare, grid_at
from preheat.lab.bench.tables import splits_of

ROWS = ["no warmup", "linear 5%", "linear 10%", "linear 20%", "linear 30%", "linear 50%"]


def held_out(result: TaskResult, peak: float) -> Cell:
    """The tuned baseline at ``peak`` chosen without the seed it is scored on: for each seed the
    grid's cells all ran, the length with the lowest mean over the other seeds, and its score."""
    grid = grid_at(result.cells, peak)
    scores = {cell.method: dict(zip(cell.seeds, cell.scores)) for cell in grid}
    runs = {cell.method: dict(zip(cell.seeds, cell.runs)) for cell in grid}
    seeds = sorted(set.intersection(*(set(cell.seeds) for cell in grid)))
    picked = [min(grid, key=lambda cell: statistics.fmean(scores[cell.method][t] for t in seeds if t != seed)).method
              for seed in seeds]
    return Cell("held-out tuned", "linear", peak, tuple(runs[m][s] for m, s in zip(picked, seeds)),
                tuple(scores[m][s] for m, s in zip(picked, seeds)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench", help="the folder of the benchmark's stores")
    args = parser.parse_args()
    settings = plan.tier("full", methods=[])
    counts: dict[tuple[str, str, str], Counter[str]] = {}
    results = runner.run_bench(settings, plan.tasks_of(settings), args.out)
    for result in results:
        for peak in result.peaks:
            baselines = {"same seeds": result.tuned[peak], "held out": held_out(result, peak)}
            for method in ROWS:
                cell = result.cells.get(method, {}).get(peak)
                for name, baseline in baselines.items():
                    found = None if cell is None else compare(cell, baseline).outcome
                    if found is not None:
                        counts.setdefault((method, result.task.split, name), Counter())[found] += 1
    splits = splits_of(results)
    print("| method | " + " | ".join(f"{split}: same seeds | {split}: held out" for split in splits) + " |")
    print("|---|" + "---|---|" * len(splits))
    for method in ROWS:
        cells = []
        for split in splits:
            for name in ("same seeds", "held out"):
                c = counts.get((method, split, name), Counter())
                cells.append(f"{c['win']}/{c['tie']}/{c['loss']}")
        print(f"| {method} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
