"""``auto_warmup`` at every judged task's aggressive peak, on fresh seeds: do its wins hold?

At each of the 42 judged tasks' aggressive peaks (every split but dev; the first 21, the test
to the blind tasks', until stop 37) this runs ``benchmarks/fresh_seeds.py``'s rerun (20 seeds
the benchmark never used; the length the benchmark tuned there, ``auto_warmup``, its 40 % ramp
with every rule off, and with ``--peers`` benchmark methods as the benchmark runs them), then
prints each cell, a markdown table, the win
/ tie / loss of each way against the tuned length, its median ratio and steps ratio, and with
``--figure`` draws every ratio per cell. ``--every-cell-of TIER`` takes every cell of a tier's
tasks instead, each against the length its stored grid tuned there; ``--with-losses`` adds the
benchmark's other ``auto_warmup`` losses (:data:`LOSSES`). ``--variant NAME`` (with
``--controller EXPR`` or the rule in ``auto.py`` as it is now) runs a variant beside them and
counts it against the tuned length and against ``auto``, paired by seed: the design loop on
20 seeds; ``--families sgd,muon`` keeps the tasks trained with those optimizers (a variant that
only changes them). The cells and their tuned lengths
are those of the "discriminates" tables of ``docs/results.md`` (the stores that chose them do
not outlive a session). Each cell's store is its own and resumable; all of it took about 35 min
with 2 workers on the 2-core development machine.

    python benchmarks/aggressive_fresh.py [--seeds 20] [--workers 2] [--peers autowu,schedule-free]
        [--figure docs/figures/bench/aggressive-fresh-sixth.png] [--every-cell-of blind] [--with-losses]
        [--variant r20 --controller "auto_warmup(ramp=0.2)" --families sgd,muon]
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import Counter
from pathlib import Path

from fresh_seeds import LABELS, VARIANT, Rerun, peers_of, rerun, stored_grid

from preheat.lab.bench import plan
from preheat.lab.bench.tables import LETTER, ratio_text, ratio_value
from preheat.lab.figures import log_ticks
from preheat.plotting import agg_figure, png

CELLS = (  # (tier, task, aggressive peak, the length tuned there), in split order
    ("full", "mlp-mup-ce", 0.128, "linear 20%"),
    ("full", "cnn", 0.064, "linear 30%"),
    ("full", "post-ln", 0.004, "linear 50%"),
    ("full", "large-batch", 0.128, "linear 30%"),
    ("full", "gpt-muon", 0.128, "linear 5%"),
    ("full", "mlp-long", 0.128, "linear 50%"),
    ("holdout", "mlp-deep", 0.064, "linear 10%"),
    ("holdout", "cnn-mse-sgd", 0.8, "linear 10%"),
    ("holdout", "gpt-wide", 0.008, "linear 70%"),
    ("reserve", "gpt-deep", 0.008, "linear 70%"),
    ("reserve", "cnn-batch128", 0.064, "linear 20%"),
    ("reserve", "post-ln-small", 0.008, "linear 50%"),
    ("fresh", "post-ln-wide", 0.004, "linear 70%"),
    ("fresh", "mlp-small-batch", 0.064, "linear 20%"),
    ("fresh", "mlp-mse-adam", 0.032, "linear 5%"),
    ("novel", "mlp-muon", 0.032, "linear 2%"),
    ("novel", "mlp-wide", 0.032, "linear 20%"),
    ("novel", "gpt-batch32", 0.016, "linear 50%"),
    ("blind", "mlp-deep-sgd", 0.64, "linear 30%"),
    ("blind", "gpt-long", 0.016, "linear 30%"),
    ("blind", "cnn-small-batch", 0.032, "linear 50%"),
    ("sealed", "mlp-mup-sgd", 0.32, "linear 30%"),
    ("sealed", "post-ln-3x96", 0.004, "linear 50%"),
    ("sealed", "cnn-mse-adam", 0.064, "linear 70%"),
    ("vault", "cnn-sgd", 1.6, "linear 5%"),
    ("vault", "mlp-mup-deep", 0.064, "linear 30%"),
    ("vault", "gpt-ctx32", 0.016, "linear 50%"),
    ("cellar", "gpt-dropout", 0.016, "linear 70%"),
    ("cellar", "mlp-narrow-deep", 0.064, "linear 10%"),
    ("cellar", "cnn-sgd-wide", 0.8, "linear 90%"),
    ("attic", "mlp-sgd-small-batch", 0.32, "linear 10%"),
    ("attic", "mlp-wide-sgd", 0.04, "linear 50%"),
    ("attic", "cnn-sgd-small-batch", 0.4, "linear 20%"),
    ("loft", "cnn-wide", 0.064, "linear 30%"),
    ("loft", "mlp-narrow-deep-sgd", 0.32, "linear 5%"),
    ("loft", "post-ln-ctx32", 0.008, "linear 50%"),
    ("annex", "gpt-muon-ctx32", 0.128, "linear 50%"),
    ("annex", "gpt-narrow", 0.032, "linear 70%"),
    ("annex", "mlp-mup-deep-sgd", 0.64, "linear 50%"),
    ("crypt", "gpt-muon-deep", 0.128, "linear 5%"),
    ("crypt", "post-ln-muon", 0.128, "linear 5%"),
    ("crypt", "mlp-muon-mse", 0.032, "linear 10%"),
)
LOSSES = (  # the benchmark's other auto_warmup losses on seen tasks (river valley aside: no seeds)
    ("full", "mlp-mse-sgd", 0.04, "linear 10%"),
    ("holdout", "cnn-mse-sgd", 0.1, "linear 5%"),
    ("full", "gpt-muon", 0.016, "no warmup"),
)
COLOURS = ("#1f77b4", "#999999", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")  # auto, rules off, then the rest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="fresh seeds per cell, after the benchmark's")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--peers", default="", help="comma-separated benchmark methods to run too, e.g. autowu")
    parser.add_argument("--figure", default=None, help="a PNG path for the figure; default: none")
    parser.add_argument("--every-cell-of", default=None, metavar="TIER",
                        help="every cell of the tier's tasks instead (tuned lengths from --bench's stored grid)")
    parser.add_argument("--bench", default="runs/bench", help="the benchmark's stores, for --every-cell-of")
    parser.add_argument("--with-losses", action="store_true", help="add the benchmark's other auto losses")
    parser.add_argument("--variant", default=None, help="a new name for the rule as it is now (or --controller)")
    parser.add_argument("--controller", default=None, help="the variant's controller expression; default auto's")
    parser.add_argument("--families", default=None, help="comma-separated optimizer families kept: adam, sgd, muon")
    args = parser.parse_args()
    peers = peers_of(args.peers)
    cells = every_cell(args.every_cell_of, args.bench) if args.every_cell_of else CELLS
    cells = _kept([*cells, *(LOSSES if args.with_losses else ())], args.families)
    reruns = [rerun(tier, task, peak, seeds=args.seeds, tuned=tuned, peers=peers, variant=args.variant,
                    controller=args.controller, workers=args.workers)
              for tier, task, peak, tuned in cells]
    for done in reruns:
        print("\n".join(done.lines()))
    variants = () if args.variant is None else (VARIANT + args.variant,)
    labels = (*LABELS, *variants, *peers)
    print()
    print("| task | split | peak | tuned | " + " | ".join(labels) + " | auto's steps |")
    print("|---|---|---|---|" + "---|" * (len(labels) + 1))
    for done in reruns:
        steps, failed = done.steps("auto"), _tuned_failed(done)
        print(f"| {done.task.name} | {done.task.split} | {done.peak:g} | {done.tuned}{failed} | "
              + " | ".join(ratio_text(done.comparison(label), digits=4) if label in done.labels else "-"
                           for label in labels)
              + f" | {'-' if steps is None else f'{steps:.3g}'} |")
    print()
    for label in labels:
        ran = [done for done in reruns if label in done.labels]
        counts = Counter(LETTER[done.comparison(label).outcome] for done in ran)
        steps = [s for s in (done.steps(label) for done in ran) if s is not None]
        ratios = [r for r in (ratio_value(done.comparison(label)) for done in ran) if not math.isnan(r)]
        print(f"{label}: {counts['W']} / {counts['T']} / {counts['L']} (win / tie / loss) over {len(ran)} cells, "
              f"median ratio {_median(ratios)} (inf: a failed seed); median steps {_median(steps)} over the "
              f"{len(steps)} with a target")
    for label in variants:
        counts = Counter(LETTER[done.comparison(label, "auto").outcome] for done in reruns)
        print(f"{label} against auto, paired by seed: {counts['W']} / {counts['T']} / {counts['L']} over "
              f"{len(reruns)} cells")
    if args.figure:
        print(f"figure: {figure(reruns, labels, Path(args.figure))}")


def every_cell(tier: str, bench: str) -> list[tuple[str, str, float, str]]:
    """Every (tier, task, peak, tuned length) of ``tier``'s tasks, from ``bench``'s stored grid
    (its ladder as it grew)."""
    settings = plan.tier(tier)
    cells = []
    for task in plan.tasks_of(settings):
        grid = stored_grid(task, settings, bench, f"run preheat bench --tier {tier} --grid-only first")
        cells += [(tier, task.name, peak, grid.tuned[peak].method) for peak in grid.peaks if peak in grid.tuned]
    return cells


def _kept(cells: list[tuple[str, str, float, str]], families: str | None) -> list[tuple[str, str, float, str]]:
    """``cells`` without repeats, of the tasks trained with one of ``families`` (all if ``None``).

    Raises:
        SystemExit: naming a family that is none of adam, sgd and muon.
    """
    wanted = None if families is None else set(families.split(","))
    if wanted is not None and not wanted <= {"adam", "sgd", "muon"}:
        raise SystemExit(f"--families={families!r}: expected some of adam, sgd, muon")
    unique = {(task, peak): (tier, task, peak, tuned) for tier, task, peak, tuned in cells}
    return [cell for cell in unique.values()
            if wanted is None or plan.tasks_of(plan.tier(cell[0]), [cell[1]])[0].family in wanted]


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.3g}" if values else "-"


def _tuned_failed(done: Rerun) -> str:
    """``"; tuned fail 4/20"`` where the tuned length failed on some seeds, else ``""``."""
    failed = done.result.cells[done.tuned][done.peak].failed
    return f"; tuned fail {failed}/{len(done.seeds)}" if failed else ""


def figure(reruns: list[Rerun], labels: tuple[str, ...], path: Path) -> Path:
    """Each cell's paired ratio to the tuned length with its interval, per way (``labels``), one
    row per cell (log scale); a way with failed seeds is a cross at the right edge, with the
    count; a way that finished where the tuned length failed (too few seeds pair for a ratio)
    is a triangle at the left edge, with the tuned length's count."""
    fig = agg_figure(7.2, (0.15 + 0.1 * len(labels)) * len(reruns) + 1.0)
    axes = fig.add_subplot()
    ratios = [done.comparison(label).ratio for done in reruns for label in labels if label in done.labels]
    shown = [ratio for ratio in ratios if ratio is not None]
    low = min([0.1] + [ratio.low / 1.1 for ratio in shown])
    high = max([2.5] + [ratio.high * 1.1 for ratio in shown])
    spread = 0.6 / len(labels)
    colours, named = dict(zip(labels, COLOURS)), set()
    for row, done in enumerate(reruns):
        for index, label in enumerate(labels):
            if label not in done.labels:
                continue
            comparison, y = done.comparison(label), row + (index - (len(labels) - 1) / 2) * spread
            if comparison.cell.failed:
                axes.scatter([high], [y], marker="x", color=colours[label], clip_on=False, zorder=3)
                axes.annotate(f"fail {comparison.cell.failed}/{len(comparison.cell.scores)}", (high, y),
                              xytext=(6, -3), textcoords="offset points", fontsize=7, color=colours[label],
                              annotation_clip=False)
                continue
            ratio = comparison.ratio
            if ratio is None:
                tuned = comparison.baseline
                axes.scatter([low], [y], marker="<", color=colours[label], clip_on=False, zorder=3)
                axes.annotate(f"tuned fails {tuned.failed}/{len(tuned.scores)}", (low, y), xytext=(6, -3),
                              textcoords="offset points", fontsize=7, color=colours[label], annotation_clip=False)
                continue
            axes.errorbar([ratio.value], [y], xerr=[[ratio.value - ratio.low], [ratio.high - ratio.value]],
                          fmt="o", markersize=4, color=colours[label], capsize=2, lw=1,
                          label=None if label in named else label)
            named.add(label)
    axes.axvline(1.0, color="black", lw=0.8)
    axes.set_xscale("log")
    axes.set_xlim(low, high)
    log_ticks(axes.xaxis, low, high)
    axes.set_yticks(range(len(reruns)))
    axes.set_yticklabels([f"{d.task.name} {d.peak:g} ({d.task.split}{_tuned_failed(d)})" for d in reruns], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("final val loss / the tuned length's (paired by seed, 95 % interval; < 1 is better)")
    seeds = len(reruns[0].seeds)
    ways = "auto_warmup, its ramp alone" + (" and peers" if len(labels) > len(LABELS) else "")
    axes.set_title(f"{seeds} fresh seeds: {ways}", fontsize=10, pad=22)
    axes.grid(True, axis="x", which="major", alpha=0.3)
    handles = dict(zip(*reversed(axes.get_legend_handles_labels())))
    axes.legend([handles[label] for label in labels if label in handles], [label for label in labels if label in handles],
                loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=len(labels), fontsize=8, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png(fig, 110))
    return path


if __name__ == "__main__":
    main()
