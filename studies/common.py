"""What every study shares: the command line, running runs through the lab, and writing a study's
figure and table (the doubling LR grid of studies 1 and 2 is in ``studies.lr_grid``).

Every study is ``python -m studies.NAME [--out DIR] [--docs DIR] [--smoke] [--workers N]``: its
runs go into the lab's store under ``--out`` (default ``runs/studies/NAME``, or
``runs/studies/NAME-smoke`` with ``--smoke``; rerunning resumes), its figure into
``DOCS/NAME.png`` and its table into ``DOCS/NAME_table.md`` and, when the study's page
``DOCS/NAME.md`` exists, between the table markers of that page.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from preheat.lab.config import RunConfig
from preheat.lab.diagnose import diagnose
from preheat.lab.metrics import RunMetrics, run_metrics
from preheat.lab.record import RunResult
from preheat.lab.store import Store
from preheat.lab.sweep import cores, run_sweep

BEGIN = "<!-- begin table: written by `python -m studies.{name}` -->"
END = "<!-- end table -->"
DPI = 90


# -- command line and output -------------------------------------------------------------------


@dataclass
class Study:
    """One invocation of a study: its arguments and its clock."""

    name: str
    out: Path
    docs: Path
    smoke: bool
    workers: int
    started: float = field(default_factory=time.perf_counter)
    ran: int = 0  # runs trained by this invocation (the rest were already in the store)
    run_seconds: dict[str, float] = field(default_factory=dict)  # each sweep run's own wall time, by id


def parse_args(name: str, doc: str | None, argv: Sequence[str] | None) -> Study:
    """Parse a study's command line (``--out``, ``--docs``, ``--smoke``, ``--workers``)."""
    parser = argparse.ArgumentParser(prog=f"python -m studies.{name}", description=(doc or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help=f"run store folder (default runs/studies/{name}, or {name}-smoke with --smoke)")
    parser.add_argument("--docs", type=Path, default=Path("docs/studies"), help="where the figure and table go")
    parser.add_argument("--smoke", action="store_true", help="a tiny version (a few runs of a few steps)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes for the sweeps (default 1)")
    args = parser.parse_args(argv)
    out = args.out or Path("runs/studies") / (f"{name}-smoke" if args.smoke else name)
    return Study(name=name, out=out, docs=args.docs, smoke=args.smoke, workers=args.workers)


class Lines:
    """A sweep progress that prints one line per finished run (``preheat.lab.sweep.Progress``)."""

    def __init__(self, study: Study) -> None:
        self.study, self.done, self.todo = study, 0, 0

    def sweep_started(self, total: int, todo: int) -> None:
        self.done, self.todo = 0, todo
        if todo:
            print(f"{todo} of {total} runs to do", flush=True)

    def run_started(self, config: RunConfig) -> None: ...

    def run_step(self, config: RunConfig, step: int) -> None: ...

    def run_ended(self, config: RunConfig, result: RunResult) -> None:
        self.done += 1
        self.study.ran += 1
        losses = result.evals["val_loss"]
        loss = f"{losses[-1]:.4g}" if losses else "-"
        print(f"  [{self.done}/{self.todo}] {config.method}  lr={config.peak_lr:g} seed={config.seed}: "
              f"{result.status}, val loss {loss} ({result.wall_time:.1f} s)", flush=True)


def sweep(study: Study, runs: Sequence[RunConfig]) -> list[RunMetrics]:
    """Run ``runs`` into the study's store (skipping those already done) and return their
    :func:`preheat.lab.metrics.run_metrics` rows, in the order of ``runs``."""
    store = run_sweep(list(runs), study.out, workers=study.workers, progress=Lines(study))
    try:
        by_id = {row.id: row for row in run_metrics(store)}
    finally:
        store.close()
    rows = [by_id[config.fingerprint()] for config in runs]
    study.run_seconds.update((row.id, row.wall_time or 0.0) for row in rows)
    return rows


def diagnosed(study: Study, config: RunConfig, every: int) -> dict[str, Any]:
    """``preheat.lab.diagnose.diagnose(config, every).to_dict()``, kept as
    ``diagnose-<fingerprint>.json`` next to the study's store and reused when it is there."""
    path = Path(study.out) / f"diagnose-{config.fingerprint()}.json"
    if path.exists():
        return json.loads(path.read_text())
    result = diagnose(config, every).to_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    study.ran += 1
    print(f"  diagnosed {config.method} seed={config.seed}: {result['status']}, "
          f"{result['seconds']['total']:.1f} s", flush=True)
    return result


def load(study: Study, rows: Sequence[RunMetrics], table: str) -> list[dict[str, np.ndarray]]:
    """Each row's run from the store: its per-update columns (``table="steps"``: ``lr``,
    ``train_loss``, ...) or its evaluations (``"evals"``: ``step``, ``val_loss``, ...)."""
    store = Store(study.out)
    try:
        return [store.steps(row.id) if table == "steps" else store.evals(row.id) for row in rows]
    finally:
        store.close()


def figure(width: float, height: float, rows: int = 1, cols: int = 1) -> tuple[Any, np.ndarray]:
    """A matplotlib figure (Agg, no pyplot state) and its ``rows x cols`` array of axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table of ``rows`` (cells converted with ``str``)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def number(value: float | None, digits: int = 3) -> str:
    """``value`` in ``digits`` significant digits; ``—`` for None/NaN, ``diverged`` for inf."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "diverged"
    return f"{value:.{digits}g}"


def mean_std(values: Sequence[float], digits: int = 3) -> str:
    """``mean ± std`` over seeds (``mean`` alone for one; ``diverged (k/n)`` if any is inf)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return "—"
    bad = int(np.sum(~np.isfinite(array)))
    if bad:
        return f"diverged ({bad}/{array.size})"
    if array.size == 1:
        return number(float(array[0]), digits)
    return f"{number(float(array.mean()), digits)} ± {number(float(array.std(ddof=1)), 2)}"


def finish(study: Study, fig: Any, tables: str, seeds: str) -> Path:
    """Write the figure, and the tables with where and how they were measured; return the table file.

    The provenance paragraph (seeds, runs trained now, wall time of this invocation, machine)
    is measured here, so a page never shows a time nobody measured.
    """
    study.docs.mkdir(parents=True, exist_ok=True)
    fig.savefig(study.docs / f"{study.name}.png", dpi=DPI)
    seconds = time.perf_counter() - study.started
    reused = " (every run was already in the store: this time is only the analysis)" if not study.ran else ""
    provenance = (
        f"_Written by `python -m studies.{study.name}{' --smoke' if study.smoke else ''}`: seeds {seeds}; "
        f"{study.ran} runs trained by this invocation, wall time {seconds:.0f} s{reused}; the "
        f"{len(study.run_seconds)} sweep runs used took {sum(study.run_seconds.values()):.0f} s (the sum of "
        f"their own wall times in the store); {cores()} CPU core(s) allowed, torch {torch.__version__} on "
        f"{platform.machine()} {platform.system()}._\n\n"
    )
    text = provenance + tables
    table = study.docs / f"{study.name}_table.md"
    table.write_text(text)
    page = study.docs / f"{study.name}.md"
    begin = BEGIN.format(name=study.name)
    if page.exists() and begin in page.read_text() and END in page.read_text():
        before, rest = page.read_text().split(begin, 1)
        after = rest.split(END, 1)[1]
        page.write_text(f"{before}{begin}\n{text}{END}{after}")
    print(f"{study.name}: wrote {study.docs / (study.name + '.png')} and {table} ({seconds:.0f} s)", flush=True)
    return table


def plain_log_ticks(axis: Any) -> None:
    """Label a log axis with plain numbers (0.05, 2, 300); under a decade, label its minor ticks too."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:.2g}")
    axis.set_major_formatter(plain)
    low, high = sorted(axis.get_view_interval())
    axis.set_minor_formatter(plain if 0 < low and high < 10 * low else NullFormatter())


def seeds_text(seeds: Sequence[int]) -> str:
    return ", ".join(str(s) for s in sorted(set(seeds)))
