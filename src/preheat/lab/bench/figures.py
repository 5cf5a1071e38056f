"""The benchmark's figure per task: every method's mean score over the peak-LR ladder.

One line per method (colours by family, as in the lab's reports), the tuned baseline (the best
linear warmup at each peak) thick on top, no warmup beside it; a rung where some seed failed
(diverged, got stuck, or never reached the target) is a cross on the top edge, so a method's
line stops where it stops being stable. The learned-step optimizers take no peak LR and are not
drawn.
"""

from __future__ import annotations

import math
from pathlib import Path

from preheat.lab.bench.analysis import TaskResult
from preheat.lab.bench.plan import LEARNED_STEP, NO_WARMUP
from preheat.lab.figures import _fit, _legend, _line, log_ticks, looks
from preheat.plotting import agg_figure, png

TUNED = "tuned linear warmup"
BODY = 3.6  # inches of axes


def task_figure(result: TaskResult, path: str | Path) -> Path:
    """Draw ``result``'s figure (see the module docstring) to the PNG ``path``; return it."""
    series = {TUNED: ("schedule", {p: c.mean for p, c in result.tuned.items()})}
    for method, cells in result.cells.items():
        if method == NO_WARMUP or (method in result.methods and method not in LEARNED_STEP):
            family = next(iter(cells.values())).family
            series[method] = (family, {p: c.mean for p, c in cells.items()})
    finite = [v for _, values in series.values() for v in values.values() if math.isfinite(v) and v > 0]
    figure = agg_figure(7.2, BODY)
    axes = figure.add_subplot()
    style = looks([(m, m, family) for m, (family, _) in series.items()], emphasised=(TUNED, NO_WARMUP))
    low, high = (min(finite), max(finite)) if finite else (0.1, 1.0)
    pad = 0.12 * max(math.log(high / low), math.log(1.1))  # a margin in proportion to the data's span
    bottom, top = low * math.exp(-pad), high * math.exp(2 * pad)  # the crosses sit on the top edge
    for method, (_, values) in series.items():
        peaks = sorted(values)
        shown = [p for p in peaks if math.isfinite(values[p])]
        line = _line(axes, shown, [values[p] for p in shown], style[method])
        line.set_marker("o")
        line.set_markersize(3.5)
        failed = [p for p in peaks if not math.isfinite(values[p])]
        axes.scatter(failed, [top] * len(failed), marker="x", color=style[method].color, zorder=4, clip_on=False)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_ylim(bottom, top)
    axes.set_xlim(min(result.peaks) / 1.3, max(result.peaks) * 1.3)
    log_ticks(axes.xaxis, min(result.peaks) / 1.3, max(result.peaks) * 1.3)
    log_ticks(axes.yaxis, bottom, top)
    axes.set_xlabel("peak LR")
    axes.set_ylabel("mean final val loss" if result.task.score == "loss" else f"updates to loss {result.task.target:g}")
    axes.set_title(f"{result.task.name} ({result.task.split}): x on top = some seed failed", fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    legend = _legend(figure, list(series), style)
    _fit(figure, legend, BODY)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png(figure, 110))
    return out
