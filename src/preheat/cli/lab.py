"""``preheat compare``, ``preheat sweep`` and ``preheat report``: the lab from the command line."""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, Sequence

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from preheat.cli.app import app, positive_int
from preheat.lab.catalog import BUILTIN

if TYPE_CHECKING:
    from preheat.lab.config import RunConfig
    from preheat.lab.metrics import RankedMethod, SweepMetrics
    from preheat.lab.record import RunResult
    from preheat.lab.store import Store

# The lab (torch, pydantic, matplotlib, the lab extra) is imported inside the commands, so
# `preheat plot` starts fast and works without the lab's dependencies.

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

Workers = Annotated[int, typer.Option("--workers", "-w", callback=positive_int, help="Worker processes.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="One log line per run instead of progress bars.")]


class _Bars:
    """Progress bars: one for the sweep, one for each run in flight.

    A display only: a worker's progress event may arrive after its run ended (the queue is
    drained late), and such an event is ignored, never an error.
    """

    def __init__(self) -> None:
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=console, transient=False)
        self.sweep = self.bars.add_task("runs", total=0)
        self.active: dict[str, Any] = {}
        self.ended: set[str] = set()

    def sweep_started(self, total: int, todo: int) -> None:
        self.bars.update(self.sweep, total=total, completed=total - todo)
        self.bars.start()

    def run_started(self, config: RunConfig) -> None:
        key = config.fingerprint()
        if key not in self.active and key not in self.ended:
            label = f"  {config.method} @ {config.peak_lr:g} seed {config.seed}"
            self.active[key] = self.bars.add_task(label, total=config.steps)

    def run_step(self, config: RunConfig, step: int) -> None:
        bar = self.active.get(config.fingerprint())
        if bar is not None:
            self.bars.update(bar, completed=step)

    def run_ended(self, config: RunConfig, result: RunResult) -> None:
        key = config.fingerprint()
        self.ended.add(key)
        bar = self.active.pop(key, None)
        if bar is not None:
            self.bars.remove_task(bar)
        self.bars.advance(self.sweep)

    def stop(self) -> None:
        self.bars.stop()


class _Log:
    """``--quiet``: a line per finished run."""

    def sweep_started(self, total: int, todo: int) -> None:
        console.print(f"{todo} of {total} runs to do")

    def run_started(self, config: RunConfig) -> None: ...

    def run_step(self, config: RunConfig, step: int) -> None: ...

    def run_ended(self, config: RunConfig, result: RunResult) -> None:
        last = result.evals["val_loss"][-1] if result.evals["val_loss"] else math.nan
        console.print(f"{result.status:9} {config.method} @ {config.peak_lr:g} seed {config.seed}: "
                      f"val loss {last:.4g}, {result.wall_time:.1f}s" + (f" ({result.error})" if result.error else ""))

    def stop(self) -> None: ...


class _Export:
    """``--log``: after each run, its record also goes to TensorBoard and/or MLflow (through
    :mod:`preheat.integrations.logging`), one TensorBoard folder / MLflow run per run."""

    def __init__(self, inner: Any, kinds: list[str], out: Path) -> None:
        self.inner, self.kinds, self.out = inner, kinds, out

    def sweep_started(self, total: int, todo: int) -> None:
        self.inner.sweep_started(total, todo)

    def run_started(self, config: RunConfig) -> None:
        self.inner.run_started(config)

    def run_step(self, config: RunConfig, step: int) -> None:
        self.inner.run_step(config, step)

    def run_ended(self, config: RunConfig, result: RunResult) -> None:
        from preheat.integrations.logging import MLflowSink, TensorBoardSink

        self.inner.run_ended(config, result)
        name = f"{config.method} @ {config.peak_lr:g} seed {config.seed}"
        for kind in self.kinds:
            sink = (TensorBoardSink(self.out / "tensorboard" / f"{config.fingerprint()}")
                    if kind == "tensorboard" else
                    MLflowSink(experiment=self.out.name, run_name=name, directory=self.out / "mlruns",
                               tags={"preheat.run_id": config.fingerprint()}))
            for table, prefix in ((result.steps, "train"), (result.evals, "val")):
                for i, step in enumerate(table["step"]):
                    values = {f"{prefix}/{k}" if k != "lr" else "lr/group0": v[i]
                              for k, v in table.items() if k != "step" and math.isfinite(v[i])}
                    sink.log_scalars(int(step), values)
            for decision in result.decisions:
                sink.log_decision(decision)
            sink.close()

    def stop(self) -> None:
        self.inner.stop()


LOGS = ("tensorboard", "mlflow")
Log = Annotated[list[str], typer.Option(
    "--log", help="Also write each run to tensorboard (DIR/tensorboard) and/or mlflow (DIR/mlruns).")]
BACKENDS = ("local", "ray")
Backend = Annotated[str, typer.Option(
    "--backend", help="local (processes on this machine) or ray (one Ray task per run).")]
Address = Annotated[Optional[str], typer.Option(
    "--address", help="ray: the cluster to join (auto, HOST:6379, ray://HOST:10001); default: a local instance.")]
Cpus = Annotated[float, typer.Option("--cpus-per-run", help="ray: CPUs per run (its torch threads).")]
Gpus = Annotated[float, typer.Option("--gpus-per-run", help="ray: GPUs per run.")]
Retries = Annotated[int, typer.Option("--retries", help="ray: reruns of a run whose worker died.")]


def _ray(backend: str, address: str | None, cpus: float, gpus: float, retries: int) -> Any:
    """The Ray backend the options ask for, or None for the local one."""
    if backend not in BACKENDS:
        raise typer.BadParameter(f"{backend!r} is invalid; expected {' or '.join(BACKENDS)}", param_hint="--backend")
    if backend == "local":
        if address is not None:
            raise typer.BadParameter("is for the ray backend; add --backend ray", param_hint="--address")
        return None
    from preheat.lab.sweep.ray import RayBackend

    try:
        return RayBackend(address=address, cpus=cpus, gpus=gpus, retries=retries)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--cpus-per-run/--gpus-per-run/--retries") from None


Leftovers = Annotated[bool, typer.Option(
    "--run-leftovers", help="Also run the unfinished runs another (killed) sweep left in --out.")]


def _run(runs: list[RunConfig], out: Path, workers: int, quiet: bool, log: list[str], ray: Any,
         leftovers: bool) -> Store | None:
    """Run the sweep with progress; the store, or None on a torchrun rank other than 0. A store
    that cannot be used exits 2 before any run starts."""
    from preheat.lab.store import StoreError
    from preheat.lab.sweep import SweepConflict, SweepIncomplete, run_sweep

    unknown = set(log) - set(LOGS)
    if unknown:
        raise typer.BadParameter(f"{sorted(unknown)} is invalid; expected {' or '.join(LOGS)}", param_hint="--log")
    progress: Any = _Log() if quiet else _Bars()
    if log:
        progress = _Export(progress, log, out)
    for stop in (signal.SIGINT, signal.SIGTERM):  # either stops the sweep (even where a parent ignored SIGINT)
        signal.signal(stop, signal.default_int_handler)
    try:
        return run_sweep(runs, out, workers=workers, progress=progress, backend=ray, leftovers=leftovers)
    except KeyboardInterrupt:
        errors.print(f"[red]interrupted:[/] the finished runs are kept in {out}; rerun the same command "
                     "to do the rest", soft_wrap=True)
        raise typer.Exit(130) from None
    except (StoreError, SweepConflict) as err:  # checked before any run starts
        errors.print(f"[red]error:[/] {err}")
        raise typer.Exit(2) from None
    except SweepIncomplete as err:
        errors.print(f"[red]error:[/] {err}")
        raise typer.Exit(1) from None
    finally:
        progress.stop()


def _finish(store: Store | None, runs: list[RunConfig], title: str | None = None,
            rerun: str | None = None, full: str | None = None) -> None:
    """Rank, judge and report the sweep; exit 1, saying how many, if any of ``runs`` failed
    (crashed). ``title``, ``rerun`` and ``full`` go to :func:`_summarise`."""
    if store is None:
        return
    _summarise(store, target=None, title=title, rerun=rerun, full=full)
    ours = {config.fingerprint() for config in runs}
    failed = [run for run in store.runs() if run.id in ours and run.status == "failed"]
    if failed:
        errors.print(f"[red]error:[/] {len(failed)} of {len(runs)} runs failed; the first: "
                     f"{failed[0].method} @ {failed[0].config.peak_lr:g} seed {failed[0].config.seed}: "
                     f"{failed[0].error}", soft_wrap=True)
        raise typer.Exit(1)


def ranking_table(ranking: Sequence[RankedMethod], width: int = 80) -> Table:
    """The ranking for a ``width``-column terminal: the narrow columns, no number ever cut or
    wrapped. Each numeric column starts as wide as its widest cell or its header's longest
    word; the room left widens the headers that need least of it first (so short headers read
    on one line); method names wrap past 20 characters."""
    from preheat.lab.metrics import format_ranking

    headers, cells, numeric = format_ranking(ranking, narrow=True)
    widest = [max((len(row[i]) for row in cells), default=1) for i in range(len(headers))]
    widths = [max(widest[i], *map(len, h.split())) if i in numeric else min(widest[i], 20)
              for i, h in enumerate(headers)]
    room = width - sum(widths) - 3 * len(headers)  # padding and separators: 3 per column
    for i in sorted(numeric, key=lambda i: len(headers[i]) - widths[i]):
        grow = min(max(len(headers[i]) - widths[i], 0), max(room, 0))
        widths[i] += grow
        room -= grow
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="ranking, best first (each method at its best peak LR)",
                  title_justify="left")
    for i, header in enumerate(headers):
        if i in numeric:
            table.add_column(header, justify="right", min_width=widths[i], max_width=widths[i])
        else:
            table.add_column(header, overflow="fold", min_width=widths[i])
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    return table


