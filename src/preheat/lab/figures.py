"""The report's figures: LR curves, loss curves per peak LR, the stability heatmap.

Each function draws on matplotlib's Agg canvas directly (no pyplot state) and returns the PNG
as base64 text, ready for an ``<img src="data:...">``. Nothing here prints.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np

from preheat.lab.store import DONE, Store
from preheat.plotting import learning_rates, phase_boundaries

DPI = 90
PANEL = (3.0, 2.3)  # inches per loss panel
COLUMNS = 4  # loss panels per figure row
SMOOTH = 40  # a training-loss curve is averaged over windows of len / SMOOTH steps
FIXED = "schedules without {warmup}"  # the heatmap panel of schedules not swept over warmup


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> str:
    """The figure as base64 PNG text."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _short(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def best_per_family(rows: list[dict[str, Any]], table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The best-ranked ranking row of each family (a schedule template or label), best first,
    with its ``family`` and a legend ``label`` added.

    The curve figures draw one line per family: a schedule swept over warmup is shown at the
    warmup that ranked best (the heatmap shows the others). The label names the warmup when the
    name does not already show it (a label shared by several warmups).
    """
    family = {r["name"]: r["family"] for r in rows}
    chosen: dict[str, dict[str, Any]] = {}
    for entry in table:
        name, warmup = entry["name"], entry["warmup"]
        label = f"{name} (warmup={warmup})" if warmup is not None and family[name] == name else name
        chosen.setdefault(family[name], {**entry, "family": family[name], "label": _short(label, 60)})
    return list(chosen.values())


def representative_runs(rows: list[dict[str, Any]], entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per ranking row, the run of its best (warmup, peak LR) with the lowest seed (else its first run)."""
    chosen = []
    for entry in entries:
        runs = [r for r in rows if r["name"] == entry["name"]]
        best = [r for r in runs if r["warmup"] == entry["warmup"] and r["peak_lr"] == entry["best_peak_lr"]]
        chosen.append(min(best or runs, key=lambda r: r["seed"]))
    return chosen


def lr_figure(store: Store, entries: list[dict[str, Any]], representatives: list[dict[str, Any]],
              colors: dict[str, str]) -> str:
    """LR / peak LR against step, one line per schedule at its representative run; a run driven
    by a controller shows the LR it recorded (its decisions), a schedule its formula."""
    figure = _figure(7.0, 3.0)
    axes = figure.add_subplot()
    total = max(r["steps"] for r in representatives)
    for entry, run in zip(entries, representatives):
        color = colors[run["family"]]
        label = f"{entry['label']}, peak {run['peak_lr']:.3g}"
        if run["config"].controller is not None:
            recorded = store.steps(run["id"])
            axes.plot(recorded["step"], recorded["lr"] / run["peak_lr"], color=color, linewidth=1.5, label=label)
            continue
        schedule = run["config"].resolved_schedule()
        axes.plot(np.arange(total), learning_rates(schedule, total, 1.0), color=color, linewidth=1.5, label=label)
        for boundary in phase_boundaries(schedule):
            if 0 < boundary < total:
                axes.axvline(boundary, color=color, alpha=0.35, linewidth=0.8, linestyle=":")
    axes.set_xlabel("step")
    axes.set_ylabel("LR / peak LR")
    axes.set_xlim(0, max(total - 1, 1))
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.25, linewidth=0.5)
    axes.legend(fontsize="x-small", framealpha=0.85)
    return _png(figure)


