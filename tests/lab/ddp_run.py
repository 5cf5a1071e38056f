"""Run under ``torchrun`` by test_distributed.py: train each config on every rank and save, per
rank, the LRs, losses, the controller's decisions and the final parameters it saw.

Usage: torchrun --nproc_per_node 2 ddp_run.py OUT CONFIG_JSON...
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from preheat.lab import distributed
from preheat.lab.config import RunConfig
from preheat.lab.run import train
from preheat.lab.tasks import make_task


def main(out: Path, texts: list[str]) -> None:
    configs = [RunConfig.model_validate_json(text) for text in texts]
    distributed.join([c.device for c in configs])
    rank = distributed.current().rank
    records = []
    for config in configs:
        task = make_task(config.task, config.task_options)
        seen: list[torch.nn.Module] = []
        evaluate = task.evaluate
        task.evaluate = lambda model: (seen.append(model), evaluate(model))[1]  # keep the model
        result = train(config, task)
        records.append({
            "status": result.status, "error": result.error, "lr": result.steps["lr"],
            "train_loss": result.steps["train_loss"], "val_loss": result.evals["val_loss"],
            "decisions": [(d.step, d.multiplier) for d in result.decisions],
            "params": torch.cat([p.detach().reshape(-1) for p in seen[-1].parameters()]),
        })
    torch.save(records, out / f"rank{rank}.pt")
    distributed.leave()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