def _legend(metrics: SweepMetrics) -> Table:
    """Each ranked method and its one-line note (:func:`preheat.lab.methods.describe`)."""
    from preheat.lab.methods import describe

    configs = {r.method: r.config for r in metrics.runs}
    legend = Table.grid(padding=(0, 2, 0, 0))
    legend.add_column(no_wrap=True)
    legend.add_column(overflow="fold")
    for row in metrics.ranking:
        legend.add_row(Text(row.title), Text(describe(configs[row.method]).note))
    return legend


def _summarise(store: Store, target: float | None, figures: Path | None = None, title: str | None = None,
               rerun: str | None = None, full: str | None = None) -> None:
    """Print the ranking, the methods, the verdict and the report's path, and write the
    report (titled ``title``) next to the store; metrics computed once, from the store alone.

    The next commands the verdict and the report show, each a ``# why`` line and the command:
    ``rerun`` (the same comparison) with more seeds where the verdict is unsure (one seed, or a
    tie), and ``full``.
    """
    from preheat.lab.metrics import sweep_metrics
    from preheat.lab.report import write_report
    from preheat.lab.store import StoreError
    from preheat.lab.verdict import MORE_SEEDS, verdict

    try:
        metrics = sweep_metrics(store, target=target)
    except StoreError as err:
        errors.print(f"[red]error:[/] {err}")
        raise typer.Exit(2) from None
    judged = verdict(metrics)
    commands = []
    if rerun is not None and judged.best is not None and (judged.seeds < 2 or judged.tied):
        commands.append(f"# more seeds (the finished runs are kept)\n{rerun} --seeds {max(MORE_SEEDS, judged.seeds + 2)}")
    if full is not None:
        commands.append(full)
    console.print(ranking_table(metrics.ranking, min(console.width, 100)))
    if metrics.ranking:
        console.print("[dim]ms / step: wall time per update on this machine under its load at the "
                      "time; compare it only within one sweep.[/]\n")
        console.print("[bold]methods[/]")
        console.print(Padding(_legend(metrics), (0, 0, 0, 2)))
        console.print("\n[bold]verdict[/]")
        lines = Table.grid()
        lines.add_column(overflow="fold")
        for line in judged.lines():
            lines.add_row(Text(line))
        console.print(Padding(lines, (0, 0, 0, 2)))
        for line in "\n".join(commands).splitlines():
            console.print(f"  [dim]{escape(line)}[/]" if line.startswith("#") else f"  $ {escape(line)}",
                          soft_wrap=True)
    path = write_report(store, metrics, figures_dir=figures, title=title, judged=judged, commands=commands).resolve()
    console.print(f"\nreport: [link={path.as_uri()}]{escape(str(path))}[/link]", soft_wrap=True)


