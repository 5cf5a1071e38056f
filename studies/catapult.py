"""Study 3 — Kalra & Barkeshli 2024: starting warmup at the catapult-chosen LR saves warmup steps.

Before training, ``catapult_warmup`` runs ``preheat.probes.catapult_search`` (the smallest LR
``eta_c`` whose one update raises the loss of a held-out batch by ``delta``: 10 % for SGD, 1 %
for Adam, capped at the target) and starts its warmup there instead of at 0. Against a linear
warmup from 0 over ``W`` updates, each run then holds the target (peak) LR to the end:

- ``linear from 0``: ``linear_warmup(W)``; it reaches the target at ``T_reach = W``;
- ``catapult, same length``: ``catapult_warmup(steps=W)``, linear from ``eta_c`` to the target over
  ``W`` updates (preheat's controller: same ``T_reach``, a larger LR all along);
- ``catapult, same slope``: the paper's saving: the ramp of the linear warmup from 0, started at
  ``eta_c``, i.e. ``catapult_warmup(steps=W - s)`` with ``s = round(eta_c / eta_target * W)`` the
  steps a warmup from 0 needs to reach ``eta_c`` (``s`` is read per seed from the same-length
  runs' first LR, so this is a second sweep);
- ``persistent catapult``: ``catapult_warmup(steps=W, persistent=True)``: doubles the LR each time
  the loss has recovered.

``T_reach`` is measured from the LR each run recorded (the first update at the target LR);
"saved" is ``W - T_reach``; the final validation loss says whether starting higher cost anything.

    taskset -c 1 .venv/bin/python -m studies.catapult
    .venv/bin/python -m studies.catapult --smoke --out /tmp/s --docs /tmp/d
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from preheat.lab.config import RunConfig
from studies.common import figure, finish, load, markdown_table, mean_std, number, parse_args, plain_log_ticks, \
    seeds_text, sweep

NAME = "catapult"
METHODS = ("linear from 0", "catapult, same length", "catapult, same slope", "persistent catapult")


@dataclass(frozen=True)
class Setting:
    """One task and optimizer at one target LR, with the warmup length ``W`` it is compared at."""

    title: str
    base: dict[str, Any]
    peak_lr: float
    warmup: int
    seeds: tuple[int, ...]

    def run(self, method: str, seed: int, ramp: int | None = None) -> RunConfig:
        """The run of ``method`` (``ramp``: the same-slope ramp length, needed for that method)."""
        fields: dict[str, Any] = {}
        if method == "linear from 0":
            fields = {"schedule": f"linear_warmup({self.warmup})"}
        elif method == "catapult, same length":
            fields["controller"] = f"catapult_warmup(steps={self.warmup})"
        elif method == "catapult, same slope":
            fields["controller"] = f"catapult_warmup(steps={ramp})"
        else:
            fields["controller"] = f"catapult_warmup(steps={self.warmup}, persistent=True)"
        return RunConfig(**self.base, **fields, peak_lr=self.peak_lr, seed=seed,
                         label=f"{self.title}, peak {self.peak_lr:g} | {method}")


def settings(smoke: bool) -> list[Setting]:
    """Full: river valley (GD) 500 updates, W = 50; digits (SGD and Adam) 1000 updates, W = 200;
    tiny GPT (Adam) 256 updates of batch 16, W = 64; each at two target LRs."""
    if smoke:
        return [Setting("river valley, GD", {"task": "river-valley", "optimizer": "sgd", "batch_size": 1,
                                             "steps": 30, "eval_every": 5}, 0.3, 10, (0,)),
                Setting("digits MLP, Adam", {"task": "digits", "task_options": {"width": 32}, "optimizer": "adam",
                                             "steps": 20, "eval_every": 10}, 0.03, 10, (0,))]
    river = {"task": "river-valley", "optimizer": "sgd", "batch_size": 1, "steps": 500, "eval_every": 5}
    digits = {"task": "digits", "batch_size": 32, "steps": 1000, "eval_every": 50}
    gpt = {"task": "shakespeare-char", "task_options": {"size": "tiny"}, "optimizer": "adam", "batch_size": 16,
           "steps": 256, "eval_every": 32}
    result = [Setting("river valley, GD", river, lr, 50, (0, 1, 2)) for lr in (0.1, 0.3)]
    result += [Setting("digits MLP, SGD", {**digits, "optimizer": "sgd"}, lr, 200, (0, 1, 2)) for lr in (0.5, 1.0)]
    result += [Setting("digits MLP, Adam", {**digits, "optimizer": "adam"}, lr, 200, (0, 1, 2)) for lr in (0.01, 0.04)]
    result += [Setting("Shakespeare GPT (tiny), Adam", gpt, lr, 64, (0,)) for lr in (0.01, 0.04)]
    return result


def t_reach(lr: np.ndarray, peak: float) -> int | None:
    """The first update that used the target LR (None if none did)."""
    reached = np.flatnonzero(lr >= peak * (1 - 1e-9))
    return int(reached[0]) if reached.size else None


def main(argv: Sequence[str] | None = None) -> None:
    study = parse_args(NAME, __doc__, argv)
    chosen = settings(study.smoke)
    first = [s.run(m, seed) for s in chosen for m in METHODS if m != "catapult, same slope" for seed in s.seeds]
    rows = sweep(study, first)
    # the same-slope ramp: W minus the steps a warmup from 0 takes to reach eta_c (per seed)
    start = {(r.method, r.config.seed): steps["lr"][0] for r, steps in zip(rows, load(study, rows, "steps"))}
    slope = []
    for s in chosen:
        for seed in s.seeds:
            initial = start[(s.run("catapult, same length", seed).method, seed)] / s.peak_lr
            slope.append(s.run("catapult, same slope", seed, ramp=max(1, s.warmup - round(initial * s.warmup))))
    rows += sweep(study, slope)
    lrs = {(r.method, r.config.seed): steps["lr"] for r, steps in zip(rows, load(study, rows, "steps"))}

    body = []
    for s in chosen:
        reference = None
        for method in METHODS:
            name = s.run(method, s.seeds[0], ramp=1).method
            runs = [r for r in rows if r.method == name]
            reach = [t_reach(lrs[(name, r.config.seed)], s.peak_lr) for r in runs]
            initial = [lrs[(name, r.config.seed)][0] / s.peak_lr for r in runs]
            finals = [r.final_val_loss for r in runs]
            reference = finals if reference is None else reference
            with np.errstate(invalid="ignore"):  # nan or inf when a seed diverged
                delta = float(np.mean(finals) - np.mean(reference))
            known = [t for t in reach if t is not None]
            body.append([f"{s.title}, peak {s.peak_lr:g}", s.warmup, method,
                         "0" if method == "linear from 0" else " / ".join(number(i, 2) for i in initial),
                         " / ".join("never" if t is None else str(t) for t in reach),
                         number(s.warmup - float(np.mean(known))) if len(known) == len(reach) else "—",
                         mean_std(finals),
                         "" if method == "linear from 0" else f"{delta:+.3g}" if np.isfinite(delta) else "—"])
    headers = ("setting", "W", "method", "LR at update 0 / target (per seed)", "T_reach (per seed)",
               "saved steps (mean)", "final val loss", "Δ vs linear from 0")
    table = markdown_table(headers, body)

    shown = [s for s in chosen if s.peak_lr == max(o.peak_lr for o in chosen if o.title == s.title)]
    fig, axes = figure(3.4 * len(shown), 5.0, 2, len(shown))
    colors = dict(zip(METHODS, ("black", "tab:blue", "tab:orange", "tab:green")))
    for column, s in enumerate(shown):
        for method in METHODS:
            name = s.run(method, s.seeds[0], ramp=1).method
            runs = [r for r in rows if r.method == name]
            seed0 = lrs[(name, s.seeds[0])]
            axes[0, column].plot(np.arange(seed0.size), seed0 / s.peak_lr, color=colors[method], label=method)
            evals = load(study, runs, "evals")
            longest = max(evals, key=lambda e: e["step"].size)["step"]
            padded = np.full((len(evals), longest.size), np.nan)  # a diverged seed stops early
            for i, e in enumerate(evals):
                padded[i, :e["val_loss"].size] = e["val_loss"]
            axes[1, column].plot(longest, np.nanmean(padded, axis=0), color=colors[method], label=method)
        axes[0, column].set_xlim(0, 2 * s.warmup)
        axes[0, column].set_title(f"{s.title}\npeak {s.peak_lr:g}, W={s.warmup}", fontsize="small")
        axes[0, column].set_ylabel("LR / peak (seed 0)", fontsize="x-small")
        axes[1, column].set_yscale("log")
        plain_log_ticks(axes[1, column].yaxis)
        axes[1, column].set_ylabel("val loss (mean over seeds running)", fontsize="x-small")
        axes[1, column].set_xlabel("update", fontsize="x-small")
        for ax in axes[:, column]:
            ax.tick_params(labelsize="x-small")
            ax.grid(alpha=0.3, linewidth=0.5)
    axes[0, 0].legend(fontsize="x-small")
    finish(study, fig, table, seeds_text([seed for s in chosen for seed in s.seeds]))


if __name__ == "__main__":
    main()
