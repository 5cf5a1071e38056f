"""The report's figures, in page order, each with its section title, alt text and caption.

:func:`report_figures` is the glue between :mod:`preheat.lab.figure_data` (what a figure
shows) and :mod:`preheat.lab.figures` (drawing it), for :mod:`preheat.lab.report`:

- ``final_loss``: final val loss by method, a row per ranked method (best at the top), each
  seed a dot, the mean with its 95% interval, the best's interval shaded;
- ``lr``: the LR each method's representative run recorded, with a panel zoomed on the warmup
  and its controller's decisions marked;
- ``train_loss``, ``val_loss``: loss against step, a panel per peak LR, zoomed to where the
  methods differ;
- ``stability``: the heatmap of mean final val loss over peak LR x warmup.

Every figure colours a method by its family (:func:`preheat.lab.methods.describe`) and draws
the best method and the tuned baseline (:class:`~preheat.lab.verdict.Verdict`) thicker, on top.
Method names are drawn as plain text: a ``$`` in one is never read as matplotlib mathtext.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Sequence

from preheat.lab import figure_data, figures
from preheat.lab.figures import Look
from preheat.lab.methods import describe
from preheat.lab.metrics import RankedMethod, RunMetrics, SweepMetrics
from preheat.lab.store import DONE, Store
from preheat.lab.verdict import Verdict


@dataclass(frozen=True)
class ReportFigure:
    """One figure of the report: its file ``stem`` (``--figures`` writes ``stem.png``), its
    section ``title`` (plain text), the ``png`` bytes, its ``alt`` text (plain) and its
    ``caption`` (HTML, names escaped)."""

    stem: str
    title: str
    png: bytes
    alt: str
    caption: str


def report_figures(store: Store, metrics: SweepMetrics, verdict: Verdict) -> list[ReportFigure]:
    """The report's figures in page order, from the done runs; [] when there are none. Names
    are drawn as plain text (``text.parse_math`` False)."""
    from matplotlib import rc_context

    done = [r for r in metrics.runs if r.status in DONE]
    if not (metrics.ranking and done):
        return []
    with rc_context({"text.parse_math": False}):
        return _figures(store, metrics.ranking, done, verdict)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def family(run: RunMetrics) -> str:
    """The family of a run's method (:func:`preheat.lab.methods.describe`; ``schedule`` where its
    schedule no longer parses: the figures draw what the store holds)."""
    return describe(run.config).family


def tags(verdict: Verdict) -> dict[str, str]:
    """What the legends add to the emphasised methods' names: ``winner`` (no other method
    within noise over 2+ seeds) or ``lowest loss``, and ``baseline`` (the tuned baseline)."""
    out: dict[str, list[str]] = {}
    if verdict.best is not None:
        winner = verdict.seeds >= 2 and not verdict.tied
        out.setdefault(verdict.best.method, []).append("winner" if winner else "lowest loss")
    if verdict.baseline is not None:
        out.setdefault(verdict.baseline.method, []).append("baseline")
    return {method: f" ({', '.join(words)})" for method, words in out.items()}


def method_looks(ranking: Sequence[RankedMethod], representatives: Sequence[RunMetrics],
                 verdict: Verdict) -> dict[str, Look]:
    """How every figure draws each ranked method: its name in legends (its title, shortened,
    with :func:`tags`), its family's colour, thicker for the best and the baseline."""
    tagged = tags(verdict)
    methods = [(entry.method, figure_data.short(entry.title, figure_data.LEGEND) + tagged.get(entry.method, ""),
                family(run)) for entry, run in zip(ranking, representatives)]
    return figures.looks(methods, emphasised=tagged)


def _emphasis(verdict: Verdict) -> str:
    """The caption's sentence on the thick lines; empty when there are none."""
    best, base = verdict.best, verdict.baseline
    if base is not None and best is not None and base.method == best.method:
        named = [f"{_e(best.title)} (the lowest loss and the tuned baseline)"]
    else:
        named = ([f"the lowest loss ({_e(best.title)})"] if best is not None else []) + \
                ([f"the tuned baseline ({_e(base.title)})"] if base is not None else [])
    return f" Drawn thick: {' and '.join(named)}; colours by family." if named else ""


def _dashed(groups: Sequence[Sequence[figure_data.Curve]], kind: str) -> str:
    """The caption's sentence on dashed lines, where some curves of a panel are equal."""
    if not any(figures.overdrawn(curves, kind) for curves in groups):
        return ""
    what = "LR" if kind == "lr" else "loss"
    return f" Methods with the same {what} curve are drawn over each other in turns of dashes."


