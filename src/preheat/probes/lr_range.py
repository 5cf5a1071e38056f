"""The learning-rate range test: train briefly under an exponentially rising LR and read the loss curve.

Smith (2017, "Cyclical learning rates") and fastai's ``lr_find``: update ``i`` (0-based) of
``steps`` uses

    lr_i = start_lr * (end_lr / start_lr) ** (i / (steps - 1)),

the loss is smoothed by a bias-corrected exponential moving average, the test stops once the
smoothed loss blows up, and three rules read suggested learning rates off the smoothed curve.
The model and optimizer are put back as they were afterwards.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from preheat.probes._state import LossFn, check_training, fail, scalar_loss
from preheat.schedules.validate import check_int, check_real


@dataclass(frozen=True)
class LRRangeResult:
    """What :func:`lr_range_test` recorded.

    Attributes:
        lrs: the learning rate of each update run (float64 array).
        losses: the loss of each update's batch, measured just before that update.
        smoothed: the bias-corrected EMA of ``losses`` (NaN where the loss was not finite).
        suggestions: ``{"valley", "steepest", "min_over_10"}`` -> learning rate, or None where the
            curve is too short (fewer than 3 finite points) or, for ``valley`` and ``steepest``,
            never descends.
        stop_reason: ``"completed"`` (all ``steps`` ran), ``"diverged"`` (smoothed loss above
            ``diverge_factor`` times its best), ``"non_finite"`` (a loss was inf or NaN; that update
            was not taken) or ``"batches_exhausted"`` (a one-shot iterator ran out).
        seconds: wall-clock time of the test, restoring included.
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestions: dict[str, float | None]
    stop_reason: str
    seconds: float


def lr_range_test(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    smooth: float = 0.05,
    diverge_factor: float = 4.0,
) -> LRRangeResult:
    """Run an LR range test with ``optimizer`` and suggest learning rates; restore everything after.

    Update ``i`` sets every param group's ``lr`` to
    ``lr_i = start_lr * (end_lr / start_lr) ** (i / (steps - 1))``, takes the next batch, computes
    ``loss_i = loss_fn(model, batch)`` (recorded), back-propagates it and calls
    ``optimizer.step()``. So ``losses[i]`` is measured *before* the update at ``lrs[i]`` (the
    usual convention: it reflects the LRs up to ``lrs[i - 1]``). The smoothed loss is the
    bias-corrected EMA with weight ``smooth`` on the newest loss::

        a_i = (1 - smooth) a_{i-1} + smooth * loss_i,  a_{-1} = 0,
        smoothed_i = a_i / (1 - (1 - smooth) ** (i + 1)).

    The test stops early after update ``i`` if ``smoothed_i > diverge_factor * min_{j<=i}
    smoothed_j`` (checked only while that minimum is positive), or before an update whose loss is
    not finite. When ``batches`` runs out it is iterated again if it can be (a list, a
    DataLoader); a one-shot iterator ends the test.

    Suggestions, computed from the finite smoothed curve ``s`` against ``log(lr)``:

    - ``"steepest"``: the LR where ``d s / d log(lr)`` (``numpy.gradient``) is most negative,
      searched over the points up to the minimum of ``s`` (the descending part).
    - ``"min_over_10"``: (the LR at the minimum of ``s``) / 10.
    - ``"valley"``: the longest valley is the longest strictly decreasing subsequence of ``s``
      (not necessarily contiguous; ties go to the earliest), from its first index ``a`` to its
      last ``b``. The suggestion is the LR at the first index ``i`` in ``[a, b]`` where the
      valley is two thirds of the way down: ``s_i <= s_a - (2/3) (s_a - s_b)``. (fastai's
      ``valley`` takes the same subsequence but the index halfway from ``a`` to ``b``; counting
      in loss rather than in steps keeps the answer from drifting with how far ``start_lr``
      reaches into the flat region before the descent.)

    State: the model's ``state_dict()`` (parameters and buffers) and the optimizer's
    ``state_dict()`` (moments, step counts, param-group hyperparameters including ``lr``) are
    deep-copied before the test and loaded back after it (also when it raises), and every
    parameter's ``.grad`` is put back. Random number generators are not restored (dropout draws
    from them). The model's train/eval mode is left alone.

    Args:
        model: the network being trained.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor``; losses should be positive (for the
            divergence rule).
        batches: an iterable of batches passed to ``loss_fn`` one per update; must not be empty.
        optimizer: a ``torch.optim.Optimizer`` over (some of) the model's parameters.
        start_lr: the first LR, > 0.
        end_lr: the last LR, > ``start_lr``.
        steps: number of updates (LRs), >= 2.
        smooth: EMA weight of the newest loss, in (0, 1] (1 means no smoothing).
        diverge_factor: early-stop factor, > 1.

    Returns:
        An :class:`LRRangeResult`.

    Cost: up to ``steps`` training steps (one forward, one backward, one optimizer step each),
    plus a deep copy of the model's and the optimizer's state dicts (about one extra model, plus
    one extra optimizer state, in memory on their devices) and loading them back.
    """
    owner = "lr_range_test"
    check_training(owner, model, loss_fn, batches, optimizer)
    start_lr = check_real(owner, "start_lr", start_lr, 0.0, low_open=True)
    end_lr = check_real(owner, "end_lr", end_lr, start_lr, low_open=True)
    steps = check_int(owner, "steps", steps, minimum=2)
    smooth = check_real(owner, "smooth", smooth, 0.0, 1.0, low_open=True)
    diverge_factor = check_real(owner, "diverge_factor", diverge_factor, 1.0, low_open=True)
    started = time.perf_counter()

    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_grads = [(p, p.grad) for p in model.parameters()]
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    try:
        stop_reason = _run(
            owner,
            model,
            loss_fn,
            batches,
            optimizer,
            (start_lr, end_lr, steps, smooth, diverge_factor),
            (lrs, losses, smoothed),
        )
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        for p, grad in saved_grads:
            p.grad = grad

    lr_array = np.asarray(lrs, dtype=np.float64)
    smoothed_array = np.asarray(smoothed, dtype=np.float64)
    return LRRangeResult(
        lrs=lr_array,
        losses=np.asarray(losses, dtype=np.float64),
        smoothed=smoothed_array,
        suggestions=suggest(lr_array, smoothed_array),
        stop_reason=stop_reason,
        seconds=time.perf_counter() - started,
    )


