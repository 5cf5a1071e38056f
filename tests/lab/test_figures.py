"""The report's figures: what they show and how they are laid out, read from matplotlib.

The store below is a ``preheat compare --task digits --quick`` sweep (its 14 methods with --research, two peak
LRs, two seeds, 300 steps) with made-up records: each schedule records the LR its expression
gives, each controller a staircase with its decisions (a raise every 10 steps, holds between,
then the handover), and each method a loss curve that falls from 2.3 to its own final value.
``nars`` is the best, ``linear 20%`` the tuned baseline; ``no warmup`` diverges at the
aggressive peak LR and ``sharpness`` at both (no final loss).
"""

from __future__ import annotations

import colorsys
import dataclasses
import struct
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from preheat.adaptive import Decision
from preheat.lab import figure_data, figures
from preheat.lab.compare import comparison
from preheat.lab.config import RunConfig
from preheat.lab.figure_data import Curve, decision_marks, warmup_zoom, zoom_range
from preheat.lab.methods import FAMILIES
from preheat.lab.metrics import SweepMetrics, sweep_metrics
from preheat.lab.record import RunResult
from preheat.lab.report_figures import ReportFigure, family, method_looks, report_figures
from preheat.lab.store import DONE, Store
from preheat.lab.verdict import Verdict, verdict

STEPS = 300
FINAL = {"nars": 2.30, "linear 20%": 2.34, "wsd": 2.36, "untuned": 2.38, "smoothness": 2.40, "gi-adam": 2.42,
         "radam": 2.45, "exponential": 2.48, "catapult": 2.50, "persistent catapult": 2.52, "no warmup": 2.55,
         "linear 5%": 2.58, "sharpness": 2.60, "auto": 2.44}
STAIRS = 50  # a controller's warmup: a raise every 10 steps up to here, then the handover


CONTROLLERS = ("nars", "smoothness", "sharpness", "catapult", "persistent catapult", "auto")


def _name(config: RunConfig) -> str:
    """The method's name here, from what the run does (whatever compare labels it)."""
    if config.controller is not None:
        name = config.controller.split("_", 1)[0]
        return f"persistent {name}" if "persistent=True" in config.controller else name
    if config.optimizer.startswith(("radam", "giadam")):
        return "gi-adam" if config.optimizer.startswith("gi") else "radam"
    if config.warmup is not None:
        return "no warmup" if config.warmup == 0 else f"linear {round(100 * config.warmup / STEPS)}%"
    return next(name for name in ("exponential", "wsd", "untuned") if config.schedule.startswith(name))


