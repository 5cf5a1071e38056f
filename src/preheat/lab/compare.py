"""The curated comparison behind ``preheat compare``: which warmups, on which task, at which LRs.

Every task gets the same menu, scaled to its run length ``T``:

- no warmup (cosine decay from the first update),
- linear warmup + cosine decay at several warmup lengths (fractions of ``T``),
- exponential warmup (time constant ``tau``, 95% of the peak at 10% of ``T``) times cosine decay,
- WSD (10% warmup, 20% linear cooldown),
- untuned linear warmup from Adam's beta2 (Ma & Yarats), then cosine decay,
- RAdam (its own rectification instead of a warmup), cosine decay,
- ``auto``: :func:`preheat.auto_warmup` (no warmup length), with its own cosine decay,
- with ``research``, preheat's research methods: GI-Adam (Adam with its second moment
  initialised from the first gradient), cosine decay, and the adaptive warmups of
  :mod:`preheat.adaptive` with their default settings (no warmup length): smoothness-guided,
  sharpness-guided (edge of stability), catapult-chosen initial LR then linear, persistent
  catapult, and the NARS controller; each hands over to cosine decay over the steps left,

each at a moderate and an aggressive peak LR. The warmup-length runs share the template
``warmup_cosine({warmup}, {steps})`` (no warmup is its ``warmup=0`` row), which is what the
report's stability heatmap is drawn from. Untuned warmup, RAdam and GI-Adam are Adam methods
and are left out of tasks trained with SGD; the catapult ramps use the 10% warmup length as
their linear part (the initial LR is what the search chooses).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from preheat.lab.config import RunConfig
from preheat.lab.optimizers import OPTIMIZERS
from preheat.schedules import UntunedLinearWarmup

WARMUP_TEMPLATE = "warmup_cosine({warmup}, {steps})"
MIN_STEPS = 10  # the shortest run whose 10% ramps are a step long
QUICK_SEEDS = 2  # the fewest that give an interval
AUTO = ("auto", {"controller": "auto_warmup()",
                 "note": "preheat.auto_warmup(): linear over 40 % of the run, steps back on a loss or "
                         "gradient-norm spike, lowers the peak where the loss stays up (two windows; "
                         "with SGD three, and the first time only steps back), then cosine decay; with "
                         "SGD over 5 % where the peak is below twice the catapult LR at init"})


@dataclass(frozen=True)
class Setup:
    """How one task is compared: the fixed run fields, the two peak LRs, and the sizes."""

    base: dict[str, Any]
    peak_lrs: tuple[float, float]  # moderate, aggressive
    steps: int
    quick_steps: int
    warmup_fractions: tuple[float, ...] = (0.02, 0.05, 0.1, 0.25)
    quick_warmup_fractions: tuple[float, ...] = (0.05, 0.2)
    seeds: int = 3
    options_full: dict[str, Any] = field(default_factory=dict)
    data_option: str | None = None  # the task option `preheat compare --data PATH` sets


SETUPS: dict[str, Setup] = {
    "shakespeare-char": Setup(
        base={"task": "shakespeare-char", "task_options": {"size": "tiny", "block_size": 32}, "optimizer": "adamw",
              "batch_size": 32, "betas": (0.9, 0.99), "weight_decay": 0.1},
        peak_lrs=(3e-3, 3e-2), steps=2000, quick_steps=300,
        options_full={"size": "small", "block_size": None}, data_option="data",
    ),
    "digits": Setup(
        base={"task": "digits", "optimizer": "adam", "batch_size": 32, "betas": (0.9, 0.99)},
        peak_lrs=(3e-3, 3e-2), steps=1000, quick_steps=300,
    ),
    "river-valley": Setup(
        base={"task": "river-valley", "optimizer": "sgd", "batch_size": 1},
        peak_lrs=(0.05, 0.3), steps=500, quick_steps=200,
    ),
    "cifar10": Setup(
        base={"task": "cifar10", "task_options": {"width": 32, "limit_train": 10000, "limit_val": 2000},
              "optimizer": "adamw", "batch_size": 64, "betas": (0.9, 0.99), "weight_decay": 5e-4},
        peak_lrs=(2e-3, 2e-2), steps=2000, quick_steps=150,
        options_full={"width": 64, "limit_train": None, "limit_val": None}, data_option="data_dir",
    ),
}


def comparison(task: str, quick: bool = False, seeds: int | None = None,
               data: str | None = None, steps: int | None = None, research: bool = False) -> list[RunConfig]:
    """The runs of ``preheat compare --task TASK [--quick] [--seeds N] [--data PATH] [--steps N]
    [--research]``.

    ``quick`` uses the short run length, two warmup lengths and two seeds (made to finish in a
    few minutes on 2 CPU cores); ``seeds`` overrides the seed count; ``data`` is the task's
    data path (shakespeare-char: any text file; cifar10: the CIFAR-10 folder); ``steps``
    overrides the run length (every warmup length and the evaluation interval scale with it);
    ``research`` adds preheat's research methods (:func:`adaptive_menu`).
    """
    setup = SETUPS.get(task)
    if setup is None:
        raise ValueError(f"task={task!r} has no curated comparison; expected one of {', '.join(SETUPS)}")
    if data is not None and setup.data_option is None:
        raise ValueError(f"data={data!r} is invalid for task={task!r}, which makes its own data")
    task_options = {setup.data_option: data} if data is not None else {}
    if steps is not None and steps < MIN_STEPS:
        raise ValueError(f"steps={steps} is invalid; expected an integer >= {MIN_STEPS}")
    steps = steps if steps is not None else (setup.quick_steps if quick else setup.steps)
    fractions = setup.quick_warmup_fractions if quick else setup.warmup_fractions
    count = seeds if seeds is not None else (QUICK_SEEDS if quick else setup.seeds)
    if count < 1:
        raise ValueError(f"seeds={count} is invalid; expected an integer >= 1")
    options = {**setup.base.get("task_options", {}), **({} if quick else setup.options_full), **task_options}
    base = {**setup.base, "task_options": {k: v for k, v in options.items() if v is not None},
            "steps": steps, "eval_every": max(1, steps // 20)}
    adam = OPTIMIZERS[base["optimizer"]].preconditioned
    betas = base.get("betas", (0.9, 0.999))
    radam = "radamw" if base["optimizer"] == "adamw" else "radam"  # weight decay as the base applies it
    menu = _menu(steps, fractions, betas[1] if adam else None, radam) + [AUTO]
    if research:
        menu += adaptive_menu(steps, betas if adam else None)
    runs = []
    for peak_lr in setup.peak_lrs:
        for label, fields in menu:
            for seed in range(count):
                runs.append(RunConfig(**{**base, **fields, "label": label, "peak_lr": peak_lr, "seed": seed}))
    return runs


def _menu(steps: int, fractions: tuple[float, ...], beta2: float | None, radam: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, run fields) of every schedule in the comparison, for runs of ``steps`` updates; with
    ``beta2`` (an Adam-type base) the untuned warmup and RAdam (``radam``: its optimizer name) too.
    A schedule's label is short (the ranking's method column); its ``note`` says what it is."""
    menu: list[tuple[str, dict[str, Any]]] = [("no warmup", {
        "schedule": WARMUP_TEMPLATE, "warmup": 0, "note": "cosine decay from the peak LR at update 0"})]
    for fraction in fractions:
        warmup = max(1, round(fraction * steps))
        menu.append((f"linear {fraction:.0%}", {
            "schedule": WARMUP_TEMPLATE, "warmup": warmup,
            "note": f"linear warmup over {warmup} updates ({fraction:.0%} of the run), then cosine decay"}))
    tau = round(0.1 * steps / 3, 1)  # 1 - exp(-3) = 95% of the peak at 10% of the run
    menu.append(("exponential", {
        "schedule": f"exponential_warmup(tau={tau}) * cosine_decay({{steps}})",
        "note": f"exponential warmup 1 - exp(-(t+1)/{tau}) (95% at 10% of the run), times cosine decay"}))
    menu.append(("wsd", {"schedule": f"wsd({round(0.1 * steps)}, {{steps}})",
                         "note": "warmup-stable-decay: 10% linear warmup, constant, 20% linear cooldown"}))
    if beta2 is not None:
        length = UntunedLinearWarmup(beta2).length
        if length < steps:
            menu.append(("untuned", {
                "schedule": f"untuned_linear_warmup({beta2}) >> cosine_decay({steps - length})",
                "note": f"linear warmup over 2 / (1 - beta2) = {length} updates (Ma & Yarats 2021), then cosine decay"}))
        menu.append(("radam", {"schedule": "cosine_decay({steps})", "optimizer": radam}))
    return menu


def adaptive_menu(steps: int, betas: tuple[float, float] | None) -> list[tuple[str, dict[str, Any]]]:
    """(label, run fields) of GI-Adam and the controllers, each handing over to cosine decay."""
    after = {"after": "cosine_decay({steps})"}
    kind = "optimizer='sgd'" if betas is None else f"optimizer='adam', beta1={betas[0]}, beta2={betas[1]}"
    ramp = round(0.1 * steps)
    every = max(10, steps // 6)  # a sharpness measurement costs ~40 gradient evaluations
    menu: list[tuple[str, dict[str, Any]]] = []
    if betas is not None:
        menu.append(("gi-adam", {"schedule": "cosine_decay({steps})", "optimizer": "giadamw"}))
    menu += [
        ("smoothness", {**after, "controller": "smoothness_warmup()"}),
        ("sharpness", {**after, "controller": f"sharpness_warmup({kind}, every={every})"}),
        ("catapult", {**after, "controller": f"catapult_warmup(steps={ramp})"}),
        ("persistent catapult", {**after, "controller": f"catapult_warmup(steps={ramp}, persistent=True)"}),
        ("nars", {**after, "controller": "nars_warmup()"}),
    ]
    return menu
