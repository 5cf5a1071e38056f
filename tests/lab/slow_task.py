"""A tiny regression task for sweep tests; ``delay`` makes every batch take that long, and
``pid_file``, if given, gets a line ``PID SEED`` each time a process starts a run.

Loaded as ``slow_task:make`` (tests put this folder on ``sys.path``).
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterator

import torch

from preheat.lab.tasks import Task


class SlowRegression(Task):
    name = "slow-regression"

    def __init__(self, delay: float = 0.0, pid_file: str | None = None) -> None:
        self.delay, self.pid_file = delay, pid_file
        generator = torch.Generator().manual_seed(1234)
        self.x = torch.randn(64, 4, generator=generator)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0])

    def model(self, seed: int) -> torch.nn.Module:
        if self.pid_file is not None:
            with open(self.pid_file, "a") as file:
                file.write(f"{os.getpid()} {seed}\n")
        torch.manual_seed(seed)
        return torch.nn.Linear(4, 1)

    def batches(self, seed: int, batch_size: int) -> Iterator[Any]:
        generator = torch.Generator().manual_seed(seed)
        while True:
            yield torch.randint(0, len(self.x), (batch_size,), generator=generator)

    def loss(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, None]:
        time.sleep(self.delay)
        return torch.nn.functional.mse_loss(model(self.x[batch]).squeeze(-1), self.y[batch]), None

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        return {"val_loss": torch.nn.functional.mse_loss(model(self.x).squeeze(-1), self.y).item()}


def make(delay: float = 0.0, pid_file: str | None = None) -> SlowRegression:
    return SlowRegression(delay, pid_file)
