"""Runs per minute of one small sweep on each engine, side by side, and what Ray adds per run.

The sweep: ``--runs`` digits-MLP runs (AdamW, warmup + cosine, seeds 0..runs-1) of ``--steps``
updates each. Every repeat runs it into fresh directories on each engine, in rotating order:

- ``local x1``: one process (``workers=1``, all cores' threads);
- ``local x2``: two worker processes (``workers=2``, ``cores // 2`` threads each);
- ``ray``: a local Ray instance with this machine's CPUs, one task per run with
  ``cpus = cores // 2`` (so two runs at a time, the same threads as ``local x2``). Ray's start
  (``ray.init``) and stop are timed apart from the sweep.

Reported: median wall time per engine (sweep only), runs per minute, and Ray's overhead per
run = (median ray - median local x2) / runs, the cost of the same concurrency through Ray tasks
instead of a process pool, plus Ray's median start-up time.

    python benchmarks/sweep_throughput.py [--runs 12] [--steps 150] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import ray

from preheat.lab.config import SweepConfig
from preheat.lab.sweep import cores, run_sweep
from preheat.lab.sweep.ray import OBJECT_STORE_BYTES, RayBackend


def sweep(runs: int, steps: int) -> SweepConfig:
    return SweepConfig(name="throughput", base={
        "task": "digits", "task_options": {"width": 64}, "optimizer": "adamw", "peak_lr": 3e-3,
        "schedule": "warmup_cosine(10, {steps})", "steps": steps, "eval_every": steps,
    }, grid={"seed": list(range(runs))})


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = sweep(args.runs, args.steps).runs()
    per_run = max(1, cores() // 2)

    def on_ray(directory: Path) -> float:
        starts.append(timed(lambda: ray.init(num_cpus=cores(), include_dashboard=False, logging_level="ERROR",
                                             log_to_driver=False, object_store_memory=OBJECT_STORE_BYTES)))
        try:
            return timed(lambda: run_sweep(runs, directory, backend=RayBackend(cpus=per_run)))
        finally:
            ray.shutdown()

    engines: dict[str, Callable[[Path], float]] = {
        "local x1": lambda d: timed(lambda: run_sweep(runs, d, workers=1)),
        "local x2": lambda d: timed(lambda: run_sweep(runs, d, workers=2)),
        "ray": on_ray,
    }
    seconds: dict[str, list[float]] = {name: [] for name in engines}
    starts: list[float] = []
    names = list(engines)
    with tempfile.TemporaryDirectory() as root:
        for repeat in range(args.repeats):
            for name in names[repeat % len(names):] + names[:repeat % len(names)]:
                seconds[name].append(engines[name](Path(root) / f"{name}-{repeat}"))
    print(f"machine: {platform.processor() or platform.machine()}, {cores()} cores; ray {ray.__version__}")
    print(f"sweep: {len(runs)} digits runs x {args.steps} steps; median of {args.repeats} repeats")
    print(f"{'engine':10} {'wall s':>8} {'runs/min':>9}   (each repeat, s)")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"{name:10} {median:8.2f} {60 * len(runs) / median:9.1f}   "
              f"({', '.join(f'{v:.2f}' for v in values)})")
    overhead = (statistics.median(seconds["ray"]) - statistics.median(seconds["local x2"])) / len(runs)
    print(f"ray overhead per run vs local x2: {overhead * 1000:.0f} ms; "
          f"ray start-up (ray.init): median {statistics.median(starts):.2f} s")


if __name__ == "__main__":
    main()
