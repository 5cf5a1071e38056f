"""Metrics of a sweep, computed from the store alone: per run, per schedule, and the ranking.

Definitions (every function below follows them):

- **final val loss**: the validation loss of a run's last evaluation; ``inf`` for a run that
  diverged (and for a last evaluation that is NaN/inf); NaN for a run with no evaluation
  (pending, or crashed before its first one).
- **best val loss**: the lowest finite validation loss of a run (NaN if none).
- **target**: the validation loss a run has to reach. Given, or derived as ``target_factor``
  times the best validation loss of any ``finished`` run of the sweep. For a best loss ``b <= 0``
  ``factor * b`` would lie *below* the best (unreachable), so the derivation is written as
  ``b + (target_factor - 1) * |b|``: the same as ``target_factor * b`` for ``b > 0``, ``0`` for
  ``b = 0``, and a target just above ``b`` for ``b < 0``. ``None`` when no finished run has a
  finite validation loss.
- **steps to target**: the step of the first evaluation whose validation loss is ``<= target``
  (a run that diverged later still reached it); ``None`` if it never did.
- **diverged**: the run's status is ``diverged`` (the loop stopped it: loss NaN/inf or above
  ``diverge_factor`` times the initial validation loss). **crashed**: status ``failed`` (an
  exception; its text is the run's ``error``). These are different from **failed** below.
- **failed** (Kalra & Barkeshli 2024): the run's final training accuracy (the mean of the last
  10% of its recorded steps, at least one step, NaN ignored) is below ``1.5 x`` the task's
  chance accuracy. ``None`` when the chance accuracy is unknown or no accuracy was recorded.
- **spikes**: the number of rising edges of "the training loss at step ``t`` exceeds
  ``spike_factor`` times the exponential moving average (``alpha = 0.1``) of the losses of the
  steps before ``t``, and exceeds it by at least 25% of the initial training loss"; steps
  ``t < 10`` are not tested (the average has not settled yet). The second condition keeps
  minibatch noise out: at a loss of 0.05 one hard batch easily doubles it, which is not a
  spike. A run of consecutive spiking steps is one spike. A NaN/inf loss counts as exceeding
  and is not fed into the average. See :func:`count_spikes`.
- **stable** (one run): ``finished`` and not failed. A schedule's **largest stable LR** is the
  largest swept peak LR ``L`` such that every done run at *every* swept LR ``<= L`` is stable:
  stability must hold from the smallest LR up, so a lucky seed at a large LR after a diverged
  smaller one does not count. ``None`` when the smallest LR is already unstable.
- **good LR range**: the peak LRs whose mean final val loss is within ``(1 + tolerance)`` of the
  schedule's best mean final val loss (written ``best + tolerance * |best|``, as for the target);
  reported as the list and its (min, max).

Aggregates use only done runs (``finished``, ``diverged``, ``failed``). A mean final val loss
over seeds is ``inf`` as soon as one seed diverged, so an LR where any seed diverged is never a
schedule's best; crashed runs (NaN) are left out of the means but still make an LR unstable.
Standard deviations are over seeds (``ddof = 1``; NaN for one seed).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from preheat.lab.store import DONE, Store
from preheat.lab.tasks import make_task

SPIKE_ALPHA = 0.1
SPIKE_SKIP = 10
SPIKE_MIN_RISE = 0.25
ACCURACY_TAIL = 0.1
FAILED_FACTOR = 1.5

RANKING_HEADERS = (
    "rank", "schedule", "warmup", "best peak LR", "final val loss", "steps to target",
    "diverged / runs", "largest stable LR", "good LR range", "ms / step",
)


def _loosen(value: float, factor: float) -> float:
    """``factor * value`` for ``value > 0``, generalised as ``value + (factor - 1) * |value|``."""
    return value + (factor - 1.0) * abs(value)


def count_spikes(
    losses: Sequence[float] | np.ndarray,
    factor: float = 2.0,
    alpha: float = SPIKE_ALPHA,
    skip: int = SPIKE_SKIP,
    min_rise: float = SPIKE_MIN_RISE,
) -> int:
    """How many loss spikes ``losses`` has (see the module docstring).

    With ``ema`` the exponential moving average of the finite losses before step ``t``
    (``ema <- alpha * loss + (1 - alpha) * ema``, starting at the first finite loss ``l0``),
    step ``t`` spikes when ``loss[t]`` is NaN/inf, or when both
    ``loss[t] > ema + (factor - 1) * |ema|`` (``factor * ema`` for a positive average) and
    ``loss[t] - ema > min_rise * |l0|``. Steps ``t < skip`` are not tested. The count is the
    number of spiking steps whose previous step did not spike.
    """
    if not factor > 1.0:
        raise ValueError(f"spike_factor={factor!r} is invalid; expected a number above 1")
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha={alpha!r} is invalid; expected a number in (0, 1]")
    if not min_rise >= 0.0:
        raise ValueError(f"min_rise={min_rise!r} is invalid; expected a number >= 0")
    count, ema, first, previous = 0, None, None, False
    for t, loss in enumerate(np.asarray(losses, dtype=np.float64)):
        finite = math.isfinite(loss)
        spiking = False
        if t >= skip and ema is not None:
            spiking = not finite or (loss > _loosen(ema, factor) and loss - ema > min_rise * abs(first))
        if spiking and not previous:
            count += 1
        previous = spiking
        if finite:
            ema = loss if ema is None else alpha * loss + (1.0 - alpha) * ema
            first = loss if first is None else first
    return count


def final_train_accuracy(accuracy: Sequence[float] | np.ndarray) -> float:
    """The mean of the last 10% (at least one) of the recorded training accuracies, NaN ignored;
    NaN when there is none."""
    values = np.asarray(accuracy, dtype=np.float64)
    if values.size == 0:
        return math.nan
    tail = values[-max(1, math.ceil(ACCURACY_TAIL * values.size)):]
    tail = tail[~np.isnan(tail)]
    return float(tail.mean()) if tail.size else math.nan


def derive_target(best: float | None, factor: float) -> float | None:
    """``best + (factor - 1) * |best|`` (``factor * best`` for ``best > 0``); None without a best."""
    if best is None or not math.isfinite(best):
        return None
    return _loosen(best, factor)


def chance_by_task(runs: list[dict[str, Any]], chance: Mapping[str, float | None] | None) -> dict[str, float | None]:
    """Chance accuracy per task name: from ``chance``, else from the task (built once per name)."""
    known: dict[str, float | None] = dict(chance or {})
    for run in runs:
        config = run["config"]
        if config.task not in known:
            try:
                known[config.task] = make_task(config.task, config.task_options).chance_accuracy
            except (ValueError, OSError):  # a task that cannot be built here: chance unknown
                known[config.task] = None
    return known


def run_metrics(
    store: Store,
    target: float | None = None,
    target_factor: float = 1.1,
    spike_factor: float = 2.0,
    chance: Mapping[str, float | None] | None = None,
) -> list[dict[str, Any]]:
    """One dict per run of ``store`` (store order), with the metrics the module docstring defines.

    Keys: ``id``, ``name`` (as stored: what the ranking groups by), ``family`` (the config's
    ``label`` or its schedule template, ``{warmup}`` unfilled: what a warmup sweep varies),
    ``task``, ``optimizer``, ``peak_lr``, ``warmup``, ``seed``, ``steps``
    (configured), ``status``, ``config`` (the RunConfig), ``final_val_loss``, ``best_val_loss``,
    ``target`` (the same for every row), ``steps_to_target``, ``diverged``, ``crashed``,
    ``final_train_accuracy``, ``failed``, ``spikes``, ``wall_time``.

    ``chance`` maps a task name to its chance accuracy (``None``: unknown); tasks it does not
    name are built once with ``make_task`` to read ``chance_accuracy`` (unknown if that fails).
    """
    if target is not None and not math.isfinite(target):
        raise ValueError(f"target={target!r} is invalid; expected a finite number or None")
    if not (math.isfinite(target_factor) and target_factor >= 1.0):
        raise ValueError(f"target_factor={target_factor!r} is invalid; expected a finite number >= 1")
    if not spike_factor > 1.0:
        raise ValueError(f"spike_factor={spike_factor!r} is invalid; expected a number above 1")

    runs = store.runs()
    chances = chance_by_task(runs, chance)
    rows = []
    for run in runs:
        config = run["config"]
        steps, evals = store.steps(run["id"]), store.evals(run["id"])
        losses = evals["val_loss"]
        finite = losses[np.isfinite(losses)]
        diverged = run["status"] == "diverged"
        if diverged:
            final = math.inf
        elif losses.size:
            final = float(losses[-1]) if math.isfinite(losses[-1]) else math.inf
        else:
            final = math.nan
        accuracy = final_train_accuracy(steps["train_accuracy"])
        task_chance = chances.get(config.task)
        failed = None
        if task_chance is not None and not math.isnan(accuracy):
            failed = accuracy < FAILED_FACTOR * task_chance
        rows.append({
            "id": run["id"], "name": run["name"], "family": config.label or config.template,
            "template": config.template, "task": config.task,
            "optimizer": config.optimizer, "peak_lr": config.peak_lr, "warmup": config.warmup,
            "seed": config.seed, "steps": config.steps, "status": run["status"], "config": config,
            "final_val_loss": final,
            "best_val_loss": float(finite.min()) if finite.size else math.nan,
            "eval_steps": evals["step"], "eval_losses": losses,
            "diverged": diverged, "crashed": run["status"] == "failed",
            "final_train_accuracy": accuracy, "failed": failed,
            "spikes": count_spikes(steps["train_loss"], spike_factor),
            "wall_time": run["wall_time"],
        })

    if target is None:
        best = [r["best_val_loss"] for r in rows if r["status"] == "finished" and math.isfinite(r["best_val_loss"])]
        target = derive_target(min(best) if best else None, target_factor)
    for row in rows:
        steps_at, losses = row.pop("eval_steps"), row.pop("eval_losses")
        reached = np.flatnonzero(losses <= target) if target is not None else np.array([], dtype=int)
        row["target"] = target
        row["steps_to_target"] = int(steps_at[reached[0]]) if reached.size else None
    return rows


def _std(values: np.ndarray) -> float:
    """Sample standard deviation (``ddof = 1``); NaN for fewer than two values or any inf."""
    if values.size < 2 or not np.all(np.isfinite(values)):
        return math.nan
    return float(values.std(ddof=1))


def _stable(row: dict[str, Any]) -> bool:
    return row["status"] == "finished" and row["failed"] is not True


def _lr_cell(peak_lr: float, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate the done runs of one (schedule, warmup, peak LR) over seeds."""
    finals = np.array([r["final_val_loss"] for r in runs if not np.isnan(r["final_val_loss"])])
    reached = [r["steps_to_target"] for r in runs if r["steps_to_target"] is not None]
    return {
        "peak_lr": peak_lr,
        "runs": len(runs),
        "seeds": sorted(r["seed"] for r in runs),
        "mean_final_val_loss": float(finals.mean()) if finals.size else math.nan,
        "std_final_val_loss": _std(finals),
        "diverged": sum(r["diverged"] for r in runs),
        "failed": sum(r["failed"] is True for r in runs),
        "crashed": sum(r["crashed"] for r in runs),
        "stable": all(_stable(r) for r in runs),
        "mean_steps_to_target": float(np.mean(reached)) if reached else None,
        "reached": len(reached),
    }


