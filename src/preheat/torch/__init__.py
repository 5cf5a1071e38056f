"""PyTorch adapter: :class:`Scheduler` drives an optimizer's param groups from preheat schedules."""

from preheat.torch.scheduler import Scheduler

__all__ = ["Scheduler"]
