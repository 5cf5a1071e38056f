"""The ``preheat`` command's app: its name, help, ``--version`` and shared option checks.

Commands live beside it: ``schedules.py`` (plot, show) and ``lab.py`` (compare, sweep, report).
"""

from __future__ import annotations

import math
from typing import Annotated

import typer

from preheat import __version__

app = typer.Typer(
    help="Learning-rate warmup: see schedules, and compare warmups on real training runs.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)


def positive_int(value: int) -> int:
    """An option check: an integer >= 1."""
    if value < 1:
        raise typer.BadParameter(f"{value} is invalid; expected an integer >= 1")
    return value


def positive_float(value: float) -> float:
    """An option check: a finite number > 0."""
    if not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is invalid; expected a finite number > 0")
    return value


def _version(value: bool) -> None:
    if value:
        typer.echo(f"preheat {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Learning-rate warmup: see schedules, and compare warmups on real training runs."""