@app.command()
def compare(
    task: Annotated[str, typer.Option("--task", "-t", help=f"One of {', '.join(BUILTIN)}.")] = "shakespeare-char",
    quick: Annotated[bool, typer.Option("--quick", help="Short runs, fewer warmups, two seeds (minutes).")] = False,
    research: Annotated[bool, typer.Option(
        "--research", help="Add preheat's research methods: GI-Adam and the older controllers.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Sweep directory (store and report).")] = None,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="Seeds per setting.")] = None,
    steps: Annotated[Optional[int], typer.Option(
        "--steps", help="Updates per run, instead of the task's (warmup lengths scale with it).")] = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="shakespeare-char: a text file to train on; cifar10: the CIFAR-10 folder.")] = None,
    workers: Workers = 2,
    quiet: Quiet = False,
    log: Log = [],
    backend: Backend = "local",
    address: Address = None,
    cpus_per_run: Cpus = 1.0,
    gpus_per_run: Gpus = 0.0,
    retries: Retries = 3,
    leftovers: Leftovers = False,
) -> None:
    """Run the curated warmup comparison on a task; print the ranking, the verdict (what to
    use, how sure, what next) and the report's path.

    Schedules: no warmup, linear warmup + cosine at several lengths, exponential warmup, WSD,
    untuned warmup (Adam). RAdam standing in for a warmup (Adam tasks). auto_warmup, which needs
    no warmup length. With --research: GI-Adam (Adam tasks) and the controllers
    smoothness-guided, sharpness-guided, catapult initial LR, persistent catapult, NARS. Each at
    a moderate and an aggressive peak LR. Rerunning with the same --out resumes: finished runs
    are not redone.
    """
    from preheat.lab.compare import comparison
    from preheat.lab.tasks import make_task

    ray = _ray(backend, address, cpus_per_run, gpus_per_run, retries)
    try:
        runs = comparison(task, quick=quick, seeds=seeds, data=str(data) if data is not None else None,
                          steps=steps, research=research)
        if runs:
            make_task(runs[0].task, runs[0].task_options)  # a missing data set says so now, once
    except ValueError as err:
        errors.print(f"[red]error:[/] {'--data: ' if data is not None else ''}{err}", soft_wrap=True)
        raise typer.Exit(2) from None
    out = out or Path("runs") / f"compare-{task}{'-quick' if quick else ''}"
    started = time.perf_counter()
    store = _run(runs, out, workers, quiet, log, ray, leftovers)
    if store is not None:
        console.print(f"{len(runs)} runs in {out} ({time.perf_counter() - started:.0f} s)", soft_wrap=True)
    rerun = (f"preheat compare --task {task}{' --quick' if quick else ''}{' --research' if research else ''}"
             f"{f' --steps {steps}' if steps else ''}"
             f"{f' --data {data}' if data else ''} --out {out}")
    full = ("# full size: longer runs, more warmups, 3 seeds\n"
            f"preheat compare --task {task}{f' --data {data}' if data else ''}") if quick or steps else None
    _finish(store, runs, title=f"preheat compare: {task}{' (quick)' if quick else ''}", rerun=rerun, full=full)


