"""The report's figures drawn: final val loss by method, LR curves, loss curves per peak LR,
the stability heatmap.

What each figure shows is shaped in :mod:`preheat.lab.figure_data` (NumPy only); the functions
here only draw it, on matplotlib's Agg canvas (no pyplot state). Each figure has a ``draw_*``
function that returns the matplotlib ``Figure`` (its layout can be read, as the tests do) and a
``*_figure`` function that returns it as PNG bytes. Nothing here prints.

Every figure draws a method the same way, its :class:`Look`: a colour from its family's hues
(:data:`FAMILY_COLORS`: greys for no warmup, blues for warmup schedules, greens for optimizers
that stand in for a warmup, oranges, reds and purples for adaptive warmups, olives for other
packages'), shades within a family in rank order; the best method and the tuned baseline drawn
thicker and on top, the others thinner. Legends sit outside the axes, grouped by family.
Figures are :data:`WIDTH` inches at :data:`DPI`, about as wide as the report's page (1100 px),
with 10-11 pt text: scaled down to 800 px it still reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Collection, Sequence

import numpy as np

from preheat.lab.figure_data import Curve, FinalRow, HeatPanel, Heatmap, LossPanel, SAME, cell_text, coinciding
from preheat.plotting import agg_figure, plain_log_ticks, png

DPI = 100
WIDTH = 10.8  # inches: a figure's width, about the report page's (1100 px at DPI)
SMALL = 10.0  # pt: legends, tick labels, notes
PANEL_HEIGHT = 3.4  # inches per row of loss panels
ROW = 0.3  # inches per method of the final-loss figure
HATCH = "#b22222"  # the edge of a heatmap cell where a seed diverged; the final-loss figure's "diverged"
SAME_LOSS = 1e-3  # two loss curves this close (relative) everywhere are drawn dashed over each other
#: (atol, rtol) within which a figure's curves count as equal (:func:`overdrawn`), by kind.
TOLERANCE = {"lr": (SAME, 0.0), "loss": (0.0, SAME_LOSS)}
BAND = "#2b6cb0"  # the best method's interval in the final-loss figure

#: The colours of each family (:data:`preheat.lab.methods.FAMILIES`), handed out in rank order;
#: past the last one they repeat, dashed.
FAMILY_COLORS: dict[str, tuple[str, ...]] = {
    "no warmup": ("#2b2b2b", "#7a7a7a", "#a6a6a6"),
    "schedule": ("#1f5fbf", "#5fb0ec", "#0b2e6b", "#13a8c2", "#7b84d9", "#9ec3ea"),
    "optimizer": ("#2e8b3e", "#8cc63f", "#0b5a2a", "#3cb89a"),
    "adaptive": ("#e8710a", "#c81e3a", "#7b3fa8", "#d4489b", "#a0410d", "#f2a33a"),
    "peer": ("#8c7a00", "#b8a52e", "#5c5200"),
}
#: What a family is called in a legend.
FAMILY_TITLES = {"no warmup": "no warmup", "schedule": "warmup schedules", "optimizer": "optimizers",
                 "adaptive": "adaptive warmups", "peer": "other packages"}
DASHES = ("-", "--", ":", "-.")
MARKERS = {"raise": "o", "lower": "v", "backoff": "v", "handover": "s"}  # a controller's decisions
ACTIONS = {"raise": "a controller starts raising the LR", "lower": "a controller lowers the LR",
           "backoff": "a controller backs off (NaN/inf)", "handover": "a controller hands over"}


@dataclass(frozen=True)
class Look:
    """How every figure draws one method: its legend ``name``, its ``family``, ``color`` and
    ``dash``, and whether it is ``emphasised`` (the best or the tuned baseline)."""

    name: str
    family: str
    color: str
    dash: str
    emphasised: bool

    @property
    def width(self) -> float:
        """Line width: emphasised methods thicker."""
        return 2.8 if self.emphasised else 1.3

    @property
    def z(self) -> float:
        """Drawing order: emphasised methods on top."""
        return 3.0 if self.emphasised else 2.0


def looks(methods: Sequence[tuple[str, str, str]], emphasised: Collection[str] = ()) -> dict[str, Look]:
    """A :class:`Look` per method, from ``(method, legend name, family)`` in rank order: the
    ``k``-th method of a family gets its family's ``k``-th colour (dashed past the last);
    ``emphasised`` names the methods drawn thicker, on top."""
    taken: dict[str, int] = {}
    out = {}
    for method, name, family in methods:
        if family not in FAMILY_COLORS:
            raise ValueError(f"family={family!r} is invalid; expected one of {', '.join(FAMILY_COLORS)}")
        palette = FAMILY_COLORS[family]
        k = taken[family] = taken.get(family, -1) + 1
        out[method] = Look(name, family, palette[k % len(palette)], DASHES[(k // len(palette)) % len(DASHES)],
                           method in emphasised)
    return out


def _line(axes: Any, x: np.ndarray, y: np.ndarray, look: Look) -> Any:
    (line,) = axes.plot(x, y, color=look.color, linestyle=look.dash, linewidth=look.width,
                        zorder=look.z, alpha=1.0 if look.emphasised else 0.9, label=look.name)
    return line


SUBS = ((1.0,), (1.0, 3.0), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0), tuple(range(1, 10)),
        tuple(k / 5 for k in range(5, 50)), tuple(k / 10 for k in range(10, 100)))  # down to 0.1 steps


def log_ticks(axis: Any, low: float, high: float) -> None:
    """Label a log axis over ``low .. high`` with plain numbers at the first of :data:`SUBS`
    (multiples of each power of 10) that gives at least four ticks in it; minor ticks unlabelled."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    for subs in SUBS:
        ticks = [m * 10.0 ** d for d in decades for m in subs if low <= m * 10.0 ** d <= high]
        if len(ticks) >= 4:
            break
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    axis.set_minor_formatter(NullFormatter())


