"""optax adapter: a preheat schedule as a jittable ``count -> learning rate`` function.

``to_optax(schedule, peak)(count) == peak * schedule(count)``, where ``count`` is optax's
update count: 0 for the first update, as preheat's step (the number of completed updates).
After the schedule's last step the value at that step holds.

The schedule core is NumPy; here each family's formula is written again over an array
namespace (``jax.numpy`` for optax, ``keras.ops`` for :mod:`preheat.integrations.keras`) in
:data:`FORMULAS`, one entry per schedule class, and composition maps onto it: a
:class:`~preheat.schedules.Join` is a chain of ``where`` over its boundaries, a
:class:`~preheat.schedules.Product` a product, and the hold after ``length`` a ``minimum``.
Every Python branch is on the schedule's (static) fields, never on the traced step.
Steps are taken as floats (float64 with ``jax_enable_x64``; exact for steps below 2**53), so
with x64 the values agree with the NumPy core to ~1e-15 relative; in float32 to ~1e-6 (~1e-4
for RAdam's rectification near its onset).
"""

from __future__ import annotations

import math
from typing import Any, Callable

from preheat.schedules import (
    Constant,
    CosineDecay,
    CosineRestarts,
    CosineWarmup,
    ExponentialDecay,
    ExponentialWarmup,
    InverseSqrt,
    Join,
    LinearDecay,
    LinearWarmup,
    OneMinusSqrtDecay,
    PolynomialDecay,
    PolynomialWarmup,
    Product,
    RAdamWarmup,
    Schedule,
    StepDecay,
    UntunedLinearWarmup,
)

__all__ = ["to_optax", "FORMULAS", "evaluate"]

Formula = Callable[[Any, Any, Any], Any]  # (schedule, xp, t) -> values, 0 <= t <= length


def _progress(xp: Any, t: Any, steps: int) -> Any:
    """``t / steps``; 1 when ``steps`` is 0 (as the core's ``progress``)."""
    return t / steps if steps else xp.ones_like(t)


def _linear_warmup(s: LinearWarmup, xp: Any, t: Any) -> Any:
    return s.start + (1.0 - s.start) * _progress(xp, t, s.steps)


def _cosine_warmup(s: CosineWarmup, xp: Any, t: Any) -> Any:
    rise = 0.5 * (1.0 - xp.cos(math.pi * _progress(xp, t, s.steps)))
    return s.start + (1.0 - s.start) * rise


def _polynomial_warmup(s: PolynomialWarmup, xp: Any, t: Any) -> Any:
    return s.start + (1.0 - s.start) * xp.power(_progress(xp, t, s.steps), s.power)


def _exponential_warmup(s: ExponentialWarmup, xp: Any, t: Any) -> Any:
    return 1.0 - xp.exp(-(t + 1.0) / s.time_constant)


def _untuned_linear_warmup(s: UntunedLinearWarmup, xp: Any, t: Any) -> Any:
    return (t + 1.0) / s.period


def _radam_warmup(s: RAdamWarmup, xp: Any, t: Any) -> Any:
    k = t + 1.0
    beta_k = xp.power(s.beta2, k)
    rho = s.rho_inf - 2.0 * k * beta_k / (1.0 - beta_k)
    on = rho > 5.0
    safe = xp.where(on, rho, 6.0)
    inf = s.rho_inf
    rect = xp.sqrt((safe - 4.0) * (safe - 2.0) * inf / ((inf - 4.0) * (inf - 2.0) * safe))
    return xp.where(on, rect, 0.0)


def _constant(s: Constant, xp: Any, t: Any) -> Any:
    return xp.zeros_like(t) + s.value


def _linear_decay(s: LinearDecay, xp: Any, t: Any) -> Any:
    return 1.0 - (1.0 - s.end) * _progress(xp, t, s.steps)


def _cosine_decay(s: CosineDecay, xp: Any, t: Any) -> Any:
    wave = 0.5 * (1.0 + xp.cos(2.0 * math.pi * s.cycles * _progress(xp, t, s.steps)))
    return s.end + (1.0 - s.end) * wave


def _cosine_restarts(s: CosineRestarts, xp: Any, t: Any) -> Any:
    p = _progress(xp, t, s.steps)
    wave = 0.5 * (1.0 + xp.cos(math.pi * xp.mod(s.cycles * p, 1.0)))
    return xp.where(p >= 1.0, s.end + xp.zeros_like(p), s.end + (1.0 - s.end) * wave)


def _polynomial_decay(s: PolynomialDecay, xp: Any, t: Any) -> Any:
    return s.end + (1.0 - s.end) * xp.power(1.0 - _progress(xp, t, s.steps), s.power)


def _exponential_decay(s: ExponentialDecay, xp: Any, t: Any) -> Any:
    if s.rate is not None:
        return xp.power(s.rate, t)
    return xp.power(0.5, t / s.half_life)


def _step_decay(s: StepDecay, xp: Any, t: Any) -> Any:
    if s.every is not None:
        k = xp.floor_divide(t, float(s.every))
    else:  # number of milestones <= t
        k = xp.zeros_like(t)
        for m in s.milestones:
            k = k + xp.where(t >= m, 1.0, 0.0)
    return xp.power(s.gamma, k)


