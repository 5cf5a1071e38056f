"""The signals a run measures for its controller, beyond the loss and the gradient norm.

A controller lists what it needs in ``needs`` (name -> every how many updates):

- ``smoothness``: the local smoothness ``||g_t - g_{t-1}|| / ||theta_t - theta_{t-1}||`` between
  consecutive updates (free: two gradients the loop has anyway);
- ``sharpness``: the top eigenvalue of the loss Hessian on the update's batch at the new
  parameters (Lanczos on Hessian-vector products, warm-started from the last eigenvector),
  preconditioned by Adam's second moment for Adam-type optimizers.

The seconds spent measuring are counted, so a report can state what a controller costs.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from preheat.lab.tasks import Task
from preheat.probes import adam_preconditioner, sharpness

ADAM_LIKE = ("adam", "adamw", "giadam", "giadamw", "radam")


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
        self._previous_grad: torch.Tensor | None = None
        self._previous_update: torch.Tensor | None = None
        self._vector: torch.Tensor | None = None

    def measure(self, step: int, batch: Any, params: list[torch.nn.Parameter], update: torch.Tensor) -> dict[str, float]:
        """The signals due after update ``step``, made on ``batch`` and moving ``params`` by ``update``."""
        start = time.perf_counter()
        found: dict[str, float] = {}
        if "smoothness" in self.needs:
            grad = torch.cat([p.grad.reshape(-1) for p in params if p.grad is not None])
            moved = None if self._previous_update is None else torch.linalg.vector_norm(self._previous_update).item()
            if moved and self._previous_grad is not None and step % self.needs["smoothness"] == 0:
                found["smoothness"] = torch.linalg.vector_norm(grad - self._previous_grad).item() / moved
            self._previous_grad, self._previous_update = grad, update
        if "sharpness" in self.needs and step % self.needs["sharpness"] == 0:
            preconditioner = adam_preconditioner(self.optimizer, self.model) if self.adam else None
            result = sharpness(self.model, lambda m, b: self.task.loss(m, b)[0], batch,
                               init=self._vector, preconditioner=preconditioner)
            self._vector = result.vector
            found["sharpness"] = result.value
        if found:
            self.measurements += 1
        self.seconds += time.perf_counter() - start
        return found