def _run(
    owner: str,
    model: nn.Module,
    loss_fn: LossFn,
    batches: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    settings: tuple[float, float, int, float, float],
    records: tuple[list[float], list[float], list[float]],
) -> str:
    """The training loop of :func:`lr_range_test`; fills ``records``, returns the stop reason."""
    start_lr, end_lr, steps, smooth, diverge_factor = settings
    lrs, losses, smoothed = records
    iterator: Iterator[Any] = iter(batches)
    one_shot = iterator is batches
    average, best = 0.0, math.inf
    for i in range(steps):
        try:
            batch = next(iterator)
        except StopIteration:
            if i == 0:
                raise fail(owner, "batches", "<empty iterable>", "at least one batch") from None
            if one_shot:
                return "batches_exhausted"
            iterator = iter(batches)
            batch = next(iterator)
        lr = start_lr * (end_lr / start_lr) ** (i / (steps - 1))
        for group in optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        model.zero_grad(set_to_none=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = scalar_loss(owner, loss_fn(model, batch))
        value = float(loss.detach())
        lrs.append(lr)
        losses.append(value)
        if not math.isfinite(value):
            smoothed.append(math.nan)
            return "non_finite"
        loss.backward()
        optimizer.step()
        average = (1.0 - smooth) * average + smooth * value
        current = average / (1.0 - (1.0 - smooth) ** (i + 1))
        smoothed.append(current)
        best = min(best, current)
        if best > 0.0 and current > diverge_factor * best:
            return "diverged"
    return "completed"


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> dict[str, float | None]:
    """The ``valley``, ``steepest`` and ``min_over_10`` rules of :func:`lr_range_test`.

    Uses the leading finite part of ``smoothed``; None for a rule that has too little to go on:
    fewer than 3 finite points, or, for ``steepest`` and ``valley``, no descent (the minimum is
    the first point).
    Cost: O(n^2) for the valley (n = number of points), negligible next to the test.
    """
    finite = np.isfinite(smoothed)
    n = int(np.argmin(finite)) if not finite.all() else len(smoothed)
    result: dict[str, float | None] = {"valley": None, "steepest": None, "min_over_10": None}
    if n < 3:
        return result
    lrs, s = np.asarray(lrs[:n], dtype=np.float64), np.asarray(smoothed[:n], dtype=np.float64)
    lowest = int(np.argmin(s))
    result["min_over_10"] = float(lrs[lowest] / 10.0)
    if lowest >= 1:
        slope = np.gradient(s, np.log(lrs))
        result["steepest"] = float(lrs[int(np.argmin(slope[: lowest + 1]))])
    start, end = _longest_valley(s)
    if end == start:
        return result
    level = s[start] - (2.0 / 3.0) * (s[start] - s[end])
    result["valley"] = float(lrs[start + int(np.argmax(s[start : end + 1] <= level))])
    return result


def _longest_valley(s: np.ndarray) -> tuple[int, int]:
    """First and last index of the longest strictly decreasing subsequence of ``s`` (earliest on ties)."""
    n = len(s)
    length = np.ones(n, dtype=np.int64)
    previous = np.full(n, -1, dtype=np.int64)
    for i in range(1, n):
        higher = np.flatnonzero(s[:i] > s[i])
        if higher.size:
            j = int(higher[np.argmax(length[higher])])
            length[i], previous[i] = length[j] + 1, j
    end = int(np.argmax(length))
    start = end
    while previous[start] >= 0:
        start = int(previous[start])
    return start, end
