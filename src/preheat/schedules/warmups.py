"""Warmups: schedules that rise to 1 (the peak) over their steps.

In every formula ``t`` is the step (completed updates, 0-based) and ``p = t / steps`` the
progress. A warmup with ``steps=0`` is already at its end: every update gets 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from preheat.schedules.base import Schedule, progress
from preheat.schedules.validate import shorten


@dataclass(frozen=True, repr=False)
class LinearWarmup(Schedule):
    """Linear warmup: ``start + (1 - start) * t / steps`` for ``t <= steps``, then 1.

    Update 0 gets ``start`` (0 by default, as in Hugging Face's schedules: that update then
    changes nothing); update ``steps`` and every later one gets 1.
    """

    name: ClassVar[str] = "linear_warmup"
    steps: int
    start: float = 0.0

    def _at(self, t: Any, xp: Any) -> Any:
        return self.start + (1.0 - self.start) * progress(t, self.steps, xp)


@dataclass(frozen=True, repr=False)
class CosineWarmup(Schedule):
    """Cosine warmup: ``start + (1 - start) * (1 - cos(pi * t / steps)) / 2``, then 1.

    Update 0 gets ``start``; update ``steps`` and later get 1. Slow at both ends, steepest midway.
    """

    name: ClassVar[str] = "cosine_warmup"
    steps: int
    start: float = 0.0

    def _at(self, t: Any, xp: Any) -> Any:
        rise = 0.5 * (1.0 - xp.cos(math.pi * progress(t, self.steps, xp)))
        return self.start + (1.0 - self.start) * rise


@dataclass(frozen=True, repr=False)
class PolynomialWarmup(Schedule):
    """Polynomial warmup: ``start + (1 - start) * (t / steps) ** power``, then 1.

    Update 0 gets ``start``; ``power=1`` is linear warmup, ``power > 1`` stays low for longer.
    """

    name: ClassVar[str] = "polynomial_warmup"
    steps: int
    power: float
    start: float = 0.0

    def _at(self, t: Any, xp: Any) -> Any:
        return self.start + (1.0 - self.start) * xp.power(progress(t, self.steps, xp), self.power)


@dataclass(frozen=True, repr=False)
class ExponentialWarmup(Schedule):
    """Exponential warmup: ``1 - exp(-(t + 1) / tau)``.

    Give ``tau`` (steps), or ``beta2`` for Ma & Yarats' untuned form ``tau = 1 / (1 - beta2)``,
    i.e. ``1 - exp(-(1 - beta2) * (t + 1))``. Update 0 gets ``1 - exp(-1 / tau)``: the paper
    counts Adam's updates from 1, so update ``t`` here is its ``t + 1``.

    The curve only approaches 1. With ``steps=None`` (default) it never ends, so it cannot be
    followed by ``>>``; multiply it onto a decay instead (``exponential_warmup(beta2=0.999) *
    cosine_decay(10000)``, as the paper applies it). With ``steps`` it ends after that many
    updates and holds ``1 - exp(-(steps + 1) / tau)``; a following phase starts at its own value.
    """

    name: ClassVar[str] = "exponential_warmup"
    tau: float | None = None
    beta2: float | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        if (self.tau is None) == (self.beta2 is None):
            raise ValueError(
                f"{self.name}: tau={shorten(self.tau)}, beta2={shorten(self.beta2)} is invalid; "
                "expected exactly one of tau (steps) or beta2 (untuned form)"
            )
        super().__post_init__()

    @property
    def time_constant(self) -> float:
        """``tau``, or ``1 / (1 - beta2)`` in the untuned form."""
        return self.tau if self.tau is not None else 1.0 / (1.0 - self.beta2)

    def _at(self, t: Any, xp: Any) -> Any:
        with np.errstate(over="ignore"):  # a tiny tau: (t + 1) / tau is inf, exp(-inf) is 0
            return 1.0 - xp.exp(-(t + 1.0) / self.time_constant)


@dataclass(frozen=True, repr=False)
class UntunedLinearWarmup(Schedule):
    """Untuned linear warmup (Ma & Yarats 2021): ``min(1, (t + 1) / P)``, ``P = round(2 / (1 - beta2))``.

    The paper's ``omega_t = min(1, (1 - beta2) / 2 * t)`` counts Adam's updates from 1, so update
    0 here gets ``1 / P`` and update ``P - 1`` is the first to get 1: ``length`` is ``P - 1``.

    Rounding: ``P`` is the nearest integer to ``2 / (1 - beta2)``, so beta2=0.999 gives
    ``P = 2000`` as the paper intends. pytorch_warmup truncates the float ``1999.9999999999998``
    to 1999; ``linear_warmup(1998, start=1/1999)`` reproduces its numbers exactly.
    """

    name: ClassVar[str] = "untuned_linear_warmup"
    beta2: float

    @property
    def period(self) -> int:
        """``P = round(2 / (1 - beta2))``."""
        return round(2.0 / (1.0 - self.beta2))

    @property
    def length(self) -> int:
        return self.period - 1

    def _at(self, t: Any, xp: Any) -> Any:
        return (t + 1.0) / self.period


@dataclass(frozen=True, repr=False)
class RAdamWarmup(Schedule):
    """RAdam's rectification factor (Liu et al. 2020) as a multiplier of the LR.

    With Adam's update count ``k = t + 1``, ``rho_inf = 2 / (1 - beta2) - 1`` and
    ``rho_k = rho_inf - 2 k beta2^k / (1 - beta2^k)``, the value is
    ``sqrt((rho_k - 4)(rho_k - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_k))`` where
    ``rho_k > 5`` and 0 before (torch's ``RAdam`` threshold; there RAdam takes un-adapted
    momentum steps instead, here Adam's step is scaled to 0). Update 0 gets 0.

    It approaches 1 without reaching it: like :class:`ExponentialWarmup`, ``steps=None`` never
    ends (multiply it onto a decay), or give ``steps`` to end it there.
    """

    name: ClassVar[str] = "radam_warmup"
    beta2: float
    steps: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rho_inf <= 5.0:
            raise ValueError(
                f"{self.name}: beta2={self.beta2!r} is invalid; expected beta2 > 2/3, "
                "below which RAdam's rectification never switches on"
            )

    @property
    def rho_inf(self) -> float:
        """The SMA length limit ``2 / (1 - beta2) - 1``."""
        return 2.0 / (1.0 - self.beta2) - 1.0

    def _at(self, t: Any, xp: Any) -> Any:
        k = t + 1.0
        beta_k = xp.power(self.beta2, k)
        rho = self.rho_inf - 2.0 * k * beta_k / (1.0 - beta_k)
        on = rho > 5.0
        safe = xp.where(on, rho, 6.0)
        inf = self.rho_inf
        rect = xp.sqrt((safe - 4.0) * (safe - 2.0) * inf / ((inf - 4.0) * (inf - 2.0) * safe))
        return xp.where(on, rect, 0.0)


linear_warmup = LinearWarmup
cosine_warmup = CosineWarmup
polynomial_warmup = PolynomialWarmup
exponential_warmup = ExponentialWarmup
untuned_linear_warmup = UntunedLinearWarmup
radam_warmup = RAdamWarmup

