"""Drawing schedules: the matplotlib figure and the pieces of the terminal view; and the
matplotlib helpers every figure of preheat draws with (:func:`agg_figure`, :func:`png`,
:func:`plain_log_ticks`).

Nothing here prints. matplotlib (the ``plot`` extra) is imported only inside the functions
that draw, so the rest works with NumPy alone. In every function ``total`` is the number of
updates drawn (steps ``0 .. total - 1``) and ``peak`` the peak learning rate: update ``t`` uses
``peak * schedule(t)``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from preheat.schedules import Join, Product, Schedule

BLOCKS = "▁▂▃▄▅▆▇█"


def agg_figure(width: float, height: float, dpi: int = 100) -> Any:
    """A matplotlib ``Figure`` of ``width x height`` inches with constrained layout, on matplotlib's
    Agg canvas directly: it needs no display and leaves pyplot's state and backend alone."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "drawing a figure needs matplotlib; install it with: pip install 'preheat[plot]'"
        ) from err
    figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def png(figure: Any, dpi: int) -> bytes:
    """The figure as PNG bytes at ``dpi``, cropped to what is drawn."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def plain_log_ticks(axis: Any) -> None:
    """Label a log axis with plain numbers (0.02, 30, 1e+04), not 3x10^1, over its current view:
    under a decade the minor ticks are labelled too; up to four decades the major ticks are at 1
    and 3 of each decade."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:.3g}")
    axis.set_major_formatter(plain)
    low, high = sorted(axis.get_view_interval())
    if 0 < low and high < 10 * low:
        axis.set_minor_formatter(plain)
        return
    axis.set_minor_formatter(NullFormatter())
    if 0 < low and high < 1e4 * low:
        axis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 3.0)))


def learning_rates(schedule: Schedule, total: int, peak: float) -> np.ndarray:
    """``peak * schedule(t)`` for ``t = 0 .. total - 1``."""
    return peak * schedule(np.arange(total))


def phase_boundaries(schedule: Schedule) -> list[int]:
    """The absolute steps where a phase starts, sorted; nested joins and products included.

    ``linear_warmup(100) >> constant(400) >> cosine_decay(500)`` gives ``[100, 500]``. A phase
    cut short by the next boundary contributes only the boundaries it reaches.
    """
    found: set[int] = set()
    _collect(schedule, 0, None, found)
    return sorted(found)


def _collect(schedule: Schedule, offset: int, stop: int | None, found: set[int]) -> None:
    if isinstance(schedule, Product):
        for factor in schedule.factors:
            _collect(factor, offset, stop, found)
    elif isinstance(schedule, Join):
        starts = (0, *schedule.boundaries)
        ends: tuple[int | None, ...] = (*schedule.boundaries, None)
        for start, end, phase in zip(starts, ends, schedule.schedules):
            begin = offset + start
            if stop is not None and begin >= stop:
                break
            if start:
                found.add(begin)
            cut = stop if end is None else (offset + end if stop is None else min(offset + end, stop))
            _collect(phase, begin, cut, found)


def key_steps(schedule: Schedule, total: int) -> list[tuple[int, str]]:
    """The steps worth reading off a schedule, with what each one is, sorted by step.

    Step 0, the step before each phase boundary and the boundary itself, the schedule's end
    (``length``: the value holds from there) and the last step drawn (``total - 1``). Steps at
    or past ``total`` are kept and say so.
    """
    notes: dict[int, list[str]] = {0: ["first update"]}
    for boundary in phase_boundaries(schedule):
        notes.setdefault(boundary - 1, []).append("last of a phase")
        notes.setdefault(boundary, []).append("phase starts")
    if schedule.length is not None:
        notes.setdefault(schedule.length, []).append("end: value holds")
    notes.setdefault(total - 1, []).append("last step drawn")
    rows = []
    for step in sorted(notes):
        text = "; ".join(notes[step])
        rows.append((step, text + " (after the run)" if step >= total else text))
    return rows


def sparkline(values: Sequence[float] | np.ndarray, width: int = 60, log: bool = False) -> str:
    """The curve as a line of ``▁▂▃▄▅▆▇█``, one block per column (at most ``width`` columns).

    Each column is the mean of an equal share of the values. The scale runs from 0 to the
    largest value (``log``: from the smallest positive value to the largest, in decades), so a
    decay to 10% of the peak ends near the bottom, not on it.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or width < 1:
        return ""
    columns = min(width, v.size)
    edges = (np.arange(columns + 1) * v.size) // columns
    means = np.array([v[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    top = means.max()
    if top <= 0:
        return BLOCKS[0] * columns
    if log:
        positive = means > 0
        low = means[positive].min()
        span = np.log(top / low)
        level = np.zeros(columns)
        if span > 0:
            level[positive] = np.log(means[positive] / low) / span
        else:
            level[positive] = 1.0
    else:
        level = np.clip(means, 0.0, None) / top
    index = np.rint(level * (len(BLOCKS) - 1)).astype(int)
    return "".join(BLOCKS[i] for i in index)


def plot_schedules(
    schedules: Sequence[Schedule],
    labels: Sequence[str],
    total: int,
    peak: float,
    path: str | Path,
    title: str | None = None,
    log: bool = False,
    figsize: tuple[float, float] = (6.0, 3.2),
    dpi: int = 100,
) -> Path:
    """Draw ``peak * schedule(t)`` for ``t = 0 .. total - 1`` of each schedule on one figure.

    The legend shows ``labels``; phase boundaries are marked with faint dotted lines in the
    curve's colour. The format follows the extension of ``path`` (``.png``, ``.svg``, ``.pdf``);
    missing parent folders are created. Returns the path written. Uses matplotlib's Agg canvas
    directly, so it neither needs a display nor changes pyplot's backend.
    """
    if len(schedules) != len(labels):
        raise ValueError(
            f"plot_schedules: {len(schedules)} schedules but {len(labels)} labels; expected one label each"
        )
    figure = agg_figure(*figsize, dpi=dpi)
    path = Path(path)
    steps = np.arange(total)
    axes = figure.add_subplot()
    for schedule, label in zip(schedules, labels):
        (line,) = axes.plot(steps, learning_rates(schedule, total, peak), label=label, linewidth=1.5)
        for boundary in phase_boundaries(schedule):
            if 0 < boundary < total:
                axes.axvline(boundary, color=line.get_color(), alpha=0.35, linewidth=0.8, linestyle=":")
    axes.set_xlabel("step")
    axes.set_ylabel("learning rate")
    axes.set_xlim(0, max(total - 1, 1))
    if log:
        axes.set_yscale("log")
    else:
        axes.set_ylim(bottom=0)
    axes.grid(alpha=0.25, linewidth=0.5)
    axes.legend(fontsize="x-small", framealpha=0.85)
    if title:
        axes.set_title(title, fontsize="medium")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
