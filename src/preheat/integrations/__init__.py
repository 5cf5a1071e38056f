"""preheat in other frameworks: trainers, JAX/Keras schedules, and logging dashboards.

Each integration lives in its own module and imports its framework only when used, so
importing ``preheat.integrations`` imports no framework; a missing one raises an ImportError
that names the extra to install:

- :mod:`~preheat.integrations.huggingface`: ``optimizers_for_trainer`` for
  ``Trainer(optimizers=...)``, and ``PreheatTrainer``/``PreheatCallback`` feeding a controller
  (``preheat[huggingface]``).
- :mod:`~preheat.integrations.lightning`: ``PreheatLightningCallback`` feeding a controller
  (``preheat[lightning]``).
- :mod:`~preheat.integrations.optax`: ``to_optax``, a jittable ``count -> lr`` (``preheat[jax]``).
- :mod:`~preheat.integrations.keras`: ``to_keras``, a Keras 3 ``LearningRateSchedule``
  (``preheat[keras]``).
- :mod:`~preheat.integrations.logging`: TensorBoard and MLflow sinks (``preheat[logging]``).

Every schedule adapter gives ``peak * schedule(step)`` for the framework's own step counter,
which for optax (``count``) and Keras (``optimizer.iterations``) is 0 at the first update, as
preheat's step is. See ``docs/integrations.md``.
"""
