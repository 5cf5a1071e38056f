"""The doubling LR grid and its heatmaps (studies 1 and 2): which target LRs a network trains at.

A :class:`Grid` is one heatmap: rows (e.g. warmup lengths) x peak LRs x seeds on top of fixed run
fields. :func:`doubling_sweep` runs every grid from its first LR and doubles it while anything
at the largest LR so far still trains (:func:`trainable`), so each grid ends where nothing does.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from preheat.lab.config import RunConfig
from preheat.lab.metrics import RunMetrics
from preheat.lab.tasks import make_task
from studies.common import Study, figure, markdown_table, mean_std, number, plain_log_ticks, sweep


@functools.cache
def _prior_loss(task: str, options: tuple[tuple[str, Any], ...]) -> float:
    built = make_task(task, dict(options))
    if task == "digits":
        counts = torch.bincount(built.data["y_train"], minlength=10).double() + 1.0
        p = counts / counts.sum()
        y = built.data["y_val"]
        if built.loss_name == "cross_entropy":
            return float(-p.log()[y].mean())
        return float(((p[None, :] - torch.nn.functional.one_hot(y, 10).double()) ** 2).sum(1).mean())
    if task == "shakespeare-char":
        counts = torch.bincount(built.train_data, minlength=len(built.vocab)).double() + 1.0
        return float(-(counts / counts.sum()).log()[built.val_data].mean())
    return math.inf


def prior_loss(config: RunConfig) -> float:
    """The validation loss of the best prediction that ignores the input: the training set's class
    (digits) or character (Shakespeare) frequencies, add-one smoothed; ``inf`` for other tasks.
    A run that ends above it has learned nothing from its inputs."""
    return _prior_loss(config.task, tuple(sorted((k, v) for k, v in config.task_options.items())))


def trainable(row: RunMetrics) -> bool:
    """A run trained at its LR: it finished (did not diverge), was not below chance (Kalra &
    Barkeshli's rule for a failed run: final training accuracy at least 1.5x chance;
    ``preheat.lab.metrics``) and its final validation loss is below :func:`prior_loss`."""
    return (row.status == "finished" and row.below_chance is not True
            and row.final_val_loss < prior_loss(row.config))


@dataclass(frozen=True)
class Grid:
    """One heatmap: fixed run fields, its rows (label, run fields), the LR the grid starts at, seeds.

    Its runs are every row x every peak LR x every seed on top of ``base``; each run is labelled
    ``"TITLE | ROW"``, which is what the store groups it by.
    """

    title: str
    base: dict[str, Any]
    rows: tuple[tuple[str, dict[str, Any]], ...]
    start_lr: float
    seeds: tuple[int, ...] = (0,)

    def runs(self, lrs: Sequence[float]) -> list[RunConfig]:
        return [RunConfig(**{**self.base, **fields, "label": f"{self.title} | {row}", "peak_lr": lr, "seed": seed})
                for row, fields in self.rows for lr in lrs for seed in self.seeds]


@dataclass
class Cell:
    """The seeds of one (grid row, peak LR): final val losses (inf: diverged) and trainability."""

    losses: list[float]
    trainable: bool

    @property
    def mean(self) -> float:
        return float(np.mean(self.losses)) if self.losses else math.nan


Cells = dict[tuple[str, float], Cell]  # by (run label "TITLE | ROW", peak LR)


def cells_of(rows: Sequence[RunMetrics]) -> Cells:
    """Group run rows into cells by (label, peak LR); a cell is trainable when every seed is."""
    cells: Cells = {}
    for row in rows:
        cell = cells.setdefault((row.method, row.config.peak_lr), Cell([], True))
        cell.losses.append(row.final_val_loss)
        cell.trainable = cell.trainable and trainable(row)
    return cells


def doubling_sweep(study: Study, grids: Sequence[Grid], max_lrs: int) -> tuple[dict[str, list[float]], Cells]:
    """Run every grid over a doubling LR grid from its ``start_lr``, adding the next LR while any
    run at the largest so far was still trainable (at most ``max_lrs`` LRs).

    All grids grow in step, one LR per round, so each round is one sweep. Returns the LRs of
    each grid (by title) and the cells of all of them.
    """
    lrs = {grid.title: [grid.start_lr] for grid in grids}
    growing = {grid.title for grid in grids}
    while True:
        rows = sweep(study, [run for grid in grids for run in grid.runs(lrs[grid.title])])
        top = {grid.title: lrs[grid.title][-1] for grid in grids}
        for grid in grids:
            if grid.title not in growing:
                continue
            alive = [row for row in rows if row.method.startswith(grid.title + " | ")
                     and row.config.peak_lr == top[grid.title] and trainable(row)]
            if not alive or len(lrs[grid.title]) >= max_lrs:
                growing.discard(grid.title)
            else:
                lrs[grid.title].append(2.0 * top[grid.title])
        if not growing:
            return lrs, cells_of(rows)


def largest_trainable(grid: Grid, row: str, lrs: Sequence[float], cells: Cells) -> float | None:
    """The largest LR of the grid at which this row, and every smaller LR, trained for every seed."""
    largest = None
    for lr in lrs:
        if not cells[(f"{grid.title} | {row}", lr)].trainable:
            break
        largest = lr
    return largest


def grid_table(grids: Sequence[Grid], lrs: dict[str, list[float]], cells: Cells) -> str:
    """One table row per (grid, row): largest trainable LR (and its ratio to the grid's first row),
    the best LR and its final val loss, the LRs tried."""
    headers = ("setting", "row", "largest trainable LR", "vs first row", "best LR", "final val loss at best LR",
               "LRs tried")
    body = []
    for grid in grids:
        first = largest_trainable(grid, grid.rows[0][0], lrs[grid.title], cells)
        for row, _ in grid.rows:
            largest = largest_trainable(grid, row, lrs[grid.title], cells)
            at = {lr: cells[(f"{grid.title} | {row}", lr)] for lr in lrs[grid.title]}
            finite = {lr: c for lr, c in at.items() if math.isfinite(c.mean)}
            best = min(finite, key=lambda lr: finite[lr].mean) if finite else None
            ratio = "—" if largest is None or first is None else f"x{largest / first:g}"
            body.append((grid.title, row, number(largest), ratio, number(best),
                         mean_std(at[best].losses) if best is not None else "—",
                         f"{number(lrs[grid.title][0])} … {number(lrs[grid.title][-1])} (x2)"))
    return markdown_table(headers, body)


def draw_heatmap(axes: Any, grid: Grid, lrs: Sequence[float], cells: Cells) -> Any:
    """Mean final val loss over peak LR (x) x grid row (y) on ``axes``; returns the image.

    Grey with ``×``: a seed diverged; ``–``: no seed diverged but one did not train (failed, or
    ended above the input-blind loss); a black frame: the largest trainable LR of the row.
    """
    import matplotlib
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    labels = [row for row, _ in grid.rows]
    values = np.full((len(labels), len(lrs)), np.nan)
    for i, row in enumerate(labels):
        for j, lr in enumerate(lrs):
            values[i, j] = cells[(f"{grid.title} | {row}", lr)].mean
    finite = values[np.isfinite(values) & (values > 0)]
    low, high = (finite.min(), finite.max()) if finite.size else (1e-3, 1.0)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#d0d0d0")
    image = axes.imshow(np.ma.masked_invalid(np.where(values > 0, values, np.nan)), cmap=cmap, aspect="auto",
                        norm=LogNorm(low, max(high, low * 1.01)), origin="lower")
    for i, row in enumerate(labels):
        for j, lr in enumerate(lrs):
            cell = cells[(f"{grid.title} | {row}", lr)]
            if not math.isfinite(cell.mean):
                axes.text(j, i, "×", ha="center", va="center", fontsize=9, color="#8b0000")
            elif not cell.trainable:
                axes.text(j, i, "–", ha="center", va="center", fontsize=11, color="#8b0000", fontweight="bold")
        largest = largest_trainable(grid, row, lrs, cells)
        if largest is not None:
            j = list(lrs).index(largest)
            axes.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.6))
    step = max(1, len(lrs) // 8)
    axes.set_xticks(range(0, len(lrs), step), [f"{lr:.3g}" for lr in lrs][::step], fontsize="x-small", rotation=45)
    axes.set_yticks(range(len(labels)), labels, fontsize="x-small")
    axes.set_title(grid.title, fontsize="small")
    axes.set_xlabel("target (peak) LR", fontsize="x-small")
    return image


def add_heatmap(fig: Any, axes: Any, grid: Grid, lrs: Sequence[float], cells: Cells) -> None:
    """:func:`draw_heatmap` on ``axes`` with its colour bar."""
    bar = fig.colorbar(draw_heatmap(axes, grid, lrs, cells), ax=axes, shrink=0.9)
    bar.set_label("final val loss (mean)", fontsize="x-small")
    plain_log_ticks(bar.ax.yaxis)
    bar.ax.tick_params(which="both", labelsize="xx-small")


def heatmap_figure(grids: Sequence[Grid], lrs: dict[str, list[float]], cells: Cells,
                   cols: int) -> Any:
    """One heatmap per grid, ``cols`` per figure row."""
    rows = math.ceil(len(grids) / cols)
    fig, axes = figure(5.2 * cols, 2.6 * rows, rows, cols)
    for index, grid in enumerate(grids):
        add_heatmap(fig, axes[index // cols, index % cols], grid, lrs[grid.title], cells)
    for index in range(len(grids), rows * cols):
        axes[index // cols, index % cols].set_visible(False)
    return fig
