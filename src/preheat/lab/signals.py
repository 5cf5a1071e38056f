"""The signals a run measures for its controller, beyond the loss and the gradient norm.

A controller lists what it needs in ``needs`` (name -> every how many updates):

- ``smoothness``: the local smoothness ``||g(theta_t+1) - g(theta_t)|| / ||theta_t+1 - theta_t||``,
  both gradients on the update's batch (one extra forward and backward; under ``torchrun`` the
  new gradient is averaged over ranks like the old one, so it is the whole batch's);
- ``sharpness``: the top eigenvalue of the loss Hessian on the update's batch at the new
  parameters (Lanczos on Hessian-vector products, warm-started from the last eigenvector),
  preconditioned by Adam's second moment for Adam-type optimizers (under ``torchrun``, of each
  rank's share; the Scheduler averages the ranks' values).

The seconds spent measuring are counted, so a report can state what a controller costs.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from preheat.lab import distributed
from preheat.lab.tasks import Task
from preheat.probes import adam_preconditioner, sharpness

ADAM_LIKE = ("adam", "adamw", "giadam", "giadamw", "radam", "radamw")


class Signals:
    """Measures what ``needs`` asks for, after each update of one run."""

    def __init__(self, needs: dict[str, int], task: Task, model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, adam: bool) -> None:
        unknown = set(needs) - {"smoothness", "sharpness"}
        if unknown:
            raise ValueError(f"the controller needs {sorted(unknown)}; the lab measures smoothness and sharpness")
        self.needs, self.task, self.model, self.optimizer, self.adam = needs, task, model, optimizer, adam
        self.seconds = 0.0
        self.measurements = 0
        self._vector: torch.Tensor | None = None

    def measure(self, step: int, batch: Any, params: list[torch.nn.Parameter], update: torch.Tensor) -> dict[str, float]:
        """The signals due after update ``step``, made on ``batch``, which moved ``params`` by
        ``update`` (their ``.grad`` still holds the gradient that update applied).

        Smoothness compares that gradient with a fresh one on the same batch at the new
        parameters (one extra forward and backward), so minibatch noise does not enter it.
        """
        start = time.perf_counter()
        found: dict[str, float] = {}
        every = self.needs.get("smoothness")
        moved = torch.linalg.vector_norm(update).item()
        if every and step % every == 0 and moved > 0:
            fresh = torch.autograd.grad(self.task.loss(self.model, batch)[0], params, allow_unused=True)
            new = torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(fresh, params)])
            old = torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1) for p in params])
            change = distributed.mean_tensor(new) - old  # .grad holds the ranks' mean already
            found["smoothness"] = torch.linalg.vector_norm(change).item() / moved
        every = self.needs.get("sharpness")
        if every and step % every == 0:
            preconditioner = adam_preconditioner(self.optimizer, self.model) if self.adam else None
            result = sharpness(self.model, lambda m, b: self.task.loss(m, b)[0], batch,
                               init=self._vector, preconditioner=preconditioner)
            self._vector = result.vector
            found["sharpness"] = result.value
        if found:
            self.measurements += 1
        self.seconds += time.perf_counter() - start
        return found
