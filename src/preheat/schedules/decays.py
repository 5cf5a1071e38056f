"""Decays: schedules that start at 1 (the peak) at their own step 0 and fall towards ``end``.

In every formula ``t`` is the step (completed updates, 0-based) and ``p = t / steps`` the
progress. ``end`` is a fraction of the peak in [0, 1]. A decay with ``steps=0`` is already at
its end: every update gets ``end``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from preheat.schedules.base import Schedule, progress
from preheat.schedules.validate import check_sequence, check_steps, shorten


@dataclass(frozen=True, repr=False)
class Constant(Schedule):
    """Constant: ``value`` at every step (1, the peak, by default).

    With ``steps=None`` it never ends; with ``steps`` it is a phase of that many updates (the
    stable phase of WSD, say) that ``>>`` can follow.
    """

    name: ClassVar[str] = "constant"
    steps: int | None = None
    value: float = 1.0

    def _at(self, t: Any, xp: Any) -> Any:
        return xp.zeros_like(t) + self.value


@dataclass(frozen=True, repr=False)
class LinearDecay(Schedule):
    """Linear decay: ``1 - (1 - end) * t / steps`` for ``t <= steps``, then ``end``.

    Update 0 gets 1; update ``steps`` and later get ``end``.
    """

    name: ClassVar[str] = "linear_decay"
    steps: int
    end: float = 0.0

    def _at(self, t: Any, xp: Any) -> Any:
        return 1.0 - (1.0 - self.end) * progress(t, self.steps, xp)


@dataclass(frozen=True, repr=False)
class CosineDecay(Schedule):
    """Cosine decay: ``end + (1 - end) * (1 + cos(2 pi cycles p)) / 2`` for ``p = t / steps <= 1``.

    ``cycles`` counts whole cosine periods over ``steps``, as Hugging Face's ``num_cycles``:
    the default 0.5 is the usual half-wave from 1 down to ``end``; 1.5 goes down, up, down.
    Update 0 gets 1; after ``steps`` the value at ``steps`` holds (``end`` for half-integer
    ``cycles``). Unlike Hugging Face's ``cosine``, it does not climb back after the last step.
    """

    name: ClassVar[str] = "cosine_decay"
    steps: int
    end: float = 0.0
    cycles: float = 0.5

    def _at(self, t: Any, xp: Any) -> Any:
        wave = 0.5 * (1.0 + xp.cos(2.0 * math.pi * self.cycles * progress(t, self.steps, xp)))
        return self.end + (1.0 - self.end) * wave


@dataclass(frozen=True, repr=False)
class CosineRestarts(Schedule):
    """Cosine with hard restarts: ``steps`` cut into ``cycles`` equal parts, each a half-cosine.

    ``end + (1 - end) * (1 + cos(pi * ((cycles * p) mod 1))) / 2`` for ``p = t / steps < 1``,
    and ``end`` from ``steps`` on (Hugging Face's ``cosine_with_restarts``). Update 0 and the
    first update of every part get 1.
    """

    name: ClassVar[str] = "cosine_restarts"
    steps: int
    cycles: float = 1.0
    end: float = 0.0

    def _at(self, t: Any, xp: Any) -> Any:
        p = progress(t, self.steps, xp)
        wave = 0.5 * (1.0 + xp.cos(math.pi * xp.mod(self.cycles * p, 1.0)))
        return xp.where(p >= 1.0, self.end, self.end + (1.0 - self.end) * wave)


@dataclass(frozen=True, repr=False)
class PolynomialDecay(Schedule):
    """Polynomial decay: ``end + (1 - end) * (1 - t / steps) ** power``, then ``end``.

    Update 0 gets 1; ``power=1`` is linear decay (Hugging Face's ``polynomial`` with
    ``end = lr_end / peak``).
    """

    name: ClassVar[str] = "polynomial_decay"
    steps: int
    power: float = 1.0
    end: float = 0.0

    def _at(self, t: Any, xp: Any) -> Any:
        return self.end + (1.0 - self.end) * xp.power(1.0 - progress(t, self.steps, xp), self.power)


@dataclass(frozen=True, repr=False)
class ExponentialDecay(Schedule):
    """Exponential decay: ``rate ** t``, or ``0.5 ** (t / half_life)`` (give exactly one).

    Update 0 gets 1. With ``steps=None`` it never ends; with ``steps`` it holds its value at
    ``steps`` from then on.
    """

    name: ClassVar[str] = "exponential_decay"
    rate: float | None = None
    half_life: float | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        if (self.rate is None) == (self.half_life is None):
            raise ValueError(
                f"{self.name}: rate={shorten(self.rate)}, half_life={shorten(self.half_life)} is invalid; "
                "expected exactly one of rate (per step, in (0, 1]) or half_life (steps, > 0)"
            )
        super().__post_init__()

    def _at(self, t: Any, xp: Any) -> Any:
        if self.rate is not None:
            return xp.power(self.rate, t)
        with np.errstate(over="ignore"):  # a tiny half_life: t / half_life is inf, 0.5 ** inf is 0
            return xp.power(0.5, t / self.half_life)


@dataclass(frozen=True, repr=False)
class StepDecay(Schedule):
    """Step decay: ``gamma ** k``, ``k`` = how many boundaries the step has reached.

    Boundaries every ``every`` steps (``k = t // every``, torch's ``StepLR``; never ends) or at
    the given ``milestones`` (``k`` = number of milestones ``<= t``, torch's ``MultiStepLR``;
    ends at the last milestone). Update 0 gets 1.
    """

    name: ClassVar[str] = "step_decay"
    every: int | None = None
    gamma: float = 0.1
    milestones: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        given = check_sequence(self.name, "milestones", self.milestones, "increasing steps >= 1")
        if (self.every is None) == (not given):
            raise ValueError(
                f"{self.name}: every={shorten(self.every)}, milestones={shorten(list(given))} is invalid; "
                "expected exactly one of every (steps, >= 1) or milestones (increasing steps >= 1)"
            )
        super().__post_init__()
        milestones = tuple(check_steps(self.name, "milestones", m, minimum=1) for m in given)
        if any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(
                f"{self.name}: milestones={shorten(list(milestones))} is invalid; expected strictly "
                "increasing steps"
            )
        object.__setattr__(self, "milestones", milestones)

    @property
    def length(self) -> int | None:
        return self.milestones[-1] if self.milestones else None

    def _at(self, t: Any, xp: Any) -> Any:
        if self.every is not None:
            k = xp.floor_divide(t, self.every)
        else:  # the number of milestones <= t
            k = sum(xp.where(t >= m, 1.0, 0.0) for m in self.milestones)
        return xp.power(self.gamma, k)


@dataclass(frozen=True, repr=False)
class InverseSqrt(Schedule):
    """Inverse square root: ``sqrt(timescale / (t + timescale))``; never ends.

    Update 0 gets 1, update ``3 * timescale`` gets 1/2. After a warmup of ``W`` steps this is
    Hugging Face's ``inverse_sqrt`` (whose ``timescale`` defaults to ``W``, or 10000 when 0).
    """

    name: ClassVar[str] = "inverse_sqrt"
    timescale: float

    @property
    def length(self) -> None:
        return None

    def _at(self, t: Any, xp: Any) -> Any:
        return xp.sqrt(self.timescale / (t + self.timescale))


@dataclass(frozen=True, repr=False)
class OneMinusSqrtDecay(Schedule):
    """1-sqrt cooldown (Hägele et al. 2024): ``1 - (1 - end) * sqrt(t / steps)``, then ``end``.

    Update 0 gets 1. Falls fast at first and flattens towards ``end``.
    """

    name: ClassVar[str] = "one_minus_sqrt_decay"
    steps: int
    end: float = 0.0

    def _at(self, t: Any, xp: Any) -> Any:
        return 1.0 - (1.0 - self.end) * xp.sqrt(progress(t, self.steps, xp))


constant = Constant
linear_decay = LinearDecay
cosine_decay = CosineDecay
cosine_restarts = CosineRestarts
polynomial_decay = PolynomialDecay
exponential_decay = ExponentialDecay
step_decay = StepDecay
inverse_sqrt = InverseSqrt
one_minus_sqrt_decay = OneMinusSqrtDecay
