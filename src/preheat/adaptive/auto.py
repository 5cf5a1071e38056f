"""``auto_warmup()``: a warmup that needs no length, from the loss alone.

The LR climbs in doublings from a small fraction of the peak, each doubling allowed only once
the run has absorbed the previous one: the smoothed loss is back below where it was when the LR
was last changed. This is the persistent catapult of :mod:`preheat.adaptive.catapult` (Kalra &
Barkeshli 2024: above the stability limit the loss spikes, the sharpness falls, and the run
settles at the higher LR), with two additions that let it stop *below* the peak when the peak is
too high, as a range test would (the lesson of AutoWU, Kim et al. 2021): a level that makes the
loss spike twice, or at which the loss does not come back for ``stall`` times the patience, is
cut back and becomes the ceiling; the warmup then hands over at the ceiling and the decay starts
from there (:attr:`~preheat.adaptive.base.Controller.scale_after`).

It reads the loss only (no extra forward or backward, no probe before training), so its cost is
that of a few float operations per update; it makes no assumption about the optimizer beyond
"a smaller LR is safer".
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
    """:class:`AutoWarmup`'s state: the loss EMA, the reference (the EMA when the level last
    changed), updates since then, the ceiling, and the last level at which the loss spiked."""

    ema: float | None = None
    reference: float | None = None
    since_change: int = 0
    ceiling: float = field(default=1.0, metadata=within(0.0, 1.0, low_open=True))
    spiked_at: float | None = field(default=None, metadata=within(0.0, 1.0, low_open=True))


class AutoWarmup(Controller):
    """Doubling warmup gated by loss recovery, with a ceiling where the peak does not pay.

    With ``L_t`` an EMA of the loss (``alpha``; ``L_0 = loss_0``), the *reference* ``R`` the
    value of ``L`` when the multiplier last changed, and ``s`` the updates since then, after
    each update:

    - **spike**: ``loss_t > spike_limit * max(R, L_{t-1})`` (``R > 0``) and ``s >= 2`` (a change
      of the LR shows in the loss two updates later: the loss of update ``t`` is taken before its
      step, so the loss right after a cut still shows the step before it): halve the multiplier
      (undo the last doubling) and restart the average at the next loss, so a loss that stays
      high after the cut is a new level to come back from (the stall rule below), not a spike at
      every update that would halve the LR to nothing. The second spike at the same level makes
      the halved level the **ceiling**;
    - **stall**: ``s >= stall * patience`` and ``L_t >= R`` at a level of at least
      ``stall_above`` (1/8: a peak too high by more than 8x shows itself by spikes): the loss
      has not come back at this level: halve the multiplier and make it the ceiling. Below
      ``stall_above`` a loss that is slow to come back is a loss the small LR barely moves, and
      the controller waits;
    - **raise**: ``L_t < R`` and ``s >= patience``: double the multiplier, up to the ceiling;
      ``R = L_t``;
    - otherwise **hold**.

    Update 0 gets ``initial`` (default ``2^-8``: eight doublings to the peak). The warmup hands
    over when the multiplier is at the ceiling (the peak, unless lowered) and the loss has
    recovered there (``L_t < R`` after ``patience`` updates), or at update ``total``; from the
    handover ``h`` on, update ``t`` gets ``m_h * after(t - h)`` with ``m_h`` the multiplier at
    the handover (1 unless a ceiling was set) and ``after`` cosine decay over the updates left by
    default. ``patience`` defaults to ``max(4, total // 400)`` updates, so an undisturbed climb
    takes about ``8 * patience`` updates: 32 of a 400-update run, 2 % of a long one.

    Args:
        total: the run's length in updates; the latest handover.
        initial: update 0's multiplier, in ``(0, 1]``; default ``2^-8``.
        patience: updates between two changes (>= 1); default ``max(4, total // 400)``.
        alpha: EMA weight of the newest loss, in ``(0, 1]``; default 0.3.
        spike_limit: a loss above this multiple of the reference is a spike, > 1; default 3.
        stall: a level whose loss has not come back after ``stall * patience`` updates is cut,
            >= 1; default 4.
        stall_above: the lowest level the stall rule cuts, in ``(0, 1]``; default 1/8.
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
        super().__init__(total, after=after, **bounds)

    def start(self) -> float:
        """Update 0 gets ``initial``: no loss has been seen yet."""
        return self.initial

    def decide(self, signals: Mapping[str, float]) -> Proposal:
        if "loss" not in signals:
            return Proposal(self.current, "hold", "no loss signal")
        state, loss, current = self.state, signals["loss"], self.current
        before = loss if state.ema is None else state.ema
        state.ema = loss if state.ema is None else (1.0 - self.alpha) * state.ema + self.alpha * loss
        if not math.isfinite(state.ema):  # overflow of huge finite losses: restart the average
            state.ema = loss
        if state.reference is None:
            state.reference = state.ema
        state.since_change += 1
        reference, since = state.reference, state.since_change
        evidence = {"loss": loss, "ema": state.ema, "reference": reference, "since_change": float(since),
                    "ceiling": state.ceiling}
        if reference > 0 and loss > self.spike_limit * max(reference, before) and since >= 2:
            lower, again = current / 2, state.spiked_at == current
            if again:
                state.ceiling = max(lower, MIN_CEILING)
            state.spiked_at = current
            state.since_change, state.ema = 0, None  # the average restarts after the cut
            return Proposal(lower, "lower", f"loss {loss:.4g} > spike_limit={self.spike_limit} x reference "
                            f"{reference:.4g}: undo the last doubling"
                            + (f"; second spike at this level: ceiling {state.ceiling:.4g}" if again else ""),
                            evidence)
        if state.ema >= reference and since >= self.stall * self.patience and current >= self.stall_above:
            lower = current / 2
            state.ceiling, state.since_change = max(lower, MIN_CEILING), 0
            state.reference = state.ema
            return Proposal(lower, "lower", f"smoothed loss {state.ema:.4g} not back below {reference:.4g} after "
                            f"{since} updates: this level does not pay; ceiling {state.ceiling:.4g}", evidence)
        if state.ema < reference and since >= self.patience:
            state.reference, state.since_change = state.ema, 0
            if current >= state.ceiling:
                return Proposal(current, "hold", f"recovered at the ceiling {state.ceiling:.4g}: warmup done",
                                evidence, done=True)
            return Proposal(min(state.ceiling, 2 * current), "raise",
                            f"smoothed loss {state.ema:.4g} back below the reference {reference:.4g}: double", evidence)
        waiting = "recovered, waiting for patience" if state.ema < reference else "waiting for the loss to come back"
        return Proposal(current, "hold", f"{waiting} ({since}/{self.patience} updates)", evidence)
