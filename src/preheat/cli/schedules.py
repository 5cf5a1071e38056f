"""``preheat plot`` and ``preheat show``: see a schedule before training with it.

``preheat plot EXPR ...`` draws one or more schedules (a figure with ``--out``, else a terminal
view); ``preheat show EXPR`` prints the learning rate of every step. EXPR is the text form of a
schedule, e.g. ``"linear_warmup(2000) >> cosine_decay(98000, end=0.1)"``. Update ``t`` uses
``peak * schedule(t)``. Mistakes in EXPR or the options exit with status 2 and a message.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from preheat.cli.app import app, positive_float, positive_int
from preheat.plotting import key_steps, learning_rates, plot_schedules, sparkline
from preheat.schedules import ParseError, Schedule, parse

SPARK_WIDTH = 60
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


# -- options -------------------------------------------------------------------------------


def _figure_path(value: Optional[Path]) -> Optional[Path]:
    if value is not None and value.suffix.lower() not in FIGURE_SUFFIXES:
        raise typer.BadParameter(
            f"{str(value)!r} has an unknown extension; expected one of {', '.join(FIGURE_SUFFIXES)}"
        )
    return value


Total = Annotated[
    int, typer.Option("--total", "-n", callback=positive_int, help="Number of updates: steps 0 .. N-1.")
]
Peak = Annotated[
    float, typer.Option("--peak", "-p", callback=positive_float, help="Peak learning rate (multiplier 1).")
]


# -- shared helpers ------------------------------------------------------------------------


def _parse(text: str) -> Schedule:
    """The schedule ``text`` describes; on a mistake, print where it is and exit with 2."""
    try:
        return parse(text)
    except ParseError as err:
        message = Text(style="red")
        message.append(f"error: {err.message} (column {err.position + 1})\n", style="bold red")
        message.append(f"  {err.expression}\n")
        message.append("  " + " " * err.position + "^")
        if err.hint:
            message.append(f"\nhint: {err.hint}")
        Console(stderr=True, highlight=False).print(message, soft_wrap=True)
        raise typer.Exit(2) from None


def _number(value: float) -> str:
    return f"{value:.6g}"


# -- commands ------------------------------------------------------------------------------


@app.command()
def plot(
    expressions: Annotated[list[str], typer.Argument(metavar="EXPR", help="Schedule expression(s).")],
    total: Total,
    peak: Peak,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", callback=_figure_path, help="Write a figure (.png, .svg, .pdf) instead."),
    ] = None,
    title: Annotated[Optional[str], typer.Option(help="Figure title.")] = None,
    log: Annotated[bool, typer.Option("--log", help="Logarithmic learning-rate axis.")] = False,
) -> None:
    """Draw the learning rate of each schedule over steps 0 .. N-1.

    With --out: one matplotlib figure of all curves, phase boundaries dotted. Without it: per
    schedule, a sparkline and a table of the values around each phase boundary.
    """
    schedules = [_parse(text) for text in expressions]
    labels = [text.strip() for text in expressions]
    console = Console(highlight=False)
    if out is not None:
        try:
            path = plot_schedules(schedules, labels, total, peak, out, title=title, log=log)
        except ImportError as err:
            Console(stderr=True, highlight=False).print(Text(f"error: {err}", style="red"), soft_wrap=True)
            raise typer.Exit(1) from None
        console.print(f"wrote {path}")
        return
    if title:
        console.print(Text(title, style="bold"))
    width = max(8, min(SPARK_WIDTH, console.width - 2))
    for schedule, label in zip(schedules, labels):
        lr = learning_rates(schedule, total, peak)
        console.print(Text(label, style="bold cyan"), soft_wrap=True)
        console.print(Text(sparkline(lr, width, log=log), style="cyan"))
        axis = f"steps 0..{total - 1}, lr {_number(lr.min())}..{_number(lr.max())}"
        console.print(Text(axis + (" (log scale)" if log else ""), style="dim"))
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1))
        table.add_column("step", justify="right")
        table.add_column("multiplier", justify="right")
        table.add_column("lr", justify="right")
        table.add_column("")
        for step, note in key_steps(schedule, total):
            value = schedule(step)
            table.add_row(str(step), _number(value), _number(peak * value), note)
        console.print(table)
        console.print()


@app.command()
def show(
    expression: Annotated[str, typer.Argument(metavar="EXPR", help="Schedule expression.")],
    total: Total,
    peak: Peak,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    every: Annotated[
        int, typer.Option("--every", "-k", callback=positive_int, help="Print every K-th step only.")
    ] = 1,
) -> None:
    """Print step, multiplier and learning rate for steps 0, K, 2K, ... below N.

    json: one object with the keys schedule, peak, steps, multiplier and lr. csv: the header
    step,multiplier,lr, then one row per step. Both keep full float precision; the table
    rounds to 6 digits.
    """
    schedule = _parse(expression)
    steps = list(range(0, total, every))
    multipliers = [float(m) for m in schedule(steps)] if steps else []
    rates = [peak * m for m in multipliers]
    if format is Format.json:
        data = {"schedule": str(schedule), "peak": peak, "steps": steps, "multiplier": multipliers, "lr": rates}
        typer.echo(json.dumps(data))
    elif format is Format.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["step", "multiplier", "lr"])
        writer.writerows([step, repr(m), repr(r)] for step, m, r in zip(steps, multipliers, rates))
    else:
        console = Console(highlight=False)
        console.print(Text(str(schedule), style="bold cyan"), soft_wrap=True)
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1))
        for name in ("step", "multiplier", "lr"):
            table.add_column(name, justify="right")
        for step, m, r in zip(steps, multipliers, rates):
            table.add_row(str(step), _number(m), _number(r))
        console.print(table)
