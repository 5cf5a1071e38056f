"""preheat: learning-rate warmup done right.

Schedules (pure, NumPy only) are re-exported here; ``preheat.Scheduler``, ``preheat.check`` and
``preheat.advise`` (PyTorch) are imported lazily, so ``import preheat`` does not import torch.
"""

from typing import Any

from preheat.schedules import *  # noqa: F403
from preheat.schedules import __all__ as _schedule_names
from preheat.schedules.checks import Finding, WarmupMistake

__version__ = "0.1.0"

#: Scheduler, check and advise too, but star imports stay torch-free.
__all__ = [*_schedule_names, "auto_warmup", "Finding", "WarmupMistake", "__version__"]


def auto_warmup(total: int, **options: Any) -> Any:
    """The warmup with no length to choose: :class:`preheat.adaptive.AutoWarmup` for a run of
    ``total`` updates (linear over 40 % of it unless the loss or the gradient norm says the LR
    is more than the network can take yet), decaying by cosine after it (``after=...`` for another decay, WSD
    included); ``options`` are its other arguments. Use it as a controller:
    ``preheat.Scheduler(optimizer, preheat.auto_warmup(total=N))``, passing each update's loss
    and gradient norm (before clipping) to ``scheduler.step(loss=..., grad_norm=...)``; with
    the loss alone its gradient-spike rule is off."""
    from preheat.adaptive import AutoWarmup

    return AutoWarmup(total, **options)


def __getattr__(name: str) -> Any:
    if name == "Scheduler":
        from preheat.torch import Scheduler

        return Scheduler
    if name == "check":
        from preheat.torch.checks import check

        return check
    if name == "advise":
        from preheat.probes.advise import advise

        return advise
    raise AttributeError(f"module 'preheat' has no attribute {name!r}")