def schedule_metrics(rows: list[dict[str, Any]], tolerance: float = 0.05) -> list[dict[str, Any]]:
    """One dict per (schedule name, warmup) over the peak LRs swept, from :func:`run_metrics` rows.

    Keys: ``name``, ``warmup`` (None for a schedule without ``{warmup}``), ``cells`` (one dict per
    peak LR, ascending: ``peak_lr``, ``runs``, ``seeds``, ``mean_final_val_loss``,
    ``std_final_val_loss``, ``diverged``, ``failed``, ``crashed``, ``stable``,
    ``mean_steps_to_target`` (over the seeds that reached the target), ``reached``),
    ``best_peak_lr`` (the LR of the lowest finite mean final val loss; None if there is none),
    ``best`` (its cell, or None), ``largest_stable_lr``, ``good_lrs`` and ``good_lr_range``
    (see the module docstring), ``runs`` and ``diverged`` (over all its done runs).
    Order: first appearance in ``rows``.
    """
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance={tolerance!r} is invalid; expected a finite number >= 0")
    groups: dict[tuple[str, int | None], dict[float, list[dict[str, Any]]]] = {}
    for row in rows:
        if row["status"] in DONE:
            groups.setdefault((row["name"], row["warmup"]), {}).setdefault(row["peak_lr"], []).append(row)
    result = []
    for (name, warmup), by_lr in groups.items():
        cells = [_lr_cell(lr, by_lr[lr]) for lr in sorted(by_lr)]
        finite = [c for c in cells if math.isfinite(c["mean_final_val_loss"])]
        best = min(finite, key=lambda c: c["mean_final_val_loss"]) if finite else None
        largest = None
        for cell in cells:
            if not cell["stable"]:
                break
            largest = cell["peak_lr"]
        good: list[float] = []
        if best is not None:
            limit = _loosen(best["mean_final_val_loss"], 1.0 + tolerance)
            good = [c["peak_lr"] for c in finite if c["mean_final_val_loss"] <= limit]
        result.append({
            "name": name, "warmup": warmup, "cells": cells,
            "best_peak_lr": best["peak_lr"] if best else None, "best": best,
            "largest_stable_lr": largest,
            "good_lrs": good, "good_lr_range": (min(good), max(good)) if good else None,
            "runs": sum(c["runs"] for c in cells), "diverged": sum(c["diverged"] for c in cells),
        })
    return result