def _blank() -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], linestyle="none")


def _columns(blocks: Sequence[list[Any]], ncols: int) -> list[list[Any]]:
    """``blocks`` (a family's heading and methods each) packed in order into columns, a block
    never split: the shortest columns that make at most ``ncols`` of them."""
    height = max(len(b) for b in blocks)
    while True:
        columns: list[list[Any]] = [[]]
        for block in blocks:
            if columns[-1] and len(columns[-1]) + len(block) > height:
                columns.append([])
            columns[-1] = columns[-1] + block
        if len(columns) <= ncols:
            return columns
        height += 1


def _legend(figure: Any, methods: Collection[str], looks: dict[str, Look],
            extra: Sequence[tuple[Any, str]] = (), ncols: int = 3) -> Any:
    """The figure's legend, below its axes: per family a bold heading, then those of its
    ``methods`` drawn (in rank order: the order of ``looks``), each a solid line of its colour
    and width; the families packed into up to ``ncols`` columns; ``extra`` (handle, text)
    pairs under a heading of their own (``marks``). None when there is nothing to list."""
    from matplotlib.lines import Line2D

    blocks = []
    groups = [(FAMILY_TITLES[f], [(Line2D([], [], color=look.color, linestyle=look.dash, linewidth=look.width),
                                   look.name) for m, look in looks.items() if m in methods and look.family == f])
              for f in FAMILY_COLORS]
    for title, members in [*groups, ("marks", list(extra))]:
        if members:
            blocks.append([(_blank(), title, True)] + [(handle, text, False) for handle, text in members])
    if not blocks:
        return None
    columns = _columns(blocks, ncols)
    height = max(len(c) for c in columns)
    entries = [entry for column in columns for entry in column + [(_blank(), "", False)] * (height - len(column))]
    legend = figure.legend([h for h, _, _ in entries], [t for _, t, _ in entries], loc="outside lower center",
                           ncols=len(columns), frameon=False, fontsize=SMALL, handlelength=2.4, labelspacing=0.3,
                           columnspacing=2.0)
    for text, (_, _, heading) in zip(legend.get_texts(), entries):
        if heading:
            text.set_fontweight("bold")
    return legend


