"""``preheat diagnose``: train one run and measure its sharpness and local smoothness.

Prints the fitted ``(rho, K0, K_rho)`` law, the sharpness at the start and the end and what a
sharpness measurement costs; writes ``sharpness.png`` (the edge-of-stability picture),
``smoothness.png`` (local smoothness against the loss gap) and ``diagnosis.json`` into ``--out``.
See ``docs/diagnose.md``. Mistakes in the options exit with status 2 and a message.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from preheat.cli.app import app, positive_int
from preheat.lab.catalog import BUILTIN
from preheat.lab.optimizers import OPTIMIZERS

if TYPE_CHECKING:
    from preheat.lab.diagnose import Diagnosis

# The lab (torch, pydantic, matplotlib) is imported inside the command, so `preheat --help` and
# `preheat plot` start fast.
console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

#: RunConfig fields and the options that set them, for error messages.
OPTION_OF = {"task": "--task", "task_options": "--task-option", "optimizer": "--optimizer",
             "peak_lr": "--peak-lr", "schedule": "--schedule", "steps": "--steps", "seed": "--seed",
             "batch_size": "--batch-size"}


TaskOption = Annotated[str, typer.Option(
    "--task", "-t", help=f"{', '.join(BUILTIN)} or package.module:function.")]
OptimizerOption = Annotated[Optional[str], typer.Option(
    help=f"{', '.join(OPTIMIZERS)} [default: the task's in preheat compare, else adamw].")]
PeakOption = Annotated[Optional[float], typer.Option(
    help="Peak learning rate [default: the lower of the task's two in preheat compare, else 1e-3].")]
ScheduleOption = Annotated[str, typer.Option(help="Schedule expression; update t uses peak-lr * schedule(t).")]
TaskOptions = Annotated[list[str], typer.Option(help="A task option KEY=VALUE (repeatable), e.g. width=32.")]
OutOption = Annotated[Optional[Path], typer.Option(
    "--out", "-o", help="Folder for the PNGs and the JSON [default: runs/diagnose-TASK].")]


def task_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items as a dict; each value read as YAML (``width=32`` is the int 32)."""
    from preheat.lab.config import parse_yaml

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--task-option {item!r} is invalid; expected KEY=VALUE, e.g. width=32")
        options[key.strip()] = parse_yaml(value, f"--task-option {item!r}")
    return options


def config_error(err: Exception, schedule: str) -> str:
    """A pydantic validation error as one line per field, named by its option; other errors as text.

    An error of the whole config (no field) comes from its schedule check, the only one the
    options can trip: it is reported as ``--schedule``'s.
    """
    details = getattr(err, "errors", None)
    if not callable(details):
        return str(err)
    lines = []
    for detail in details():
        field = ".".join(str(part) for part in detail.get("loc", ()))
        message = str(detail["msg"]).removeprefix("Value error, ")
        if not field:
            lines.append(f"--schedule={schedule!r} is invalid: {message}")
            continue
        name = OPTION_OF.get(field, field)
        shown = f"={detail['input']!r}" if field in OPTION_OF else ""
        lines.append(f"{name}{shown} is invalid: {message}")
    return "; ".join(lines) or str(err)


def run_fields(task: str, optimizer: str | None, peak_lr: float | None, batch_size: int | None,
            options: dict[str, Any]) -> dict[str, Any]:
    """The run's fields: the task's curated setting in ``preheat compare`` (if any), then the options given.

    A curated setting (``preheat.lab.compare.SETUPS``) gives the optimizer, batch size, betas,
    weight decay and task options, and its moderate (lower) peak LR.
    """
    from preheat.lab.compare import SETUPS

    setup = SETUPS.get(task)
    fields: dict[str, Any] = {}
    if setup is not None:
        fields = {**setup.base, "peak_lr": min(setup.peak_lrs)}
    fields["task"] = task
    fields["task_options"] = {**fields.get("task_options", {}), **options}
    if optimizer is not None:
        fields["optimizer"] = optimizer
    if peak_lr is not None:
        fields["peak_lr"] = peak_lr
    if batch_size is not None:
        fields["batch_size"] = batch_size
    return fields


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.4g}"


