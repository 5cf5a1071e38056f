"""Reference formulas for every schedule family, written from their definitions with ``math``.

These are deliberately independent of ``preheat``: scalar Python only, written from the
papers / the docstring definitions (DESIGN.md conventions: ``t`` = completed updates,
0-based; after ``length`` the value holds). Tests compare the library against them.
"""

from __future__ import annotations

import math


def _clamp(t: int, length: int | None) -> int:
    return t if length is None else min(t, length)


# -- warmups -------------------------------------------------------------------------------


def linear_warmup(t: int, steps: int, start: float = 0.0) -> float:
    if t >= steps:
        return 1.0
    return start + (1.0 - start) * t / steps


def cosine_warmup(t: int, steps: int, start: float = 0.0) -> float:
    if t >= steps:
        return 1.0
    return start + (1.0 - start) * (1.0 - math.cos(math.pi * t / steps)) / 2.0


def polynomial_warmup(t: int, steps: int, power: float, start: float = 0.0) -> float:
    if t >= steps:
        return 1.0
    return start + (1.0 - start) * math.pow(t / steps, power)


def exponential_warmup(t: int, tau: float | None = None, beta2: float | None = None, steps: int | None = None) -> float:
    t = _clamp(t, steps)
    if tau is not None:
        return 1.0 - math.exp(-(t + 1) / tau)
    # Ma & Yarats: omega_t = 1 - exp(-(1 - beta2) t) with t counted from 1.
    return 1.0 - math.exp(-(1.0 - beta2) * (t + 1))


def untuned_period(beta2: float) -> int:
    return round(2.0 / (1.0 - beta2))


def untuned_linear_warmup(t: int, beta2: float) -> float:
    # Ma & Yarats: omega_t = min(1, (1 - beta2) / 2 * t), t counted from 1; P = round(2/(1-beta2)).
    return min(1.0, (t + 1) / untuned_period(beta2))


def radam_rho(k: int, beta2: float) -> float:
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    return rho_inf - 2.0 * k * beta2**k / (1.0 - beta2**k)


def radam_warmup(t: int, beta2: float, steps: int | None = None) -> float:
    """torch.optim.RAdam's rectification term r_t with 1-based k = t + 1; 0 while rho_k <= 5."""
    k = _clamp(t, steps) + 1
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho = radam_rho(k, beta2)
    if rho <= 5.0:
        return 0.0
    return math.sqrt((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))


# -- decays --------------------------------------------------------------------------------


def constant(t: int, steps: int | None = None, value: float = 1.0) -> float:
    return value


def _p(t: int, steps: int) -> float:
    return 1.0 if steps == 0 or t >= steps else t / steps


def linear_decay(t: int, steps: int, end: float = 0.0) -> float:
    return 1.0 - (1.0 - end) * _p(t, steps)


def cosine_decay(t: int, steps: int, end: float = 0.0, cycles: float = 0.5) -> float:
    return end + (1.0 - end) * (1.0 + math.cos(2.0 * math.pi * cycles * _p(t, steps))) / 2.0


def cosine_restarts(t: int, steps: int, cycles: float = 1.0, end: float = 0.0) -> float:
    if t >= steps:
        return end
    phase = math.fmod(cycles * t / steps, 1.0)
    return end + (1.0 - end) * (1.0 + math.cos(math.pi * phase)) / 2.0


def polynomial_decay(t: int, steps: int, power: float = 1.0, end: float = 0.0) -> float:
    return end + (1.0 - end) * math.pow(1.0 - _p(t, steps), power)


def exponential_decay(t: int, rate: float | None = None, half_life: float | None = None, steps: int | None = None) -> float:
    t = _clamp(t, steps)
    if rate is not None:
        return math.pow(rate, t)
    return math.exp(-math.log(2.0) * t / half_life)


def step_decay(t: int, every: int | None = None, gamma: float = 0.1, milestones: tuple[int, ...] = ()) -> float:
    if every is not None:
        return gamma ** (t // every)
    return gamma ** sum(1 for m in milestones if m <= t)


def inverse_sqrt(t: int, timescale: float) -> float:
    return 1.0 / math.sqrt(1.0 + t / timescale)


def one_minus_sqrt_decay(t: int, steps: int, end: float = 0.0) -> float:
    return 1.0 - (1.0 - end) * math.sqrt(_p(t, steps))
