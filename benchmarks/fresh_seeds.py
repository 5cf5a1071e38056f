"""One benchmark cell again on fresh seeds: is ``auto_warmup``'s loss there the schedule or the seeds?

Where the benchmark scores ``auto_warmup`` a loss against the linear warmup tuned at a peak, this
reruns the cell (the task's own config at that peak) on seeds the benchmark did not use, three
ways: the tuned length (read from the tier's stored grid), ``auto`` as the benchmark runs it, and
``rules off``: ``auto_warmup`` with every rule off (its ramp alone: the linear warmup over 40 %
of the run, shifted by one update). It prints each against the tuned length with the
benchmark's statistics (paired by seed, 95 % interval, W/T/L) and its steps ratio (updates to
1.1 x the tuned length's mean final loss, over the tuned length's). A systematic cost would
show as a loss on the fresh seeds too; a tie says the benchmark's loss came from its seeds.
(The tuned length was chosen on the benchmark's seeds; on fresh ones it has no such edge, which
also makes this the fairer test of a win.) Without the tier's stored grid, give the tuned length
as ``--tuned`` (the benchmark's table names it). ``benchmarks/aggressive_fresh.py`` runs it at
every judged task's aggressive peak.

    python benchmarks/fresh_seeds.py --tier novel --task gpt-batch32 --peak 0.002 [--seeds 20]
    python benchmarks/fresh_seeds.py --tier novel --task gpt-batch32 --peak 0.002 --tuned "linear 50%"
    python benchmarks/fresh_seeds.py --tier blind --task gpt-long --peak 0.016 --peers autowu,schedule-free

``--peers`` runs benchmark methods too, as the benchmark runs them (those the task has).
``--variant NAME`` runs the rule in ``src/preheat/adaptive/auto.py`` as it is now (or
``--controller EXPR``) under the label ``auto NAME`` beside them, and prints its ratio to
``auto`` too, paired by seed: the design loop on 20 seeds (``docs/auto-warmup.md``). With the rule
edited, ``auto``'s own runs must be stored already (run the cell once before editing).

    python benchmarks/fresh_seeds.py --tier full --task gpt-muon --peak 0.016 --variant r20 --controller "auto_warmup(ramp=0.2)"
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from preheat.lab.bench import plan, runner
from preheat.lab.bench.analysis import Comparison, TaskResult, compare, load
from preheat.lab.bench.tables import interval_text, ratio_text
from preheat.lab.bench.tasks import BenchTask
from preheat.lab.config import RunConfig, check_expressions
from preheat.lab.store import DONE, NAME, Store, StoreError
from preheat.lab.sweep import run_sweep

RULES_OFF_LABEL = "rules off"
RULES_OFF = "auto_warmup(ramp=0.4, spike_limit=1e9, grad_limit=1e9, window=1.0, watch=0.0)"
LABELS = ("auto", RULES_OFF_LABEL)  # the two ways run beside the tuned length
VARIANT = "auto "  # a variant's label: this and its name


@dataclass(frozen=True)
class Rerun:
    """One cell rerun on fresh ``seeds``: its task, peak LR, the tuned length's label, the labels
    of the ways run beside it (:data:`LABELS`, then the peers the task has) and the runs, as the
    benchmark reads them."""

    task: BenchTask
    peak: float
    tuned: str
    seeds: range
    labels: tuple[str, ...]
    result: TaskResult

    def comparison(self, label: str, against: str | None = None) -> Comparison:
        """``label``'s cell against the tuned length's (or ``against``'s), paired by seed."""
        return compare(self.result.cells[label][self.peak], self.result.cells[against or self.tuned][self.peak])

    def steps(self, label: str) -> float | None:
        """``label``'s mean updates to 1.1 x the tuned length's mean loss over the tuned length's."""
        return self.result.steps_ratio(self.result.cells[label][self.peak])

    def lines(self) -> list[str]:
        """What the rerun says, one line per way."""
        reference = self.result.cells[self.tuned][self.peak]
        lines = [f"{self.task.name} at {self.peak:g}, seeds {self.seeds.start}-{self.seeds.stop - 1}, against the "
                 f"tuned {self.tuned} (mean {reference.mean:.4g}):"]
        for label in self.labels:
            steps = self.steps(label)
            lines.append(f"  {label}: {ratio_text(self.comparison(label), digits=4)} (mean "
                         f"{self.result.cells[label][self.peak].mean:.4g}); steps to the tuned loss: "
                         f"{'-' if steps is None else f'{steps:.3g}'}x"
                         + (f"; vs auto {versus(self.comparison(label, 'auto'))}" if label.startswith(VARIANT) else ""))
        return lines


def versus(comparison: Comparison) -> str:
    """A variant against ``auto``: the benchmark's ratio text, and where a seed failed, the ratio
    on the seeds both finished too (a seed that fails both ways hides no difference)."""
    text, ratio = ratio_text(comparison, digits=4), comparison.ratio
    if comparison.cell.failed and ratio is not None:
        text += f"; on the {ratio.seeds} seeds both finished {interval_text(ratio, digits=4)}"
    return text


def rerun(tier: str, task_name: str, peak: float, *, seeds: int = 20, tuned: str | None = None,
          peers: tuple[str, ...] = (), variant: str | None = None, controller: str | None = None,
          bench: str = "runs/bench", out: str | None = None, workers: int = 2, size: str | None = None) -> Rerun:
    """Run (or read back) ``task_name``'s cell at ``peak`` on ``seeds`` seeds after the
    benchmark's: the tuned length (``tuned``, or the one ``bench``'s stored grid chose), ``auto``,
    rules off, with ``variant`` the rule as it is now (or ``controller``, a controller
    expression) labelled ``auto VARIANT``, and the ``peers`` (benchmark labels, as the benchmark
    runs them; those the task has), into ``out`` (default ``runs/fresh-seeds/TASK-PEAK``), the
    task at the tier's size (or ``size``)."""
    if controller is not None and variant is None:
        raise SystemExit(f"--controller={controller!r} needs --variant: the name its runs are stored under")
    fixed = [peer for peer in peers if peer in plan.LEARNED_STEP]
    if fixed:
        raise SystemExit(f"--peers={','.join(peers)}: {', '.join(fixed)} takes no peak LR; expected methods "
                         f"that warm up a peak, e.g. autowu, schedule-free")
    settings = plan.tier(tier, size=size, methods=["auto", *peers])
    [task] = plan.tasks_of(settings, [task_name])
    cell = plan.runs(task, settings, (peak,))
    tuned = tuned or stored_tuned(task, settings, peak, bench)
    if tuned not in {plan.linear_label(f) for f in (*settings.grid, *plan.EXTENSION)}:
        raise SystemExit(f"--tuned={tuned!r} is not a length of the grid; expected e.g. "
                         f"{plan.linear_label(max(settings.grid))!r}")
    first = {config.label: config for config in cell if config.seed == 0}
    auto = first["auto"]
    baseline = auto.model_copy(update={"label": tuned, "controller": None, "note": None,
                                       **plan.linear_fields(plan.warmup_fraction(tuned), auto.steps)})
    rules_off = auto.model_copy(update={"label": RULES_OFF_LABEL, "controller": RULES_OFF,
                                        "note": "auto_warmup with every rule off: its ramp alone"})
    variants = []
    if variant is not None:
        varied = auto.model_copy(update={
            "label": VARIANT + variant, "controller": controller or auto.controller,
            "note": f"auto_warmup variant {variant}: {controller or 'the rule in auto.py as it is now'}"})
        try:
            check_expressions(varied)
        except ValueError as error:
            raise SystemExit(f"--controller={controller!r}: {error}") from error
        variants.append(varied)
    ways = [baseline, auto, rules_off, *variants, *(first[peer] for peer in peers if peer in first)]
    start = max(config.seed for config in cell) + 1
    fresh = range(start, start + seeds)
    configs = [way.model_copy(update={"seed": seed}) for seed in fresh for way in ways]
    out = out or f"runs/fresh-seeds/{task.name}-{peak:g}"
    if variant is not None and controller is None:
        _check_auto_stored(out, [config for config in configs if config.label == "auto"], variant)
    run_sweep(configs, out, workers=workers)
    labels = tuple(way.label for way in ways[1:])
    return Rerun(task, peak, tuned, fresh, labels, load(task, out, {config.fingerprint() for config in configs}))


def _check_auto_stored(out: str, autos: list[RunConfig], variant: str) -> None:
    """A variant run as the rule in ``auto.py`` is now (no ``--controller``) is an edited rule,
    and ``auto``'s runs computed now would be that rule's too: they must be in ``out`` already.

    Raises:
        SystemExit: naming the variant, the store and the seeds whose ``auto`` run is missing.
    """
    stored = Store(out, read_only=True).runs() if (Path(out) / NAME).is_file() else []
    done = {run.id for run in stored if run.status in DONE}
    missing = [config.seed for config in autos if config.fingerprint() not in done]
    if missing:
        raise SystemExit(f"--variant={variant!r} runs the rule in auto.py as edited, and {out} holds no "
                         f"auto run of seeds {missing[0]}-{missing[-1]}: computed now they would be the edited "
                         f"rule's too; run the cell once with the rule as committed (without --variant) first, "
                         f"or give the variant as --controller")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="full", help=f"the tier the task is in: {', '.join(plan.WHOLE_TIERS)}")
    parser.add_argument("--task", required=True)
    parser.add_argument("--peak", type=float, required=True, help="a peak LR of the task's ladder")
    parser.add_argument("--seeds", type=int, default=20, help="fresh seeds, after the benchmark's")
    parser.add_argument("--bench", default="runs/bench", help="the benchmark's stores, with the tier's grid")
    parser.add_argument("--tuned", default=None,
                        help="the tuned warmup at the peak, e.g. 'linear 50%%'; default: read from --bench")
    parser.add_argument("--peers", default="", help="comma-separated benchmark methods to run too, e.g. autowu")
    parser.add_argument("--variant", default=None, help="a new name for the rule as it is now (or --controller)")
    parser.add_argument("--controller", default=None, help="the variant's controller expression; default auto's")
    parser.add_argument("--out", default=None, help="the store; default runs/fresh-seeds/TASK-PEAK")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    done = rerun(args.tier, args.task, args.peak, seeds=args.seeds, tuned=args.tuned, peers=peers_of(args.peers),
                 variant=args.variant, controller=args.controller, bench=args.bench, out=args.out,
                 workers=args.workers)
    print("\n".join(done.lines()))