def _fit(figure: Any, legend: Any, body: float) -> None:
    """Make ``figure`` ``body`` inches tall plus what its ``legend`` (below the axes, or None) takes."""
    height = 0.0 if legend is None else legend.get_window_extent(figure.canvas.get_renderer()).height / figure.dpi
    figure.set_size_inches(WIDTH, body + height + 0.15)


def overdrawn(curves: Sequence[Curve], kind: str) -> bool:
    """Whether some of ``curves`` (of an ``lr`` or ``loss`` panel) are equal to within the
    kind's :data:`TOLERANCE`, so that :func:`_lines` draws them dashed over each other."""
    return any(len(group) > 1 for group in coinciding(curves, *TOLERANCE[kind]))


def _lines(axes: Any, curves: Sequence[Curve], looks: dict[str, Look], kind: str) -> None:
    """Draw the curves, the emphasised ones on top; where several are equal
    (:func:`~preheat.lab.figure_data.coinciding`, within the ``kind``'s :data:`TOLERANCE`),
    the first (emphasised, else best ranked) solid and the others dashed on top of it, each
    dash in turn, so that every colour shows."""
    for group in coinciding(curves, *TOLERANCE[kind]):
        group = sorted(group, key=lambda i: not looks[curves[i].method].emphasised)
        base = looks[curves[group[0]].method]
        for k, i in enumerate(group):
            look = looks[curves[i].method]
            line = _line(axes, curves[i].x, curves[i].y, look)
            if k:
                on = 8.0 / look.width  # points, in line widths
                line.set_linestyle((k * on, (on, on * (len(group) - 1))))
                line.set_zorder(max(base.z, look.z) + 0.01 * k)


# ---- final val loss by method ----------------------------------------------------------------


def _final_limits(rows: Sequence[FinalRow]) -> tuple[tuple[float, float], bool]:
    """The x range of the final-loss figure and whether it is log: every seed and mean, and the
    intervals up to half that span beyond them; log when it is positive and spans more than 4x."""
    values = np.concatenate([np.append(r.seeds, r.mean) for r in rows if not r.lost] or [np.zeros(0)])
    values = values[np.isfinite(values)]
    if not values.size:
        return (0.0, 1.0), False
    low, high = float(values.min()), float(values.max())
    log = low > 0 and high > 4 * low
    scale = math.log if log else float
    a, b = scale(low), scale(high)
    span = (b - a) or max(abs(a) * 0.1, 0.01)
    ends = [scale(e) for r in rows if r.interval is not None and not r.lost for e in r.interval if not log or e > 0]
    a = min([a - 0.06 * span] + [e for e in ends if e >= a - 0.5 * span])
    b = max([b + 0.06 * span] + [e for e in ends if e <= b + 0.5 * span])
    return ((math.exp(a), math.exp(b)) if log else (a, b)), log


def final_text(row: FinalRow) -> str:
    """A row's value as the figure's right axis shows it: ``mean ± half-width`` of its 95%
    interval (the mean alone for one seed), or why it has none."""
    if row.lost:
        return f"diverged ({row.diverged}/{row.runs} runs)" if row.diverged else "no final loss (crashed)"
    if row.interval is None:
        return f"{row.mean:.4g}"
    return f"{row.mean:.4g} ± {(row.interval[1] - row.interval[0]) / 2:.2g}"


