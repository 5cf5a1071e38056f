"""What the benchmark runs: every method on every task, at every rung of the ladder, per tier.

The methods, each run through its own package where one exists:

- **linear N %**: linear warmup over N % of the run, then cosine decay to 0
  (``warmup_cosine``), for N in :data:`WARMUP_GRID` (0 % is **no warmup**). The grid is the
  tuned baseline's: at each peak LR the best length is what a user with a tuning budget would
  pick. When that best is the grid's longest (50 %), :data:`EXTENSION` (70, 90 %) is run there too,
  so the baseline is never clipped at the grid's edge; and when the tuned baseline's best over
  the ladder is at its top or bottom rung, or no warmup loses to it at the bottom rung, the
  ladder grows by a doubling or a halving there (the full tier; up to 2 rungs), every method
  with it, so the best peak LR is not clipped either and the ladder starts where warmup makes
  no difference;
- ``hf_cosine``: Hugging Face's ``get_cosine_schedule_with_warmup`` with 10 % warmup;
- ``untuned`` and ``untuned exp``: pytorch_warmup's untuned linear and exponential warmups over
  ``CosineAnnealingLR`` (Adam family);
- ``radam``: torch's RAdam (decoupled weight decay) with cosine decay (Adam family);
- ``schedule-free``: schedulefree's AdamWScheduleFree, its warmup 5 % (Adam family);
- ``autowu``, ``gap``: AutoWU (Kim et al. 2021) and the loss-gap warmup of Riabinin et al. 2026,
  handing over to cosine decay (:mod:`preheat.adaptive`);
- ``auto``: :func:`preheat.auto_warmup`;
- preheat's research methods, GI-Adam (Adam family) and the controllers of ``preheat compare``
  (:func:`preheat.lab.compare.adaptive_menu`), at the :data:`RESEARCH_RUNGS` top rungs of the
  task's ladder only (where warmup matters; this keeps the full tier within its time); the
  sharpness controller's edge-of-stability threshold is Adam's or SGD's, so Muon tasks leave it
  out;
- the optimizers that learn their step size, **Prodigy** (``safeguard_warmup``), **D-Adaptation**
  Adam and **DoG**: they take no peak LR, so each runs once per task at its multiplier 1 with
  cosine decay, and is compared with the tuned baseline's best over the whole ladder.

A tier may run only some ``methods`` (the linear grid always runs: it is the baseline), to
rerun one method after a change, or to keep a method still in development off the test tasks.

Tiers: ``full`` (the dev and test tasks, their whole ladders and seeds), one per later split
(``holdout`` to ``crypt``, :data:`~preheat.lab.bench.tasks.LATER_SPLITS`: that split's tasks,
likewise), ``quick`` (the development tasks at the two top rungs, 2 seeds, the grid 0, 5, 20,
50 %, half the updates: minutes on 2 cores), ``tiny`` (every task, the holdout
ones too, at its tiny size, the top rung, 2 seeds, the grid 0 and 50 %: the tests' end-to-end
run).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from preheat.lab.bench.tasks import LATER_SPLITS, SIZES, SPLITS, TASKS, BenchTask
from preheat.lab.compare import AUTO, WARMUP_TEMPLATE, adaptive_menu
from preheat.lab.config import RunConfig

WARMUP_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
EXTENSION = (0.7, 0.9)
LEARNED_STEP = ("prodigy", "dadapt_adam", "dog")
RESEARCH_RUNGS = 2
NO_WARMUP = "no warmup"
LINEAR = "linear "  # the linear grid's labels: "linear 5%"


@dataclass(frozen=True)
class Tier:
    """How much of each task a tier runs: its ``name``, the tasks' ``size``, the ``splits`` whose
    tasks it runs, how many top rungs of the ladder (None: all), the seeds (None: the task's),
    the warmup grid, the fraction of the task's updates, how many rungs it may add beyond the
    ladder's edge, the ``device`` every run uses, and the ``methods`` it runs besides the linear
    grid (None: all)."""

    name: str
    size: str
    splits: tuple[str, ...]
    rungs: int | None
    seeds: int | None
    grid: tuple[float, ...]
    length: float = 1.0
    more_rungs: int = 0
    device: str = "cpu"
    methods: frozenset[str] | None = None


#: The tiers that run their tasks whole, every method at every rung and seed: ``full`` (the dev
#: and test tasks) and one per later split, named after it. Every task is in exactly one.
WHOLE_TIERS = ("full", *LATER_SPLITS)
TIER_SETTINGS = {
    "tiny": Tier("tiny", "tiny", SPLITS, 1, 2, (0.0, 0.5)),
    "quick": Tier("quick", "default", ("dev",), 2, 2, (0.0, 0.05, 0.2, 0.5), length=0.5),
    **{name: Tier(name, "default", ("dev", "test") if name == "full" else (name,), None, None, WARMUP_GRID,
                  more_rungs=2) for name in WHOLE_TIERS},
}
TIERS = tuple(TIER_SETTINGS)


def linear_label(fraction: float) -> str:
    """The label of the linear warmup over ``fraction`` of the run (``no warmup`` for 0)."""
    return NO_WARMUP if fraction == 0 else f"{LINEAR}{fraction:.0%}"


def is_linear(label: str) -> bool:
    """Whether ``label`` is one of the linear grid's (no warmup included)."""
    return label == NO_WARMUP or label.startswith(LINEAR)


def warmup_fraction(label: str) -> float:
    """The fraction of the run a linear grid label warms up over: :func:`linear_label`'s inverse."""
    return 0.0 if label == NO_WARMUP else float(label.removeprefix(LINEAR).rstrip("%")) / 100


def tier(name: str, size: str | None = None, device: str = "cpu", methods: list[str] | None = None) -> Tier:
    """The settings of tier ``name``, its tasks at ``size`` (None: the tier's own; ``large`` on
    a GPU) on ``device``, running ``methods`` (labels of :func:`method_labels`; None: all)
    besides the linear grid.

    Raises:
        ValueError: ``name`` is not one of :data:`TIERS`, ``size`` not one of ``SIZES``, or a
            method is no task's.
    """
    if name not in TIER_SETTINGS:
        raise ValueError(f"tier={name!r} is invalid; expected one of {', '.join(TIERS)}")
    if size is not None and size not in SIZES:
        raise ValueError(f"size={size!r} is invalid; expected one of {', '.join(SIZES)}")
    known = method_labels()
    unknown = [method for method in methods or [] if method not in known]
    if unknown:
        raise ValueError(f"methods={unknown} are unknown; expected some of {', '.join(known)}")
    return replace(TIER_SETTINGS[name], size=size or TIER_SETTINGS[name].size, device=device,
                   methods=None if methods is None else frozenset(methods))


def tasks_of(settings: Tier, names: list[str] | None = None) -> list[BenchTask]:
    """The tasks the tier runs, in table order; ``names`` picks some of them.

    Raises:
        ValueError: an unknown task name, or a task of a split the tier does not run.
    """
    unknown = [name for name in names or [] if name not in TASKS]
    if unknown:
        raise ValueError(f"tasks={unknown} are unknown; expected some of {', '.join(TASKS)}")
    elsewhere = [name for name in names or [] if TASKS[name].split not in settings.splits]
    if elsewhere:
        ours = [name for name, task in TASKS.items() if task.split in settings.splits]
        raise ValueError(f"tasks={elsewhere} are not in the {settings.name} tier (its splits: "
                         f"{', '.join(settings.splits)}); expected some of {', '.join(ours)}")
    return [task for task in TASKS.values()
            if (names is None or task.name in names) and task.split in settings.splits]


def peaks_of(task: BenchTask, settings: Tier) -> tuple[float, ...]:
    """The rungs of ``task``'s ladder the tier runs (its top ``rungs``)."""
    rungs = settings.rungs
    return task.peaks if rungs is None else task.peaks[-rungs:]


def method_labels() -> list[str]:
    """The label of every method any task runs besides the linear grid, in menu order."""
    labels = [label for task in TASKS.values() for label, _ in peers(task, task.steps) + research(task, task.steps)]
    return list(dict.fromkeys(labels + list(LEARNED_STEP)))


def peers(task: BenchTask, steps: int) -> list[tuple[str, dict[str, Any]]]:
    """(label, run fields) of the peers and ``auto``, for runs of ``steps`` updates of ``task``:
    every method that runs at every rung but the linear grid and the learned-step optimizers
    (see the module docstring)."""
    cosine = "cosine_decay({steps})"
    adam = task.family == "adam"
    methods: list[tuple[str, dict[str, Any]]] = [
        ("hf cosine", {"peer": "hf_cosine", "warmup": round(0.1 * steps),
                       "note": "transformers.get_cosine_schedule_with_warmup, 10% warmup"})]
    if adam:
        methods += [
            ("untuned", {"peer": "untuned_warmup"}),
            ("untuned exp", {"peer": "untuned_exponential"}),
            ("radam", {"schedule": cosine, "optimizer": "radamw"}),
            ("schedule-free", {"optimizer": "schedulefree_adamw", "warmup": round(0.05 * steps),
                               "note": "schedulefree.AdamWScheduleFree, warmup_steps = 5% of the run"}),
        ]
    methods += [("autowu", {"controller": "autowu_warmup()", "after": cosine}),
                ("gap", {"controller": "gap_warmup()", "after": cosine}),
                AUTO]
    return methods


def research(task: BenchTask, steps: int) -> list[tuple[str, dict[str, Any]]]:
    """(label, run fields) of preheat's research methods for runs of ``steps`` updates of
    ``task``; they run at the :data:`RESEARCH_RUNGS` top rungs of its ladder."""
    betas = task.base.get("betas", (0.9, 0.999)) if task.family == "adam" else None
    own = adaptive_menu(steps, betas)
    return [(label, fields) for label, fields in own if not (task.family == "muon" and label == "sharpness")]


def runs(task: BenchTask, settings: Tier, peaks: tuple[float, ...] | None = None) -> list[RunConfig]:
    """Every run of ``task`` in the tier at its rungs (or at ``peaks``), the research methods'
    at the top rungs only, the learned-step optimizers' once (not with ``peaks``), before any
    extension of the grid; of the tier's ``methods`` only, the grid always."""
    base = run_fields(task, settings)
    steps, seeds = base["steps"], range(settings.seeds or task.seeds)
    chosen = settings.methods

    def runs_method(label: str) -> bool:
        return chosen is None or label in chosen
    grid = [(linear_label(f), linear_fields(f, steps)) for f in settings.grid]
    everywhere = grid + [(label, fields) for label, fields in peers(task, steps) if runs_method(label)]
    aggressive = [(label, fields) for label, fields in research(task, steps) if runs_method(label)]
    configs = [RunConfig(**{**base, **fields, "label": label, "peak_lr": peak, "seed": seed})
               for peak in (peaks or peaks_of(task, settings))
               for label, fields in everywhere + (aggressive if peak in task.peaks[-RESEARCH_RUNGS:] else [])
               for seed in seeds]
    if peaks is None:
        configs += [RunConfig(**{**base, "optimizer": name, "schedule": "cosine_decay({steps})", "label": name,
                                 "peak_lr": 1.0, "seed": seed})
                    for name in LEARNED_STEP if runs_method(name) for seed in seeds]
    return configs


def extension(task: BenchTask, settings: Tier, best: dict[float, float]) -> list[RunConfig]:
    """The runs that extend the grid where its best length (``best``: peak LR -> fraction) is
    its longest: :data:`EXTENSION` at those peaks, the same seeds."""
    edge, base = max(settings.grid), run_fields(task, settings)
    return [RunConfig(**{**base, **linear_fields(f, base["steps"]), "label": linear_label(f), "peak_lr": peak, "seed": seed})
            for peak, fraction in sorted(best.items()) if fraction == edge
            for f in EXTENSION for seed in range(settings.seeds or task.seeds)]


def run_fields(task: BenchTask, settings: Tier) -> dict[str, Any]:
    """The run fields every method of ``task`` shares in a tier: the size's, the tier's length
    (at least 8 updates), 10 evaluations after the one at update 0, and the device."""
    fields = task.fields(settings.size)
    steps = max(8, round(fields.pop("steps") * settings.length))
    device = {} if settings.device == "cpu" else {"device": settings.device}
    return {**fields, "steps": steps, "eval_every": max(1, steps // 10), **device}


def linear_fields(fraction: float, steps: int) -> dict[str, Any]:
    """The run fields of the grid's linear warmup over ``fraction`` of ``steps`` updates."""
    return {"schedule": WARMUP_TEMPLATE, "warmup": round(fraction * steps)}