def _lr(config: RunConfig) -> tuple[np.ndarray, list[Decision]]:
    """LR / peak LR per step and the controller's decisions (none for a schedule): a staircase
    from a start of its own."""
    steps = np.arange(STEPS)
    if config.controller is None:
        return np.asarray(config.resolved_schedule()(steps), dtype=float), []
    start = 0.1 + 0.03 * CONTROLLERS.index(config.label)
    level = np.minimum(start + 0.18 * (steps // 10), 1.0)
    after = 0.5 * (1 + np.cos(np.pi * (steps - STAIRS) / (STEPS - STAIRS)))
    multiplier = np.where(steps < STAIRS, level, after)
    decisions = [Decision(step=t, multiplier=float(level[t]) if t < STAIRS else 1.0,
                          action="handover" if t == STAIRS else ("raise" if t % 10 == 0 else "hold"), reason="")
                 for t in range(1, STAIRS + 1)]
    return multiplier, decisions


def _result(config: RunConfig) -> RunResult:
    final = FINAL[config.label] + 0.01 * config.seed + (0.05 if config.peak_lr < 0.01 else 0.0)
    diverged = config.label == "sharpness" or (config.label == "no warmup" and config.peak_lr > 0.01)
    n = 40 if diverged else STEPS
    steps = np.arange(n)
    loss = final + (9.0 - final) * np.exp(-steps / 8.0) + 0.005 * np.sin(steps)
    if diverged:
        loss[-1] = 80.0
    multiplier, decisions = _lr(config)
    result = RunResult(status="diverged" if diverged else "finished", wall_time=1.0, chance_accuracy=0.1,
                       decisions=decisions)
    result.steps = {"step": list(map(float, steps)), "lr": list(config.peak_lr * multiplier[:n]),
                    "train_loss": list(loss), "train_accuracy": [0.9] * n, "grad_norm": [1.0] * n,
                    "update_norm": [0.01] * n}
    evals = steps[::5]
    result.evals = {"step": list(map(float, evals)), "val_loss": list(loss[::5] + 0.02),
                    "val_accuracy": [0.5] * evals.size}
    return result


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    configs = [c.model_copy(update={"label": _name(c)}) for c in comparison("digits", quick=True, seeds=2, steps=STEPS,
                                                                           research=True)]
    assert sorted({c.label for c in configs}) == sorted(FINAL)
    store = Store(tmp_path_factory.mktemp("compare"))
    store.add(configs)
    for config in configs:
        store.save(config, _result(config))
    yield store
    store.close()


@pytest.fixture(scope="module")
def metrics(store: Store) -> SweepMetrics:
    return sweep_metrics(store)


@pytest.fixture(scope="module")
def judged(metrics: SweepMetrics) -> Verdict:
    return verdict(metrics)


@pytest.fixture(scope="module")
def drawn(store: Store, metrics: SweepMetrics, judged: Verdict) -> dict[str, Any]:
    """What the LR and loss figures are drawn from: looks, LR curves, zoom, loss panels."""
    done = [r for r in metrics.runs if r.status in DONE]
    representatives = figure_data.representative_runs(done, metrics.ranking)
    curves = figure_data.lr_curves(store, metrics.ranking, representatives)
    return {"looks": method_looks(metrics.ranking, representatives, judged), "curves": curves,
            "zoom": warmup_zoom(curves, STEPS), "done": done,
            "panels": figure_data.loss_panels(store, done, metrics.ranking, "val")}


def _overlaps(figure: Any) -> list[str]:
    """Every (legend, axes) pair whose window extents intersect, after the layout is done."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legends = list(figure.legends) + [a.get_legend() for a in figure.axes if a.get_legend() is not None]
    assert legends
    return [f"legend {i} over axes {j}" for i, legend in enumerate(legends)
            for j, axes in enumerate(figure.axes)
            if legend.get_window_extent(renderer).overlaps(axes.get_window_extent(renderer))]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# ---- the store is what it says -------------------------------------------------------------------


def test_the_sweep_has_14_methods_a_winner_a_baseline_and_a_method_without_loss(
        metrics: SweepMetrics, judged: Verdict) -> None:
    assert len(metrics.ranking) == 14
    assert judged.best.method == "nars" and judged.baseline.method == "linear 20%"
    assert metrics.ranking[-1].method == "sharpness" and metrics.ranking[-1].best_peak_lr is None


# ---- the LR figure ---------------------------------------------------------------------------


def test_no_legend_overlaps_the_warmup_or_any_axes_of_the_lr_figure(drawn: dict[str, Any]) -> None:
    figure = figures.draw_lr(drawn["curves"], STEPS, drawn["zoom"], drawn["looks"])
    warmup, whole = figure.axes
    assert drawn["zoom"] is not None and warmup.get_xlim() == (0, drawn["zoom"])
    assert drawn["zoom"] >= STAIRS  # the staircases end inside the zoomed panel
    assert whole.get_xlim()[1] == STEPS - 1
    assert _overlaps(figure) == []
    (legend,) = figure.legends
    names = {text.get_text() for text in legend.get_texts()}
    assert {look.name for look in drawn["looks"].values()} <= names  # all 14 methods in it


def test_a_figure_the_size_of_the_page(store: Store, metrics: SweepMetrics, judged: Verdict) -> None:
    drawn = report_figures(store, metrics, judged)
    assert [f.stem for f in drawn] == ["final_loss", "lr", "train_loss", "val_loss", "stability"]
    for figure in drawn:
        width, _ = _png_size(figure.png)
        assert 500 <= width <= 1100, (figure.stem, width)  # shown at its size on a 1100 px page


def test_no_legend_overlaps_the_axes_of_the_loss_and_final_loss_figures(
        drawn: dict[str, Any], metrics: SweepMetrics, judged: Verdict) -> None:
    rows = figure_data.final_rows(drawn["done"], metrics.ranking)
    for figure in (figures.draw_loss(drawn["panels"], drawn["looks"], "val"),
                   figures.draw_final(rows, drawn["looks"], judged.best.interval)):
        assert _overlaps(figure) == []


def test_decisions_are_marked_where_the_controller_changed_the_lr(drawn: dict[str, Any]) -> None:
    nars = next(c for c in drawn["curves"] if c.method == "nars")
    assert nars.marks is not None and nars.warmup_end == STAIRS
    assert nars.marks.x.tolist() == [10, 20, 30, 40, 50]  # the raises and the handover; no hold
    assert nars.marks.action == ("raise",) * 4 + ("handover",)
    assert np.allclose(nars.marks.y, np.interp(nars.marks.x, nars.x, nars.y))
    assert all(c.marks is None for c in drawn["curves"] if c.method in ("wsd", "no warmup"))
    figure = figures.draw_lr(drawn["curves"], STEPS, drawn["zoom"], drawn["looks"])
    color = drawn["looks"]["nars"].color
    for axes in figure.axes:  # on its line, in its colour, in both panels
        dots = [line for line in axes.get_lines() if line.get_marker() == "o" and line.get_color() == color]
        assert [line.get_xdata().tolist() for line in dots] == [[10, 20, 30, 40]]


def test_a_ramp_raised_every_update_is_one_mark() -> None:
    decisions = [Decision(step=t, multiplier=t / 10, action="raise", reason="") for t in range(1, 10)]
    decisions += [Decision(step=10, multiplier=1.0, action="handover", reason="")]
    x = np.arange(20.0)
    marks = decision_marks(decisions, x, np.minimum(x / 10, 1.0))
    assert marks.x.tolist() == [1, 10] and marks.action == ("raise", "handover")
    assert marks.y.tolist() == [0.1, 1.0]


def test_the_warmup_panel_covers_the_warmups_that_end_early() -> None:
    x = np.arange(300.0)
    ramp = lambda w: Curve("m", "m", x, np.minimum((x + 1) / w, 1.0), warmup_end=w - 1)  # noqa: E731
    flat = Curve("flat", "flat", x, np.ones(300), warmup_end=0.0)
    assert warmup_zoom([ramp(60), flat], 300) == 65  # a tenth more than the latest warmup
    assert warmup_zoom([ramp(60), ramp(270), flat], 300) == 65  # a warmup of most of the run: not zoomed on
    assert warmup_zoom([ramp(200)], 300) is None  # the whole run shows it
    assert warmup_zoom([flat], 300) is None
    assert figure_data.warmup_end(x, np.minimum((x + 1) / 60, 1.0)) == 58  # the first step at 98% of the peak


# ---- colours and emphasis ---------------------------------------------------------------------


def _hue_group(color: str) -> str:
    hue, saturation, _ = colorsys.rgb_to_hsv(*to_rgb(color))
    hue *= 360
    if saturation < 0.1:
        return "grey"
    if 180 <= hue <= 250:
        return "blue"
    if 75 <= hue < 175:
        return "green"
    if 45 <= hue < 70:
        return "olive"
    if hue < 45 or hue > 260:
        return "orange-red-purple"
    return "other"


HUES = {"no warmup": "grey", "schedule": "blue", "optimizer": "green", "adaptive": "orange-red-purple",
        "peer": "olive"}


def test_each_family_has_one_hue_group_and_families_differ() -> None:
    assert set(figures.FAMILY_COLORS) == set(FAMILIES) == set(HUES)
    for name, palette in figures.FAMILY_COLORS.items():
        assert {_hue_group(c) for c in palette} == {HUES[name]}, name
        assert len(set(palette)) == len(palette)


def test_methods_are_coloured_by_family(store: Store, drawn: dict[str, Any], metrics: SweepMetrics) -> None:
    looks = drawn["looks"]
    families = {look.family for look in looks.values()}
    assert families == {"no warmup", "schedule", "optimizer", "adaptive"}
    assert looks["no warmup"].family == "no warmup" and looks["wsd"].family == "schedule"
    assert looks["radam"].family == "optimizer" and looks["nars"].family == "adaptive"
    for look in looks.values():
        assert _hue_group(look.color) == HUES[look.family]
    assert len({(look.color, look.dash) for look in looks.values()}) == 14  # every method its own
    # within a family, shades in rank order: the family's best gets its first colour
    best_schedule = next(r.method for r in metrics.ranking if looks[r.method].family == "schedule")
    assert looks[best_schedule].color == figures.FAMILY_COLORS["schedule"][0]


def test_a_family_with_more_methods_than_colours_repeats_them_dashed() -> None:
    methods = [(f"s{i}", f"s{i}", "schedule") for i in range(8)]
    looks = figures.looks(methods)
    palette = figures.FAMILY_COLORS["schedule"]
    assert [looks[f"s{i}"].dash for i in range(8)] == ["-"] * len(palette) + ["--"] * (8 - len(palette))
    with pytest.raises(ValueError, match="family='mystery' is invalid"):
        figures.looks([("m", "m", "mystery")])


def test_the_winner_and_the_baseline_are_thicker_and_on_top(drawn: dict[str, Any]) -> None:
    looks = drawn["looks"]
    assert {m for m, look in looks.items() if look.emphasised} == {"nars", "linear 20%"}
    assert looks["nars"].name.endswith("(lowest loss)")  # two seeds, but not a winner beyond noise
    assert looks["linear 20%"].name.endswith("(baseline)")
    figure = figures.draw_loss(drawn["panels"], looks, "val")
    for axes in figure.axes:
        lines = {line.get_label(): line for line in axes.get_lines() if not line.get_label().startswith("_")}
        bold = [lines[looks[m].name] for m in ("nars", "linear 20%")]
        others = [line for name, line in lines.items() if name not in {b.get_label() for b in bold}]
        assert others and min(b.get_linewidth() for b in bold) > max(o.get_linewidth() for o in others)
        assert min(b.get_zorder() for b in bold) > max(o.get_zorder() for o in others)


def test_equal_lr_curves_are_drawn_in_turns_of_dashes(drawn: dict[str, Any]) -> None:
    """no warmup, RAdam, GI-Adam and the catapults' made-up LR are cosine decays from the peak."""
    curves = drawn["curves"]
    groups = [[curves[i].method for i in g] for g in figure_data.coinciding(curves) if len(g) > 1]
    assert sorted(map(sorted, groups)) == [["gi-adam", "no warmup", "radam"]]
    figure = figures.draw_lr(curves, STEPS, drawn["zoom"], drawn["looks"])
    dashed = {line.get_label() for line in figure.axes[0].get_lines() if line.get_linestyle() == "--"}
    assert dashed == {drawn["looks"][m].name for m in ("radam", "no warmup")}  # the first, gi-adam, solid


# ---- the loss panels' y range -------------------------------------------------------------------


def test_the_y_range_spans_the_late_losses_and_leaves_out_early_and_diverged_ones() -> None:
    x = np.arange(100.0)
    good = Curve("good", "good", x, 2.3 + 8.0 * np.exp(-x / 5))  # 10.3 at step 0
    worst = Curve("worst", "worst", x, 2.6 + 0.2 * np.exp(-x / 30))  # late: 2.6 .. 2.64
    blown = Curve("blown", "blown", x[:40], np.linspace(3.0, 60.0, 40), diverged=True)
    (low, high), log = zoom_range([good, worst, blown])
    assert not log
    assert low <= good.y.min() and low > good.y.min() - 0.05  # from the lowest curve
    late = worst.y[x >= 66]  # the last third
    assert high >= late.max() and high < late.max() + 0.1  # a little above the worst late values
    assert high < worst.y.max() and high < good.y[0] and high < blown.y.min()  # early and diverged: off the top
    assert figure_data.clipped([good, worst, blown], (low, high))
    assert not figure_data.clipped([worst], (low, 3.0))


def test_a_wide_range_is_log_and_all_diverged_falls_back_to_the_starts() -> None:
    x = np.arange(50.0)
    (low, high), log = zoom_range([Curve("a", "a", x, 0.05 + 2.0 * np.exp(-x / 5)),
                                   Curve("b", "b", x, 0.5 + 2.0 * np.exp(-x / 5))])
    assert log and low < 0.05 and 0.5 < high < 0.75
    blown = Curve("c", "c", x, np.linspace(2.0, 1e6, 50), diverged=True)
    (low, high), log = zoom_range([blown])
    assert low < 2.0 and 4.0 < high < 5.0  # at most twice the highest start
    assert zoom_range([Curve("n", "n", x, np.full(50, np.nan))]) == (None, False)


def test_the_drawn_panels_are_zoomed_and_mark_what_is_cut_off(drawn: dict[str, Any]) -> None:
    figure = figures.draw_loss(drawn["panels"], drawn["looks"], "val")
    for axes, panel in zip(figure.axes, drawn["panels"]):
        assert axes.get_ylim() == pytest.approx(panel.y_range)
        assert panel.clipped  # every curve starts at 9
        assert "higher losses off the top ↑" in [t.get_text() for t in axes.texts]
    aggressive = drawn["panels"][1]
    assert {m for _, m in aggressive.stops} == {"no warmup", "sharpness"}
    top = aggressive.y_range[1]
    assert top < 2.7  # the diverged curves (80 at the end) and the early losses are off the top


# ---- final val loss by method ----------------------------------------------------------------


def test_the_final_loss_figure_rows(drawn: dict[str, Any], metrics: SweepMetrics, judged: Verdict) -> None:
    rows = figure_data.final_rows(drawn["done"], metrics.ranking)
    assert [r.method for r in rows] == [r.method for r in metrics.ranking]
    best = rows[0]
    assert best.method == "nars" and best.seeds.tolist() == pytest.approx([2.32, 2.33], abs=0.005)
    assert best.interval == judged.best.interval and best.mean == pytest.approx(best.seeds.mean())
    lost = rows[-1]
    assert lost.lost and lost.diverged == lost.runs == 4 and lost.seeds.size == 0
    assert figures.final_text(lost) == "diverged (4/4 runs)"
    assert figures.final_text(best).startswith(f"{best.mean:.4g} ± ")
    figure = figures.draw_final(rows, drawn["looks"], judged.best.interval)
    axes = figure.axes[0]
    labels = [t.get_text() for t in axes.get_yticklabels()]
    assert labels[0] == drawn["looks"]["nars"].name and len(labels) == 14  # best at the top
    assert axes.get_ylim()[0] > axes.get_ylim()[1]
    band = [p for p in axes.patches if p.get_alpha() is not None]
    assert len(band) == 1 and band[0].get_x() == pytest.approx(judged.best.interval[0])
    right = [a for a in figure.axes[0].child_axes]
    assert [t.get_text() for t in right[0].get_yticklabels()][-1] == "diverged (4/4 runs)"


# ---- the report's figures ----------------------------------------------------------------------


def test_report_figures_in_page_order_with_captions(store: Store, metrics: SweepMetrics, judged: Verdict) -> None:
    drawn = report_figures(store, metrics, judged)
    assert all(isinstance(f, ReportFigure) and f.title and f.alt and f.caption for f in drawn)
    final, lr, train, val, _ = drawn
    assert "within noise" in final.caption and final.caption.count(". ") == 0  # one sentence
    assert "first" in lr.caption and "controller" in lr.caption and "dashes" in lr.caption
    assert "zoomed" in val.caption and "X on the top edge" in val.caption
    assert "nars" in lr.caption and "linear 20%" in lr.caption


def test_report_figures_of_a_store_without_done_runs(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.add(comparison("digits", quick=True, steps=STEPS, seeds=1)[:2])
    metrics = sweep_metrics(store)
    assert report_figures(store, metrics, verdict(metrics)) == []
    store.close()


def test_names_are_escaped_in_captions_and_drawn_as_plain_text(tmp_path: Path) -> None:
    """The best's name is broken mathtext: drawn as it is written, escaped in the captions."""
    no_warmup, linear = comparison("digits", quick=True, steps=STEPS, seeds=1)[:2]
    configs = [no_warmup.model_copy(update={"label": "<b>$x_$ & co"}), linear.model_copy(update={"label": "linear"})]
    store = Store(tmp_path)
    store.add(configs)
    for config, like in zip(configs, ["nars", "wsd"]):
        store.save(config, _result(config.model_copy(update={"label": like})))
    metrics = sweep_metrics(store)
    drawn = report_figures(store, metrics, verdict(metrics))
    assert len(drawn) == 5 and all("<b>" not in f.caption for f in drawn)
    assert ("Drawn thick: the lowest loss (&lt;b&gt;$x_$ &amp; co) and the tuned baseline (linear)"
            in drawn[1].caption)
    store.close()


def test_a_config_that_no_longer_parses_is_a_schedule(drawn: dict[str, Any]) -> None:
    run = next(r for r in drawn["done"] if r.method == "no warmup")
    assert family(run) == "no warmup"
    gone = RunConfig.model_construct(**{**run.config.model_dump(), "schedule": "gone_schedule()"})
    assert family(dataclasses.replace(run, config=gone)) == "schedule"


def test_report_figures_where_every_run_crashed_before_a_step(tmp_path: Path) -> None:
    configs = comparison("digits", quick=True, steps=STEPS)[:3]
    store = Store(tmp_path)
    store.add(configs)
    for config in configs:
        store.save(config, RunResult(status="failed", error="boom"))
    metrics = sweep_metrics(store)
    drawn = report_figures(store, metrics, verdict(metrics))
    assert [f.stem for f in drawn] == ["final_loss", "lr", "train_loss", "val_loss", "stability"]
    rows = figure_data.final_rows(list(metrics.runs), metrics.ranking)
    assert all(r.lost and figures.final_text(r) == "no final loss (crashed)" for r in rows)
    store.close()
