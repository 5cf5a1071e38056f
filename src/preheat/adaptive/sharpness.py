"""Sharpness-guided warmup: keep the LR a safe distance below the edge of stability.

Gradient descent on a quadratic with top Hessian eigenvalue ``lambda`` (the *sharpness*) is
stable for ``eta lambda < 2``; full-batch training tends to sit at that edge (Cohen et al. 2021,
"Gradient descent on neural networks typically occurs at the edge of stability"). The threshold
``C`` in ``eta lambda < C`` is, by optimizer:

- ``sgd`` (plain gradient descent): ``C = 2``;
- ``momentum`` (heavy ball, ``beta``; torch's SGD with ``momentum=beta``, no dampening):
  ``C = 2 + 2 beta`` (Cohen et al. 2021, appendix);
- ``adam`` (``beta1``; ``lambda`` the *preconditioned* sharpness, the top eigenvalue of
  ``P^-1 H`` with Adam's preconditioner ``P``): ``C = (2 + 2 beta1) / (1 - beta1)``, 38 for
  ``beta1 = 0.9`` (Cohen et al. 2022, "Adaptive gradient methods at the edge of stability").

Warming up while watching ``r = eta lambda / C`` (Kalra & Barkeshli 2024, "Why warmup the
learning rate?", describe warmup as steering the run to regions that tolerate the peak LR) is
what :class:`SharpnessWarmup` does.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Mapping

from preheat.adaptive.base import Controller, ControllerState, Proposal, within
from preheat.schedules import UntunedLinearWarmup
from preheat.schedules.validate import check_choice, check_int, check_real

if TYPE_CHECKING:
    from typing import Unpack

    from preheat.adaptive.base import BoundsKeywords

#: The update rules whose edge of stability is known: gradient descent, heavy ball, Adam.
STABILITY_KINDS = ("sgd", "momentum", "adam")
#: The largest float: ``eta*`` and the ratio are capped at it (logged finite; ``lambda`` may be tiny).
MAX_FLOAT = sys.float_info.max


def stability_constant(kind: str, beta: float = 0.9) -> float:
    """``C`` of the edge of stability ``eta lambda < C`` for the update rule ``kind``.

    ``sgd``: 2; ``momentum`` (heavy ball, ``beta`` its momentum): ``2 + 2 beta``; ``adam``
    (``beta`` its ``beta1``; ``lambda`` the preconditioned sharpness):
    ``(2 + 2 beta) / (1 - beta)``, 38 at 0.9 (module docstring).

    Raises:
        ValueError: ``kind`` not one of :data:`STABILITY_KINDS`, or ``beta`` not in ``[0, 1)``.
    """
    kind = check_choice("stability_constant", "kind", kind, STABILITY_KINDS)
    beta = check_real("stability_constant", "beta", beta, 0.0, 1.0, high_open=True)
    return {"sgd": 2.0, "momentum": 2.0 + 2.0 * beta, "adam": (2.0 + 2.0 * beta) / (1.0 - beta)}[kind]


def stability_threshold(kind: str, lr: float, beta: float = 0.9) -> float:
    """The curvature at which an update of LR ``lr`` diverges on a quadratic: ``C / lr`` with
    ``C = stability_constant(kind, beta)`` (``2 / lr``, ``(2 + 2 beta) / lr``,
    ``(2 + 2 beta1) / ((1 - beta1) lr)``); ``inf`` at ``lr = 0`` (nothing is unstable then).

    Raises:
        ValueError: as :func:`stability_constant`, or ``lr`` negative or not finite.
    """
    lr = check_real("stability_threshold", "lr", lr, 0.0)
    constant = stability_constant(kind, beta)
    return math.inf if lr == 0 else constant / lr


def stability_rule(kind: str, beta: float = 0.9) -> str:
    """:func:`stability_threshold`'s formula as text, for a figure's legend."""
    kind = check_choice("stability_rule", "kind", kind, STABILITY_KINDS)
    return {"sgd": "2 / eta", "momentum": f"(2 + 2 beta) / eta, beta = {beta:g}",
            "adam": f"(2 + 2 beta1) / ((1 - beta1) eta), beta1 = {beta:g}"}[kind]


@dataclass
class SharpnessState(ControllerState):
    """:class:`SharpnessWarmup`'s state: the reliable ``sharpness`` in use (``None``: fallback),
    the update whose signals carried it, the last positive finite measurement (for jumps), the
    ``ceiling`` (the last multiplier set on a reliable sharpness, capping the fallback), why the
    estimate is unreliable, and the counts of measurements received and used."""

    sharpness: float | None = field(default=None, metadata=within(0.0, low_open=True))
    measured_at: int | None = None
    previous: float | None = field(default=None, metadata=within(0.0, low_open=True))
    ceiling: float = field(default=1.0, metadata=within(0.0, 1.0))
    why: str = "no sharpness measured yet"
    measurements: int = 0
    used: int = 0


class SharpnessWarmup(Controller):
    """Raise the LR while ``eta lambda / C`` is low, hold it near, cut it back above the edge.

    Every ``every`` updates (``needs = {"sharpness": every}``) the loop passes ``sharpness``,
    ``lambda``: the top Hessian eigenvalue (``sgd``, ``momentum``) or the preconditioned one
    (``adam``), e.g. from a few power-iteration steps of Hessian-vector products (the loop's
    job, and its cost: time it there; this controller counts the measurements it received and
    used, in every decision's evidence as ``measurements`` and ``used``). Between measurements
    the last ``lambda`` is held (no extrapolation of a trend), for at most ``max_age`` updates.

    With the current LR ``eta = multiplier * peak_lr``, ``r = eta lambda / C`` and the target
    ``eta* = rho_hi C / lambda`` (the LR at ratio ``rho_hi``), after each update:

    - ``r < rho_hi``: **raise**, ``eta <- min(growth * eta, eta*)`` (at most a factor ``growth``,
      never past ``rho_hi``);
    - ``rho_hi <= r <= rho_back``: **hold**;
    - ``r > rho_back``: **cut back** to ``eta*``.

    So after every decision on a reliable ``lambda``, ``eta lambda / C <= rho_back`` (and
    ``<= rho_hi`` after a raise or a cut), unless ``max_step`` limits the cut. The multiplier
    is ``eta / peak_lr``, at most 1; the warmup hands over to ``after`` when it reaches 1.

    **Fallback.** The estimate is unreliable when no sharpness has arrived yet, when the last
    one is older than ``max_age`` updates, when it was not positive, when it was NaN or
    infinite (the base also backs off at once, and the backed-off value caps the LR from then
    on), or when it jumped by more than a factor ``max_jump`` from the previous measurement
    (the next measurement within ``max_jump`` of it restores reliability; an upward jump still
    caps the LR at ``rho_hi C / lambda``, as the jump may be real). Then the multiplier follows
    an untuned warmup, ``min(1, (t + 1) / P)`` for update ``t``, with ``P = round(2 / (1 -
    beta2))`` for ``adam`` (Ma & Yarats 2021: ``untuned_linear_warmup(beta2)``'s values) and
    ``P = fallback_steps`` for ``sgd`` and ``momentum`` (a linear warmup), never above the last
    multiplier set on a reliable ``lambda``. The decision's reason says why.

    Update 0 gets the fallback's first value, ``1 / P``: no sharpness is known before the
    first update (measure it at the initial point and pass it with update 0's signals to use
    it from update 1 on).

    Args:
        total: the latest update at which the warmup hands over.
        every: updates between sharpness measurements (>= 1); default 10. Sets ``needs``.
        optimizer: ``"sgd"`` (default), ``"momentum"`` or ``"adam"``; chooses ``C``.
        beta: heavy-ball momentum for ``"momentum"``, in ``[0, 1)``; default 0.9.
        beta1: Adam's ``beta1`` for ``"adam"``, in ``[0, 1)``; default 0.9.
        beta2: Adam's ``beta2`` for the untuned fallback, in ``(0, 1)``; default 0.999.
        growth: the largest factor by which one update raises the LR, > 1; default 1.1.
        rho_hi: raise below this ratio, in ``(0, 1)``; default 0.5.
        rho_back: cut back above this ratio, in ``[rho_hi, 1]``; default 0.9.
        max_jump: a measurement more than this factor from the previous one is unreliable,
            > 1; default 10.
        max_age: updates a measurement stays valid (>= ``every``); default ``2 * every``.
        fallback_steps: the linear fallback's length for ``sgd``/``momentum`` (>= 1); default
            2000 (as long as the untuned warmup for ``beta2 = 0.999``).
        after, floor, max_step, backoff: see :class:`~preheat.adaptive.base.Bounds`.

    Raises:
        ValueError: naming the argument, its value and what is valid.
    """

    name: ClassVar[str] = "sharpness_warmup"
    needs: ClassVar[dict[str, int]] = {"sharpness": 10}
    State = SharpnessState
    state: SharpnessState

    def __init__(
        self,
        total: int,
        *,
        every: int = 10,
        optimizer: str = "sgd",
        beta: float = 0.9,
        beta1: float = 0.9,
        beta2: float = 0.999,
        growth: float = 1.1,
        rho_hi: float = 0.5,
        rho_back: float = 0.9,
        max_jump: float = 10.0,
        max_age: int | None = None,
        fallback_steps: int = 2000,
        **bounds: Unpack[BoundsKeywords],
    ) -> None:
        owner = self.name
        self.every = check_int(owner, "every", every, minimum=1)
        self.needs = {"sharpness": self.every}
        self.optimizer = check_choice(owner, "optimizer", optimizer, STABILITY_KINDS)
        self.beta = check_real(owner, "beta", beta, 0.0, 1.0, high_open=True)
        self.beta1 = check_real(owner, "beta1", beta1, 0.0, 1.0, high_open=True)
        self.beta2 = check_real(owner, "beta2", beta2, 0.0, 1.0, low_open=True, high_open=True)
        self.growth = check_real(owner, "growth", growth, 1.0, low_open=True)
        self.rho_hi = check_real(owner, "rho_hi", rho_hi, 0.0, 1.0, low_open=True, high_open=True)
        self.rho_back = check_real(owner, "rho_back", rho_back, self.rho_hi, 1.0)
        self.max_jump = check_real(owner, "max_jump", max_jump, 1.0, low_open=True)
        self.max_age = (2 * self.every if max_age is None
                        else check_int(owner, "max_age", max_age, minimum=self.every))
        self.fallback_steps = check_int(owner, "fallback_steps", fallback_steps, minimum=1)
        self.threshold = stability_constant(self.optimizer, self.beta1 if self.optimizer == "adam" else self.beta)
        self._untuned = UntunedLinearWarmup(beta2=self.beta2) if self.optimizer == "adam" else None
        super().__init__(total, **bounds)

    def start(self) -> float:
        """Update 0 gets the fallback's first value ``1 / P`` (no sharpness known yet)."""
        return self.fallback(0)

    def fallback(self, t: int) -> float:
        """The untuned warmup's multiplier for update ``t``: ``min(1, (t + 1) / P)``."""
        if self._untuned is not None:
            return float(self._untuned(t))
        return min(1.0, (t + 1) / self.fallback_steps)

    def observe(self, **signals: float) -> float:
        """As :meth:`Controller.observe`; a NaN/inf ``sharpness`` also makes the estimate
        unreliable (fallback until a good measurement) and caps the LR at the backed-off value."""
        state = self.state
        values = self.signal_values(signals)
        bad = state.handover is None and "sharpness" in values and not math.isfinite(values["sharpness"])
        if bad:
            state.measurements += 1
            state.sharpness = None
            state.why = f"sharpness was {values['sharpness']} at update {state.observed}"
        result = super().observe(**values)
        if bad:
            state.ceiling = min(state.ceiling, self.current)
        return result

    def decide(self, signals: Mapping[str, float]) -> Proposal:
        state, t = self.state, self.observed
        if "sharpness" in signals:
            self._measure(signals["sharpness"], t)
        if state.sharpness is not None and state.measured_at is not None and t - state.measured_at > self.max_age:
            state.sharpness = None
            state.why = f"no sharpness since update {state.measured_at} (max_age={self.max_age})"
        evidence: dict[str, float] = {"measurements": float(state.measurements), "used": float(state.used),
                                      "C": self.threshold}
        if state.sharpness is None:
            proposal = min(self.fallback(t + 1), state.ceiling)
            kind = f"untuned warmup (beta2={self.beta2})" if self._untuned else f"linear warmup over {self.fallback_steps}"
            reason = f"fallback to {kind}: {state.why}"
            if proposal < self.fallback(t + 1):
                reason += f"; capped at {state.ceiling:.4g}, the last multiplier set on a reliable sharpness"
            evidence.update(fallback=self.fallback(t + 1), ceiling=state.ceiling)
        else:
            lam, peak = state.sharpness, self.peak_lr
            eta = self.current * peak
            ratio = min(eta * lam / self.threshold, MAX_FLOAT)
            target = self._target(lam)
            evidence.update(sharpness=lam, ratio=ratio, eta=eta, target_eta=target,
                            age=float(t - (state.measured_at or 0)))
            if ratio > self.rho_back:
                proposal = target / peak
                reason = f"eta*lambda/C = {ratio:.4g} > rho_back={self.rho_back}: cut back to rho_hi={self.rho_hi}"
            elif ratio < self.rho_hi:
                base = eta if eta > 0 else self.start() * peak  # never stuck at 0
                proposal = min(self.growth * base, target) / peak
                reason = f"eta*lambda/C = {ratio:.4g} < rho_hi={self.rho_hi}: raise (at most x{self.growth})"
            else:
                proposal = self.current
                reason = f"eta*lambda/C = {ratio:.4g} in [rho_hi, rho_back]: hold"
            proposal = min(1.0, proposal)
            state.ceiling = self.bounds.move(self.current, proposal)
        reachable = min(proposal, self.current + self.bounds.max_step)
        done = reachable >= 1.0
        if done:
            reason = "reached the peak: " + reason
        action = "raise" if proposal > self.current else "lower" if proposal < self.current else "hold"
        return Proposal(proposal, action, reason, evidence, done)

    def _target(self, lam: float) -> float:
        """``eta* = rho_hi C / lambda``, at most the largest float (a tiny ``lambda`` allows any LR)."""
        return min(self.rho_hi * self.threshold / lam, MAX_FLOAT)

    def _measure(self, lam: float, t: int) -> None:
        """Take a finite sharpness measurement: accept it, or say why it is unreliable."""
        state = self.state
        state.measurements += 1
        previous = state.previous
        if lam <= 0:
            state.sharpness, state.why = None, f"sharpness {lam:.4g} at update {t} is not positive"
            return
        state.previous = lam
        if previous is not None and not 1.0 / self.max_jump <= lam / previous <= self.max_jump:
            state.sharpness = None
            state.why = (f"sharpness jumped from {previous:.4g} to {lam:.4g} at update {t}, "
                         f"by more than max_jump={self.max_jump}")
            if lam > previous:  # it may be real: never run above what it allows
                state.ceiling = min(state.ceiling, self._target(lam) / self.peak_lr)
            return
        state.sharpness, state.measured_at = lam, t
        state.used += 1