def peers_of(text: str) -> tuple[str, ...]:
    """``"autowu,schedule-free"`` as a tuple of benchmark method labels.

    Raises:
        SystemExit: naming a label that is not a benchmark method.
    """
    peers = tuple(peer.strip() for peer in text.split(",") if peer.strip())
    known = plan.method_labels()
    unknown = [peer for peer in peers if peer not in known]
    if unknown:
        raise SystemExit(f"--peers={text!r}: {', '.join(unknown)} is no benchmark method; expected some of "
                         f"{', '.join(known)}")
    return peers


def stored_grid(task: BenchTask, settings: plan.Tier, bench: str, hint: str) -> TaskResult:
    """``task``'s stored grid in the tier's store under ``bench``.

    Raises:
        SystemExit: naming ``bench``, what is missing, then ``hint`` (what to run).
    """
    try:
        return load(task, runner.store_of(bench, settings, task))
    except StoreError as error:
        raise SystemExit(f"--bench={bench}: {error}; {hint}") from error


def stored_tuned(task: BenchTask, settings: plan.Tier, peak: float, bench: str) -> str:
    """The label of the linear warmup the tier's stored grid tuned at ``peak``."""
    hint = f"give --tuned or run preheat bench --tier {settings.name} --tasks {task.name} first"
    grid = stored_grid(task, settings, bench, hint)
    if peak not in grid.tuned:
        raise SystemExit(f"--peak={peak:g}: {bench} holds no tuned warmup of {task.name} there; {hint}")
    return grid.tuned[peak].method


if __name__ == "__main__":
    main()
