"""``preheat check``: the common warmup mistakes, found before training (or in a checkpoint).

Three things can be checked, one or more at a time:

- ``preheat check EXPR --total N``: a schedule expression against a run of N updates (durations
  in units resolve with ``--epoch``, ``--batch``, ``--tokens`` as in ``preheat show``);
- ``preheat check --setup package.module:function``: your own setup - the function (defined in
  that module, taking no arguments) returns a dict of :func:`preheat.torch.checks.check`'s
  arguments (``scheduler``, ``schedule``, ``optimizer``, ``total``); naming it here is what
  lets preheat import and call it;
- ``preheat check --checkpoint FILE``: a saved checkpoint, read with ``torch.load(...,
  weights_only=True)`` (data only, nothing in it is run), for schedule-free optimizers saved in
  train mode.

Each finding prints with its fix; the exit status is 1 if any is an error, else 0 (notes only
or nothing found), and 2 for a bad argument.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.padding import Padding
from rich.text import Text

from preheat.cli.app import app
from preheat.cli.schedules import Batch, Epoch, OneLineErrors, Tokens, fail, parse_expression
from preheat.schedules.checks import Finding
from preheat.schedules.validate import MAX_STEP, shorten

SETUP_KEYS = ("scheduler", "schedule", "optimizer", "total")


def _load_setup(target: str) -> dict[str, Any]:
    """Import ``package.module:function``, call it, and return the dict it gives (checked)."""
    module_name, colon, name = target.partition(":")
    if not colon or not module_name or not name:
        fail(f"--setup {shorten(target)} is invalid; expected package.module:function")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        fail(f"--setup {shorten(target)} cannot be loaded: {err}")
    if not inspect.isfunction(function) or function.__module__ != module_name:
        fail(f"--setup {shorten(target)} is {shorten(function)}; expected a function defined in "
              f"{module_name}, taking no arguments")
    setup = function()
    if not isinstance(setup, Mapping) or not set(setup) <= set(SETUP_KEYS):
        fail(f"--setup {shorten(target)} returned {shorten(setup)}; expected a dict with any of "
              f"{', '.join(SETUP_KEYS)}")
    return dict(setup)


def _print(findings: list[Finding], console: Console) -> None:
    errors = sum(f.severity == "error" for f in findings)
    notes = len(findings) - errors
    if not findings:
        console.print(Text("no warmup mistakes found", style="green"))
        return
    console.print(Text(f"{errors} error(s), {notes} note(s)", style="bold"))
    for finding in findings:
        style = "red" if finding.severity == "error" else "yellow"
        console.print(Text(f"{finding.severity:5}  ", style=f"bold {style}") + Text(finding.code, style="bold"))
        console.print(Padding(Text(finding.message), (0, 0, 0, 7)))
        console.print(Padding(Text(f"fix: {finding.fix}", style="dim"), (0, 0, 0, 7)))


@app.command(cls=OneLineErrors)
def check(
    expression: Annotated[Optional[str], typer.Argument(metavar="[EXPR]", help="A schedule expression.")] = None,
    total: Annotated[Optional[int], typer.Option("--total", "-n", min=1, max=MAX_STEP,
                                                 help="The run's updates (needed to check a schedule).")] = None,
    setup: Annotated[Optional[str], typer.Option(
        help="package.module:function returning a dict of scheduler, schedule, optimizer, total.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(
        help="A checkpoint file (torch.save), read as data only.")] = None,
    epoch: Epoch = None,
    batch: Batch = None,
    tokens: Tokens = None,
) -> None:
    """Find the common warmup mistakes: in a schedule for a run of --total updates, in your own
    setup (--setup) or in a saved checkpoint (--checkpoint). Exit status 1 if any is an error."""
    from preheat.torch.checks import check as check_setup
    from preheat.torch.checks import checkpoint_findings

    if expression is None and setup is None and checkpoint is None:
        fail("nothing to check; expected EXPR (with --total), --setup or --checkpoint (see: preheat check --help)")
    findings: list[Finding] = []
    if expression is not None:
        if total is None:
            fail("EXPR needs --total, the run's number of updates")
        findings += check_setup(schedule=parse_expression(expression, total, epoch, batch, tokens), total=total)
    if setup is not None:
        arguments = _load_setup(setup)
        if total is not None:
            arguments.setdefault("total", total)
        try:
            findings += check_setup(**arguments)
        except ValueError as err:
            fail(f"--setup {shorten(setup)}: {err}")
    if checkpoint is not None:
        findings += checkpoint_findings(_load_checkpoint(checkpoint))
    _print(findings, Console(highlight=False))
    if any(f.severity == "error" for f in findings):
        raise typer.Exit(1)


def _load_checkpoint(path: Path) -> Any:
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        fail(f"--checkpoint {shorten(str(path))} does not exist")
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        fail(f"--checkpoint {shorten(str(path))} cannot be read as data: {first}")
