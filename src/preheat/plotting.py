"""Drawing schedules: the matplotlib figure and the pieces of the terminal view; and the
matplotlib helpers every figure of preheat draws with (:func:`agg_figure`, :func:`png`,
:func:`plain_log_ticks`).

Nothing here prints. matplotlib (the ``plot`` extra) is imported only inside the functions
that draw, so the rest works with NumPy alone. In every function ``total`` is the number of
updates drawn (steps ``0 .. total - 1``, ``total`` from 1 to ``2**63 - 1``) and ``peak`` the
peak learning rate: update ``t`` uses ``peak * schedule(t)``. A run longer than
:data:`MAX_POINTS` steps is drawn from that many steps (:func:`drawn_steps`), so drawing takes
the same time and memory however long the run is.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from preheat.schedules import Join, Product, Schedule
from preheat.schedules.validate import check_int, check_real, check_steps, shorten

BLOCKS = "▁▂▃▄▅▆▇█"
#: The most steps evaluated to draw one curve.
MAX_POINTS = 100_000
#: The figure formats :func:`plot_schedules` writes, by the extension of its path.
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


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


def check_total(total: Any, owner: str = "plot") -> int:
    """``total``, the number of updates drawn, as an int from 1 to ``2**63 - 1``; else ValueError."""
    return check_steps(owner, "total", total, minimum=1)


def drawn_steps(schedule: Schedule, total: int, points: int = MAX_POINTS) -> np.ndarray:
    """The steps a curve of ``total`` updates is drawn from, sorted (an int64 array).

    Every step ``0 .. total - 1`` when there are at most ``points``; else ``points`` evenly
    spaced steps from 0 to ``total - 1`` and every key step (:func:`key_steps`) before ``total``,
    so each phase boundary is drawn exactly.
    """
    total = check_total(total)
    if total <= points:
        return np.arange(total, dtype=np.int64)
    chosen = {i * (total - 1) // (points - 1) for i in range(points)}
    chosen.update(step for step, _ in key_steps(schedule, total) if 0 <= step < total)
    return np.array(sorted(chosen), dtype=np.int64)


def curve(schedule: Schedule, total: int, peak: float) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, peak * schedule(steps))`` for the steps of :func:`drawn_steps`; ``peak`` is a
    finite number > 0."""
    peak = check_real("plot", "peak", peak, 0.0, low_open=True)
    steps = drawn_steps(schedule, total)
    return steps, peak * schedule(steps)


def learning_rates(schedule: Schedule, total: int, peak: float) -> np.ndarray:
    """``peak * schedule(t)`` for ``t = 0 .. total - 1`` (for a run longer than
    :data:`MAX_POINTS`, at the steps of :func:`drawn_steps`)."""
    return curve(schedule, total, peak)[1]


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
    total = check_total(total)
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
    decay to 10% of the peak ends near the bottom, not on it. Values that are not finite count
    as 0.
    """
    width = check_int("sparkline", "width", width)
    try:
        v = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"sparkline: values={shorten(values)} is invalid; expected numbers") from None
    if v.size == 0 or width < 1:
        return ""
    v = np.where(np.isfinite(v), v, 0.0)
    largest = np.abs(v).max()
    if largest > 0:
        v = v / largest  # so that the means cannot overflow (values near 1e308)
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
    index = np.clip(np.rint(level * (len(BLOCKS) - 1)), 0, len(BLOCKS) - 1).astype(int)
    return "".join(BLOCKS[i] for i in index)


def check_figure_path(path: str | Path) -> Path:
    """``path`` as a ``Path`` if a figure can be written there, else ``ValueError`` saying why.

    It must end in ``.png``, ``.svg`` or ``.pdf``, must not be a folder, and the nearest of its
    folders that exists must be a folder this process may write in (missing ones are made when
    the figure is written). Nothing is created here.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path={shorten(path)} is invalid; expected a file name ending in {', '.join(FIGURE_SUFFIXES)}")
    path = Path(path)
    try:
        if path.suffix.lower() not in FIGURE_SUFFIXES or not path.stem:
            raise ValueError(
                f"{shorten(str(path))} has an unknown extension; expected one of {', '.join(FIGURE_SUFFIXES)}"
            )
        if path.is_dir():
            raise ValueError(f"{shorten(str(path))} is a folder; expected the name of a figure file in it")
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise ValueError(f"{shorten(str(folder))} is a file, so {shorten(str(path))} cannot be written")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"cannot write in {shorten(str(folder))}; expected a folder this user may write in")
    except OSError as err:  # a name too long, a folder that cannot be read
        raise ValueError(f"{shorten(str(path))} cannot be written: {err.strerror or err}") from None
    return path


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
    curve's colour. The title and labels are shown as written (a ``$`` is not matplotlib math).
    The format follows the extension of ``path`` (``.png``, ``.svg``, ``.pdf``, see
    :func:`check_figure_path`); missing parent folders are created. The figure is written to a
    hidden file beside ``path`` and renamed onto it, so a failure leaves no partial file (nor
    the folders it made). Returns the path written. Uses matplotlib's Agg canvas directly, so it
    neither needs a display nor changes pyplot's backend.
    """
    owner = "plot_schedules"
    if len(schedules) != len(labels):
        raise ValueError(
            f"{owner}: {len(schedules)} schedules but {len(labels)} labels; expected one label each"
        )
    total = check_total(total, owner)
    peak = check_real(owner, "peak", peak, 0.0, low_open=True)
    path = check_figure_path(path)
    figure = agg_figure(*figsize, dpi=dpi)
    axes = figure.add_subplot()
    for schedule, label in zip(schedules, labels):
        (line,) = axes.plot(*curve(schedule, total, peak), label=label, linewidth=1.5)
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
    for text in axes.legend(fontsize="x-small", framealpha=0.85).get_texts():
        text.set_parse_math(False)
    if title:
        axes.set_title(title, fontsize="medium", parse_math=False)
    _write(figure, path)
    return path


def _write(figure: Any, path: Path) -> None:
    """Save ``figure`` to ``path`` through a hidden file beside it; on failure remove that file
    and the folders made for it, and raise."""
    made = [folder for folder in reversed(path.parents) if not folder.exists()]
    partial = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(partial, format=path.suffix[1:].lower())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        for folder in reversed(made):
            try:
                folder.rmdir()
            except OSError:
                break
        raise
