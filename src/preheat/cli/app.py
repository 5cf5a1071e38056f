"""The ``preheat`` command's app: its name, help, ``--version`` and shared option checks.

Commands live beside it: ``schedules.py`` (plot, show) and ``lab.py`` (compare, sweep, report).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer
import typer.core

from preheat import __version__


def _flags_without_a_value(command: typer.core.TyperCommand | typer.core.TyperGroup, ctx: typer.Context) -> None:
    """Give every flag of ``command`` (``--quick``, ``--help``, ...) an empty metavar, so that
    ``--help`` shows no value type beside it: typer's rich help prints ``<bool>`` there, as if
    the flag took a value. An option whose metavar was set keeps it."""
    for param in command.get_params(ctx):
        if isinstance(param, typer.core.TyperOption) and (param.is_flag or param.count) and param.metavar is None:
            param.metavar = ""


class Command(typer.core.TyperCommand):
    """A ``preheat`` command: its help shows flags without a value type."""

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        _flags_without_a_value(self, ctx)
        super().format_help(ctx, formatter)


class Group(typer.core.TyperGroup):
    """The ``preheat`` command group: its help shows flags without a value type."""

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        _flags_without_a_value(self, ctx)
        super().format_help(ctx, formatter)


class _Typer(typer.Typer):
    """A Typer app whose commands are :class:`Command` unless one says otherwise (which should
    then subclass :class:`Command`)."""

    def command(self, name: str | None = None, *, cls: type[typer.core.TyperCommand] | None = None,
                **kwargs: Any) -> Any:
        return super().command(name, cls=cls or Command, **kwargs)


app = _Typer(
    cls=Group,
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