def _plain_ticks(axis: Any, low: float, high: float) -> None:
    """Label a log axis spanning ``low .. high`` with plain numbers (0.6, 2, not 6x10^-1);
    minor ticks get labels only when the span is under one decade."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:.3g}")
    axis.set_major_formatter(plain)
    axis.set_minor_formatter(plain if high / low < 10 else NullFormatter())


def _smooth(values: np.ndarray) -> np.ndarray:
    """Trailing mean over ``max(1, len // SMOOTH)`` steps (shorter at the start); NaN/inf -> NaN."""
    values = np.where(np.isfinite(values), values, np.nan)
    window = max(1, values.size // SMOOTH)
    out = np.empty_like(values)
    for t in range(values.size):
        part = values[max(0, t - window + 1): t + 1]
        part = part[~np.isnan(part)]
        out[t] = part.mean() if part.size else np.nan
    return out


def _mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds, index by index (NaN-padded: a seed that stopped early drops out)."""
    longest = max(curves, key=lambda c: c[0].size)[0]
    stacked = np.full((len(curves), longest.size), np.nan)
    for i, (_, y) in enumerate(curves):
        stacked[i, : y.size] = np.where(np.isfinite(y), y, np.nan)
    with np.errstate(all="ignore"):
        counts = np.sum(~np.isnan(stacked), axis=0)
        mean = np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), np.nan)
    return longest, mean


def loss_figure(
    store: Store,
    rows: list[dict[str, Any]],
    entries: list[dict[str, Any]],
    colors: dict[str, str],
    kind: str,
) -> str:
    """One panel per peak LR, one line per schedule (its best warmup), mean over seeds.

    ``kind`` is ``train`` (smoothed training loss per step) or ``val`` (validation loss at
    each evaluation). A diverged seed is marked with an ``x`` at the top of the panel.
    """
    lrs = sorted({r["peak_lr"] for r in rows if r["status"] in DONE})
    ncols = min(len(lrs), COLUMNS)
    nrows = math.ceil(len(lrs) / ncols)
    figure = _figure(PANEL[0] * ncols, PANEL[1] * nrows + 0.5)
    handles: dict[str, Any] = {}
    for index, lr in enumerate(lrs):
        axes = figure.add_subplot(nrows, ncols, index + 1)
        starts, lows, highs, stops = [], [], [], []
        for entry in entries:
            runs = [r for r in rows if r["name"] == entry["name"] and r["warmup"] == entry["warmup"]
                    and r["peak_lr"] == lr and r["status"] in DONE]
            curves = []
            for run in runs:
                if kind == "train":
                    data = store.steps(run["id"])
                    curves.append((data["step"], _smooth(data["train_loss"])))
                else:
                    data = store.evals(run["id"])
                    curves.append((data["step"], data["val_loss"]))
                if run["diverged"] and data["step"].size:
                    stops.append((float(data["step"][-1]), colors[run["family"]]))
            curves = [c for c in curves if c[0].size]
            if not curves:
                continue
            x, y = _mean_curve(curves)
            label = entry["label"]
            (line,) = axes.plot(x, y, color=colors[runs[0]["family"]], linewidth=1.2, label=label)
            handles.setdefault(label, line)
            finite = y[np.isfinite(y)]
            if finite.size:
                starts.append(finite[0])
                lows.append(finite.min())
                highs.append(finite.max())
        axes.set_title(f"peak LR {lr:.3g}", fontsize="small")
        axes.set_xlabel("step", fontsize="small")
        if index % ncols == 0:
            axes.set_ylabel("train loss (smoothed)" if kind == "train" else "val loss", fontsize="small")
        axes.tick_params(labelsize="x-small")
        axes.grid(alpha=0.25, linewidth=0.5)
        if lows:
            low, high = min(lows), min(max(highs), 2.0 * max(starts))
            if low > 0 and high > low:
                axes.set_yscale("log")
                axes.set_ylim(low / 1.1, high * 1.1)
                _plain_ticks(axes.yaxis, low / 1.1, high * 1.1)
            elif high > low:
                axes.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
        for step, color in stops:
            axes.plot([step], [0.95], marker="x", color=color, markersize=7, mew=2,
                      transform=axes.get_xaxis_transform(), clip_on=False)
    if handles:
        figure.legend(list(handles.values()), list(handles), loc="outside lower center",
                      ncols=min(len(handles), max(2, ncols)), fontsize="small", frameon=False)
    return _png(figure)


def heatmap_figure(rows: list[dict[str, Any]]) -> tuple[str, int] | None:
    """Mean final val loss over peak LR (x) x warmup (y), one panel per schedule template swept
    over warmup (whatever the runs' labels), and one panel (a row per schedule name) for runs
    without a warmup field.

    The colour is the mean over the seeds that did not diverge or crash; a hatched cell had at
    least one diverged seed (``k/n div``); a grey cell has no such seed. Returns the PNG and
    the number of panels, or None without done runs.
    """
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.patches import Rectangle

    done = [r for r in rows if r["status"] in DONE]
    if not done:
        return None
    lrs = sorted({r["peak_lr"] for r in done})
    swept = list(dict.fromkeys(r["template"] for r in done if r["warmup"] is not None))
    fixed = list(dict.fromkeys(r["family"] for r in done if r["warmup"] is None))
    panels: list[tuple[str, list[str], list[list[dict[str, Any]]]]] = []
    for template in swept:
        warmups = sorted({r["warmup"] for r in done if r["template"] == template and r["warmup"] is not None})
        cells = [[r for r in done if r["template"] == template and r["warmup"] == w] for w in warmups]
        panels.append((_short(template, 70), [str(w) for w in warmups], cells))
    if fixed:
        cells = [[r for r in done if r["family"] == f] for f in fixed]
        panels.append((FIXED, [_short(f, 32) for f in fixed], cells))

    grids = []
    for _, _, cells in panels:
        grid = np.full((len(cells), len(lrs)), np.nan)
        counts = np.zeros((len(cells), len(lrs), 2), dtype=int)  # diverged, runs
        for i, runs in enumerate(cells):
            for j, lr in enumerate(lrs):
                at = [r for r in runs if r["peak_lr"] == lr]
                ok = [r["final_val_loss"] for r in at if not r["diverged"] and math.isfinite(r["final_val_loss"])]
                if ok:
                    grid[i, j] = float(np.mean(ok))
                counts[i, j] = (sum(r["diverged"] for r in at), len(at))
        grids.append((grid, counts))
    values = np.concatenate([g[np.isfinite(g)] for g, _ in grids])
    if values.size and values.min() > 0 and values.max() > values.min():
        norm: Any = LogNorm(values.min(), values.max())
    elif values.size:
        norm = Normalize(values.min(), values.max() if values.max() > values.min() else values.min() + 1)
    else:
        norm = Normalize(0, 1)

    heights = [len(labels) * 0.42 + 0.9 for _, labels, _ in panels]
    figure = _figure(7.5, sum(heights) + 0.3)
    axes_list = figure.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    import matplotlib

    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
    image = None
    for axes, (title, labels, _), (grid, counts) in zip(axes_list, panels, grids):
        image = axes.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                diverged, total = counts[i, j]
                text = "" if total == 0 else ("div" if np.isnan(grid[i, j]) else f"{grid[i, j]:.3g}")
                if diverged:
                    axes.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="xx",
                                             edgecolor="#b22222", linewidth=0))
                    if not np.isnan(grid[i, j]):
                        text += f"\n{diverged}/{total} div"
                light = diverged or np.isnan(grid[i, j]) or norm(grid[i, j]) > 0.6
                box = dict(facecolor="white", alpha=0.8, linewidth=0, pad=1.5) if diverged else None
                axes.text(j, i, text, ha="center", va="center", fontsize=7,
                          color="black" if light else "white", bbox=box)
        axes.set_xticks(range(len(lrs)), [f"{lr:.2g}" for lr in lrs], fontsize="x-small")
        axes.set_yticks(range(len(labels)), labels, fontsize="x-small")
        axes.set_title(title, fontsize="small")
        axes.set_ylabel("" if title == FIXED else "warmup (steps)", fontsize="small")
    axes_list[-1].set_xlabel("peak LR", fontsize="small")
    colorbar = figure.colorbar(image, ax=list(axes_list), shrink=0.9)
    colorbar.set_label("mean final val loss", fontsize="small")
    if isinstance(norm, LogNorm):
        _plain_ticks(colorbar.ax.yaxis, norm.vmin, norm.vmax)
    colorbar.ax.tick_params(labelsize="x-small")
    return _png(figure), len(panels)


