"""The lab's statistics: intervals of a mean over seeds, and paired comparisons of a method
with a baseline over the same seeds (the benchmark's).

:func:`half_width` is the half-width of the Student-t interval of a mean over seeds (the
ranking's ``±``, :data:`CONFIDENCE` = 95 %).

A benchmark cell is one (task, peak LR); a method and the baseline ran there with the same seeds
``s = 1..n`` (the seed fixes the data order and the initial weights, so a seed's two runs differ
only by the method). For final losses ``m_s`` (method) and ``b_s`` (baseline):

- :func:`paired_ratio`: the per-seed ratios ``r_s = m_s / b_s``, reported as their geometric
  mean ``exp(mean(log r_s))`` with the 95 % Student-t interval of ``mean(log r_s)`` mapped back
  by ``exp`` (a ratio below 1: the method ends lower). Pairing removes what the seed does to
  both runs alike, so the interval is narrower than two independent intervals would be.
- :func:`outcome`: ``win``, ``tie`` or ``loss`` of the method against the baseline. A run that
  diverged has an infinite loss: the side with fewer diverged seeds wins; with as many, the
  seeds where both finished decide (a tie when fewer than two are left). Otherwise a win needs
  the whole ratio interval below 1, a loss the whole interval above 1; anything else is a tie.
- :func:`interpolated_steps`: the step at which an evaluation curve first reaches a target,
  linearly interpolated between the two evaluations around the crossing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np


CONFIDENCE = 0.95
Outcome = Literal["win", "tie", "loss"]


def sample_std(values: np.ndarray) -> float:
    """Sample standard deviation (``ddof = 1``); NaN for fewer than two values or any inf."""
    if values.size < 2 or not np.all(np.isfinite(values)):
        return math.nan
    return float(values.std(ddof=1))


def half_width(values: np.ndarray, confidence: float = CONFIDENCE) -> float:
    """``t((1 + confidence) / 2, n - 1) * std / sqrt(n)``, the half-width of the Student-t
    interval of the mean of ``values``; NaN for fewer than two values or any inf."""
    from scipy.stats import t

    std = sample_std(values)
    return math.nan if math.isnan(std) else float(t.ppf((1 + confidence) / 2, values.size - 1) * std / math.sqrt(values.size))


@dataclass(frozen=True)
class Ratio:
    """The geometric-mean ratio ``value`` of a method's losses to the baseline's over ``seeds``
    paired seeds, and its interval ``(low, high)``."""

    value: float
    low: float
    high: float
    seeds: int


def _paired(method: Sequence[float], baseline: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    m, b = np.asarray(method, dtype=float), np.asarray(baseline, dtype=float)
    if m.ndim != 1 or m.shape != b.shape:
        raise ValueError(f"method and baseline must hold one loss per seed, the same seeds; got "
                         f"{m.size} and {b.size} values")
    if m.size < 2:
        raise ValueError(f"seeds={m.size} is too few to compare; expected at least 2 paired seeds")
    return m, b


def paired_ratio(method: Sequence[float], baseline: Sequence[float], confidence: float = CONFIDENCE) -> Ratio:
    """The method's losses over the baseline's, seed by seed (see the module docstring).

    Both hold one finite, positive loss per seed, in the same seed order; at least two seeds.
    """
    m, b = _paired(method, baseline)
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(b)) and np.all(m > 0) and np.all(b > 0)):
        raise ValueError("paired_ratio needs finite, positive losses; a diverged seed is judged by outcome()")
    logs = np.log(m / b)
    centre, half = float(logs.mean()), half_width(logs, confidence)
    return Ratio(math.exp(centre), math.exp(centre - half), math.exp(centre + half), int(m.size))


def outcome(method: Sequence[float], baseline: Sequence[float], confidence: float = CONFIDENCE) -> Outcome:
    """``win``, ``tie`` or ``loss`` of the method against the baseline (module docstring)."""
    m, b = _paired(method, baseline)
    m_diverged, b_diverged = int((~np.isfinite(m)).sum()), int((~np.isfinite(b)).sum())
    if m_diverged != b_diverged:
        return "win" if m_diverged < b_diverged else "loss"
    both = np.isfinite(m) & np.isfinite(b)
    if both.sum() < 2:
        return "tie"
    ratio = paired_ratio(m[both], b[both], confidence)
    return "win" if ratio.high < 1 else "loss" if ratio.low > 1 else "tie"


def interpolated_steps(steps: Sequence[float], losses: Sequence[float], target: float) -> float | None:
    """The step at which ``losses`` (evaluated at ``steps``, increasing) first reach ``target``.

    ``steps[0]`` when the first evaluation is already at or below it; else, with ``i`` the first
    evaluation at or below it, ``steps[i-1] + (losses[i-1] - target) / (losses[i-1] - losses[i])
    * (steps[i] - steps[i-1])``. None when no evaluation reaches it; a non-finite loss ends the
    curve (the run diverged there).
    """
    for i, (step, loss) in enumerate(zip(steps, losses)):
        if not math.isfinite(loss):
            return None
        if loss <= target:
            if i == 0:
                return float(step)
            before, at = losses[i - 1], loss
            return float(steps[i - 1] + (before - target) / (before - at) * (step - steps[i - 1]))
    return None
