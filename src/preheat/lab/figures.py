"""The report's figures drawn: LR curves, loss curves per peak LR, the stability heatmap.

What each figure shows is shaped in :mod:`preheat.lab.figure_data` (NumPy only); the functions
here only draw it, on matplotlib's Agg canvas (no pyplot state), and return PNG bytes. Nothing
here prints.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from preheat.lab.figure_data import Curve, HeatPanel, Heatmap, LossPanel, cell_text
from preheat.plotting import agg_figure, plain_log_ticks, png

DPI = 90
PANEL = (3.0, 2.3)  # inches per loss panel
COLUMNS = 4  # loss panels per figure row
HATCH = "#b22222"  # the edge of a heatmap cell where a seed diverged


def colors(methods: Sequence[str]) -> dict[str, Any]:
    """A distinct colour per method: matplotlib's default cycle, or tab20 past ten of them."""
    from matplotlib import colormaps

    palette = [f"C{i}" for i in range(10)] if len(methods) <= 10 else list(colormaps["tab20"].colors)
    return {method: palette[i % len(palette)] for i, method in enumerate(methods)}


def lr_figure(curves: Sequence[Curve], steps: int, color: dict[str, Any]) -> bytes:
    """LR / peak LR against step, a line per curve (the LR its run recorded), over ``steps``."""
    figure = agg_figure(7.0, 3.0, DPI)
    axes = figure.add_subplot()
    for curve in curves:
        axes.plot(curve.x, curve.y, color=color[curve.method], linewidth=1.5, label=curve.label)
    axes.set_xlabel("step")
    axes.set_ylabel("LR / peak LR")
    axes.set_xlim(0, max(steps - 1, 1))
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.25, linewidth=0.5)
    axes.legend(fontsize="x-small", framealpha=0.85)
    return png(figure, DPI)


def _loss_axes(axes: Any, panel: LossPanel, color: dict[str, Any], ylabel: str | None) -> dict[str, Any]:
    """Draw one peak LR's panel; returns its lines by legend label."""
    lines = {}
    for curve in panel.curves:
        (lines[curve.label],) = axes.plot(curve.x, curve.y, color=color[curve.method], linewidth=1.2,
                                          label=curve.label)
    axes.set_title(f"peak LR {panel.peak_lr:.3g}", fontsize="small")
    axes.set_xlabel("step", fontsize="small")
    if ylabel:
        axes.set_ylabel(ylabel, fontsize="small")
    axes.tick_params(labelsize="x-small")
    axes.grid(alpha=0.25, linewidth=0.5)
    if panel.y_range is not None:
        if panel.log:
            axes.set_yscale("log")
        axes.set_ylim(*panel.y_range)
        if panel.log:
            plain_log_ticks(axes.yaxis)
    for step, method in panel.stops:
        axes.plot([step], [0.95], marker="x", color=color[method], markersize=7, mew=2,
                  transform=axes.get_xaxis_transform(), clip_on=False)
    return lines


def loss_figure(panels: Sequence[LossPanel], color: dict[str, Any], kind: str) -> bytes:
    """A panel per peak LR, a line per method; a diverged seed is an ``x`` at the top of its
    panel. ``kind`` (``train`` or ``val``) names the y axis."""
    ncols = min(len(panels), COLUMNS)
    nrows = math.ceil(len(panels) / ncols)
    figure = agg_figure(PANEL[0] * ncols, PANEL[1] * nrows + 0.5, DPI)
    ylabel = "train loss (smoothed)" if kind == "train" else "val loss"
    handles: dict[str, Any] = {}
    for index, panel in enumerate(panels):
        axes = figure.add_subplot(nrows, ncols, index + 1)
        lines = _loss_axes(axes, panel, color, ylabel if index % ncols == 0 else None)
        for label, line in lines.items():
            handles.setdefault(label, line)
    if handles:
        figure.legend(list(handles.values()), list(handles), loc="outside lower center",
                      ncols=min(len(handles), max(2, ncols)), fontsize="small", frameon=False)
    return png(figure, DPI)


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
    axes.text(j, i, cell_text(mean, diverged, panel.runs[i, j]), ha="center", va="center", fontsize=7,
              color="black" if light else "white", bbox=box)


def _heat_axes(axes: Any, panel: HeatPanel, lrs: Sequence[float], norm: Any, cmap: Any) -> Any:
    """Draw one panel; returns its image (for the colour bar)."""
    image = axes.imshow(np.ma.masked_invalid(panel.mean), cmap=cmap, norm=norm, aspect="auto")
    for i in range(panel.mean.shape[0]):
        for j in range(panel.mean.shape[1]):
            _heat_cell(axes, panel, i, j, norm)
    axes.set_xticks(range(len(lrs)), [f"{lr:.2g}" for lr in lrs], fontsize="x-small")
    axes.set_yticks(range(len(panel.rows)), panel.rows, fontsize="x-small")
    axes.set_title(panel.title, fontsize="small")
    axes.set_ylabel("warmup (steps)" if panel.swept else "", fontsize="small")
    return image


def heatmap_figure(heatmap: Heatmap) -> bytes:
    """Mean final val loss over peak LR (x) and warmup or method (y), a panel per
    :class:`~preheat.lab.figure_data.HeatPanel`, one colour scale; a hatched cell had at least
    one diverged seed (``k/n div``), a grey cell has no value."""
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    norm = _norm(heatmap.values())
    cmap = colormaps["viridis"].with_extremes(bad="#dddddd")
    heights = [len(panel.rows) * 0.42 + 0.9 for panel in heatmap.panels]
    figure = agg_figure(7.5, sum(heights) + 0.3, DPI)
    axes_list = figure.subplots(len(heatmap.panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    images = [_heat_axes(axes, panel, heatmap.peak_lrs, norm, cmap) for axes, panel in zip(axes_list, heatmap.panels)]
    axes_list[-1].set_xlabel("peak LR", fontsize="small")
    colorbar = figure.colorbar(images[-1], ax=list(axes_list), shrink=0.9)
    colorbar.set_label("mean final val loss", fontsize="small")
    if isinstance(norm, LogNorm):
        plain_log_ticks(colorbar.ax.yaxis)
    colorbar.ax.tick_params(labelsize="x-small")
    return png(figure, DPI)
