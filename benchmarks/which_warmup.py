"""The evidence table of docs/which-warmup.md: auto_warmup, fixed linear warmups and the
tuning-free methods people reach for, against the tuned linear warmup, from a tier's stores
(the full tier's by default).

Win / tie / loss over every (task, peak LR) cell, per task and per split, and the median ratio
over the cells of each split but dev (:func:`preheat.lab.bench.tables.matrix`). It reads the
stores that ``preheat bench --tier TIER`` wrote and runs nothing that is already there: run
that tier first.

    python benchmarks/which_warmup.py [--tier full|holdout|...|crypt] [--out runs/bench]
"""

from __future__ import annotations

import argparse

from preheat.lab.bench import plan, runner
from preheat.lab.bench.tables import matrix

ROWS = ["auto", "no warmup", "linear 5%", "linear 10%", "linear 20%", "linear 30%", "linear 50%",
        "hf cosine", "untuned", "autowu", "nars"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench", help="the folder of the benchmark's stores")
    parser.add_argument("--tier", default="full", help="the tier whose stores are read")
    args = parser.parse_args()
    settings = plan.tier(args.tier)
    results = runner.run_bench(settings, plan.tasks_of(settings), args.out)
    print(matrix(results, ROWS))


if __name__ == "__main__":
    main()
