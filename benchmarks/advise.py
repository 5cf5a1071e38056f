"""``preheat advise`` on the benchmark's tasks, against the best cell of the full (peak x warmup)
grid, with torch-lr-finder's and Lightning's LR-finder suggestions side by side.

Per task (the full tier's tasks at their default size, or the holdout tier's):

1. the linear grid of the tier (every rung of the ladder, warmups 0-50 %, extended where its
   best is at an edge) is run into the benchmark's store, or read from it: the **grid**;
2. ``advise`` runs once, on seed 0's model, within its default budget (2 % of the run, at
   least 30 range-test updates): its peak LR and schedule train every seed of the task;
3. torch-lr-finder's suggestion (``LRFinder.range_test``, 100 updates, its steepest-gradient
   suggestion) and Lightning's (``Tuner.lr_find``, 100 updates, ``suggestion()``) on the same
   model, each trained at that peak with advise's warmup (linear 20 %, then cosine), every seed.

Printed: each method's peak and schedule, its mean final validation loss (mean steps to the
target for the river valley) against the grid's best cell, paired by seed (ratio and 95 %
interval; a tie when the interval holds 1), whether it is within 2 % of the best, and what it
cost against the grid, in updates. Runs are stored (``--out``), so a rerun computes only what
is missing.

    python benchmarks/advise.py --split dev|test|holdout [--tasks mlp-ce ...] [--out runs/bench] [--workers 2]
"""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path
from typing import Any

import torch

from preheat.lab.bench import plan, runner
from preheat.lab.bench.analysis import Cell, compare, load
from preheat.lab.bench.tasks import BenchTask
from preheat.lab.config import RunConfig
from preheat.lab.optimizers import build_optimizer
from preheat.lab.sweep import run_sweep
from preheat.lab.tasks import make_task
from preheat.probes import advise
from preheat.probes.advise import SCHEDULE  # the finders suggest no warmup: they train with advise's
FINDER_UPDATES = 100


def probe_setup(fields: dict[str, Any]) -> tuple[Any, torch.nn.Module, torch.optim.Optimizer, Any]:
    """The task, seed 0's model, the task's optimizer over it, and seed 0's batches."""
    config = RunConfig(**{**fields, "seed": 0})
    task = make_task(config.task, config.task_options)
    model = task.model(0)
    optimizer = build_optimizer(config, [p for p in model.parameters() if p.requires_grad], model)
    return task, model, optimizer, task.batches(0, config.batch_size)


class _AsLoss(torch.nn.Module):
    """A task's model whose forward takes a batch and returns the task's loss (for the finders)."""

    def __init__(self, task: Any, model: torch.nn.Module) -> None:
        super().__init__()
        self.task, self.model = task, model

    def forward(self, batch: Any) -> torch.Tensor:
        return self.task.loss(self.model, batch)[0]


def torch_lr_finder(fields: dict[str, Any]) -> float | None:
    """torch-lr-finder's steepest-gradient suggestion, on seed 0's model."""
    from torch_lr_finder import LRFinder, TrainDataLoaderIter

    task, model, optimizer, batches = probe_setup(fields)

    class Batches(TrainDataLoaderIter):
        def __init__(self) -> None:
            self.data_loader, self._iterator = batches, batches

        def __next__(self) -> tuple[Any, torch.Tensor]:
            return next(self._iterator), torch.zeros(1)

        def inputs_labels_from_batch(self, batch: Any) -> Any:
            return batch

    finder = LRFinder(_AsLoss(task, model), optimizer, lambda output, _: output, device="cpu")
    finder.range_test(Batches(), start_lr=1e-7, end_lr=10, num_iter=FINDER_UPDATES)
    import matplotlib

    matplotlib.use("Agg")
    _, suggestion = finder.plot(suggest_lr=True, show_lr=None)
    import matplotlib.pyplot as plt

    plt.close("all")
    return None if suggestion is None else float(suggestion)


def lightning_lr_finder(fields: dict[str, Any]) -> float | None:
    """Lightning's ``Tuner.lr_find`` suggestion, on seed 0's model."""
    import lightning.pytorch as lightning
    from lightning.pytorch.tuner import Tuner

    task, model, _, batches = probe_setup(fields)

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.lr = model, 1e-3

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            return task.loss(self.net, batch)[0]

        def configure_optimizers(self) -> torch.optim.Optimizer:  # lr_find sets the LRs itself
            config = RunConfig(**{**fields, "seed": 0, "peak_lr": self.lr})
            return build_optimizer(config, [p for p in self.net.parameters() if p.requires_grad], self.net)

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self) -> Any:
            return batches

    trainer = lightning.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, max_steps=FINDER_UPDATES,
                                default_root_dir="/tmp/preheat-lightning-lr-find")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = Tuner(trainer).lr_find(Module(), train_dataloaders=torch.utils.data.DataLoader(Stream(), batch_size=None),
                                       min_lr=1e-7, max_lr=10, num_training=FINDER_UPDATES, update_attr=False)
    suggestion = None if found is None else found.suggestion()
    return None if suggestion is None else float(suggestion)