def _table(d: Diagnosis) -> Table:
    """The summary: fitted law (and the task's own), sharpness at start and end, cost."""
    caption = f"threshold: {d.threshold_rule}" if d.threshold_rule is not None else None
    updates = f"{d.updates} update{'' if d.updates == 1 else 's'}"
    table = Table(title=f"diagnose {d.config.task}: {updates}, {d.status}", caption=caption)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    fit = d.fit if d.fit is not None else (None, None, None)
    own = d.task_constants if d.task_constants is not None else (None, None, None)
    for name, value, known in zip(("rho", "K0", "K_rho"), fit, own):
        suffix = f"  (task's: {_number(known)})" if d.task_constants is not None else ""
        table.add_row(f"fitted {name}", _number(value) + suffix)
    if d.fit is None:
        table.add_row("fit", "none: too few pairs, or gaps within a factor 1.5")
    if d.measurements:
        first, last = int(d.measured_step[0]), int(d.measured_step[-1])
        rows = [("sharpness", d.sharpness)]
        if d.preconditioned is not None:
            rows.append(("preconditioned", d.preconditioned))
        if d.threshold_rule is not None:
            rows.append(("threshold", d.threshold[d.measured_step]))
        for label, values in rows:
            table.add_row(f"{label} at t={first} / t={last}", f"{_number(values[0])} / {_number(values[-1])}")
    ratio = d.seconds_per_measurement / d.seconds_per_update if d.seconds_per_update > 0 else math.nan
    table.add_row("cost of one sharpness measurement",
                  f"{1e3 * d.seconds_per_measurement:.3g} ms = {_number(ratio)} updates")
    table.add_row("time: sharpness / smoothness / all",
                  f"{d.seconds_sharpness:.2f} / {d.seconds_smoothness:.2f} / {d.seconds_total:.2f} s")
    return table


@app.command()
def diagnose(
    task: TaskOption,
    optimizer: OptimizerOption = None,
    peak_lr: PeakOption = None,
    schedule: ScheduleOption = "constant()",
    steps: Annotated[int, typer.Option(callback=positive_int, help="Updates to train.")] = 200,
    every: Annotated[int, typer.Option(callback=positive_int, help="Measure the sharpness every K updates.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the model and the batches.")] = 0,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size [default: the task's].")] = None,
    task_option: TaskOptions = [],
    f_star: Annotated[float, typer.Option(help="L*, the training loss's infimum (gap = L - L*).")] = 0.0,
    out: OutOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train one run and measure sharpness (edge of stability) and local smoothness vs loss gap.

    Every update: S_t = ||g(theta_t+1) - g(theta_t)|| / ||theta_t+1 - theta_t|| on its batch,
    and the gap L_t - L*. Every K updates: the top Hessian eigenvalue (and, for Adam, the
    preconditioned one). Fits S = K0 + K_rho gap^rho and writes sharpness.png, smoothness.png
    and diagnosis.json.

    Example: preheat diagnose --task river-valley --optimizer sgd --peak-lr 0.3
    --schedule "linear_warmup(30)" --steps 60 --every 2
    """
    from preheat.lab.config import RunConfig
    from preheat.lab.diagnose import diagnose as run_diagnosis
    from preheat.lab.diagnose_figures import write
    from preheat.lab.tasks import make_task

    try:
        fields = run_fields(task, optimizer, peak_lr, batch_size, task_options(task_option))
        config = RunConfig(**fields, schedule=schedule, steps=steps, seed=seed)
        if every > steps:
            raise ValueError(f"--every={every} is invalid; expected at most --steps={steps}")
        if not math.isfinite(f_star):
            raise ValueError(f"--f-star={f_star} is invalid; expected a finite number")
        built = make_task(config.task, config.task_options)
    except ValueError as err:
        errors.print(f"[red]error:[/] {escape(config_error(err, schedule))}", soft_wrap=True)
        raise typer.Exit(2) from None
    out = out if out is not None else Path("runs") / ("diagnose-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", task))
    if out.exists() and not out.is_dir():  # checked before training, not after
        errors.print(f"[red]error:[/] --out {escape(str(out))} is a file; expected a folder (made if missing)",
                     soft_wrap=True)
        raise typer.Exit(2)
    bars = None if quiet else Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                       TimeElapsedColumn(), console=console, transient=True)
    try:
        if bars is None:
            result = run_diagnosis(config, every, task=built, f_star=f_star)
        else:
            with bars:
                bar = bars.add_task(f"{task} ({config.optimizer} @ {config.peak_lr:g})", total=steps)
                result = run_diagnosis(config, every, task=built, f_star=f_star,
                                       progress=lambda step: bars.update(bar, completed=step))
    except (ValueError, RuntimeError) as err:  # RuntimeError: the run itself failed
        errors.print(f"[red]error:[/] {escape(str(err))}", soft_wrap=True)
        raise typer.Exit(2) from None
    paths = write(result, out)
    console.print(_table(result))
    console.print("wrote " + ", ".join(str(path) for path in paths.values()), soft_wrap=True)
