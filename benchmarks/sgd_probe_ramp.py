"""The fifth revision's design evidence, with SGD: a short ramp where the peak is below twice the catapult LR.

On the seen SGD tasks the peak's ratio to the catapult LR at init orders the tuned warmup
(``benchmarks/catapult_vs_tuned.py``): below about ``2 eta_c`` the tuned length is 0-10 %,
where ``auto_warmup``'s 40 % ramp costs. The rule: with SGD, each run measures ``eta_c`` before
update 0, as the lab's catapult signal does (the search capped at the peak, on a batch the run
never trains on), and ramps over ``SHORT_RAMP`` of the run where ``peak / eta_c < PROBE_RATIO``,
over 40 % otherwise; every other rule as in the fourth revision (``auto_warmup`` since commit
936a3ab: this reads off the stored runs what it was designed from; rerun now, ``auto`` is it).

Nothing here trains what the stores hold (``auto``'s runs of a cell are computed once more
where ``auto``'s revision changed since they were stored): each SGD cell rerun on 20 fresh seeds with the variant ``ramp5``
(``auto_warmup(ramp=0.05)``, ``benchmarks/fresh_seeds.py --variant ramp5 --controller
"auto_warmup(ramp=0.05)"``) holds, per seed, the run the rule would make either way, so the
rule's cell is read off them: ramp5's run where that seed's probe says short, ``auto``'s
otherwise. The probe draws no random numbers the training uses, so those are the runs it
would make (checked: a run with the probe and one with the 40 % ramp chosen end bit for bit
the same). Runs it computes use 2 workers, as the fresh-seed reruns do: a run's last digits
depend on the threads it had (one per worker with 2 workers, two with one), and near a peak
where seeds diverge the difference grows. Prints, per cell, how many seeds go short and the rule's ratio to the tuned length
and to ``auto`` (paired by seed, the benchmark's statistics).

    python benchmarks/sgd_probe_ramp.py [--fresh runs/fresh-seeds]

The same read-off for another stored variant between other ratios: ``--variant s20 --between 2
6`` takes the stored ``auto s20`` run (a 20 % ramp with SGD, commit d7d49fd) where ``2 <= peak
/ eta_c < 6``, ``auto``'s otherwise (a middle tier of the probe, ``docs/auto-warmup.md``). Such a
variant's runs are read as stored (its knob may be gone); ``ramp5``'s are computed where
missing.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import replace
from pathlib import Path

from catapult_vs_tuned import TIER_OF_SPLIT, lab_run
from fresh_seeds import VARIANT, rerun

from preheat.adaptive.auto import PROBE_RATIO, SHORT_RAMP
from preheat.lab import signals
from preheat.lab.bench import plan
from preheat.lab.bench.analysis import TaskResult, compare, load
from preheat.lab.bench.tables import LETTER, ratio_text
from preheat.lab.bench.tasks import TASKS, BenchTask
from preheat.lab.config import RunConfig
from preheat.lab.store import Store
from preheat.torch import Scheduler

NAME = "ramp5"
CONTROLLER = f"auto_warmup(ramp={SHORT_RAMP})"
STORE = re.compile(r"^(.+)-([0-9.e-]+)$")  # runs/fresh-seeds/TASK-PEAK


def catapult_lr(config: RunConfig) -> float:
    """The catapult LR the lab measures before ``config``'s run (through its scheduler)."""
    run = lab_run(config)
    return signals.prepare(run, Scheduler(run.optimizer, config.resolved_controller()))["catapult_lr"]


def cells(fresh: Path, variant: str = NAME) -> list[tuple[str, float, str]]:
    """(task, peak, tuned label) of every stored SGD cell that holds ``variant``'s runs."""
    found = []
    for folder in sorted(fresh.iterdir()):
        match = STORE.match(folder.name)
        if not match or match.group(1) not in TASKS or TASKS[match.group(1)].family != "sgd":
            continue
        labels = {run.config.label for run in Store(folder, read_only=True).runs()}
        tuned = [label for label in labels if plan.is_linear(label)]
        if VARIANT + variant in labels and len(tuned) == 1:
            found.append((match.group(1), float(match.group(2)), tuned[0]))
    return found


def stored(task: BenchTask, out: Path, variant: str) -> TaskResult:
    """The runs of ``auto VARIANT`` stored in ``out``, as the benchmark reads them."""
    ids = {run.id for run in Store(out, read_only=True).runs() if run.config.label == VARIANT + variant}
    return load(task, out, ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", default="runs/fresh-seeds", help="the fresh-seed stores")
    parser.add_argument("--variant", default=NAME, help=f"the variant read where the probe says so; default {NAME}")
    parser.add_argument("--between", nargs=2, type=float, default=(0.0, PROBE_RATIO), metavar=("LOW", "HIGH"),
                        help=f"the variant's run where LOW <= peak / eta_c < HIGH; default 0 {PROBE_RATIO:g}")
    args = parser.parse_args()
    low, high = args.between
    computed = args.variant == NAME  # ramp5's missing runs are computed; another variant's are read
    print("| task | peak | tuned | seeds short | the rule vs tuned | auto vs tuned | the rule vs auto |")
    print("|---|---|---|---|---|---|---|")
    tally = {"tuned": [], "auto": []}
    for name, peak, tuned in cells(Path(args.fresh), args.variant):
        task = TASKS[name]
        out = Path(args.fresh) / f"{name}-{peak:g}"
        done = rerun(TIER_OF_SPLIT.get(task.split, task.split), name, peak, tuned=tuned, out=str(out),
                     **({"variant": NAME, "controller": CONTROLLER} if computed else {}))
        auto = done.result.cells["auto"][peak]
        short = (done.result if computed else stored(task, out, args.variant)).cells[VARIANT + args.variant][peak]
        configs = {config.seed: config for config in plan.runs(task, plan.tier(TIER_OF_SPLIT.get(task.split, task.split)),
                                                                 (peak,)) if config.label == "auto"}
        template = next(iter(configs.values()))
        goes_short = {seed: low <= peak / catapult_lr(template.model_copy(update={"seed": seed})) < high
                      for seed in auto.seeds}
        variant = {run.seed: (run, score) for run, score in zip(short.runs, short.scores)}
        chosen = [variant[a_run.seed] if goes_short[a_run.seed] else (a_run, a_score)
                  for a_run, a_score in zip(auto.runs, auto.scores)]
        rule = replace(auto, method="probe", runs=tuple(r for r, _ in chosen), scores=tuple(s for _, s in chosen))
        against_tuned, against_auto = compare(rule, done.result.cells[tuned][peak]), compare(rule, auto)
        tally["tuned"].append(against_tuned.outcome)
        tally["auto"].append(against_auto.outcome)
        print(f"| {name} | {peak:g} | {tuned} | {sum(goes_short.values())} of {len(goes_short)} | "
              f"{ratio_text(against_tuned, digits=4)} | {ratio_text(done.comparison('auto'), digits=4)} | "
              f"{ratio_text(against_auto, digits=4)} |")
    for against, outcomes in tally.items():
        counts = " / ".join(str(outcomes.count(outcome)) for outcome in LETTER)
        print(f"the rule against {against}: {counts} (win / tie / loss) over {len(outcomes)} cells")


if __name__ == "__main__":
    main()
