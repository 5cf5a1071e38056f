"""The benchmark's Markdown: per-task tables, the discrimination check, the win/tie/loss matrix.

Every number comes from :mod:`preheat.lab.bench.analysis` (see its definitions). A ratio cell
reads ``0.97 [0.93, 1.01] T``: the method's scores over the tuned baseline's, geometric mean of
the per-seed ratios with its 95 % interval, and the outcome (``W`` win, ``T`` tie, ``L`` loss);
``fail k/n`` where k of n seeds failed (diverged, got stuck, or never reached the target).
"""

from __future__ import annotations

import math
import statistics
from typing import Sequence

from preheat.lab.bench.analysis import Cell, Comparison, TaskResult, compare
from preheat.lab.bench.plan import LEARNED_STEP, NO_WARMUP, Tier, method_labels, runs, tier
from preheat.lab.bench.tasks import SPLITS
from preheat.lab.stats import Ratio

LETTER = {"win": "W", "tie": "T", "loss": "L"}


def number(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits; ``-`` for None/NaN, ``inf`` for infinity."""
    if value is None or math.isnan(value):
        return "-"
    return "inf" if math.isinf(value) else f"{value:.{digits}g}"


def mean_text(cell: Cell | None) -> str:
    """``mean ± half-width`` of a cell's scores, or how many seeds failed."""
    if cell is None or not cell.scores:
        return "-"
    if cell.failed:
        return f"fail {cell.failed}/{len(cell.scores)}"
    half = cell.half_width
    return number(cell.mean) + ("" if math.isnan(half) else f" ± {number(half, 2)}")


def ratio_text(comparison: Comparison | None, digits: int = 3) -> str:
    """``0.97 [0.93, 1.01] T`` (see the module docstring), to ``digits`` significant digits;
    ``-`` without a comparison."""
    if comparison is None or comparison.outcome is None:
        return "-"
    letter = LETTER[comparison.outcome]
    cell = comparison.cell
    if cell.failed:
        return f"fail {cell.failed}/{len(cell.scores)} {letter}"
    ratio = comparison.ratio
    if ratio is None:
        return letter
    return f"{interval_text(ratio, digits)} {letter}"


def interval_text(ratio: Ratio, digits: int = 3) -> str:
    """``0.97 [0.93, 1.01]``: a paired ratio and its interval, to ``digits`` significant digits."""
    return f"{ratio.value:.{digits}g} [{ratio.low:.{digits}g}, {ratio.high:.{digits}g}]"


def ratio_value(comparison: Comparison) -> float:
    """The comparison's ratio as the medians count it: ``inf`` when a seed of the method failed,
    NaN when no ratio could be formed (fewer than two paired seeds finished)."""
    if comparison.cell.failed:
        return math.inf
    return comparison.ratio.value if comparison.ratio else math.nan


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def task_section(result: TaskResult, steps: int, seeds: int, command: str, figure: str | None) -> str:
    """One task's section: what it is, the tuned baseline per peak, every method's ratios."""
    task = result.task
    scored = ("final validation loss" if task.score == "loss"
              else f"updates to validation loss {task.target:g} (interpolated)")
    lines = [f"### {task.name} ({task.split})", "",
             f"{task.what}. {steps} updates, {seeds} seeds; score: {scored}; peak LRs "
             + ", ".join(f"{p:g}" for p in result.peaks) + ".", ""]
    rows = []
    for peak in result.peaks:
        tuned, none = result.tuned.get(peak), result.cells.get(NO_WARMUP, {}).get(peak)
        rows.append([f"{peak:g}", tuned.method if tuned else "-", mean_text(tuned), mean_text(none),
                     ratio_text(result.compare(none) if none else None)])
    lines += _table(["peak LR", "tuned warmup", "tuned score", "no warmup", "no warmup / tuned"], rows)
    best = result.best_tuned
    if best is not None:
        lines += ["", f"Tuned baseline's best over (peak, warmup): {best.method} at {best.peak_lr:g}, "
                      f"{mean_text(best)}."]
    header = ["method"] + [f"{p:g}" for p in result.peaks] + ["best / tuned best", "stable to", "steps", "ms/upd"]
    rows = []
    for method in result.methods:
        if method in LEARNED_STEP:
            continue
        cells = result.cells[method]
        ratios = [ratio_text(result.compare(cells[p])) if p in cells else "-" for p in result.peaks]
        own_best = result.best_cell(method)
        best_vs = ratio_text(None if own_best is None or best is None else compare(own_best, best))
        steps_ratios = [r for r in (result.steps_ratio(c) for c in cells.values()) if r is not None]
        rows.append([method] + ratios + [best_vs, number(result.largest_stable(method), 3),
                                         number(statistics.median(steps_ratios), 3) if steps_ratios else "-",
                                         number(result.ms_per_update(method), 3)])
    lines += ["", "Each method over the tuned baseline at the same peak LR (lower is better):", ""]
    lines += _table(header, rows)
    learned = [(m, result.cells[m][1.0]) for m in LEARNED_STEP if m in result.cells and 1.0 in result.cells[m]]
    if learned:
        lines += ["", "Optimizers that learn their step size (no peak LR; multiplier 1, cosine decay) over "
                      "the tuned baseline's best:", ""]
        lines += _table(["optimizer", "score", "/ tuned best", "ms/upd"],
                        [[m, mean_text(c), ratio_text(result.compare(c)), number(result.ms_per_update(m), 3)]
                         for m, c in learned])
    if figure:
        lines += ["", f"![{task.name}: score over peak LR]({figure})"]
    lines += ["", f"`{command}`"]
    return "\n".join(lines)


def discrimination(results: Sequence[TaskResult]) -> str:
    """Per task: no warmup against the tuned baseline at the aggressive peak, and whether the
    task discriminates (no warmup loses there)."""
    rows = []
    for result in results:
        peak = result.aggressive_peak()
        none = result.cells.get(NO_WARMUP, {}).get(peak) if peak is not None else None
        comparison = result.compare(none) if none is not None else None
        verdict = "yes" if comparison is not None and comparison.outcome == "loss" else "no"
        tuned = result.tuned.get(peak) if peak is not None else None
        rows.append([result.task.name, result.task.split, number(peak, 3),
                     f"{tuned.method}: {mean_text(tuned)}" if tuned else "-", mean_text(none),
                     ratio_text(comparison), verdict])
    return "\n".join(_table(["task", "split", "aggressive peak", "tuned", "no warmup", "no warmup / tuned",
                             "discriminates"], rows))


def matrix(results: Sequence[TaskResult], methods: Sequence[str] | None = None) -> str:
    """Win/tie/loss counts of every method (or of ``methods``, the linear grid's labels
    allowed) against the tuned baseline, per task (over its peak LRs), the totals per split and,
    per split but dev, the median ratio over its cells."""
    methods = list(methods or dict.fromkeys(m for r in results for m in r.methods))
    splits = splits_of(results)
    reported = [split for split in splits if split != "dev"]
    header = (["method"] + [r.task.name for r in results] + [f"{split} W/T/L" for split in splits]
              + [f"{split} median ratio" for split in reported])
    rows = []
    for method in methods:
        counts = wtl_by_split(results, method)
        per_task, ratios = [], {split: [] for split in reported}
        for result in results:
            comparisons = result.comparisons(method)
            per_task.append(_wtl(comparisons) if comparisons else "-")
            if result.task.split in ratios:
                ratios[result.task.split] += [ratio_value(c) for c in comparisons]
        medians = []
        for split in reported:
            finite = [r for r in ratios[split] if not math.isnan(r)]
            medians.append(number(statistics.median(finite), 3) if finite else "-")
        rows.append([method] + per_task + [counts[split] for split in splits] + medians)
    return "\n".join(_table(header, rows))


def splits_of(results: Sequence[TaskResult]) -> list[str]:
    """The splits of the results' tasks, in :data:`~preheat.lab.bench.tasks.SPLITS` order."""
    present = {result.task.split for result in results}
    return [split for split in SPLITS if split in present]


def _wtl(comparisons: Sequence[Comparison]) -> str:
    return "/".join(str(sum(c.outcome == o for c in comparisons)) for o in ("win", "tie", "loss"))


def wtl_by_split(results: Sequence[TaskResult], method: str) -> dict[str, str]:
    """``W/T/L`` of ``method`` against the tuned baseline over every cell of each split of the
    results' tasks (:func:`splits_of`; ``-`` for a split without a compared cell)."""
    found = {split: [c for r in results if r.task.split == split for c in r.comparisons(method)]
             for split in splits_of(results)}
    return {split: _wtl(comparisons) if comparisons else "-" for split, comparisons in found.items()}


def document(results: Sequence[TaskResult], settings: Tier, figures: dict[str, str], footer: str) -> str:
    """The whole Markdown of a benchmark run: discrimination, the win/tie/loss matrix, then a
    section per task (``figures``: task name -> figure path, relative to the document)."""
    parts = ["## Does each task discriminate?", "", discrimination(results), "",
             "## Against the tuned linear warmup: win / tie / loss per task (over its peak LRs)", "",
             matrix(results), "", "## Per task", ""]
    for result in results:
        configs = runs(result.task, settings)
        size = "" if settings.size == tier(settings.name).size else f" --size {settings.size}"
        chosen = "".join(f" --methods '{m}'" for m in method_labels() if m in (settings.methods or ()))
        command = f"preheat bench --tier {settings.name}{size} --tasks {result.task.name}{chosen}"
        seeds = len({config.seed for config in configs})
        parts += [task_section(result, configs[0].steps, seeds, command, figures.get(result.task.name)), ""]
    parts.append(footer)
    return "\n".join(parts) + "\n"
