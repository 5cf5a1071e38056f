"""Per-step cost of ``preheat.Scheduler.step()`` against torch's own schedulers.

All three drive the same warmup + cosine shape on an SGD optimizer:

- ``preheat``:      ``Scheduler(opt, warmup_cosine(W, T))``
- ``LambdaLR``:     ``LambdaLR(opt, warmup_cosine(W, T))``, the same schedule as a lambda
- ``SequentialLR``: ``SequentialLR(opt, [LinearLR(W), CosineAnnealingLR(T - W)], [W])``

Only ``scheduler.step()`` is timed (``optimizer.step()`` is not). Each repetition builds a fresh
optimizer and scheduler of every kind, in rotating order, and times ``--steps`` calls with the
garbage collector off; the report gives the median over repetitions in microseconds per step.

A fourth row, ``auto_warmup``, is ``Scheduler(opt, preheat.auto_warmup(total=T))`` fed a loss
and a gradient norm at every update (``scheduler.step(loss=..., grad_norm=...)``: a falling
noisy loss, and half of it as the gradient norm, so it raises, holds and hands over as in
training): what the warmup that needs no length costs. The row below it, ``in warmup``, never
hands over in the timed steps (``ramp=1.0`` over ``100 x --steps`` updates), so it is the cost
of a decision at every step. Their cost is also given as a fraction of one real training update,
timed in the same run: forward, backward and AdamW step of the benchmark's smallest model (the
digits MLP 64-256-256-10, batch 32), where the fraction is largest.

    python benchmarks/step_overhead.py [--steps 5000] [--repeats 7] [--groups 1]
"""

from __future__ import annotations

import argparse
import gc
import math
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LinearLR, LRScheduler, SequentialLR

import preheat
from preheat.schedules import warmup_cosine

AUTO = "auto_warmup"
WARMING = "  in warmup"  # auto_warmup that never hands over in the timed steps: a decision every step


def make_optimizer(groups: int) -> torch.optim.Optimizer:
    params = [{"params": [torch.nn.Parameter(torch.zeros(4))]} for _ in range(groups)]
    return torch.optim.SGD(params, lr=0.1)


def builders(steps: int, groups: int) -> dict[str, Callable[[], LRScheduler]]:
    warmup = max(1, steps // 10)
    schedule = warmup_cosine(warmup, steps)
    return {
        "preheat": lambda: preheat.Scheduler(make_optimizer(groups), schedule),
        "LambdaLR": lambda: LambdaLR(make_optimizer(groups), schedule),
        "SequentialLR": lambda: sequential(make_optimizer(groups), warmup, steps),
        AUTO: lambda: preheat.Scheduler(make_optimizer(groups), preheat.auto_warmup(total=steps)),
        WARMING: lambda: preheat.Scheduler(make_optimizer(groups),
                                           preheat.auto_warmup(total=100 * steps, ramp=1.0)),
    }


def losses(steps: int) -> list[float]:
    """A falling loss with 5 % noise, fixed by a seed: what auto_warmup reads each update."""
    noise = torch.randn(steps, generator=torch.Generator().manual_seed(0))
    return [2.0 * math.exp(-t / (steps / 5)) * (1.0 + 0.05 * float(n)) + 0.1 for t, n in enumerate(noise)]


def update_seconds(repeats: int) -> float:
    """Median seconds of one training update (forward, backward, AdamW step) of the digits MLP
    64-256-256-10 on a batch of 32, over ``repeats`` timings of 200 updates."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))

    def update() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    for _ in range(20):
        update()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(200):
            update()
        timings.append((time.perf_counter_ns() - start) / 200 / 1e9)
    return statistics.median(timings)


def sequential(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> SequentialLR:
    ramp = LinearLR(optimizer, start_factor=1e-3, end_factor=1.0, total_iters=warmup)
    decay = CosineAnnealingLR(optimizer, T_max=total - warmup)
    return SequentialLR(optimizer, [ramp, decay], milestones=[warmup])


def time_steps(scheduler: LRScheduler, steps: int) -> float:
    """Microseconds per ``scheduler.step()`` over ``steps`` calls (with ``loss=`` from
    :func:`losses` and ``grad_norm=`` for a controller)."""
    scheduler.optimizer.step()  # no gradients: changes nothing, but satisfies the call-order check
    fed = losses(steps) if getattr(scheduler, "controller", None) is not None else None
    gc.disable()
    try:
        start = time.perf_counter_ns()
        if fed is None:
            for _ in range(steps):
                scheduler.step()
        else:
            for loss in fed:
                scheduler.step(loss=loss, grad_norm=loss / 2)
        elapsed = time.perf_counter_ns() - start
    finally:
        gc.enable()
    return elapsed / steps / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5000, help="scheduler.step() calls per timing")
    parser.add_argument("--repeats", type=int, default=7, help="timings per scheduler")
    parser.add_argument("--groups", type=int, default=1, help="param groups in the optimizer")
    args = parser.parse_args()
    # the timed loops step the schedulers without optimizer updates, on purpose: not a mistake here
    warnings.filterwarnings("ignore", category=preheat.WarmupMistake)

    build = builders(args.steps, args.groups)
    names = list(build)
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm up every code path once, untimed
        time_steps(build[name](), min(args.steps, 100))
    for rep in range(args.repeats):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            times[name].append(time_steps(build[name](), args.steps))

    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"scheduler.step() cost, warmup_cosine(warmup={max(1, args.steps // 10)}, total={args.steps}); "
        f"{args.steps} steps x {args.repeats} interleaved repeats, {args.groups} param group(s)"
    )
    print(f"python {platform.python_version()}, torch {torch.__version__}, {platform.machine()}")
    print(f"{'scheduler':<14}{'median us/step':>16}{'min':>10}{'max':>10}")
    for name in names:
        print(f"{name:<14}{median[name]:>16.3f}{min(times[name]):>10.3f}{max(times[name]):>10.3f}")
    print(f"ratio preheat/LambdaLR:     {median['preheat'] / median['LambdaLR']:.3f}")
    print(f"ratio preheat/SequentialLR: {median['preheat'] / median['SequentialLR']:.3f}")
    update = update_seconds(args.repeats)
    print(f"one training update of the digits MLP (batch 32, AdamW): {update * 1e6:.0f} us (median)")
    print(f"auto_warmup's step as a share of that update: {median[AUTO] / (update * 1e6):.2%} "
          f"(in warmup: {median[WARMING] / (update * 1e6):.2%})")


if __name__ == "__main__":
    main()
