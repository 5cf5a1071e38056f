"""Catapult search: the initial learning rate at which one update starts to raise the loss.

Kalra & Barkeshli (2024), "Why warmup the learning rate? Underlying mechanisms and improvements",
choose the learning rate warmup starts from as (an estimate of) the critical learning rate
``eta_c``: the smallest ``eta`` for which a single update from the initial parameters raises the
loss by more than a relative ``delta``,

    eta_c = min { eta : L(theta_1(eta)) > L0 (1 + delta) },   L0 = L(theta_0),

found by doubling ``eta`` from a small ``eta0`` while the update is still fine, then bisecting
between the last fine and the first bad value. Warmup then starts at ``min(eta_c, target_lr)``
instead of at (near) zero, saving the steps a blind warmup spends far below ``eta_c``.

For SGD on a quadratic started along the top eigenvector (curvature ``lambda``),
``L(theta - eta g) = (1 - eta lambda)^2 L0``, so ``eta_c = (1 + sqrt(1 + delta)) / lambda``
(``2 / lambda`` as ``delta -> 0``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from preheat.probes._state import (
    LossFn,
    ModelGuard,
    check_loss_fn,
    fail,
    forward_loss,
    gradient,
    trainable_parameters,
)
from preheat.schedules.validate import check_choice, check_int, check_real

KINDS = ("sgd", "adam")

#: Kalra & Barkeshli's default ``delta`` per optimizer kind.
DEFAULT_DELTA = {"sgd": 0.1, "adam": 0.01}

#: ``update(params, grads, lr) -> new params``: one optimizer update from ``params`` (one tensor
#: per trainable parameter) given the gradient ``grads`` at ``params``. It must return new tensors
#: shaped like ``params`` and must not modify ``grads`` in place.
UpdateFn = Callable[[list[Tensor], list[Tensor], float], Sequence[Tensor]]


@dataclass(frozen=True)
class CatapultResult:
    """What :func:`catapult_search` found.

    Attributes:
        lr: the learning rate to start warmup from (see ``status``).
        evidence: every ``(lr tried, loss after one update at that lr)``, in the order tried.
        L0: the loss at the current parameters.
        threshold: ``L0 * (1 + delta)``: a one-step loss above it counts as a catapult.
        delta: the relative loss increase that counts.
        kind: ``"sgd"``, ``"adam"`` or ``"custom"`` (an ``update`` callable was given).
        status: ``"bracketed"`` (``lr`` is the smallest LR found whose one-step loss exceeds the
            threshold; ``lr_low`` the largest found that does not), ``"capped"`` (no LR up to
            ``target_lr`` exceeded it: ``lr = target_lr``), ``"max_doublings"`` (``max_doublings``
            ran out below ``target_lr``: ``lr`` is the largest LR tried that did not exceed it) or
            ``"no_stable_lr"`` (even ``eta0 / 2**max_doublings`` exceeded it: ``lr`` is the
            smallest LR tried).
        lr_low: the largest LR tried whose one-step loss stayed at or below the threshold, or None.
        lr_high: the smallest LR tried whose one-step loss exceeded the threshold, or None.
        seconds: wall-clock time of the call.
    """

    lr: float
    evidence: list[tuple[float, float]]
    L0: float
    threshold: float
    delta: float
    kind: str
    status: str
    lr_low: float | None
    lr_high: float | None
    seconds: float


def catapult_search(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Any,
    *,
    eta0: float,
    target_lr: float,
    kind: str = "sgd",
    delta: float | None = None,
    eps: float = 1e-8,
    update: UpdateFn | None = None,
    max_doublings: int = 40,
    bisection_steps: int = 10,
) -> CatapultResult:
    """Kalra & Barkeshli's initial-LR search: the smallest LR whose one update raises the loss by ``delta``.

    With ``L0 = loss_fn(model, batch)`` at the current parameters ``theta`` and
    ``L1(eta) = loss_fn`` after one simulated update at learning rate ``eta`` (same batch):

    1. Start at ``eta = eta0``; while ``L1(eta) <= L0 (1 + delta)`` and ``eta < target_lr``,
       double ``eta`` (the last try is ``target_lr`` itself). If ``target_lr`` passes, return
       ``target_lr`` (status ``"capped"``). If ``eta0`` itself fails, halve instead until an LR
       passes.
    2. Bisect ``bisection_steps`` times (arithmetic midpoints) between the last LR that passed and
       the first that failed, and return the smallest failing LR found (status ``"bracketed"``):
       within ``(hi - lo) / 2**bisection_steps`` above the threshold LR (``hi <= 2 lo``).

    A non-finite ``L1`` counts as failing.

    The update simulated from ``theta`` and the gradient ``g = grad L(theta)`` (computed once):

    - ``kind="sgd"``: ``theta - eta g`` (plain SGD; momentum does not act on the first step).
    - ``kind="adam"``: the *first* Adam/AdamW step from zero moments,
      ``theta - eta g / (|g| + eps)`` (elementwise; ``m_hat = g``, ``sqrt(v_hat) = |g|``), i.e.
      ``-eta sign(g)`` up to ``eps``. Weight decay is not simulated; pass ``update`` for that.
    - ``update`` given: ``update(params, grads, eta)`` for any other rule (``kind`` then only
      picks the default ``delta``). ``params`` are detached views of the model's parameters, set
      to ``theta`` before each call (modifying them in place is harmless); ``grads`` must not be
      modified.

    The search is meant for the initial parameters (before training), which is where the first
    Adam step has this form. Parameters are restored bit for bit, as are buffers and ``.grad``.

    Args:
        model: the network; its trainable parameters (``requires_grad``) are updated.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor``; the loss must be positive (the
            threshold is relative).
        batch: passed to ``loss_fn`` unchanged, for ``L0`` and every ``L1``.
        eta0: first LR tried, > 0 and <= ``target_lr``.
        target_lr: the peak LR; the result never exceeds it.
        kind: ``"sgd"`` or ``"adam"``.
        delta: relative loss increase that counts as a catapult, >= 0; None means 0.1 for SGD and
            0.01 for Adam (Kalra & Barkeshli's choices).
        eps: Adam's epsilon for ``kind="adam"``, >= 0.
        update: a custom one-step rule, or None.
        max_doublings: the most doublings (or halvings), >= 0.
        bisection_steps: bisection steps, >= 0.

    Returns:
        A :class:`CatapultResult` with the chosen LR and the evidence for logging.

    Cost: one forward and one backward pass at ``theta``, then one forward pass per LR tried
    (``len(evidence)`` = about ``log2(eta_c / eta0) + 1 + bisection_steps``, at most
    ``1 + max_doublings + bisection_steps``); memory for one copy of the parameters and the
    gradient. Use ``model.eval()`` (or a fixed dropout seed) so that all losses see the same
    network.
    """
    owner = "catapult_search"
    check_loss_fn(owner, loss_fn)
    kind = check_choice(owner, "kind", kind, KINDS)
    target_lr = check_real(owner, "target_lr", target_lr, 0.0, low_open=True)
    eta0 = check_real(owner, "eta0", eta0, 0.0, target_lr, low_open=True)
    delta = DEFAULT_DELTA[kind] if delta is None else check_real(owner, "delta", delta, 0.0)
    eps = check_real(owner, "eps", eps, 0.0)
    if update is not None and not callable(update):
        raise fail(owner, "update", update, "None or a callable update(params, grads, lr)")
    max_doublings = check_int(owner, "max_doublings", max_doublings, minimum=0)
    bisection_steps = check_int(owner, "bisection_steps", bisection_steps, minimum=0)
    params = trainable_parameters(model, owner)
    started = time.perf_counter()
    evidence: list[tuple[float, float]] = []

    with ModelGuard(model, params, restore_params=True) as guard:
        loss0, grads = gradient(owner, model, loss_fn, batch, params)
        if loss0 <= 0.0:
            raise ValueError(
                f"{owner}: the loss at the current parameters is {loss0}; expected a positive "
                "loss (the catapult threshold is L0 * (1 + delta))"
            )
        threshold = loss0 * (1.0 + delta)
        if update is None:  # the gradient is ours (from autograd.grad): turn it into d in place
            if kind == "adam":
                for g in grads:
                    g.div_(g.abs().add_(eps))
            direction = [g.neg_() for g in grads]

        def exceeds(lr: float) -> bool:
            if update is None:
                guard.move_along(lr, direction)
            else:
                guard.reset()
                new = update([p.detach() for p in params], grads, lr)
                _check_update(owner, new, params)
                guard.move_to(new)
            loss = forward_loss(owner, model, loss_fn, batch)
            evidence.append((lr, loss))
            return not loss <= threshold

        lo: float | None = None
        hi: float | None = None
        lr = eta0
        if exceeds(lr):
            hi = lr
            for _ in range(max_doublings):
                lr /= 2.0
                if not exceeds(lr):
                    lo = lr
                    break
                hi = lr
        else:
            lo = lr
            for _ in range(max_doublings):
                if lo >= target_lr:
                    break
                lr = min(2.0 * lo, target_lr)
                if exceeds(lr):
                    hi = lr
                    break
                lo = lr
        if lo is not None and hi is not None:
            for _ in range(bisection_steps):
                mid = 0.5 * (lo + hi)
                if exceeds(mid):
                    hi = mid
                else:
                    lo = mid
            chosen, status = hi, "bracketed"
        elif hi is not None:
            chosen, status = hi, "no_stable_lr"
        else:
            assert lo is not None
            chosen, status = lo, ("capped" if lo >= target_lr else "max_doublings")

    return CatapultResult(
        lr=chosen,
        evidence=evidence,
        L0=loss0,
        threshold=threshold,
        delta=delta,
        kind=kind if update is None else "custom",
        status=status,
        lr_low=lo,
        lr_high=hi,
        seconds=time.perf_counter() - started,
    )


def _check_update(owner: str, new: Any, params: list[Tensor]) -> None:
    ok = (
        isinstance(new, Sequence)
        and len(new) == len(params)
        and all(isinstance(t, Tensor) and t.shape == p.shape for t, p in zip(new, params))
    )
    if not ok:
        shapes = (
            [tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__ for t in new]
            if isinstance(new, Sequence)
            else type(new).__name__
        )
        raise fail(
            owner,
            "update(...) result",
            shapes,
            f"a sequence of {len(params)} tensors shaped like the trainable parameters",
        )