def _sort_key(group: dict[str, Any]) -> tuple[float, float]:
    best = group["best"]
    if best is None:
        return (math.inf, math.inf)
    steps = best["mean_steps_to_target"]
    return (best["mean_final_val_loss"], math.inf if steps is None else steps)


def ranking(rows: list[dict[str, Any]], tolerance: float = 0.05) -> list[dict[str, Any]]:
    """The comparison table: one row per schedule name, best first.

    A name swept over warmup has one group per warmup (:func:`schedule_metrics`); its row is
    the group with the lowest best mean final val loss (ties: fewer mean steps to target), and
    ``warmup``, ``best_peak_lr``, the loss, steps to target, ``largest_stable_lr`` and
    ``good_lr_range`` are that group's. ``diverged`` and ``runs`` count all done runs of the
    name (every warmup and LR). Rows are ranked by best mean final val loss, ties by mean steps
    to target (never reached counts as infinite), then name; a name without a finite loss comes
    last.

    Keys: ``rank``, ``name``, ``warmup``, ``best_peak_lr``, ``final_val_loss_mean``,
    ``final_val_loss_std``, ``steps_to_target`` (mean at the best LR over the seeds that
    reached the target, or None), ``reached``, ``seeds`` (runs at the best LR), ``diverged``,
    ``runs``, ``largest_stable_lr``, ``good_lr_range``, ``warmups`` (all swept for the name),
    ``ms_per_step`` (mean wall time per update of its finished runs).
    """
    by_name: dict[str, list[dict[str, Any]]] = {}
    for group in schedule_metrics(rows, tolerance):
        by_name.setdefault(group["name"], []).append(group)
    table, keys = [], []
    for name, groups in by_name.items():
        chosen = min(groups, key=_sort_key)
        best = chosen["best"]
        table.append({
            "name": name, "warmup": chosen["warmup"], "best_peak_lr": chosen["best_peak_lr"],
            "final_val_loss_mean": best["mean_final_val_loss"] if best else math.nan,
            "final_val_loss_std": best["std_final_val_loss"] if best else math.nan,
            "steps_to_target": best["mean_steps_to_target"] if best else None,
            "reached": best["reached"] if best else 0,
            "seeds": best["runs"] if best else 0,
            "diverged": sum(g["diverged"] for g in groups), "runs": sum(g["runs"] for g in groups),
            "largest_stable_lr": chosen["largest_stable_lr"], "good_lr_range": chosen["good_lr_range"],
            "warmups": sorted(g["warmup"] for g in groups if g["warmup"] is not None),
            "ms_per_step": _ms_per_step([r for r in rows if r["name"] == name]),
        })
        keys.append((*_sort_key(chosen), name))
    order = sorted(range(len(table)), key=keys.__getitem__)
    return [{"rank": rank, **table[i]} for rank, i in enumerate(order, start=1)]