def draw_final(rows: Sequence[FinalRow], looks: dict[str, Look], band: tuple[float, float] | None) -> Any:
    """One row per ranked method (the best at the top): each seed's final val loss a small dot,
    the mean a diamond with its 95% interval as a bar, ``band`` (the best's interval) shaded;
    each row's :func:`final_text` on the right. A method without a final loss (diverged or
    crashed) is a red triangle at the right edge."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.transforms import blended_transform_factory

    figure = agg_figure(WIDTH, ROW * len(rows) + 1.3, DPI)
    axes = figure.add_subplot()
    limits, log = _final_limits(rows)
    if log:
        axes.set_xscale("log")
    axes.set_xlim(*limits)
    if band is not None:
        axes.axvspan(*band, color=BAND, alpha=0.13, linewidth=0, zorder=0)
    edge = blended_transform_factory(axes.transAxes, axes.transData)
    for i, row in enumerate(rows):
        look = looks[row.method]
        if row.lost:
            axes.plot([0.99], [i], ">", color=HATCH, markersize=8, transform=edge, clip_on=False)
            continue
        if row.interval is not None:
            axes.plot(row.interval, [i, i], color=look.color, linewidth=3.2 if look.emphasised else 1.8,
                      solid_capstyle="butt", zorder=look.z)
        if row.seeds.size > 1:
            axes.plot(row.seeds, np.full(row.seeds.size, i), "o", color=look.color, markersize=4.5,
                      markeredgewidth=0, alpha=0.6, zorder=look.z)
        axes.plot([row.mean], [i], "D", color=look.color, markersize=8.5 if look.emphasised else 6.5,
                  markeredgecolor="black" if look.emphasised else "white", markeredgewidth=1.0, zorder=look.z + 1)
    if log:
        log_ticks(axes.xaxis, *limits)
    axes.set_ylim(len(rows) - 0.5, -0.5)
    right = axes.secondary_yaxis("right")
    for side, texts in ((axes, [looks[r.method].name for r in rows]), (right, [final_text(r) for r in rows])):
        side.set_yticks(range(len(rows)), texts, fontsize=10.5)
        side.tick_params(axis="y", length=0)
        for label, row in zip(side.get_yticklabels(), rows):
            label.set_fontweight("bold" if looks[row.method].emphasised else "normal")
            if row.lost:
                label.set_color(HATCH)
    axes.tick_params(axis="x", labelsize=SMALL)
    axes.grid(axis="x", alpha=0.3, linewidth=0.6)
    axes.grid(axis="y", alpha=0.12, linewidth=0.6)
    seeds = max((r.seeds.size for r in rows), default=0)
    axes.set_xlabel("final val loss" + (" (log scale)" if log else ""))
    if any(r.interval is not None for r in rows):
        key = [(Line2D([], [], linestyle="none", marker="o", color="#555", alpha=0.6, markeredgewidth=0), "a seed"),
               (Line2D([], [], color="#555", linewidth=1.8, marker="D", markersize=6.5, markeredgecolor="white"),
                "mean and its 95% interval")]
    elif seeds:
        key = [(Line2D([], [], linestyle="none", marker="D", color="#555", markersize=6.5, markeredgecolor="white"),
                "final val loss" + (" (one seed)" if seeds == 1 else " (mean over seeds)"))]
    else:
        key = []
    if band is not None:
        key.append((Patch(color=BAND, alpha=0.13, linewidth=0), "the best's interval: overlapping it = within noise"))
    if any(r.lost for r in rows):
        key.append((Line2D([], [], linestyle="none", marker=">", color=HATCH, markersize=8), "no final loss"))
    figure.legend([h for h, _ in key], [t for _, t in key], loc="outside lower center", ncols=len(key),
                  frameon=False, fontsize=SMALL)
    return figure


def final_figure(rows: Sequence[FinalRow], looks: dict[str, Look], band: tuple[float, float] | None) -> bytes:
    """:func:`draw_final` as PNG bytes."""
    return png(draw_final(rows, looks, band), DPI)


# ---- LR curves -------------------------------------------------------------------------------


def _lr_axes(axes: Any, curves: Sequence[Curve], looks: dict[str, Look], end: int, title: str) -> None:
    """Draw the curves over steps ``0 .. end`` with their decisions."""
    _lines(axes, curves, looks, "lr")
    for curve in curves:
        look, marks = looks[curve.method], curve.marks
        if marks is None or not marks.x.size:
            continue
        for action in dict.fromkeys(marks.action):
            at = np.array([a == action for a in marks.action])
            axes.plot(marks.x[at], marks.y[at], linestyle="none", marker=MARKERS.get(action, "o"),
                      markersize=5.5 if action == "handover" else 4.5, color=look.color,
                      markeredgecolor="white", markeredgewidth=0.6, zorder=look.z + 1)
    axes.set_xlim(0, max(end, 1))
    axes.set_ylim(bottom=0)
    axes.set_xlabel("step")
    axes.set_title(title, fontsize=11)
    axes.tick_params(labelsize=SMALL)
    axes.grid(alpha=0.25, linewidth=0.5)


def draw_lr(curves: Sequence[Curve], steps: int, zoom: int | None, looks: dict[str, Look]) -> Any:
    """LR / peak LR against step, a line per curve (the LR its run recorded), over ``steps``;
    with ``zoom``, a wider first panel of steps ``0 .. zoom`` (the warmup) beside the whole run.
    A controller's decisions are marks on its line; the legend is right of the axes."""
    from matplotlib.lines import Line2D

    figure = agg_figure(WIDTH, 3.6, DPI)
    if zoom:
        first, whole = figure.subplots(1, 2, width_ratios=[1.35, 1])
        _lr_axes(first, curves, looks, zoom, f"warmup: the first {zoom} steps")
        _lr_axes(whole, curves, looks, max(steps - 1, 1), f"the whole run ({steps} steps)")
        whole.axvspan(0, zoom, color="black", alpha=0.06, linewidth=0, zorder=0)
    else:
        first = figure.add_subplot()
        _lr_axes(first, curves, looks, max(steps - 1, 1), f"the whole run ({steps} steps)")
    first.set_ylabel("LR / peak LR")
    actions = dict.fromkeys(a for c in curves if c.marks is not None for a in c.marks.action)
    extra = [(Line2D([], [], linestyle="none", marker=MARKERS.get(a, "o"), color="#555", markeredgecolor="white",
                     markersize=5.5), ACTIONS.get(a, a)) for a in actions]
    _fit(figure, _legend(figure, {c.method for c in curves}, looks, extra), 3.6)
    return figure


