"""What the report's figures show, shaped with NumPy alone from the store and the metrics.

Which runs (a representative run per method), which curves (the LR each run recorded, the
smoothed training loss, the validation loss; means over seeds), which cells (the stability
heatmap's matrix over warmup x peak LR) and the y range of each loss panel.
:mod:`preheat.lab.figures` draws them; nothing here imports matplotlib or reads a config's
expressions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from preheat.lab.metrics import RankedMethod, RunMetrics
from preheat.lab.store import DONE, Store

SMOOTH = 40  # a training-loss curve is averaged over windows of len / SMOOTH steps
LEGEND = 60  # characters of a legend label
FIXED = "methods not swept over warmup"  # the heatmap panel of runs without a warmup length field


@dataclass(frozen=True)
class Curve:
    """One line: its ``x`` and ``y``, the ``method`` it belongs to (its colour) and its legend ``label``."""

    method: str
    label: str
    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class LossPanel:
    """One peak LR's panel: a curve per method (mean over seeds), the ``stops`` (step, method)
    where a seed diverged, and the y range to show (``log`` scale when it is positive; None:
    leave it to matplotlib)."""

    peak_lr: float
    curves: tuple[Curve, ...]
    stops: tuple[tuple[float, str], ...]
    y_range: tuple[float, float] | None
    log: bool


@dataclass(frozen=True)
class HeatPanel:
    """One panel of the heatmap: a row per warmup of one template (``swept``), or a row per
    method without a warmup; per (row, peak LR): the ``mean`` final val loss of the seeds that
    neither diverged nor crashed (NaN: none), how many ``diverged`` and how many ``runs``."""

    title: str
    rows: tuple[str, ...]
    swept: bool
    mean: np.ndarray
    diverged: np.ndarray
    runs: np.ndarray


@dataclass(frozen=True)
class Heatmap:
    """The stability heatmap: the peak LRs (columns) and its panels."""

    peak_lrs: tuple[float, ...]
    panels: tuple[HeatPanel, ...]

    def values(self) -> np.ndarray:
        """Every finite mean of every panel (what the colour scale spans)."""
        return np.concatenate([p.mean[np.isfinite(p.mean)] for p in self.panels])


def short(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in ``…`` where cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def representative_runs(done: Sequence[RunMetrics], ranking: Sequence[RankedMethod]) -> list[RunMetrics]:
    """Per ranked method, the run of its best (warmup, peak LR) with the lowest seed (else its
    first run with the lowest seed)."""
    chosen = []
    for entry in ranking:
        runs = [r for r in done if r.method == entry.method]
        best = [r for r in runs if r.config.warmup == entry.warmup and r.config.peak_lr == entry.best_peak_lr]
        chosen.append(min(best or runs, key=lambda r: r.config.seed))
    return chosen


def lr_curves(store: Store, ranking: Sequence[RankedMethod], runs: Sequence[RunMetrics]) -> list[Curve]:
    """The LR each of ``runs`` (one per ranked method) recorded, divided by its peak LR."""
    curves = []
    for entry, run in zip(ranking, runs):
        recorded = store.steps(run.id)
        label = f"{short(entry.title, LEGEND)}, peak {run.config.peak_lr:.3g}"
        curves.append(Curve(run.method, label, recorded["step"], recorded["lr"] / run.config.peak_lr))
    return curves


def smooth(values: np.ndarray) -> np.ndarray:
    """Trailing mean over ``max(1, len // SMOOTH)`` steps (shorter at the start); NaN/inf -> NaN."""
    values = np.where(np.isfinite(values), values, np.nan)
    window = max(1, values.size // SMOOTH)
    out = np.empty_like(values)
    for t in range(values.size):
        part = values[max(0, t - window + 1): t + 1]
        part = part[~np.isnan(part)]
        out[t] = part.mean() if part.size else np.nan
    return out


def mean_curve(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds, index by index (NaN-padded: a seed that stopped early drops out)."""
    longest = max(curves, key=lambda c: c[0].size)[0]
    stacked = np.full((len(curves), longest.size), np.nan)
    for i, (_, y) in enumerate(curves):
        stacked[i, : y.size] = np.where(np.isfinite(y), y, np.nan)
    with np.errstate(all="ignore"):
        counts = np.sum(~np.isnan(stacked), axis=0)
        mean = np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), np.nan)
    return longest, mean


def _seed_curve(store: Store, run: RunMetrics, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """A run's smoothed training loss per step (``kind="train"``) or validation loss per evaluation."""
    if kind == "train":
        data = store.steps(run.id)
        return data["step"], smooth(data["train_loss"])
    data = store.evals(run.id)
    return data["step"], data["val_loss"]


def _y_range(curves: Sequence[Curve]) -> tuple[tuple[float, float] | None, bool]:
    """From the lowest value to the highest (at most twice the highest start), 10% (log) or 5%
    (linear) wider; log when all of it is positive. (None, False) when nothing is finite."""
    finite = [c.y[np.isfinite(c.y)] for c in curves]
    finite = [y for y in finite if y.size]
    if not finite:
        return None, False
    low = min(y.min() for y in finite)
    high = min(max(y.max() for y in finite), 2.0 * max(y[0] for y in finite))
    if low > 0 and high > low:
        return (low / 1.1, high * 1.1), True
    if high > low:
        return (low - 0.05 * (high - low), high + 0.05 * (high - low)), False
    return None, False


def _loss_panel(store: Store, done: Sequence[RunMetrics], ranking: Sequence[RankedMethod], lr: float,
                kind: str) -> LossPanel:
    curves, stops = [], []
    for entry in ranking:
        runs = [r for r in done
                if r.method == entry.method and r.config.warmup == entry.warmup and r.config.peak_lr == lr]
        seeds = [(run, _seed_curve(store, run, kind)) for run in runs]
        stops += [(float(x[-1]), run.method) for run, (x, _) in seeds if run.diverged and x.size]
        drawn = [curve for _, curve in seeds if curve[0].size]
        if drawn:
            x, y = mean_curve(drawn)
            curves.append(Curve(entry.method, short(entry.title, LEGEND), x, y))
    y_range, log = _y_range(curves)
    return LossPanel(lr, tuple(curves), tuple(stops), y_range, log)


def loss_panels(store: Store, done: Sequence[RunMetrics], ranking: Sequence[RankedMethod],
                kind: str) -> list[LossPanel]:
    """A panel per peak LR of the done runs, ascending; in each a curve per ranked method at its
    ranked warmup, the mean over its seeds of :func:`smooth` training losses (``kind="train"``)
    or of validation losses (``kind="val"``)."""
    lrs = sorted({r.config.peak_lr for r in done})
    return [_loss_panel(store, done, ranking, lr, kind) for lr in lrs]


def _heat_panel(title: str, rows: list[str], swept: bool, cells: list[list[RunMetrics]],
                lrs: list[float]) -> HeatPanel:
    mean = np.full((len(cells), len(lrs)), np.nan)
    diverged = np.zeros((len(cells), len(lrs)), dtype=int)
    runs = np.zeros((len(cells), len(lrs)), dtype=int)
    for i, row in enumerate(cells):
        for j, lr in enumerate(lrs):
            at = [r for r in row if r.config.peak_lr == lr]
            ok = [r.final_val_loss for r in at if not r.diverged and math.isfinite(r.final_val_loss)]
            mean[i, j] = float(np.mean(ok)) if ok else np.nan
            diverged[i, j], runs[i, j] = sum(r.diverged for r in at), len(at)
    return HeatPanel(title, tuple(rows), swept, mean, diverged, runs)


def _swept_panel(done: Sequence[RunMetrics], template: str, lrs: list[float]) -> HeatPanel:
    """A row per warmup of the runs of ``template``."""
    runs = [r for r in done if r.config.template == template and r.config.warmup is not None]
    warmups = sorted({r.config.warmup for r in runs})
    cells = [[r for r in runs if r.config.warmup == w] for w in warmups]
    return _heat_panel(short(template, 70), [str(w) for w in warmups], True, cells, lrs)


def _fixed_panel(done: Sequence[RunMetrics], lrs: list[float]) -> HeatPanel | None:
    """A row per method of the runs without a warmup (None: there are none)."""
    runs = [r for r in done if r.config.warmup is None]
    methods = list(dict.fromkeys(r.method for r in runs))
    cells = [[r for r in runs if r.method == m] for m in methods]
    return _heat_panel(FIXED, [short(m, 32) for m in methods], False, cells, lrs) if methods else None


def heatmap(rows: Sequence[RunMetrics]) -> Heatmap | None:
    """Mean final val loss over peak LR x warmup: a panel per template swept over warmup
    (whatever the runs' methods), and one panel with a row per method of the runs without a
    warmup. None without done runs."""
    done = [r for r in rows if r.status in DONE]
    if not done:
        return None
    lrs = sorted({r.config.peak_lr for r in done})
    templates = dict.fromkeys(r.config.template for r in done if r.config.warmup is not None)
    panels = [_swept_panel(done, template, lrs) for template in templates]
    fixed = _fixed_panel(done, lrs)
    return Heatmap(tuple(lrs), tuple(panels + ([fixed] if fixed is not None else [])))


def cell_text(mean: float, diverged: int, runs: int) -> str:
    """A heatmap cell's text: its mean (``div`` when no seed has one), then ``k/n div`` when
    ``k`` of its ``n`` seeds diverged; empty for a cell without runs."""
    if runs == 0:
        return ""
    if math.isnan(mean):
        return "div"
    return f"{mean:.3g}" + (f"\n{diverged}/{runs} div" if diverged else "")