def _ms_per_step(rows: list[dict[str, Any]]) -> float:
    """Mean wall time per update of the finished runs, in ms (training, evaluation and any
    signals a controller measured): what a method costs next to another on the same task."""
    times = [1000.0 * r["wall_time"] / r["steps"] for r in rows if r["status"] == "finished" and r["wall_time"]]
    return float(np.mean(times)) if times else math.nan


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}g}"


def format_ranking(table: list[dict[str, Any]]) -> tuple[tuple[str, ...], list[list[str]]]:
    """The :func:`ranking` table as text cells, with :data:`RANKING_HEADERS`, for the CLI and report.

    The loss is ``mean ± std`` (``mean`` alone for one seed); steps to target gets ``(k/n)``
    when only ``k`` of the ``n`` seeds at the best LR reached it; the warmup is ``—`` for a
    schedule without ``{warmup}``.
    """
    cells = []
    for row in table:
        loss = _number(row["final_val_loss_mean"])
        if not math.isnan(row["final_val_loss_std"]):
            loss += f" ± {_number(row['final_val_loss_std'], 2)}"
        steps = _number(row["steps_to_target"], 6)
        if row["steps_to_target"] is not None and row["reached"] < row["seeds"]:
            steps += f" ({row['reached']}/{row['seeds']})"
        good = row["good_lr_range"]
        cells.append([
            str(row["rank"]), row["name"], "—" if row["warmup"] is None else str(row["warmup"]),
            _number(row["best_peak_lr"], 3), loss, steps, f"{row['diverged']} / {row['runs']}",
            _number(row["largest_stable_lr"], 3),
            "—" if good is None else (_number(good[0], 3) if good[0] == good[1]
                                      else f"{_number(good[0], 3)} – {_number(good[1], 3)}"),
            _number(row["ms_per_step"], 3),
        ])
    return RANKING_HEADERS, cells

