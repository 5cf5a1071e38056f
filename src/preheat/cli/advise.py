"""``preheat advise``: a peak LR and a warmup for a task, from probes run before training.

Builds the task's model, batches and optimizer as ``preheat diagnose`` does (a built-in task, or
your own ``package.module:function``), runs :func:`preheat.probes.advise` within ``--budget``
updates of a ``--steps``-update run, and prints the advice on one screen: the peak LR, the
stable range, the warmup as a schedule expression, the evidence, and the Hugging Face and
Lightning lines. ``--out`` writes ``advice.json`` and the figure ``advice.png``. See
``docs/advise.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from preheat.cli.app import app, positive_int
from preheat.cli.diagnose import OptimizerOption, TaskOption, TaskOptions, config_error, run_fields, task_options

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def _range(low: float | None, high: float | None) -> str:
    return f"{'?' if low is None else f'{low:.3g}'} .. {'(not reached)' if high is None else f'{high:.3g}'}"


@app.command()
def advise(
    task: TaskOption,
    steps: Annotated[int, typer.Option(callback=positive_int, help="Updates of the run you plan.")] = 1000,
    optimizer: OptimizerOption = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size [default: the task's].")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the model and the batches.")] = 0,
    task_option: TaskOptions = [],
    budget: Annotated[str, typer.Option(help="Updates the probes may spend: a number or a share of --steps.")] = "2%",
    time_limit: Annotated[float, typer.Option(help="Seconds the range test may take.")] = 600.0,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Folder for advice.json and advice.png.")] = None,
) -> None:
    """Recommend a peak LR and a warmup for a task before training it.

    A catapult search at the initial weights (eta_c: the LR whose first update raises the loss)
    and an LR range test, within --budget updates (2 % of --steps by default, at least 30 for
    the range test). Example: preheat advise --task digits --steps 1000
    """
    from preheat.lab.config import RunConfig
    from preheat.lab.optimizers import build_optimizer
    from preheat.lab.tasks import make_task
    from preheat.probes.advise import advise as run_advice

    try:
        fields = run_fields(task, optimizer, None, batch_size, task_options(task_option))
        config = RunConfig(**fields, steps=steps, seed=seed)
        built = make_task(config.task, config.task_options)
        allowed: int | str = int(budget) if budget.strip().isdigit() else budget
        if out is not None and out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file; expected a folder (made if missing)")
        model = built.model(seed)
        made = build_optimizer(config, [p for p in model.parameters() if p.requires_grad], model)
        with console.status(f"probing {task} ({config.optimizer}) ..."):
            advice = run_advice(model, lambda m, batch: built.loss(m, batch)[0],
                                built.batches(seed, config.batch_size), made, total=steps, budget=allowed,
                                time_limit=time_limit)
    except ValueError as err:
        message = config_error(err, "constant()").replace("advise: budget", "--budget")
        errors.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
        raise typer.Exit(2) from None
    table = Table(title=f"advise {task}: {config.optimizer}, {steps} updates", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("peak LR", f"{advice.peak_lr:.3g}")
    table.add_row("stable range", _range(*advice.stable_range))
    table.add_row("eta_c (catapult)", "unknown" if advice.critical_lr is None else f"{advice.critical_lr:.3g}")
    table.add_row("schedule", escape(advice.schedule))
    table.add_row("cost", f"{advice.cost:.0f} of {advice.budget} updates allowed, {advice.seconds:.2g} s")
    console.print(table)
    evidence = Table.grid(padding=(0, 1))
    evidence.add_column()
    evidence.add_column()
    for line in advice.evidence:
        evidence.add_row("-", escape(line))
    console.print(evidence)
    # code is printed unwrapped, so that it pastes as it is
    console.print("\n[bold]Hugging Face[/]\n" + escape(advice.huggingface()), soft_wrap=True)
    console.print("\n[bold]Lightning[/] (configure_optimizers)\n" + escape(advice.lightning()), soft_wrap=True)
    if out is not None:
        paths = advice.save(out)
        console.print("\nwrote " + ", ".join(str(path) for path in paths), soft_wrap=True)