def lr_figure(curves: Sequence[Curve], steps: int, zoom: int | None, looks: dict[str, Look]) -> bytes:
    """:func:`draw_lr` as PNG bytes."""
    return png(draw_lr(curves, steps, zoom, looks), DPI)


# ---- loss curves per peak LR -----------------------------------------------------------------


def _loss_axes(axes: Any, panel: LossPanel, looks: dict[str, Look], ylabel: str | None) -> None:
    """Draw one peak LR's panel."""
    _lines(axes, panel.curves, looks, "loss")
    axes.margins(x=0.01)
    axes.set_title(f"peak LR {panel.peak_lr:.3g}", fontsize=11)
    axes.set_xlabel("step")
    if ylabel:
        axes.set_ylabel(ylabel)
    axes.tick_params(labelsize=SMALL)
    axes.grid(alpha=0.25, linewidth=0.5)
    if panel.y_range is not None:
        if panel.log:
            axes.set_yscale("log")
        axes.set_ylim(*panel.y_range)
        if panel.log:
            log_ticks(axes.yaxis, *panel.y_range)
    if panel.clipped:
        axes.text(0.99, 0.985, "higher losses off the top ↑", transform=axes.transAxes, ha="right", va="top",
                  fontsize=SMALL - 0.5, color="#555",
                  bbox=dict(facecolor="white", alpha=0.8, linewidth=0, pad=1.5), zorder=5)
    for step, method in panel.stops:
        axes.plot([step], [1.0], marker="X", color=looks[method].color, markersize=9, markeredgecolor="white",
                  markeredgewidth=0.8, transform=axes.get_xaxis_transform(), clip_on=False, zorder=6)


def draw_loss(panels: Sequence[LossPanel], looks: dict[str, Look], kind: str) -> Any:
    """A panel per peak LR (two a row), a line per method; a diverged seed is an ``X`` on the top
    edge of its panel at its last step. ``kind`` (``train`` or ``val``) names the y axis."""
    from matplotlib.lines import Line2D

    ncols = 1 if len(panels) == 1 else 2
    nrows = math.ceil(len(panels) / ncols)
    figure = agg_figure(WIDTH, PANEL_HEIGHT * nrows, DPI)
    ylabel = "train loss (smoothed)" if kind == "train" else "val loss"
    for index, panel in enumerate(panels):
        _loss_axes(figure.add_subplot(nrows, ncols, index + 1), panel, looks, ylabel if index % ncols == 0 else None)
    extra = []
    if any(panel.stops for panel in panels):
        extra.append((Line2D([], [], linestyle="none", marker="X", color="#555", markersize=8), "a seed diverged"))
    _fit(figure, _legend(figure, {c.method for p in panels for c in p.curves}, looks, extra), PANEL_HEIGHT * nrows)
    return figure


