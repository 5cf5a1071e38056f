"""Catapult warmup: start at the largest LR the run survives, not at 0.

Lewkowycz et al. 2020 ("The large learning rate phase of deep learning: the catapult
mechanism") show that above the stability limit ``2 / lambda`` a run can "catapult": the loss
spikes, the sharpness drops, and training settles where the LR is stable. Kalra & Barkeshli
2024 ("Why warmup the learning rate?") use this to pick a warmup's *initial* LR: the largest LR
that the run survives (possibly after a catapult) needs no warmup below it, so a linear warmup
can start there instead of at 0. That initial LR is found by a short search before training,
:func:`preheat.probes.catapult_search`; this controller takes its result as ``initial``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping

from preheat.adaptive.base import Controller
from preheat.schedules.validate import check_int, check_real


class CatapultWarmup(Controller):
    """From ``initial`` (the catapult-chosen LR as a multiplier of the peak) up to the peak.

    ``initial`` is computed by the caller, e.g. ``catapult_search(...) / peak_lr`` with
    :func:`preheat.probes.catapult_search` (this module imports nothing from ``probes``).

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

    It hands over when the multiplier reaches 1. Update 0 gets ``initial``. ``steps`` only sets
    ``saved_steps`` here (the linear warmup it is compared with).

    Args:
        total: the latest update at which the warmup hands over.
        initial: update 0's multiplier, in ``(0, 1]``; ``None`` to set it later with
            :meth:`set_initial` (a lab run does so from ``catapult_search`` before update 0).
        steps: the linear ramp's length in updates (>= 1).
        persistent: the persistent-catapult variant; default False.
        factor: the persistent variant's raise (and cut) factor, > 1; default 2.
        alpha: the persistent variant's EMA weight of the newest loss, in ``(0, 1]``; default 0.3.
        patience: updates between two changes of the persistent variant (>= 1); default 10.
        spike_limit: the persistent variant cuts when ``loss_t`` exceeds this multiple of the
            reference, > 1; default 3.
        after, floor, max_step, backoff: see :class:`~preheat.adaptive.base.Controller`.

    Raises:
        ValueError: naming the argument, its value and what is valid.
    """

    name: ClassVar[str] = "catapult_warmup"

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
        after: str = "constant()",
        floor: float = 0.0,
        max_step: float = 1.0,
        backoff: float = 0.5,
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
        self.initial: float | None = None
        if initial is not None:
            self.set_initial(initial)
        # state (see extra_state)
        self.ema: float | None = None
        self.reference: float | None = None
        self.since_change = 0
        self.raises = 0
        self.reported = False
        super().__init__(total, after=after, floor=floor, max_step=max_step, backoff=backoff)

    def set_initial(self, initial: float) -> None:
        """Set update 0's multiplier (before training: the lab does it from ``catapult_search``)."""
        self.initial = check_real(self.name, "initial", initial, 0.0, 1.0, low_open=True)
        self.saved_steps = round(self.initial * self.steps)
        self.increment = (1.0 - self.initial) / self.steps

    def start(self) -> float:
        """Update 0 gets ``initial`` (0 until it is set; a run must set it before update 0)."""
        return 0.0 if self.initial is None else self.initial

    def decide(self, signals: Mapping[str, float]) -> tuple[float, str, str, dict[str, float], bool]:
        evidence: dict[str, float] = {}
        if not self.reported:  # the first decision on signals says what the catapult saved
            evidence["saved_steps"] = float(self.saved_steps)
            self.reported = True
        if self.persistent:
            proposal, action, reason = self._persistent(signals, evidence)
        else:
            proposal = min(1.0, self.current + self.increment)
            if proposal >= 1.0 - 1e-9:  # the last increment, up to rounding
                proposal = 1.0
            action, reason = "raise", f"linear ramp from initial={self.initial} over steps={self.steps}"
        reachable = min(proposal, self.current + self.max_step)
        done = reachable >= 1.0
        if done:
            reason = "reached the peak: " + reason
        return proposal, action, reason, evidence, done

    def _persistent(self, signals: Mapping[str, float], evidence: dict[str, float]) -> tuple[float, str, str]:
        if "loss" not in signals:
            return self.current, "hold", "no loss signal"
        loss = signals["loss"]
        self.ema = loss if self.ema is None or not math.isfinite(self.ema) else (
            (1.0 - self.alpha) * self.ema + self.alpha * loss)
        if not math.isfinite(self.ema):  # overflow of huge finite losses: restart the average
            self.ema = loss
        if self.reference is None:
            self.reference = self.ema
        self.since_change += 1
        evidence.update(loss=loss, ema=self.ema, reference=self.reference,
                        since_change=float(self.since_change), raises=float(self.raises))
        if self.reference > 0 and loss > self.spike_limit * self.reference:
            self.since_change = 0
            return (self.current / self.factor, "lower",
                    f"loss {loss:.4g} > spike_limit={self.spike_limit} x reference "
                    f"{self.reference:.4g}: undo the last raise")
        if self.ema < self.reference and self.since_change >= self.patience:
            self.reference, self.since_change = self.ema, 0
            self.raises += 1
            return (min(1.0, self.current * self.factor), "raise",
                    f"smoothed loss {self.ema:.4g} recovered below the reference: raise x{self.factor}")
        if self.ema < self.reference:
            return self.current, "hold", f"recovered, waiting for patience={self.patience} updates"
        return (self.current, "hold",
                f"smoothed loss {self.ema:.4g} above the reference {self.reference:.4g}: waiting for recovery")

    # -- state ------------------------------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        return {"ema": self.ema, "reference": self.reference, "since_change": self.since_change,
                "raises": self.raises, "reported": self.reported}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.ema = None if state["ema"] is None else float(state["ema"])
        self.reference = None if state["reference"] is None else float(state["reference"])
        self.since_change = int(state["since_change"])
        self.raises = int(state["raises"])
        self.reported = bool(state["reported"])