def _final(ranking: Sequence[RankedMethod], done: Sequence[RunMetrics], looks: dict[str, Look],
           verdict: Verdict) -> ReportFigure:
    rows = figure_data.final_rows(done, ranking)
    band = verdict.best.interval if verdict.best is not None else None
    if band is not None:
        caption = ("Each row is a method at its best peak LR, best at the top: dots are its seeds' final val "
                   "losses, the diamond their mean with its 95% interval, and a method whose interval "
                   "overlaps the shaded band (the best's interval) is within noise of the best.")
    else:
        caption = ("Each row is a method at its best peak LR, best at the top, its dot the final val loss "
                   "of its one seed (more seeds would give each a 95% interval and show which "
                   "differences are beyond noise).")
    return ReportFigure(
        "final_loss", "Final val loss by method", figures.final_figure(rows, looks, band),
        f"Dot plot of the final validation loss of {len(rows)} methods, one row each, best at the top", caption)


def _lr(store: Store, ranking: Sequence[RankedMethod], representatives: Sequence[RunMetrics],
        looks: dict[str, Look], verdict: Verdict) -> ReportFigure:
    curves = figure_data.lr_curves(store, ranking, representatives)
    steps = max(r.config.steps for r in representatives)
    zoom = figure_data.warmup_zoom(curves, steps)
    where = (f" The left panel shows the first {zoom} steps, where the warmups happen; the right one the "
             "whole run (the shaded part is the left panel)." if zoom else "")
    marks = (" Marks on a line are its controller's decisions: where it starts raising or lowering the "
             "LR, and where it hands over to its schedule." if any(c.marks is not None for c in curves) else "")
    caption = ("LR / peak LR that each method's representative run recorded (its best peak LR, lowest "
               "seed; a method swept over warmup at its best-ranked warmup)." + where + marks
               + _dashed([curves], "lr") + _emphasis(verdict))
    return ReportFigure(
        "lr", "Learning-rate schedules", figures.lr_figure(curves, steps, zoom, looks),
        f"Learning rate divided by peak LR against step for {len(curves)} methods"
        + (f", with a panel zoomed on the first {zoom} steps" if zoom else ""), caption)


_LOSS = {  # kind: (stem, section title, alt text, what a curve is)
    "train": ("train_loss", "Training loss", "Smoothed training loss",
              "Training loss (trailing mean over 1/40 of the run), mean over seeds"),
    "val": ("val_loss", "Validation loss", "Validation loss", "Validation loss at each evaluation, mean over seeds"),
}


def _loss(store: Store, ranking: Sequence[RankedMethod], done: Sequence[RunMetrics], looks: dict[str, Look],
          verdict: Verdict, kind: str) -> ReportFigure:
    stem, title, alt, what = _LOSS[kind]
    panels = figure_data.loss_panels(store, done, ranking, kind)
    caption = (f"{what}; one panel per peak LR, one line per method (at its best-ranked warmup). The y axis "
               "is zoomed to where the methods differ: from the lowest curve to a little above the "
               "highest late-run loss (the last third of the run) of the methods that did not diverge, "
               "so early losses and diverged runs may run off the top; an X on the top edge marks where "
               "a seed diverged." + _dashed([p.curves for p in panels], "loss") + _emphasis(verdict))
    return ReportFigure(stem, title, figures.loss_figure(panels, looks, kind),
                        f"{alt} against step, one panel for each of {len(panels)} peak LRs, one line per method",
                        caption)


_HEATMAP_CAPTION = (
    "Mean final val loss of the seeds that did not diverge, per peak LR (x) and warmup "
    "length (y), one panel per template swept over warmup; the last panel (if any) has a "
    "row per method without a warmup length. Hatched cells: at least one seed diverged "
    "(k/n div; &ldquo;div&rdquo;: all did). Grey: no value.")


def _figures(store: Store, ranking: Sequence[RankedMethod], done: Sequence[RunMetrics],
             verdict: Verdict) -> list[ReportFigure]:
    representatives = figure_data.representative_runs(done, ranking)
    looks = method_looks(ranking, representatives, verdict)
    drawn = [_final(ranking, done, looks, verdict), _lr(store, ranking, representatives, looks, verdict),
             _loss(store, ranking, done, looks, verdict, "train"), _loss(store, ranking, done, looks, verdict, "val")]
    heatmap = figure_data.heatmap(done)
    if heatmap is not None:
        drawn.append(ReportFigure(
            "stability", "Stability over peak LR and warmup", figures.heatmap_figure(heatmap),
            f"Heatmap of mean final validation loss over peak LR and warmup length, {len(heatmap.panels)} panels",
            _HEATMAP_CAPTION))
    return drawn
