"""What the report's figures show, shaped with NumPy alone from the store and the metrics.

Which runs (a representative run per method), which curves (the LR each run recorded with its
controller's decisions, the smoothed training loss, the validation loss; means over seeds),
where the warmup region ends, each method's final val losses over seeds, which cells (the
stability heatmap's matrix over warmup x peak LR) and the y range of each loss panel.
:mod:`preheat.lab.figures` draws them; nothing here imports matplotlib or reads a config's
expressions.

The y range of a loss panel (:func:`zoom_range`) is zoomed to where the methods differ: from
the lowest value of any curve to a little (:data:`HEADROOM`) above the highest value that a
curve without a diverged seed takes in the late run (its steps from :data:`LATE` of the way
on). Early losses and diverged curves may run off the top; the panel says so (``clipped``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from preheat.adaptive import Decision
from preheat.lab.metrics import RankedMethod, RunMetrics
from preheat.lab.store import DONE, Store

SMOOTH = 40  # a training-loss curve is averaged over windows of len / SMOOTH steps
LEGEND = 40  # characters of a method's name in a legend (its tags come on top)
LATE = 2 / 3  # a loss panel's y range covers each non-diverged curve from this share of its steps on
HEADROOM = 0.08  # ... up to this share of the range above its highest late value
LOG_SPAN = 3.0  # a loss panel is drawn on a log scale when its range spans more than this factor
REACHED = 0.98  # a schedule's warmup ends where its multiplier first reaches this share of its highest
ZOOM = 0.6  # no zoomed warmup panel when the warmup region is this share of the run or more
SAME = 0.01  # LR / peak LR: two LR curves this close everywhere are drawn as one (dashed over each other)
CHANGES = ("raise", "lower", "backoff", "handover")  # the decisions that change the LR
FIXED = "methods not swept over warmup"  # the heatmap panel of runs without a warmup length field


@dataclass(frozen=True)
class Marks:
    """Where a controller changed the LR (see :func:`decision_marks`): the steps ``x``, the LR /
    peak LR its run recorded there ``y``, and each decision's ``action``."""

    x: np.ndarray
    y: np.ndarray
    action: tuple[str, ...]


@dataclass(frozen=True)
class Curve:
    """One line: its ``x`` and ``y``, the ``method`` it belongs to (its colour and legend entry)
    and its ``label`` (the method's title, shortened); an LR curve's controller decisions (``marks``, None for a schedule) and the step
    where its warmup ends (``warmup_end``); whether a seed of a loss curve ``diverged``."""

    method: str
    label: str
    x: np.ndarray
    y: np.ndarray
    marks: Marks | None = None
    warmup_end: float = 0.0
    diverged: bool = False


@dataclass(frozen=True)
class LossPanel:
    """One peak LR's panel: a curve per method (mean over seeds), the ``stops`` (step, method)
    where a seed diverged, the y range to show (:func:`zoom_range`; ``log`` scale when it spans
    more than :data:`LOG_SPAN`; None: leave it to matplotlib) and whether a value lies above it
    (``clipped``)."""

    peak_lr: float
    curves: tuple[Curve, ...]
    stops: tuple[tuple[float, str], ...]
    y_range: tuple[float, float] | None
    log: bool
    clipped: bool = False


@dataclass(frozen=True)
class FinalRow:
    """A ranked method's final val losses: each seed's (``seeds``, finite ones only) at its
    ranked warmup and best peak LR, their ``mean`` (NaN: none) and 95% ``interval`` (None: one
    seed), and how many of all its ``runs`` ``diverged``."""

    method: str
    seeds: np.ndarray
    mean: float
    interval: tuple[float, float] | None
    diverged: int
    runs: int

    @property
    def lost(self) -> bool:
        """No final loss to draw: every peak LR had a diverged (or crashed) seed."""
        return not math.isfinite(self.mean)


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
    """The LR each of ``runs`` (one per ranked method) recorded, divided by its peak LR, with
    its controller's :func:`decision_marks` and where its warmup ends (:func:`warmup_end`)."""
    curves = []
    for entry, run in zip(ranking, runs):
        recorded = store.steps(run.id)
        x, y = recorded["step"], recorded["lr"] / run.config.peak_lr
        decisions = store.decisions(run.id)
        marks = decision_marks(decisions, x, y) if decisions else None
        curves.append(Curve(run.method, short(entry.title, LEGEND), x, y, marks, warmup_end(x, y, decisions)))
    return curves


def decision_marks(decisions: Sequence[Decision], x: np.ndarray, y: np.ndarray) -> Marks:
    """The decisions that changed what a controller does to the LR: each ``raise``, ``lower``
    or ``backoff`` whose action differs from the decision before (one mark per run of equal
    actions: a ramp raised every update is one mark where it starts), and the ``handover``;
    at the LR / peak LR (``y`` over steps ``x``) recorded at its step. ``hold`` is never marked,
    nor a decision past the last recorded step."""
    last = x.max() if x.size else -math.inf
    kept = [d for i, d in enumerate(decisions) if d.action in CHANGES and d.step <= last
            and (i == 0 or d.action != decisions[i - 1].action or d.action == "handover")]
    steps = np.array([float(d.step) for d in kept])
    values = np.interp(steps, x, y) if x.size and steps.size else np.full(steps.size, np.nan)
    return Marks(steps, values, tuple(d.action for d in kept))


