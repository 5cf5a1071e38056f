"""Study 2 — Kalra & Barkeshli 2024: GI-Adam moves Adam's failure boundary and needs less warmup.

Two measurements:

1. **Failure boundary.** The doubling-LR heatmap of study 1 (``studies.common.doubling_sweep``)
   with Adam and GI-Adam (``optimizer = "giadam"``: Adam with ``v_0 = g_0^2``, the second-moment
   bias correction kept, ``preheat.optim.GIAdam``) as rows, without warmup (``warmup 1``: update
   0 at LR 0, then the target) on the digits MLP (cross-entropy; also with a 64-update warmup)
   and the tiny Shakespeare GPT. It reports each row's largest trainable target LR and its best final loss.
2. **Initial preconditioned sharpness.** ``preheat.lab.diagnose.diagnose`` trains Adam and
   GI-Adam at a constant LR for a few dozen updates and measures ``lambda_max(P_t^-1 H_t)`` (the
   Adam-preconditioned sharpness, ``P_t`` the preconditioner update ``t`` applied, ``H_t`` the
   Hessian of that update's batch loss at the parameters it started from) every few updates;
   update 0's value is the "initial" one. Its stability threshold for Adam is
   ``(2 + 2 beta1) / ((1 - beta1) eta)`` (38 / eta).

    taskset -c 1 .venv/bin/python -m studies.gi_adam
    .venv/bin/python -m studies.gi_adam --smoke --out /tmp/s --docs /tmp/d
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from preheat.lab.config import RunConfig
from studies.common import diagnosed, figure, finish, markdown_table, number, parse_args, seeds_text
from studies.lr_grid import Grid, add_heatmap, doubling_sweep, grid_table

NAME = "gi_adam"
OPTIMIZERS = (("Adam", "adam"), ("GI-Adam", "giadam"))


def grids(smoke: bool) -> list[Grid]:
    """Full: digits 1024 updates of batch 32, warmups 1 and 64, seeds 0, 1; GPT 256 updates of
    batch 16, no warmup, seed 0. Adam's default betas (0.9, 0.999) throughout."""
    if smoke:
        setups = [("digits MLP, cross-entropy", {"task": "digits", "task_options": {"width": 32}, "batch_size": 32,
                                                  "steps": 16}, (1, 4), (0,))]
    else:
        setups = [
            ("digits MLP, cross-entropy", {"task": "digits", "batch_size": 32, "steps": 1024}, (1, 64), (0, 1)),
            ("Shakespeare GPT (tiny)", {"task": "shakespeare-char", "task_options": {"size": "tiny"},
                                        "batch_size": 16, "steps": 256}, (1,), (0,)),
        ]
    result = []
    for title, base, warmups, seeds in setups:
        base = {**base, "eval_every": max(1, base["steps"] // 8), "schedule": "linear_warmup({warmup})"}
        rows = tuple((f"{label}, warmup {w}", {"optimizer": optimizer, "warmup": w})
                     for w in warmups for label, optimizer in OPTIMIZERS)
        result.append(Grid(title, base, rows, 2.0**-8, seeds))
    return result


def probes(smoke: bool) -> list[tuple[str, RunConfig, int]]:
    """(title, run, every) of the sharpness measurements: Adam and GI-Adam at the same constant LR."""
    if smoke:
        setups = [("digits, beta2=0.999", {"task": "digits", "task_options": {"width": 32}, "batch_size": 32},
                   1e-2, (0.9, 0.999), 4, 2, (0,))]
    else:
        digits = {"task": "digits", "batch_size": 32}
        setups = [
            ("digits, beta2=0.999", digits, 1e-2, (0.9, 0.999), 100, 10, (0, 1)),
            ("digits, beta2=0.99", digits, 1e-2, (0.9, 0.99), 100, 10, (0, 1)),
            ("GPT, beta2=0.999", {"task": "shakespeare-char", "task_options": {"size": "tiny"}, "batch_size": 16},
             1e-2, (0.9, 0.999), 60, 10, (0,)),
        ]
    return [(title, RunConfig(**base, optimizer=optimizer, peak_lr=lr, betas=betas, steps=steps, seed=seed,
                              label=f"{title}, {label}"), every)
            for title, base, lr, betas, steps, every, seeds in setups
            for label, optimizer in OPTIMIZERS for seed in seeds]


def preconditioned(result: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, lambda_max(P^-1 H)) of one diagnosis, NaN where missing."""
    measured = result["measurements"]
    values = [np.nan if v is None else v for v in measured["preconditioned_sharpness"]]
    return np.asarray(measured["step"]), np.asarray(values, dtype=np.float64)


def sharpness_table(found: list[tuple[str, RunConfig, dict[str, Any]]]) -> str:
    """Per (setting, optimizer, seed): the preconditioned sharpness at update 0 and at the last
    measurement, the threshold 38 / eta, and Adam / GI-Adam at update 0 (same seed)."""
    at_start = {(title, config.optimizer, config.seed): preconditioned(result)[1][0] for title, config, result in found}
    body = []
    for title, config, result in sorted(found, key=lambda item: (item[0], item[1].seed)):
        steps, values = preconditioned(result)
        threshold = (2 + 2 * config.betas[0]) / ((1 - config.betas[0]) * config.peak_lr)
        ratio = at_start[(title, "adam", config.seed)] / at_start[(title, "giadam", config.seed)]
        body.append([title, dict((o, l) for l, o in OPTIMIZERS)[config.optimizer], config.seed,
                     number(config.peak_lr), number(values[0]), f"{number(values[-1])} (update {int(steps[-1])})",
                     number(threshold), f"x{ratio:.3g}" if config.optimizer == "giadam" else ""])
    headers = ("setting", "optimizer", "seed", "LR", "λmax(P⁻¹H) at update 0", "at the last measurement",
               "threshold 38/η", "Adam / GI-Adam at update 0")
    return markdown_table(headers, body)


def draw_sharpness(axes: Any, title: str, found: list[tuple[str, RunConfig, dict[str, Any]]]) -> None:
    """Preconditioned sharpness over the first updates, Adam vs GI-Adam, with the threshold."""
    colors = {"adam": "tab:red", "giadam": "tab:blue"}
    shown = set()
    for name, config, result in found:
        if name != title:
            continue
        steps, values = preconditioned(result)
        label = dict((o, l) for l, o in OPTIMIZERS)[config.optimizer]
        axes.plot(steps, values, marker="o", markersize=3, color=colors[config.optimizer], linewidth=1,
                  label=None if label in shown else label)
        shown.add(label)
        threshold = (2 + 2 * config.betas[0]) / ((1 - config.betas[0]) * config.peak_lr)
    axes.axhline(threshold, color="black", linestyle="--", linewidth=1, label="threshold 38/η")
    axes.set_yscale("log")
    axes.set_title(f"{title}: preconditioned sharpness, η={config.peak_lr:g}", fontsize="small")
    axes.set_xlabel("update t", fontsize="x-small")
    axes.set_ylabel("λmax(P⁻¹H)", fontsize="x-small")
    axes.tick_params(labelsize="x-small")
    axes.grid(alpha=0.3, linewidth=0.5, which="both")
    axes.legend(fontsize="x-small")


def main(argv: Sequence[str] | None = None) -> None:
    study = parse_args(NAME, __doc__, argv)
    chosen = grids(study.smoke)
    lrs, cells = doubling_sweep(study, chosen, max_lrs=3 if study.smoke else 16)
    found = [(title, config, diagnosed(study, config, every)) for title, config, every in probes(study.smoke)]
    titles = list(dict.fromkeys(title for title, _, _ in found))
    cols = max(len(chosen), len(titles))
    fig, axes = figure(5.2 * cols, 5.6, 2, cols)
    for index, grid in enumerate(chosen):
        add_heatmap(fig, axes[0, index], grid, lrs[grid.title], cells)
    for index, title in enumerate(titles):
        draw_sharpness(axes[1, index], title, found)
    for row in range(2):
        for index in range(len(chosen) if row == 0 else len(titles), cols):
            axes[row, index].set_visible(False)
    tables = ("**Failure boundary** (largest trainable target LR per row; `vs first row` is against "
              "Adam without warmup):\n\n" + grid_table(chosen, lrs, cells) +
              "\n**Initial preconditioned sharpness**:\n\n" + sharpness_table(found))
    seeds = [s for g in chosen for s in g.seeds] + [config.seed for _, config, _ in found]
    finish(study, fig, tables, seeds_text(seeds))


if __name__ == "__main__":
    main()
