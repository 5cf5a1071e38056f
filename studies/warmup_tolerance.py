"""Study 1 — Kalra & Barkeshli 2024: warmup lets a network tolerate a larger target learning rate.

Reproduces their phase diagrams at CPU scale: heatmaps of the final validation loss over the
target LR (a doubling grid, extended until no run at the largest LR trains) x the warmup
length (linear warmup from 0, then constant at the target), for SGD and Adam, on the digits MLP
(standard parameterisation; cross-entropy and MSE) and the tiny Shakespeare GPT. For every
warmup length it reports the largest trainable target LR: the largest LR at which, and at every
smaller LR of the grid, every seed finished, did not fail (final training accuracy >= 1.5x
chance) and ended below the loss of an input-blind prediction (``studies.common.trainable``).

    taskset -c 1 .venv/bin/python -m studies.warmup_tolerance          # full (see docs/studies)
    .venv/bin/python -m studies.warmup_tolerance --smoke --out /tmp/s --docs /tmp/d
"""

from __future__ import annotations

from typing import Sequence

from studies.common import finish, parse_args, seeds_text
from studies.lr_grid import Grid, doubling_sweep, grid_table, heatmap_figure

NAME = "warmup_tolerance"

#: (title, task, digits loss or None, optimizer, first LR of the doubling grid)
SETTINGS = (
    ("digits MLP, cross-entropy, SGD", "digits", "cross_entropy", "sgd", 2.0**-4),
    ("digits MLP, cross-entropy, Adam", "digits", "cross_entropy", "adam", 2.0**-8),
    ("digits MLP, MSE, SGD", "digits", "mse", "sgd", 2.0**-7),
    ("digits MLP, MSE, Adam", "digits", "mse", "adam", 2.0**-8),
    ("Shakespeare GPT (tiny), SGD", "shakespeare-char", None, "sgd", 2.0**-3),
    ("Shakespeare GPT (tiny), Adam", "shakespeare-char", None, "adam", 2.0**-8),
)


def grids(smoke: bool) -> list[Grid]:
    """The six heatmaps (two small ones with ``smoke``).

    Full: digits 2048 updates of batch 32, warmups 1, 64, 256, 1024 (the paper's grid), seeds
    0 and 1; GPT 256 updates of batch 16, warmups 1, 8, 32, 128 (the paper's grid / 8), seed 0.
    """
    if smoke:
        sizes = {"digits": ({"width": 32}, 32, 16, (1, 4), (0,)),
                 "shakespeare-char": ({"size": "tiny", "n_layer": 1, "block_size": 16}, 8, 4, (1, 2), (0,))}
        settings = (SETTINGS[1], SETTINGS[5])
    else:
        sizes = {"digits": ({}, 32, 2048, (1, 64, 256, 1024), (0, 1)),
                 "shakespeare-char": ({"size": "tiny"}, 16, 256, (1, 8, 32, 128), (0,))}
        settings = SETTINGS
    result = []
    for title, task, loss, optimizer, start in settings:
        options, batch, steps, warmups, seeds = sizes[task]
        base = {"task": task, "task_options": {**options, **({"loss": loss} if loss else {})},
                "optimizer": optimizer, "batch_size": batch, "steps": steps, "eval_every": max(1, steps // 8),
                "schedule": "linear_warmup({warmup})"}
        rows = tuple((f"warmup {w}", {"warmup": w}) for w in warmups)
        result.append(Grid(title, base, rows, start, seeds))
    return result


def main(argv: Sequence[str] | None = None) -> None:
    study = parse_args(NAME, __doc__, argv)
    chosen = grids(study.smoke)
    lrs, cells = doubling_sweep(study, chosen, max_lrs=3 if study.smoke else 16)
    fig = heatmap_figure(chosen, lrs, cells, cols=2)
    finish(study, fig, grid_table(chosen, lrs, cells), seeds_text([s for g in chosen for s in g.seeds]))


if __name__ == "__main__":
    main()