def loss_figure(panels: Sequence[LossPanel], looks: dict[str, Look], kind: str) -> bytes:
    """:func:`draw_loss` as PNG bytes."""
    return png(draw_loss(panels, looks, kind), DPI)


# ---- stability heatmap -----------------------------------------------------------------------


def _norm(values: np.ndarray) -> Any:
    """The colour scale: log over the values when they are positive and not all equal."""
    from matplotlib.colors import LogNorm, Normalize

    if values.size and values.min() > 0 and values.max() > values.min():
        return LogNorm(values.min(), values.max())
    if values.size:
        return Normalize(values.min(), values.max() if values.max() > values.min() else values.min() + 1)
    return Normalize(0, 1)


def _heat_cell(axes: Any, panel: HeatPanel, i: int, j: int, norm: Any) -> None:
    """A cell's text; hatched, on a white box, where a seed diverged."""
    from matplotlib.patches import Rectangle

    mean, diverged = panel.mean[i, j], panel.diverged[i, j]
    if diverged:
        axes.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="xx", edgecolor=HATCH, linewidth=0))
    light = diverged or np.isnan(mean) or norm(mean) > 0.6
    box = dict(facecolor="white", alpha=0.8, linewidth=0, pad=1.5) if diverged else None
    axes.text(j, i, cell_text(mean, diverged, panel.runs[i, j]), ha="center", va="center", fontsize=SMALL,
              color="black" if light else "white", bbox=box)


def _heat_axes(axes: Any, panel: HeatPanel, lrs: Sequence[float], norm: Any, cmap: Any) -> Any:
    """Draw one panel; returns its image (for the colour bar)."""
    image = axes.imshow(np.ma.masked_invalid(panel.mean), cmap=cmap, norm=norm, aspect="auto")
    for i in range(panel.mean.shape[0]):
        for j in range(panel.mean.shape[1]):
            _heat_cell(axes, panel, i, j, norm)
    axes.set_xticks(range(len(lrs)), [f"{lr:.2g}" for lr in lrs], fontsize=SMALL)
    axes.set_yticks(range(len(panel.rows)), panel.rows, fontsize=SMALL)
    axes.set_title(panel.title, fontsize=11)
    axes.set_ylabel("warmup (steps)" if panel.swept else "")
    return image


def heatmap_figure(heatmap: Heatmap) -> bytes:
    """Mean final val loss over peak LR (x) and warmup or method (y), a panel per
    :class:`~preheat.lab.figure_data.HeatPanel`, one colour scale; a hatched cell had at least
    one diverged seed (``k/n div``), a grey cell has no value."""
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    norm = _norm(heatmap.values())
    cmap = colormaps["viridis"].with_extremes(bad="#dddddd")
    heights = [len(panel.rows) * 0.4 + 1.0 for panel in heatmap.panels]
    figure = agg_figure(min(WIDTH, 4.5 + 1.1 * len(heatmap.peak_lrs)), sum(heights) + 0.3, DPI)
    axes_list = figure.subplots(len(heatmap.panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    images = [_heat_axes(axes, panel, heatmap.peak_lrs, norm, cmap) for axes, panel in zip(axes_list, heatmap.panels)]
    axes_list[-1].set_xlabel("peak LR")
    colorbar = figure.colorbar(images[-1], ax=list(axes_list), shrink=0.9)
    colorbar.set_label("mean final val loss")
    if isinstance(norm, LogNorm):
        plain_log_ticks(colorbar.ax.yaxis)
    colorbar.ax.tick_params(labelsize=SMALL)
    return png(figure, DPI)
