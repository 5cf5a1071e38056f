"""Study 5 — Ma & Yarats 2021: untuned warmup for Adam performs about as well as RAdam.

"On the adequacy of untuned warmup for adaptive optimization" argue that RAdam's rectification is
in effect a warmup of about ``2 / (1 - beta2)`` updates, and that Adam with the *untuned* linear
warmup ``min(1, (1 - beta2) / 2 t)`` (or the exponential ``1 - exp(-(1 - beta2) t)``) does as
well as RAdam without any tuning. Here, on the digits MLP and the tiny Shakespeare GPT, at
several peak LRs, four methods share one cosine decay over the run and differ only in warmup:

- Adam without warmup;
- Adam x ``untuned_linear_warmup(beta2)``;
- Adam x ``exponential_warmup(beta2=beta2)`` (untuned exponential);
- RAdam (``torch.optim.RAdam``: its rectification instead of a warmup).

``beta2 = 0.99`` (untuned warmup of 199 updates), so the warmup fits these short runs; no weight
decay (the lab's RAdam would apply it as L2).

    taskset -c 1 .venv/bin/python -m studies.untuned
    .venv/bin/python -m studies.untuned --smoke --out /tmp/s --docs /tmp/d
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from matplotlib.ticker import NullFormatter

from preheat.lab.config import RunConfig
from preheat.schedules import parse
from studies.common import figure, finish, markdown_table, mean_std, parse_args, plain_log_ticks, seeds_text, sweep

NAME = "untuned"
BETA2 = 0.99
METHODS = (  # label, optimizer, schedule (the same cosine decay for all)
    ("Adam, no warmup", "adam", "cosine_decay({steps})"),
    ("Adam + untuned linear warmup", "adam", f"untuned_linear_warmup({BETA2}) * cosine_decay({{steps}})"),
    ("Adam + untuned exponential warmup", "adam", f"exponential_warmup(beta2={BETA2}) * cosine_decay({{steps}})"),
    ("RAdam", "radam", "cosine_decay({steps})"),
)


def setups(smoke: bool) -> list[tuple[str, dict[str, Any], tuple[float, ...], tuple[int, ...]]]:
    """(title, fixed run fields, peak LRs, seeds). Full: digits 1000 updates of batch 32, seeds
    0-2; GPT 512 updates of batch 16, seed 0."""
    if smoke:
        return [("digits MLP", {"task": "digits", "task_options": {"width": 32}, "steps": 20, "eval_every": 10},
                 (1e-2, 1e-1), (0,))]
    return [
        ("digits MLP", {"task": "digits", "batch_size": 32, "steps": 1000, "eval_every": 50},
         (1e-3, 3e-3, 1e-2, 3e-2, 1e-1), (0, 1, 2)),
        ("Shakespeare GPT (tiny)", {"task": "shakespeare-char", "task_options": {"size": "tiny"}, "batch_size": 16,
                                    "steps": 512, "eval_every": 64}, (3e-3, 1e-2, 3e-2), (0,)),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    study = parse_args(NAME, __doc__, argv)
    chosen = setups(study.smoke)
    runs = [RunConfig(**base, optimizer=optimizer, schedule=schedule, betas=(0.9, BETA2), peak_lr=lr, seed=seed,
                      label=f"{title} | {label}")
            for title, base, lrs, seeds in chosen for label, optimizer, schedule in METHODS
            for lr in lrs for seed in seeds]
    rows = sweep(study, runs)
    finals: dict[tuple[str, float], list[float]] = {}
    for row in rows:
        finals.setdefault((row.method, row.config.peak_lr), []).append(row.final_val_loss)

    tables = ""
    for title, _, lrs, seeds in chosen:
        body = []
        for label, _, _ in METHODS:
            means = [np.mean(finals[(f"{title} | {label}", lr)]) for lr in lrs]
            best = lrs[int(np.argmin(means))]
            body.append([label, *(mean_std(finals[(f"{title} | {label}", lr)]) for lr in lrs), f"{best:g}"])
        with np.errstate(invalid="ignore"):  # inf - inf where both diverged
            gaps = [np.mean(finals[(f"{title} | Adam + untuned linear warmup", lr)])
                    - np.mean(finals[(f"{title} | RAdam", lr)]) for lr in lrs]
        body.append(["untuned linear minus RAdam", *(f"{g:+.3g}" if np.isfinite(g) else "—" for g in gaps), ""])
        tables += (f"**{title}** (final validation loss, mean ± std over seeds {seeds_text(seeds)}):\n\n"
                   + markdown_table(("method", *(f"peak {lr:g}" for lr in lrs), "best peak"), body) + "\n")

    fig, axes = figure(4.0 * (len(chosen) + 1), 3.4, 1, len(chosen) + 1)
    t = np.arange(600)
    for label, optimizer, schedule in METHODS:
        if optimizer == "adam":
            axes[0, 0].plot(t, parse(schedule.format(steps=10**9))(t), label=label)
    axes[0, 0].plot(t, parse(f"radam_warmup({BETA2})")(t), linestyle="--", color="black",
                    label="RAdam's rectification factor")
    axes[0, 0].set_title(f"warmup multipliers, beta2={BETA2}", fontsize="small")
    axes[0, 0].set_xlabel("update", fontsize="x-small")
    axes[0, 0].legend(fontsize="xx-small")
    for ax, (title, _, lrs, _) in zip(axes[0, 1:], chosen):
        for label, _, _ in METHODS:
            means = [np.mean(finals[(f"{title} | {label}", lr)]) for lr in lrs]
            ax.plot(lrs, np.where(np.isfinite(means), means, np.nan), marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(lrs, [f"{lr:g}" for lr in lrs])
        ax.xaxis.set_minor_formatter(NullFormatter())
        plain_log_ticks(ax.yaxis)
        ax.set_title(f"{title}: final val loss (mean)", fontsize="small")
        ax.set_xlabel("peak LR", fontsize="x-small")
        ax.legend(fontsize="xx-small")
    for ax in axes.flat:
        ax.tick_params(labelsize="x-small")
        ax.grid(alpha=0.3, linewidth=0.5)
    finish(study, fig, tables, seeds_text([run.seed for run in runs]))


if __name__ == "__main__":
    main()
