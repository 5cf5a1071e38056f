"""Catapult warmup: start at the largest LR the run survives, not at 0.

Lewkowycz et al. 2020 ("The large learning rate phase of deep learning: the catapult
mechanism") show that above the stability limit ``2 / lambda`` a run can "catapult": the loss
spikes, the sharpness drops, and training settles where the LR is stable. Kalra & Barkeshli
2024 ("Why warmup the learning rate?") use this to pick a warmup's *initial* LR: the largest LR
that the run survives (possibly after a catapult) needs no warmup below it, so a linear warmup
can start there instead of at 0. That initial LR is found by a short search before training,
:func:`preheat.probes.catapult_search`; this controller takes its result as ``initial``, or,
left ``None``, through :meth:`CatapultWarmup.prepare` (``prepare_needs = ("catapult_lr",)``),
which the lab's loop calls before update 0.
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


@dataclass
class CatapultState(ControllerState):
    """:class:`CatapultWarmup`'s state: ``initial`` (update 0's multiplier, ``None`` until
    prepared), the persistent variant's loss EMA, reference, updates since the last change and
    raises, and whether the first decision has reported ``saved_steps``."""

    initial: float | None = field(default=None, metadata=within(0.0, 1.0, low_open=True))
    ema: float | None = None
    reference: float | None = None
    since_change: int = 0
    raises: int = 0
    reported: bool = False


class CatapultWarmup(Controller):
    """From ``initial`` (the catapult-chosen LR as a multiplier of the peak) up to the peak.

    ``initial`` is computed by the caller, e.g. ``catapult_search(...) / peak_lr`` with
    :func:`preheat.probes.catapult_search` (this module imports nothing from ``probes``), or
    left ``None`` and given to :meth:`prepare` as the absolute LR ``catapult_lr`` before update 0
    (the lab's loop does so). It is part of the state, so a run resumes exactly either way.

    **Linear** (``persistent=False``, default): update ``t`` gets
    ``initial + (1 - initial) t / steps``, so update 0 gets ``initial`` and update ``steps``
    gets 1, where the warmup hands over to ``after``. The ramp advances one increment
    ``(1 - initial) / steps`` per observed update (pass at least ``loss`` every update): an
    update without signals holds, and after a NaN/inf backoff the ramp resumes from the
    backed-off value, so each of those delays the peak by one update. A linear warmup from 0
    over ``steps`` updates would need ``initial * steps`` updates to reach ``initial``: that is
    the warmup saved, ``saved_steps = round(initial * steps)``, an attribute and part of the
    first decision's evidence.

    **Persistent catapult** (``persistent=True``): the LR rises in jumps, each one allowed only
    once the run has recovered from the previous. With ``L_t`` an EMA of the loss,
    ``L_t = (1 - alpha) L_{t-1} + alpha loss_t`` (``L_0 = loss_0``), and the *reference* the
    value of ``L`` when the LR was last raised (at first, ``L_0``), after each update:

    - ``loss_t > spike_limit * reference`` (a spike too large to be a catapult the run comes
      back from; the raw loss, as the EMA lags a blow-up by an update or two; only for a
      positive reference, i.e. losses >= 0): **lower** the multiplier by ``factor`` (undo the
      last raise), keeping the reference;
    - ``L_t < reference`` and at least ``patience`` updates since the last change (a raise takes
      effect in the loss only an update or two later, and a catapult needs a few to show):
      **raise** the multiplier by ``factor`` (at most 1, and by at most ``max_step``), and reset
      the reference to ``L_t``;
    - otherwise **hold** (waiting for the spike to pass).

    A run whose loss keeps falling is never held back longer than ``patience`` updates: the
    multiplier doubles (``factor = 2``) every ``patience`` updates until a spike shows.

    It hands over when the multiplier reaches 1. Update 0 gets ``initial`` (0 if it was never
    given nor prepared). ``steps`` only sets ``saved_steps`` here (the linear warmup it is
    compared with).

    Args:
        total: the latest update at which the warmup hands over.
        initial: update 0's multiplier, in ``(0, 1]``; ``None`` to have it prepared.
        steps: the linear ramp's length in updates (>= 1).
        persistent: the persistent-catapult variant; default False.
        factor: the persistent variant's raise (and cut) factor, > 1; default 2.
        alpha: the persistent variant's EMA weight of the newest loss, in ``(0, 1]``; default 0.3.
        patience: updates between two changes of the persistent variant (>= 1); default 10.
        spike_limit: the persistent variant cuts when ``loss_t`` exceeds this multiple of the
            reference, > 1; default 3.
        after, floor, max_step, backoff: see :class:`~preheat.adaptive.base.Bounds`.

    Raises:
        ValueError: naming the argument, its value and what is valid.
    """

    name: ClassVar[str] = "catapult_warmup"
    State = CatapultState
    state: CatapultState

    def __init__(
        self,
        total: int,
        *,
        initial: float | None = None,
        steps: int,
        persistent: bool = False,
        factor: float = 2.0,
        alpha: float = 0.3,
        patience: int = 10,
        spike_limit: float = 3.0,
        **bounds: Unpack[BoundsKeywords],
    ) -> None:
        owner = self.name
        self.steps = check_int(owner, "steps", steps, minimum=1)
        if not isinstance(persistent, bool):
            raise ValueError(f"{owner}: persistent={persistent!r} is invalid; expected True or False")
        self.persistent = persistent
        self.factor = check_real(owner, "factor", factor, 1.0, low_open=True)
        self.alpha = check_real(owner, "alpha", alpha, 0.0, 1.0, low_open=True)
        self.patience = check_int(owner, "patience", patience, minimum=1)
        self.spike_limit = check_real(owner, "spike_limit", spike_limit, 1.0, low_open=True)
        given = None if initial is None else check_real(owner, "initial", initial, 0.0, 1.0, low_open=True)
        self.prepare_needs = ("catapult_lr",) if given is None else ()
        super().__init__(total, **bounds)
        self.state.initial = given
        self.state.current = self.bounds.clip(self.start())

    def prepare(self, **measurements: float) -> None:
        """Take ``catapult_lr``, the initial LR the catapult search found (absolute; at most
        the peak), before update 0: ``initial = catapult_lr / peak_lr``.

        Raises:
            ValueError: ``initial`` was given, ``catapult_lr`` is missing or not a finite
                number > 0, the ratio is not in ``(0, 1]``, or an update was observed already.
        """
        if set(measurements) != set(self.prepare_needs) or self.observed:
            raise ValueError(f"{self.name}.prepare: {sorted(measurements)} given after {self.observed} "
                             f"update(s); expected {list(self.prepare_needs)} before update 0")
        if measurements:
            lr = check_real(self.name, "catapult_lr", measurements["catapult_lr"], 0.0, low_open=True)
            ratio = lr / self.peak_lr
            self.state.initial = check_real(self.name, "initial (catapult_lr / peak_lr)", ratio, 0.0, 1.0,
                                            low_open=True)
            self.state.current = self.bounds.clip(self.start())

    @property
    def initial(self) -> float | None:
        """Update 0's multiplier (``None`` until given or prepared)."""
        return self.state.initial

    @property
    def saved_steps(self) -> int:
        """``round(initial * steps)``: the updates a linear warmup from 0 needs to reach ``initial``."""
        return round((self.initial or 0.0) * self.steps)

    @property
    def increment(self) -> float:
        """The linear ramp's step ``(1 - initial) / steps``."""
        return (1.0 - (self.initial or 0.0)) / self.steps

    def start(self) -> float:
        """Update 0 gets ``initial`` (0 until it is given or prepared)."""
        return 0.0 if self.state.initial is None else self.state.initial

    def decide(self, signals: Mapping[str, float]) -> Proposal:
        evidence: dict[str, float] = {}
        if not self.state.reported:  # the first decision on signals says what the catapult saved
            evidence["saved_steps"] = float(self.saved_steps)
            self.state.reported = True
        if self.persistent:
            proposal, action, reason = self._persistent(signals, evidence)
        else:
            proposal = min(1.0, self.current + self.increment)
            if proposal >= 1.0 - 1e-9:  # the last increment, up to rounding
                proposal = 1.0
            action, reason = "raise", f"linear ramp from initial={self.initial} over steps={self.steps}"
        reachable = min(proposal, self.current + self.bounds.max_step)
        done = reachable >= 1.0
        if done:
            reason = "reached the peak: " + reason
        return Proposal(proposal, action, reason, evidence, done)

    def _persistent(self, signals: Mapping[str, float], evidence: dict[str, float]) -> tuple[float, str, str]:
        if "loss" not in signals:
            return self.current, "hold", "no loss signal"
        state, loss = self.state, signals["loss"]
        state.ema = loss if state.ema is None or not math.isfinite(state.ema) else (
            (1.0 - self.alpha) * state.ema + self.alpha * loss)
        if not math.isfinite(state.ema):  # overflow of huge finite losses: restart the average
            state.ema = loss
        if state.reference is None:
            state.reference = state.ema
        state.since_change += 1
        evidence.update(loss=loss, ema=state.ema, reference=state.reference,
                        since_change=float(state.since_change), raises=float(state.raises))
        if state.reference > 0 and loss > self.spike_limit * state.reference:
            state.since_change = 0
            return (self.current / self.factor, "lower",
                    f"loss {loss:.4g} > spike_limit={self.spike_limit} x reference "
                    f"{state.reference:.4g}: undo the last raise")
        if state.ema < state.reference and state.since_change >= self.patience:
            state.reference, state.since_change = state.ema, 0
            state.raises += 1
            return (min(1.0, self.current * self.factor), "raise",
                    f"smoothed loss {state.ema:.4g} recovered below the reference: raise x{self.factor}")
        if state.ema < state.reference:
            return self.current, "hold", f"recovered, waiting for patience={self.patience} updates"
        return (self.current, "hold",
                f"smoothed loss {state.ema:.4g} above the reference {state.reference:.4g}: waiting for recovery")