def trained(task: BenchTask, fields: dict[str, Any], label: str, peak: float, schedule: str, out: Path,
            workers: int) -> Cell | None:
    """``peak`` and ``schedule`` trained on every seed of ``task`` (stored under ``out``)."""
    configs = [RunConfig(**{**fields, "schedule": schedule, "warmup": None, "peak_lr": peak, "seed": seed,
                            "label": label}) for seed in range(task.seeds)]
    directory = out / task.name
    run_sweep(configs, directory, workers=workers, leftovers=True)
    result = load(task, directory, {config.fingerprint() for config in configs})
    return result.cells.get(label, {}).get(peak)


def row(label: str, peak: float | None, schedule: str, cell: Cell | None, best: Cell, cost: float | None,
        grid_cost: float) -> str:
    if peak is None or cell is None:
        return f"| {label} | none | | | | | |"
    found = compare(cell, best)
    ratio = found.ratio
    shown = "-" if ratio is None else f"{ratio.value:.3f} [{ratio.low:.3f}, {ratio.high:.3f}]"
    within = ratio is not None and ratio.value <= 1.02
    spent = "" if cost is None else f"{cost / grid_cost:.1%}"
    return (f"| {label} | {peak:.3g} | `{schedule}` | {cell.mean:.4g} | {shown} | {found.outcome or '-'}"
            f"{' (within 2 %)' if within and found.outcome == 'loss' else ''} | {spent} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "test", "holdout"), default="dev")
    parser.add_argument("--tasks", nargs="*", help="only these tasks")
    parser.add_argument("--out", default="runs/bench", help="the benchmark's stores (the grid)")
    parser.add_argument("--advise-out", default="runs/advise", help="stores of the advised runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--finders", action=argparse.BooleanOptionalAction, default=True,
                        help="also torch-lr-finder's and Lightning's suggestions")
    args = parser.parse_args()
    settings = plan.tier("holdout" if args.split == "holdout" else "full", methods=[])
    tasks = [t for t in plan.tasks_of(settings, args.tasks) if t.split == args.split]
    out = Path(args.advise_out)
    for task in tasks:
        (result,) = runner.run_bench(settings, [task], args.out, workers=args.workers)
        best = result.best_tuned
        fields = {**task.fields("default"), "eval_every": max(1, task.steps // 10)}
        grid_runs = sum(len(cell.runs) for method, cells in result.cells.items() if plan.is_linear(method)
                        for cell in cells.values())
        grid_cost = grid_runs * task.steps
        built, model, optimizer, batches = probe_setup(fields)
        advice = advise(model, lambda m, b: built.loss(m, b)[0], batches, optimizer, total=task.steps)
        rows = [("advise", advice.peak_lr, advice.schedule, advice.cost)]
        if args.finders:
            rows += [("torch-lr-finder", torch_lr_finder(fields), SCHEDULE, None),
                     ("lightning lr_find", lightning_lr_finder(fields), SCHEDULE, None)]
        print(f"\n### {task.name} ({task.split}, {task.steps} updates, {task.seeds} seeds)\n")
        print(f"Grid's best: {best.method} at {best.peak_lr:g}, mean {best.mean:.4g} "
              f"(+- {best.half_width:.2g}); the grid: {grid_runs} runs, {grid_cost} updates.\n")
        print("| method | peak | schedule | mean | ratio to grid's best [95 %] | outcome | cost / grid |")
        print("|---|---|---|---|---|---|---|")
        for label, peak, schedule, probe_cost in rows:
            cell = None if peak is None else trained(task, fields, label, peak, schedule, out, args.workers)
            cost = None if probe_cost is None else probe_cost + task.seeds * task.steps
            print(row(label, peak, schedule, cell, best, cost, grid_cost), flush=True)
        print("\nadvise's evidence: " + " ".join(advice.evidence))
        if not math.isfinite(advice.cost):
            raise RuntimeError("advise reported no cost")


if __name__ == "__main__":
    main()
