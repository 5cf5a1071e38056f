"""``preheat plot`` and ``preheat show``: see a schedule before training with it.

``preheat plot EXPR ...`` draws one or more schedules (a figure with ``--out``, else a terminal
view); ``preheat show EXPR`` prints the learning rate of every step. EXPR is the text form of a
schedule, e.g. ``"linear_warmup(2000) >> cosine_decay(98000, end=0.1)"``; durations in units
(``"linear_warmup('5%') >> cosine_decay('95%')"``) resolve against ``--total`` and, for epochs,
samples and tokens, ``--epoch`` (updates in an epoch), ``--batch`` (samples in an update) and
``--tokens`` (tokens in an update). Update ``t`` uses
``peak * schedule(t)``; ``--peak`` defaults to 1, which shows the schedule's multipliers. A
mistake in EXPR exits with status 2 and the message, the expression with a caret under the
problem and a hint; a bad option (``--total``, ``--peak``, ``--every``, ``--out``) exits with
status 2 and one line naming it, before any work and without writing.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from preheat.cli.app import Command, app
from preheat.plotting import check_figure_path, curve, key_steps, plot_schedules, sparkline
from preheat.schedules import ParseError, Schedule, parse
from preheat.schedules.validate import MAX_STEP, shorten

SPARK_WIDTH = 60
#: The most rows ``preheat show`` prints (steps ``0, K, 2K, ...`` below N).
MAX_ROWS = 1_000_000


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


# -- options -------------------------------------------------------------------------------


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with ``code``."""
    Console(stderr=True, highlight=False).print(Text(f"error: {message}", style="red"), soft_wrap=True)
    raise typer.Exit(code)


