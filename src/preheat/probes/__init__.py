"""Probes: measurements on a model that guide warmup, each leaving the model as it found it.

- :func:`sharpness`: the top Hessian eigenvalue (Lanczos or power iteration on Hessian-vector
  products), optionally preconditioned by Adam's ``P`` (:func:`adam_preconditioner`).
- :func:`critical_sharpness`: ``2 /`` the smallest step along a direction that raises the loss
  (forward passes only).
- :func:`catapult_search`: Kalra & Barkeshli's initial-LR search (forward passes only).
- :func:`lr_range_test`: the LR range test with ``valley``/``steepest``/``min_over_10`` rules.
- :func:`advise`: a catapult search and a range test read into a peak LR and a warmup.

Every probe takes ``loss_fn(model, batch) -> scalar tensor`` and works on the model's trainable
parameters (``requires_grad``), in ``model.parameters()`` order. Imports torch and NumPy, and
``preheat.schedules`` (argument checks) from preheat.
"""

from preheat.probes._state import LossFn
from preheat.probes.advise import Advice, advise
from preheat.probes.catapult import DEFAULT_DELTA, CatapultResult, UpdateFn, catapult_search
from preheat.probes.critical import CriticalResult, critical_sharpness
from preheat.probes.lr_range import LRRangeResult, lr_range_test
from preheat.probes.sharpness import (
    SharpnessResult,
    adam_preconditioner,
    sharpness,
)

__all__ = [
    "LossFn",
    "advise",
    "Advice",
    "UpdateFn",
    "sharpness",
    "SharpnessResult",
    "adam_preconditioner",
    "critical_sharpness",
    "CriticalResult",
    "catapult_search",
    "CatapultResult",
    "DEFAULT_DELTA",
    "lr_range_test",
    "LRRangeResult",
]