def _pairs(items: list[str], option: str) -> dict[str, Any]:
    from preheat.lab.config import parse_yaml

    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value.strip():
            raise typer.BadParameter(f"{item!r} is invalid; expected KEY=VALUE (KEY=null for none)",
                                     param_hint=option)
        try:
            pairs[key.strip()] = parse_yaml(value, f"{option} {item!r}")
        except ValueError as err:
            raise typer.BadParameter(str(err), param_hint=option) from None
    return pairs


@app.command()
def sweep(
    config: Annotated[Optional[Path], typer.Argument(help="Sweep file (.toml, .yaml): name, [base], [grid].")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="A run field for every run: KEY=VALUE.")] = [],
    grid: Annotated[list[str], typer.Option("--grid", help="A grid axis: KEY=[V1, V2, ...].")] = [],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Sweep directory (store and report).")] = None,
    workers: Workers = 1,
    quiet: Quiet = False,
    log: Log = [],
    backend: Backend = "local",
    address: Address = None,
    cpus_per_run: Cpus = 1.0,
    gpus_per_run: Gpus = 0.0,
    retries: Retries = 3,
    leftovers: Leftovers = False,
    trust_tasks: Annotated[bool, typer.Option(
        "--trust-tasks", help="Let the sweep file name tasks of your own (package.module:function), "
        "which imports and runs that code.")] = False,
) -> None:
    """Run a grid of runs from a file and/or flags into a store, then write its report.

    Example: preheat sweep --set task=digits --set "schedule=warmup_cosine({warmup}, {steps})"
    --grid "peak_lr=[0.001, 0.01]" --grid "warmup=[0, 20, 50]" --grid "seed=[0, 1]"

    On a Ray cluster: --backend ray [--address ADDR]. Under torchrun (torchrun --nproc_per_node
    N -m preheat.cli sweep ...) each run is spread over the N processes.
    """
    from preheat.lab.config import SweepConfig, load_config

    ray = _ray(backend, address, cpus_per_run, gpus_per_run, retries)

    try:
        spec = load_config(config, trust_tasks=trust_tasks) if config else SweepConfig()
        base, axes = _pairs(set_, "--set"), _pairs(grid, "--grid")
        for key, values in axes.items():
            if not isinstance(values, list):
                raise ValueError(f"--grid {key}={values!r} is invalid; expected a list like [1, 2]")
        spec = SweepConfig(name=spec.name, base={**spec.base, **base}, grid={**spec.grid, **axes})
        runs = spec.runs()
    except (ValueError, OSError) as err:
        errors.print(f"[red]error:[/] {err}")
        raise typer.Exit(2) from None
    out = out or Path("runs") / spec.name
    _finish(_run(runs, out, workers, quiet, log, ray, leftovers), runs)


@app.command()
def report(
    directory: Annotated[Path, typer.Argument(help="A sweep directory (holding runs.sqlite).")],
    target: Annotated[Optional[float], typer.Option(help="Target validation loss for steps-to-target.")] = None,
    figures: Annotated[Optional[Path], typer.Option(help="Also write each figure as a PNG into this folder.")] = None,
) -> None:
    """Print the ranking of a sweep directory's runs and (re)write its report.html.

    The store is opened read-only and nothing named in it is imported or called.
    """
    from preheat.lab.store import Store, StoreError

    try:
        store = Store(directory, read_only=True)
    except StoreError as err:
        errors.print(f"[red]error:[/] {err}")
        raise typer.Exit(2) from None
    _summarise(store, target, figures)
