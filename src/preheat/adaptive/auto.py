"""``auto_warmup()``: a warmup that needs no length, from the loss and the gradient norm.

The LR climbs in doublings from a small fraction of the peak; near the peak each doubling is
allowed only once the run has absorbed the previous one: the smoothed loss is back below where
it was when the LR was last changed. This is the persistent catapult of :mod:`preheat.adaptive.catapult` (Kalra &
Barkeshli 2024: above the stability limit the loss spikes, the sharpness falls, and the run
settles at the higher LR), with two additions that let it stop *below* the peak when the peak is
too high, as a range test would (the lesson of AutoWU, Kim et al. 2021): a level that makes the
loss spike twice, or at which the loss does not come back for ``stall`` times the patience, is
cut back and becomes the ceiling; the warmup then hands over at the ceiling and the decay starts
from there (:attr:`~preheat.adaptive.base.Controller.scale_after`).

A third rule reads the gradient norm, where it is given: near the peak, a gradient norm far
above its level at the last raise undoes that raise, and every such spike doubles the wait
before the next one. An LR the network cannot take yet shows there first: on the benchmark's
GPT the doubling to half the peak made the gradient norm jump 16x while the loss barely moved,
and Adam's second moment, inflated by that spike, then shrank every update for tens of steps.

It reads the loss and the gradient norm only (no extra forward or backward, no probe before
training), so its cost is that of a few float operations per update; it makes no assumption
about the optimizer beyond "a smaller LR is safer".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Mapping

from preheat.adaptive.base import Controller, ControllerState, Proposal, within
from preheat.schedules.validate import check_int, check_real

if TYPE_CHECKING:
    from typing import Unpack

    from preheat.adaptive.base import BoundsKeywords

DEFAULT_AFTER = "cosine_decay({steps})"
MIN_CEILING = math.ulp(0.0)  # a ceiling is positive (the state rule), however often the LR was cut


@dataclass
class AutoState(ControllerState):
    """:class:`AutoWarmup`'s state: the loss average and the losses in it, the reference (the
    average when the level last changed; None until the starting loss is measured), updates
    since then, the ceiling, the last level at which the loss spiked, the loss of the last
    spike since the last raise, the gradient norm's average and its reference (its average at
    the last raise), and how many gradient spikes there were."""

    ema: float | None = None
    samples: int = 0
    reference: float | None = None
    since_change: int = 0
    ceiling: float = field(default=1.0, metadata=within(0.0, 1.0, low_open=True))
    spiked_at: float | None = field(default=None, metadata=within(0.0, 1.0, low_open=True))
    spike_loss: float | None = None
    grad_ema: float | None = None
    grad_reference: float | None = None
    grad_spikes: int = 0


class AutoWarmup(Controller):
    """Doubling warmup gated by loss recovery, with a ceiling where the peak does not pay.

    With ``L_t`` the average of the loss (the plain mean of the losses since it started while
    that mean weighs each loss more than ``alpha``, an EMA of weight ``alpha`` after), ``R`` the
    *reference*, ``s`` the updates since the multiplier last changed, ``m`` the multiplier, and
    ``G_t``, ``G_R`` the same average of the gradient norm and its value at the last raise:

    - **start**: updates 0 to ``patience - 1`` hold ``initial``; then ``R`` = ``L`` (the mean of
      the first losses, not the first alone: one easy first batch would make every later loss
      look worse);
    - **spike**: ``loss_t > spike_limit * R`` and ``s >= 2`` (a change of the LR shows in the loss
      two updates later: the loss of update ``t`` is taken before its step) and, if the loss
      spiked since the last raise, ``loss_t > spike_limit`` times that spike's loss (a loss that
      stays high after a cut is not a new spike; one that keeps growing is): halve ``m`` (undo
      the last doubling) and restart the averages at the next update. The second spike at the
      same level makes the halved level the **ceiling**;
    - **gradient spike**: ``grad_norm_t > grad_limit * G_R``, ``s >= 2`` and ``m >= stall_above``
      (below it the LR is too small to matter, and single noisy batches spike): halve ``m`` and
      restart the averages; ``k``, the number of gradient spikes so far, grows by one. No
      ceiling: such a level is often fine a few tens of updates later;
    - **stall**: ``s >= stall * patience``, ``L_t >= R`` and ``m >= stall_above`` (1/8): the loss
      has not come back at this level: halve ``m``, make it the ceiling, and ``R = L_t``;
    - **raise**: ``s >= patience * 2^k`` and either ``L_t < R`` (the run absorbed the last doubling) or
      ``m < stall_above`` (so far below the peak the loss barely moves, and a loss that has not
      fallen is no reason to wait; a peak more than 8x too high still shows itself by spikes):
      double ``m``, up to the ceiling; ``R = L_t``, ``G_R = G_t``;
    - otherwise **hold**.

    Update 0 gets ``initial`` (default ``2^-8``: eight doublings to the peak). The warmup hands
    over when ``m`` is at the ceiling (the peak, unless lowered) and the raise rule holds there,
    or at update ``total``; from the handover ``h`` on, update ``t`` gets ``m_h * after(t - h)``
    with ``m_h`` the multiplier at the handover (1 unless a ceiling was set) and ``after`` cosine
    decay over the updates left by default. ``patience`` defaults to ``max(4, total // 400)``
    updates, so an undisturbed climb takes about ``10 * patience`` updates: 40 of a 400-update
    run, 2.5 % of a long one.

    Args:
        total: the run's length in updates; the latest handover.
        initial: update 0's multiplier, in ``(0, 1]``; default ``2^-8``.
        patience: updates between two changes (>= 1); default ``max(4, total // 400)``.
        alpha: EMA weight of the newest loss, in ``(0, 1]``; default 0.3.
        spike_limit: a loss above this multiple of the reference is a spike, > 1; default 3.
        stall: a level whose loss has not come back after ``stall * patience`` updates is cut,
            >= 1; default 4.
        stall_above: the lowest level the stall and gradient-spike rules cut, in ``(0, 1]``;
            default 1/8.
        grad_limit: a gradient norm above this multiple of ``G_R`` is a spike, > 1; default 4.
            Without a ``grad_norm`` signal the rule is off.
        after: the decay, a schedule expression with ``{steps}`` the updates left; default
            ``cosine_decay({steps})``.
        floor, max_step, backoff: see :class:`~preheat.adaptive.base.Bounds`.

    Raises:
        ValueError: naming the argument, its value and what is valid.
    """

    name: ClassVar[str] = "auto_warmup"
    State = AutoState
    state: AutoState
    scale_after: ClassVar[bool] = True

    def __init__(
        self,
        total: int,
        *,
        initial: float = 2.0**-8,
        patience: int | None = None,
        alpha: float = 0.3,
        spike_limit: float = 3.0,
        stall: int = 4,
        stall_above: float = 0.125,
        grad_limit: float = 4.0,
        after: str = DEFAULT_AFTER,
        **bounds: Unpack[BoundsKeywords],
    ) -> None:
        owner = self.name
        self.initial = check_real(owner, "initial", initial, 0.0, 1.0, low_open=True)
        total = check_int(owner, "total", total, minimum=1)
        self.patience = max(4, total // 400) if patience is None else check_int(owner, "patience", patience, minimum=1)
        self.alpha = check_real(owner, "alpha", alpha, 0.0, 1.0, low_open=True)
        self.spike_limit = check_real(owner, "spike_limit", spike_limit, 1.0, low_open=True)
        self.stall = check_int(owner, "stall", stall, minimum=1)
        self.stall_above = check_real(owner, "stall_above", stall_above, 0.0, 1.0, low_open=True)
        self.grad_limit = check_real(owner, "grad_limit", grad_limit, 1.0, low_open=True)
        super().__init__(total, after=after, **bounds)

    def start(self) -> float:
        """Update 0 gets ``initial``: no loss has been seen yet."""
        return self.initial

    def _wait(self) -> int:
        """Updates between two changes: ``patience`` doubled for every gradient spike so far."""
        return self.patience * 2**self.state.grad_spikes

    def decide(self, signals: Mapping[str, float]) -> Proposal:
        if "loss" not in signals:
            return Proposal(self.current, "hold", "no loss signal")
        state, loss, current = self.state, signals["loss"], self.current
        before = loss if state.ema is None else state.ema
        state.samples = 1 if state.ema is None else state.samples + 1
        weight = max(self.alpha, 1.0 / state.samples)  # a plain mean until the EMA has enough losses
        state.ema = (1.0 - weight) * before + weight * loss
        if not math.isfinite(state.ema):  # overflow of huge finite losses: restart the average
            state.ema, state.samples = loss, 1
        grad = signals.get("grad_norm")
        if grad is not None and math.isfinite(grad):
            state.grad_ema = grad if state.grad_ema is None else (1.0 - weight) * state.grad_ema + weight * grad
        state.since_change += 1
        if state.reference is None:  # the starting level: the mean of the first patience losses
            if state.since_change < self.patience:
                return Proposal(current, "hold", f"measuring the starting loss ({state.since_change}/"
                                f"{self.patience} updates)", {"loss": loss, "ema": state.ema})
            state.reference, state.since_change, state.grad_reference = state.ema, 0, state.grad_ema
            return Proposal(current, "hold", f"starting loss {state.ema:.4g}", {"loss": loss, "ema": state.ema})
        # below stall_above the loss barely moves: a level there needs no more than no spike
        back = state.ema < state.reference or current < self.stall_above
        reference, since = state.reference, state.since_change
        evidence = {"loss": loss, "ema": state.ema, "reference": reference, "since_change": float(since),
                    "ceiling": state.ceiling}
        worse = state.spike_loss is None or loss > self.spike_limit * state.spike_loss  # not the same spike
        if reference > 0 and loss > self.spike_limit * reference and since >= 2 and worse:
            lower, again = current / 2, state.spiked_at == current
            if again:
                state.ceiling = max(lower, MIN_CEILING)
            state.spiked_at, state.spike_loss = current, loss
            state.since_change, state.ema, state.grad_ema = 0, None, None  # the averages restart after the cut
            return Proposal(lower, "lower", f"loss {loss:.4g} > spike_limit={self.spike_limit} x reference "
                            f"{reference:.4g}: undo the last doubling"
                            + (f"; second spike at this level: ceiling {state.ceiling:.4g}" if again else ""),
                            evidence)
        limit = self.grad_limit * (state.grad_reference or math.inf)
        if grad is not None and grad > limit and since >= 2 and current >= self.stall_above:
            state.grad_spikes += 1
            state.since_change, state.ema, state.grad_ema = 0, None, None
            return Proposal(current / 2, "lower", f"gradient norm {grad:.4g} > grad_limit={self.grad_limit} x "
                            f"{state.grad_reference:.4g}: undo the last doubling; the next raise waits "
                            f"{self._wait()} updates", {**evidence, "grad_norm": grad})
        wait = self._wait()
        if not back and since >= self.stall * wait:  # (not back: at stall_above or more)
            lower = current / 2
            state.ceiling, state.since_change = max(lower, MIN_CEILING), 0
            state.reference = state.ema
            return Proposal(lower, "lower", f"smoothed loss {state.ema:.4g} not back below {reference:.4g} after "
                            f"{since} updates: this level does not pay; ceiling {state.ceiling:.4g}", evidence)
        if back and since >= wait:
            state.reference, state.since_change, state.spike_loss = state.ema, 0, None
            state.grad_reference = state.grad_ema
            if current >= state.ceiling:
                return Proposal(current, "hold", f"recovered at the ceiling {state.ceiling:.4g}: warmup done",
                                evidence, done=True)
            why = (f"smoothed loss {state.ema:.4g} back below the reference {reference:.4g}"
                   if state.ema < reference else f"no spike at {current:.4g} < stall_above={self.stall_above:.4g}")
            return Proposal(min(state.ceiling, 2 * current), "raise", f"{why}: double", evidence)
        waiting = "recovered, waiting for patience" if back else "waiting for the loss to come back"
        return Proposal(current, "hold", f"{waiting} ({since}/{wait} updates)", evidence)
