"""``preheat bench``: the warmup benchmark (:mod:`preheat.lab.bench`) from the command line."""

from __future__ import annotations

import os
import platform
import signal
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from preheat.cli.app import app
from preheat.cli.lab import (Address, Backend, Cpus, Gpus, Quiet, Retries, Workers, _Bars, _Log, _ray, console,
                             errors)
from preheat.lab.bench.tasks import LATER_SPLITS

TIER_HELP = ("tiny (seconds), quick (minutes, dev tasks), full (hours: dev and test tasks), "
             f"{', '.join(LATER_SPLITS[:-1])} or {LATER_SPLITS[-1]} (those splits' tasks).")


@app.command()
def bench(
    tier: Annotated[str, typer.Option("--tier", help=TIER_HELP)] = "quick",
    tasks: Annotated[Optional[list[str]], typer.Option("--tasks", help="Only these tasks (repeat the option).")] = None,
    methods: Annotated[Optional[list[str]], typer.Option(
        "--methods", help="Only these methods besides the linear grid (repeat the option).")] = None,
    grid_only: Annotated[bool, typer.Option(
        "--grid-only", help="Only the linear grid: how a new split is calibrated before any method runs on it.")] = False,
    shard: Annotated[Optional[str], typer.Option("--shard", help="i/n: every n-th task from the i-th.")] = None,
    size: Annotated[Optional[str], typer.Option("--size", help="tiny, default or large (a GPU); default: the tier's.")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N for every run.")] = "cpu",
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder of the stores (one per tier and task).")] = Path("runs/bench"),
    markdown: Annotated[Optional[Path], typer.Option("--markdown", help="Write the tables to this file.")] = None,
    figures: Annotated[Optional[Path], typer.Option("--figures", help="Write a figure per task to this folder.")] = None,
    workers: Workers = 2,
    quiet: Quiet = False,
    backend: Backend = "local",
    address: Address = None,
    cpus_per_run: Cpus = 1.0,
    gpus_per_run: Gpus = 0.0,
    retries: Retries = 3,
) -> None:
    """Run (or resume) the warmup benchmark and print each method's win/tie/loss against the
    tuned linear warmup.

    Every method on every task of the tier, at every peak LR of the task's ladder and several
    seeds; the tuned baseline is the best linear warmup of 0-50 % at each peak. Rerunning with
    the same --out resumes: finished runs are not redone. --shard splits the tasks over
    machines; --backend ray spreads each task's runs over a Ray cluster. The tasks, tiers and
    statistics are in docs/results.md.
    """
    if grid_only and methods:
        errors.print(f"[red]error:[/] --grid-only runs no method; drop --methods {' '.join(methods)}",
                     soft_wrap=True)
        raise typer.Exit(2)
    from preheat.lab.bench import plan, runner
    from preheat.lab.bench.figures import task_figure
    from preheat.lab.bench.tables import document
    from preheat.lab.sweep import SweepIncomplete, cores

    ray = _ray(backend, address, cpus_per_run, gpus_per_run, retries)
    try:
        settings = plan.tier(tier, size, device, [] if grid_only else methods)
        chosen = runner.shard(plan.tasks_of(settings, tasks), shard)
    except ValueError as err:
        errors.print(f"[red]error:[/] {err}", soft_wrap=True)
        raise typer.Exit(2) from None
    progress: Any = _Log() if quiet else _Bars()
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.default_int_handler)
    started = time.perf_counter()
    try:
        results = runner.run_bench(settings, chosen, out, workers=workers, progress=progress, backend=ray)
    except KeyboardInterrupt:
        errors.print(f"[red]interrupted:[/] the finished runs are kept in {out}; rerun the same command "
                     "to do the rest", soft_wrap=True)
        raise typer.Exit(130) from None
    except SweepIncomplete as err:
        errors.print(f"[red]error:[/] {err}", soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        progress.stop()
    minutes = (time.perf_counter() - started) / 60
    drawn = {}
    if figures is not None:
        base = markdown.parent if markdown is not None else Path.cwd()
        for result in results:
            path = task_figure(result, figures / f"bench-{result.task.name}.png")
            drawn[result.task.name] = os.path.relpath(path, base)
    footer = (f"Machine: {platform.processor() or platform.machine()}, {cores()} cores, {workers} workers; "
              f"{minutes:.1f} min wall for this invocation (runs already in the store are not redone).")
    text = document(results, settings, drawn, footer)
    if markdown is not None:
        markdown.write_text(text)
    console.print(_totals(results))
    console.print(footer, soft_wrap=True)
    if markdown is not None:
        console.print(f"tables: {markdown.resolve()}", soft_wrap=True)


def _totals(results: list[Any]) -> Table:
    """Per method: win/tie/loss against the tuned warmup over every (task, peak LR) cell, by split."""
    from preheat.lab.bench.tables import splits_of, wtl_by_split

    table = Table(title="win / tie / loss against the tuned warmup", title_justify="left")
    table.add_column("method")
    splits = splits_of(results)
    for split in splits:
        table.add_column(f"{split} W/T/L", justify="right")
    for method in dict.fromkeys(m for r in results for m in r.methods):
        counts = wtl_by_split(results, method)
        table.add_row(method, *(counts[split] for split in splits))
    return table
