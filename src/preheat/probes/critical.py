"""Critical sharpness: the curvature along an update direction, measured with forward passes only.

For a direction ``d`` (the optimizer's actual update, or ``-grad``) the *critical step* is

    s* = min { s > 0 : L(theta + s d) > L(theta) },

the smallest step along ``d`` that makes the loss go up, and the *critical sharpness* is
``2 / s*``. On a quadratic ``L = 1/2 theta^T H theta`` with ``d = -g`` (``g`` the gradient),
``L(theta - s g) - L(theta) = -s g^T g + s^2/2 g^T H g``, which is positive iff
``s > 2 g^T g / g^T H g``; so the critical sharpness is ``g^T H g / g^T g``, the curvature along
``d`` (the top eigenvalue of ``H`` when ``g`` lies along its top eigenvector). Gradient descent
along ``d`` with step ``eta`` raises the loss once ``eta > 2 / critical sharpness``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from preheat.probes._state import (
    LossFn,
    ModelGuard,
    as_pieces,
    check_loss_fn,
    fail,
    finite_value,
    forward_loss,
    gradient,
    trainable_parameters,
)
from preheat.schedules.validate import check_real


@dataclass(frozen=True)
class CriticalResult:
    """What :func:`critical_sharpness` measured.

    Attributes:
        value: ``2 / lr``: the critical sharpness (an upper bound when ``status`` is
            ``"above_lr_max"``, a lower bound when it is ``"below_lr_min"``).
        lr: the critical step estimate: the geometric mean of ``lr_low`` and ``lr_high`` when
            bracketed; otherwise the largest step tried that did not raise the loss
            (``"above_lr_max"``) or the smallest that did (``"below_lr_min"``).
        lr_low: the largest step found with ``L(theta + s d) <= L0`` (None if none).
        lr_high: the smallest step found with ``L(theta + s d) > L0`` (None if none).
        L0: the loss at the current parameters.
        status: ``"bracketed"``, ``"above_lr_max"`` (no step up to ``lr_max`` raised the loss)
            or ``"below_lr_min"`` (already ``lr_min`` raised it: ``d`` may not descend).
        evaluations: forward passes at moved parameters (the one at ``theta`` not counted).
        seconds: wall-clock time of the call.
    """

    value: float
    lr: float
    lr_low: float | None
    lr_high: float | None
    L0: float
    status: str
    evaluations: int
    seconds: float


def critical_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Any,
    direction: Tensor | Sequence[Tensor] | str,
    *,
    lr_min: float = 1e-6,
    lr_max: float = 1e6,
    tol: float = 1e-3,
    lr_init: float | None = None,
) -> CriticalResult:
    """``2 / s*`` with ``s* = min{s > 0 : L(theta + s d) > L(theta)}``, by forward passes only.

    ``L(theta) = loss_fn(model, batch)`` over the trainable parameters ``theta`` (those with
    ``requires_grad``, in ``model.parameters()`` order). For a quadratic with ``d = -grad`` this is
    ``g^T H g / g^T g`` exactly (see the module docstring).

    Search: evaluate ``L(theta + s d)`` starting at ``s = lr_init`` (default ``lr_min``); while it
    does not exceed ``L0 = L(theta)`` double ``s`` (up to ``lr_max``), or, if it already exceeds,
    halve ``s`` (down to ``lr_min``) until it does not. This brackets ``s*`` between the last step
    that did not raise the loss and the first that did; then bisect geometrically
    (``mid = sqrt(lo * hi)``) until ``hi / lo <= 1 + tol``, and report ``lr = sqrt(lo * hi)``,
    ``value = 2 / lr`` (relative error below ``tol / 2``). A non-finite loss counts as raised.
    Starting from ``lr_min`` finds the *first* crossing when ``L(theta + s d)`` is not monotone in
    ``s``; an ``lr_init`` near the answer (``2 /`` the previous value) saves forward passes.

    In low precision, steps so small that the loss change is below rounding can read as
    "raised" (status ``"below_lr_min"``); measure in float64, or raise ``lr_min``, if that happens.

    Args:
        model: the network; its trainable parameters are moved and put back bit for bit.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor``.
        batch: passed to ``loss_fn`` unchanged.
        direction: ``d``: a flat tensor over the trainable parameters, one tensor per trainable
            parameter, or ``"-grad"`` (the negative gradient at ``theta``, computed here).
        lr_min: smallest step tried, > 0.
        lr_max: largest step tried, > ``lr_min``.
        tol: relative bracket width at which bisection stops, in (0, 1].
        lr_init: first step tried, in [``lr_min``, ``lr_max``]; None means ``lr_min``.

    Returns:
        A :class:`CriticalResult`.

    Cost: one forward pass at ``theta`` (or one forward and one backward for ``"-grad"``), plus
    about ``log2(s* / lr_init) + log2(ln 2 / ln(1 + tol))`` forward passes (``evaluations``; ~30
    from ``lr_min=1e-6`` to ``s* ~ 1`` with ``tol=1e-3``); one copy of the parameters. Use
    ``model.eval()`` for a deterministic loss: dropout would make every evaluation different.
    Buffers and ``.grad`` are restored.
    """
    owner = "critical_sharpness"
    check_loss_fn(owner, loss_fn)
    lr_min = check_real(owner, "lr_min", lr_min, 0.0, low_open=True)
    lr_max = check_real(owner, "lr_max", lr_max, lr_min, low_open=True)
    tol = check_real(owner, "tol", tol, 0.0, 1.0, low_open=True)
    start = lr_min if lr_init is None else check_real(owner, "lr_init", lr_init, lr_min, lr_max)
    params = trainable_parameters(model, owner)
    started = time.perf_counter()

    if isinstance(direction, str):
        if direction != "-grad":
            raise fail(owner, "direction", direction, "'-grad', a tensor, or a sequence of tensors")
    else:
        d = as_pieces(owner, "direction", direction, params)
        _check_nonzero(owner, d)

    with ModelGuard(model, params, restore_params=True) as guard:
        if isinstance(direction, str):
            loss0, grads = gradient(owner, model, loss_fn, batch, params)
            d = [g.neg_() for g in grads]
            _check_nonzero(owner, d)
        else:
            loss0 = finite_value(owner, forward_loss(owner, model, loss_fn, batch))
        evaluations = 0

        def raises(step: float) -> bool:
            nonlocal evaluations
            guard.move_along(step, d)
            evaluations += 1
            return not forward_loss(owner, model, loss_fn, batch) <= loss0

        lo: float | None = None
        hi: float | None = None
        step = start
        if raises(step):
            hi = step
            while step / 2.0 >= lr_min:
                step /= 2.0
                if not raises(step):
                    lo = step
                    break
                hi = step
        else:
            lo = step
            while step * 2.0 <= lr_max:
                step *= 2.0
                if raises(step):
                    hi = step
                    break
                lo = step
        if lo is not None and hi is not None:
            while hi / lo > 1.0 + tol:
                mid = math.sqrt(lo * hi)
                if raises(mid):
                    hi = mid
                else:
                    lo = mid
            lr, status = math.sqrt(lo * hi), "bracketed"
        elif hi is None:
            assert lo is not None
            lr, status = lo, "above_lr_max"
        else:
            lr, status = hi, "below_lr_min"

    return CriticalResult(
        value=2.0 / lr,
        lr=lr,
        lr_low=lo,
        lr_high=hi,
        L0=loss0,
        status=status,
        evaluations=evaluations,
        seconds=time.perf_counter() - started,
    )


def _check_nonzero(owner: str, direction: list[Tensor]) -> None:
    if all(float(piece.abs().max()) == 0.0 for piece in direction if piece.numel()):
        raise fail(owner, "direction", "<zero vector>", "a nonzero direction")