def _inverse_sqrt(s: InverseSqrt, xp: Any, t: Any) -> Any:
    return xp.sqrt(s.timescale / (t + s.timescale))


def _one_minus_sqrt_decay(s: OneMinusSqrtDecay, xp: Any, t: Any) -> Any:
    return 1.0 - (1.0 - s.end) * xp.sqrt(_progress(xp, t, s.steps))


def _join(s: Join, xp: Any, t: Any) -> Any:
    starts = (0,) + s.boundaries
    # Each phase at its own step (clipped at 0 so unused phases stay finite), then pick by phase.
    values = [held(phase, xp, xp.maximum(t - start, 0.0)) for phase, start in zip(s.schedules, starts)]
    out = values[-1]
    for value, boundary in zip(reversed(values[:-1]), reversed(s.boundaries)):
        out = xp.where(t < boundary, value, out)
    return out


def _product(s: Product, xp: Any, t: Any) -> Any:
    out = held(s.factors[0], xp, t)
    for factor in s.factors[1:]:
        out = out * held(factor, xp, t)
    return out


#: Each schedule class's formula over an array namespace ``xp``: ``f(schedule, xp, t)`` for
#: float steps ``0 <= t <= schedule.length``. The same formulas as each class's ``_at``.
FORMULAS: dict[type[Schedule], Formula] = {
    LinearWarmup: _linear_warmup,
    CosineWarmup: _cosine_warmup,
    PolynomialWarmup: _polynomial_warmup,
    ExponentialWarmup: _exponential_warmup,
    UntunedLinearWarmup: _untuned_linear_warmup,
    RAdamWarmup: _radam_warmup,
    Constant: _constant,
    LinearDecay: _linear_decay,
    CosineDecay: _cosine_decay,
    CosineRestarts: _cosine_restarts,
    PolynomialDecay: _polynomial_decay,
    ExponentialDecay: _exponential_decay,
    StepDecay: _step_decay,
    InverseSqrt: _inverse_sqrt,
    OneMinusSqrtDecay: _one_minus_sqrt_decay,
    Join: _join,
    Product: _product,
}


def formula_for(schedule: Schedule) -> Formula:
    """The entry of :data:`FORMULAS` for ``schedule``'s class (or its nearest base class)."""
    for cls in type(schedule).__mro__:
        if cls in FORMULAS:
            return FORMULAS[cls]
    known = ", ".join(sorted(c.__name__ for c in FORMULAS))
    raise ValueError(
        f"schedule={schedule!r} ({type(schedule).__name__}) has no array formula; "
        f"expected one of {known}"
    )


def held(schedule: Schedule, xp: Any, t: Any) -> Any:
    """Values at float steps ``t >= 0``, holding the value at ``length`` after it."""
    n = schedule.length
    return formula_for(schedule)(schedule, xp, t if n is None else xp.minimum(t, float(n)))


def check(schedule: Schedule, peak: Any, owner: str) -> float:
    """Check that every part of ``schedule`` has a formula and ``peak`` is a finite number > 0."""
    if not isinstance(schedule, Schedule):
        raise ValueError(f"{owner}: schedule={schedule!r} is invalid; expected a preheat Schedule")
    parts = [schedule]
    while parts:
        part = parts.pop()
        formula_for(part)
        parts.extend(getattr(part, "schedules", ()) + getattr(part, "factors", ()))
    if isinstance(peak, bool) or not isinstance(peak, (int, float)) or not math.isfinite(peak) or peak <= 0:
        raise ValueError(f"{owner}: peak={peak!r} is invalid; expected a finite number > 0 (the peak LR)")
    return float(peak)


def _jnp() -> Any:
    try:
        import jax.numpy as jnp
    except ImportError as error:  # pragma: no cover - exercised only without jax
        raise ImportError(
            "preheat.integrations.optax needs JAX: pip install 'preheat[jax]'"
        ) from error
    return jnp


def evaluate(schedule: Schedule, step: Any) -> Any:
    """``schedule(step)`` in ``jax.numpy`` (jittable): float values of ``step``'s shape."""
    jnp = _jnp()
    t = jnp.asarray(step)
    t = t.astype(jnp.result_type(float))  # float64 with jax_enable_x64, else float32
    return held(schedule, jnp, t)


def to_optax(schedule: Schedule, peak: float) -> Callable[[Any], Any]:
    """A jittable optax schedule: ``count -> peak * schedule(count)``.

    ``count`` is optax's update count, 0 for the first update, which is preheat's step
    (completed updates): update ``t`` uses ``peak * schedule(t)``, and after the schedule's last
    step the value there holds. Pass it as ``learning_rate`` to any optax optimizer, or to
    ``optax.inject_hyperparams``. Values are float64 with ``jax_enable_x64``, else float32.

    Raises:
        ValueError: ``schedule`` is not a preheat schedule (or contains a class without a
            formula in :data:`FORMULAS`), or ``peak`` is not a finite number > 0.
        ImportError: JAX is not installed (``pip install 'preheat[jax]'``).
    """
    peak = check(schedule, peak, "to_optax")
    _jnp()

    def learning_rate(count: Any) -> Any:
        return peak * evaluate(schedule, count)

    learning_rate.__doc__ = f"optax schedule: count -> {peak!r} * ({schedule})(count)"
    return learning_rate