def warmup_end(x: np.ndarray, y: np.ndarray, decisions: Sequence[Decision] = ()) -> float:
    """Where a run's warmup ends: its controller's last decision (the handover), else the first
    step at which LR / peak LR ``y`` reaches :data:`REACHED` of its highest value (0 for a
    schedule that starts at its peak; 0 without a finite value)."""
    if decisions:
        return float(min(decisions[-1].step, x.max())) if x.size else 0.0
    finite = np.isfinite(y)
    if not finite.any():
        return 0.0
    top = y[finite].max()
    return float(x[np.argmax(finite & (y >= REACHED * top))])


def warmup_zoom(curves: Sequence[Curve], steps: int) -> int | None:
    """How many steps the LR figure's warmup panel shows: a tenth more than the latest
    :attr:`Curve.warmup_end` before :data:`ZOOM` of the run (a warmup that takes most of the
    run reads well in the whole run), at least 5% of the run and 10 steps. None where no
    warmup ends in there, or the span would be :data:`ZOOM` of the ``steps`` or more."""
    ends = [c.warmup_end for c in curves if 0 < c.warmup_end < ZOOM * steps]
    if not ends:
        return None
    span = max(math.ceil(1.1 * max(ends)), math.ceil(0.05 * steps), 10)
    return None if span >= ZOOM * steps else span


def coinciding(curves: Sequence[Curve], atol: float = SAME, rtol: float = 0.0) -> list[list[int]]:
    """The curves grouped by the values a figure cannot tell apart (the same steps, values
    within ``atol + rtol * |value|`` of each other, :data:`SAME` for LR / peak LR; NaN equal
    to NaN), each group in the order of ``curves``; groups in the order of their first curve."""
    groups: list[list[int]] = []
    for i, curve in enumerate(curves):
        for group in groups:
            first = curves[group[0]]
            if np.array_equal(first.x, curve.x) and np.allclose(first.y, curve.y, rtol=rtol, atol=atol,
                                                                 equal_nan=True):
                group.append(i)
                break
        else:
            groups.append([i])
    return groups


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


def _late(curve: Curve) -> np.ndarray:
    """The finite values of ``curve`` from :data:`LATE` of its steps on."""
    finite = np.isfinite(curve.y)
    if not finite.any():
        return curve.y[:0]
    first, last = curve.x[finite].min(), curve.x[finite].max()
    return curve.y[finite & (curve.x >= first + LATE * (last - first))]


def zoom_range(curves: Sequence[Curve]) -> tuple[tuple[float, float] | None, bool]:
    """A loss panel's y range (see the module docstring) and whether it is log scale: from the
    lowest finite value of any curve to :data:`HEADROOM` of the range above the highest late
    value of the curves that did not diverge (where every curve diverged: above the highest
    value, at most twice the highest start); 3% of the range below. Log scale (the margins in
    log space) when the range is positive and spans more than :data:`LOG_SPAN`. (None, False)
    when nothing is finite or the range is one value."""
    finite = [c.y[np.isfinite(c.y)] for c in curves]
    finite = [y for y in finite if y.size]
    if not finite:
        return None, False
    low = min(y.min() for y in finite)
    late = [y for y in (_late(c) for c in curves if not c.diverged) if y.size]
    if late:
        high = max(y.max() for y in late)
    else:
        high = min(max(y.max() for y in finite), 2.0 * max(y[0] for y in finite))
    if not high > low:
        return None, False
    log = low > 0 and high > LOG_SPAN * low
    a, b = (math.log(low), math.log(high)) if log else (low, high)
    a, b = a - 0.03 * (b - a), b + HEADROOM * (b - a)
    return ((math.exp(a), math.exp(b)) if log else (a, b)), log


def clipped(curves: Sequence[Curve], y_range: tuple[float, float] | None) -> bool:
    """Whether a finite value of a curve lies above ``y_range``."""
    if y_range is None:
        return False
    return any(bool(np.any(c.y[np.isfinite(c.y)] > y_range[1])) for c in curves)


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
            curves.append(Curve(entry.method, short(entry.title, LEGEND), x, y,
                                diverged=any(run.diverged for run in runs)))
    y_range, log = zoom_range(curves)
    return LossPanel(lr, tuple(curves), tuple(stops), y_range, log, clipped(curves, y_range))


def loss_panels(store: Store, done: Sequence[RunMetrics], ranking: Sequence[RankedMethod],
                kind: str) -> list[LossPanel]:
    """A panel per peak LR of the done runs, ascending; in each a curve per ranked method at its
    ranked warmup, the mean over its seeds of :func:`smooth` training losses (``kind="train"``)
    or of validation losses (``kind="val"``)."""
    lrs = sorted({r.config.peak_lr for r in done})
    return [_loss_panel(store, done, ranking, lr, kind) for lr in lrs]


def final_rows(done: Sequence[RunMetrics], ranking: Sequence[RankedMethod]) -> list[FinalRow]:
    """A :class:`FinalRow` per ranked method, in rank order, from the done runs."""
    rows = []
    for entry in ranking:
        runs = [r for r in done if r.method == entry.method]
        at = [r for r in runs if r.config.warmup == entry.warmup and r.config.peak_lr == entry.best_peak_lr]
        seeds = np.array([r.final_val_loss for r in at if math.isfinite(r.final_val_loss)])
        rows.append(FinalRow(entry.method, seeds, entry.final_val_loss_mean, entry.interval,
                             sum(r.diverged for r in runs), len(runs)))
    return rows


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
    return _heat_panel(FIXED, [short(m, 40) for m in methods], False, cells, lrs) if methods else None


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
