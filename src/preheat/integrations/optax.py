"""optax adapter: a preheat schedule as a jittable ``count -> learning rate`` function.

``to_optax(schedule, peak)(count) == peak * schedule(count)``, where ``count`` is optax's
update count: 0 for the first update, as preheat's step (the number of completed updates).
After the schedule's last step the value at that step holds.

No formula lives here: each family writes its formula once, against an array namespace, and
this adapter evaluates it over ``jax.numpy`` with :meth:`~preheat.schedules.Schedule.held`
(as :mod:`preheat.integrations.keras` does over ``keras.ops``, and ``schedule(t)`` over NumPy).
A :class:`~preheat.schedules.Join` is a chain of ``where`` over its boundaries, a
:class:`~preheat.schedules.Product` a product, and the hold after ``length`` a ``minimum``.
Every Python branch is on the schedule's (static) fields, never on the traced step.
Steps are taken as floats (float64 with ``jax_enable_x64``; exact for steps below 2**53), so
with x64 the values agree with the NumPy core to ~1e-15 relative; in float32 to ~1e-6 (~1e-4
for RAdam's rectification near its onset), and a schedule's step counts (lengths, boundaries,
milestones) must be below 2**31, JAX's int32 limit for Python ints without x64.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from preheat.schedules import Schedule

__all__ = ["to_optax", "evaluate"]


def check(schedule: Schedule, peak: Any, owner: str) -> float:
    """Check that ``schedule`` is a preheat schedule in updates (durations in units resolved) and
    ``peak`` a finite number > 0."""
    if not isinstance(schedule, Schedule):
        raise ValueError(f"{owner}: schedule={schedule!r} is invalid; expected a preheat Schedule")
    if schedule.has_units:
        raise ValueError(f"{owner}: schedule={schedule} has durations in units; expected them resolved "
                         f"to updates first: {owner}(schedule.resolve(total=...), peak)")
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
    return schedule.held(t, jnp)


def to_optax(schedule: Schedule, peak: float) -> Callable[[Any], Any]:
    """A jittable optax schedule: ``count -> peak * schedule(count)``.

    ``count`` is optax's update count, 0 for the first update, which is preheat's step
    (completed updates): update ``t`` uses ``peak * schedule(t)``, and after the schedule's last
    step the value there holds. Pass it as ``learning_rate`` to any optax optimizer, or to
    ``optax.inject_hyperparams``. Values are float64 with ``jax_enable_x64``, else float32.

    Raises:
        ValueError: ``schedule`` is not a preheat schedule, or ``peak`` is not a finite
            number > 0.
        ImportError: JAX is not installed (``pip install 'preheat[jax]'``).
    """
    peak = check(schedule, peak, "to_optax")
    _jnp()

    def learning_rate(count: Any) -> Any:
        return peak * evaluate(schedule, count)

    learning_rate.__doc__ = f"optax schedule: count -> {peak!r} * ({schedule})(count)"
    return learning_rate
