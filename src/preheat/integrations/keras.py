"""Keras 3 adapter: a preheat schedule as a ``keras.optimizers.schedules.LearningRateSchedule``.

``to_keras(schedule, peak)(step) == peak * schedule(step)``, computed with ``keras.ops`` (each
family's one formula, evaluated over the ``keras.ops`` namespace by
:meth:`~preheat.schedules.Schedule.held`), so it runs on every Keras 3 backend (JAX, TensorFlow,
PyTorch) and inside compiled train steps.

Keras calls a ``LearningRateSchedule`` with ``optimizer.iterations``, the number of updates
already applied: 0 for the first update, as preheat's step (the number of completed updates).
Keras reads the learning rate before it increments ``iterations``, so update ``t`` (0-based)
uses ``peak * schedule(t)``; after the schedule's last step the value there holds.

With ``gradient_accumulation_steps=n`` Keras 3.15 passes its raw counter (calls of
``apply_gradients``, not ``optimizer.iterations``, which counts real updates): real update
``j`` then uses ``peak * schedule(n * j + n - 1)``, so give the schedule ``n`` times the steps.

Values are computed in ``keras.config.floatx()``: float32 by default (agreeing with the NumPy
core to ~1e-6 relative, ~1e-4 for RAdam near its onset); with ``floatx`` float64 (and, on the
JAX backend, ``jax_enable_x64``) to ~1e-15, except the cosine families: Keras 3.15's
``keras.ops.cos`` returns float32 even for float64 input.
"""

from __future__ import annotations

from typing import Any

try:
    import keras
except ImportError as error:  # pragma: no cover - exercised only without keras
    if error.name != "keras":  # keras is there, its backend is not (KERAS_BACKEND)
        raise
    raise ImportError(
        "preheat.integrations.keras needs Keras 3: pip install 'preheat[keras]' "
        "(or keras>=3 with the backend of your choice)"
    ) from error

from preheat.integrations.optax import check
from preheat.schedules import Schedule, from_dict

__all__ = ["PreheatSchedule", "to_keras"]


@keras.saving.register_keras_serializable(package="preheat")
class PreheatSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``step -> peak * schedule(step)`` for a Keras optimizer's ``learning_rate``.

    ``step`` is ``optimizer.iterations``: 0 for the first update (preheat's step). The config
    is plain data, ``{"schedule": schedule.to_dict(), "peak": peak}``, so a model saved with
    this optimizer loads again (the class is registered as ``preheat>PreheatSchedule``).
    """

    def __init__(self, schedule: Schedule, peak: float) -> None:
        super().__init__()
        self.peak = check(schedule, peak, "to_keras")
        self.schedule = schedule

    def __call__(self, step: Any) -> Any:
        t = keras.ops.cast(step, keras.config.floatx())
        return self.peak * self.schedule.held(t, keras.ops)

    def get_config(self) -> dict[str, Any]:
        return {"schedule": self.schedule.to_dict(), "peak": self.peak}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PreheatSchedule:
        return cls(from_dict(config["schedule"]), config["peak"])

    def __repr__(self) -> str:
        return f"PreheatSchedule({self.schedule}, peak={self.peak!r})"


def to_keras(schedule: Schedule, peak: float) -> PreheatSchedule:
    """A Keras 3 learning-rate schedule giving ``peak * schedule(optimizer.iterations)``.

    Update ``t`` (0-based; Keras's ``iterations`` before the update) uses
    ``peak * schedule(t)``; after the schedule's last step the value there holds.

    Raises:
        ValueError: ``schedule`` is not a preheat schedule, or ``peak`` is not a finite
            number > 0.
    """
    return PreheatSchedule(schedule, peak)