class OneLineErrors(Command):
    """A command whose bad or missing option values (``BadParameter``: a check below, a number
    that is not one, a --format that is not a choice) print as one line and exit 2."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except typer.BadParameter as err:
            fail(f"{err.format_message()} (see: preheat {ctx.info_name} --help)")


def _invalid(value: object, expected: str) -> NoReturn:
    raise typer.BadParameter(f"{shorten(value)}; expected {expected}")


def _total(value: int) -> int:
    if not 1 <= value <= MAX_STEP:
        _invalid(value, "an integer from 1 to 2**63 - 1")
    return value


def _every(value: int) -> int:
    if value < 1:
        _invalid(value, "an integer >= 1")
    return value


def _size(value: Optional[int]) -> Optional[int]:
    if value is not None and value < 1:
        _invalid(value, "an integer >= 1")
    return value


def _peak(value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        _invalid(value, "a finite number > 0")
    return value


def _figure_path(value: Optional[Path]) -> Optional[Path]:
    if value is not None:
        try:
            check_figure_path(value)
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
    return value


Total = Annotated[
    int, typer.Option("--total", "-n", callback=_total, help="Number of updates: steps 0 .. N-1.")
]
Peak = Annotated[
    float, typer.Option("--peak", "-p", callback=_peak,
                        help="Peak learning rate (multiplier 1); the default, 1, shows the schedule's multipliers."),
]
Epoch = Annotated[
    Optional[int], typer.Option("--epoch", callback=_size, help="Updates in an epoch: resolves '2ep'.")
]
Batch = Annotated[
    Optional[int], typer.Option("--batch", callback=_size, help="Samples in an update: resolves '500ksp'.")
]
Tokens = Annotated[
    Optional[int], typer.Option("--tokens", callback=_size, help="Tokens in an update: resolves '2Btok'.")
]


# -- shared helpers ------------------------------------------------------------------------


def parse_expression(text: str, total: int, *sizes: Optional[int]) -> Schedule:
    """The schedule ``text`` describes, its durations in units resolved for a run of ``total``
    updates and ``sizes`` (updates per epoch, samples and tokens per update); on a mistake, print
    where it is and exit with 2."""
    try:
        schedule = parse(text)
    except ParseError as err:
        shown, column = err.excerpt()
        message = Text(style="red")
        message.append(f"error: {err.message} (column {err.position + 1})\n", style="bold red")
        message.append(f"  {shown}\n")
        message.append("  " + " " * column + "^")
        if err.hint:
            message.append(f"\nhint: {err.hint}")
        Console(stderr=True, highlight=False).print(message, soft_wrap=True)
        raise typer.Exit(2) from None
    try:
        return schedule.resolve(total, updates_per_epoch=sizes[0], samples_per_update=sizes[1],
                                tokens_per_update=sizes[2])
    except ValueError as err:
        fail(f"{err} (options: --total, --epoch for updates_per_epoch, --batch for samples_per_update, "
              "--tokens for tokens_per_update)")


def _number(value: float) -> str:
    return f"{value:.6g}"


# -- commands ------------------------------------------------------------------------------


@app.command(cls=OneLineErrors)
def plot(
    expressions: Annotated[list[str], typer.Argument(metavar="EXPR", help="Schedule expression(s).")],
    total: Total,
    peak: Peak = 1.0,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", callback=_figure_path, help="Write a figure (.png, .svg, .pdf) instead."),
    ] = None,
    title: Annotated[Optional[str], typer.Option(help="Figure title.")] = None,
    log: Annotated[bool, typer.Option("--log", help="Logarithmic learning-rate axis.")] = False,
    updates_per_epoch: Epoch = None,
    samples_per_update: Batch = None,
    tokens_per_update: Tokens = None,
) -> None:
    """Draw the learning rate of each schedule over steps 0 .. N-1.

    With --out: one matplotlib figure of all curves, phase boundaries dotted. Without it: per
    schedule, a sparkline and a table of the values around each phase boundary. A run longer
    than 100,000 steps is drawn from 100,000 evenly spaced steps and every phase boundary.
    """
    sizes = updates_per_epoch, samples_per_update, tokens_per_update
    schedules = [parse_expression(text, total, *sizes) for text in expressions]
    labels = [text.strip() for text in expressions]
    console = Console(highlight=False)
    if out is not None:
        try:
            path = plot_schedules(schedules, labels, total, peak, out, title=title, log=log)
        except ImportError as err:
            fail(str(err), code=1)
        except ValueError as err:  # --out became unusable since it was checked
            fail(f"Invalid value for '--out' / '-o': {err}")
        except OSError as err:  # the disk is full, say: nothing is left behind
            fail(f"cannot write {shorten(str(out))}: {err.strerror or err}", code=1)
        console.print(f"wrote {path}")
        return
    if title:
        console.print(Text(title, style="bold"))
    width = max(8, min(SPARK_WIDTH, console.width - 2))
    for schedule, label in zip(schedules, labels):
        _, lr = curve(schedule, total, peak)
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


@app.command(cls=OneLineErrors)
def show(
    expression: Annotated[str, typer.Argument(metavar="EXPR", help="Schedule expression.")],
    total: Total,
    peak: Peak = 1.0,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    every: Annotated[
        int, typer.Option("--every", "-k", callback=_every, help="Print every K-th step only.")
    ] = 1,
    updates_per_epoch: Epoch = None,
    samples_per_update: Batch = None,
    tokens_per_update: Tokens = None,
) -> None:
    """Print step, multiplier and learning rate for steps 0, K, 2K, ... below N.

    json: one object with the keys schedule, peak, steps, multiplier and lr. csv: the header
    step,multiplier,lr, then one row per step. Both keep full float precision; the table
    rounds to 6 digits. At most 1,000,000 rows: a longer run needs a larger --every.
    """
    rows = -(-total // every)
    if rows > MAX_ROWS:
        fail(
            f"--total {total} with --every {every} makes {rows} rows; expected at most {MAX_ROWS} "
            f"(give --every {-(-total // MAX_ROWS)} or more)"
        )
    schedule = parse_expression(expression, total, updates_per_epoch, samples_per_update, tokens_per_update)
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
