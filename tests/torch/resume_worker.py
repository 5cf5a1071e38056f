"""The training run of test_torch_resume.py; as a script it resumes from a checkpoint.

    python resume_worker.py CHECKPOINT OUTPUT ORDER

ORDER is ``optimizer-first`` or ``scheduler-first``: which state is loaded first on resume.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from preheat import Scheduler, cosine_decay, warmup_cosine

STEPS, CHECKPOINT_AT = 20, 7


def build(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, Scheduler]:
    """A 2-layer MLP, AdamW, and a warmup-cosine LR with a cosine weight decay."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    scheduler = Scheduler(
        optimizer, warmup_cosine(5, STEPS, start=0.1), hyperparams={"weight_decay": cosine_decay(STEPS)}
    )
    return model, optimizer, scheduler


def train(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Scheduler, steps: int
) -> list[tuple[float, float]]:
    """``steps`` full-batch updates on fixed random data; (lr, weight_decay) used by each."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(32, 8, generator=generator)
    y = torch.randn(32, 1, generator=generator)
    used = []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        used.append((group["lr"], group["weight_decay"]))
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()
        scheduler.step()
    return used


def resume(checkpoint: str, output: str, order: str) -> None:
    model, optimizer, scheduler = build(seed=123)  # other initial weights: the checkpoint must win
    state = torch.load(checkpoint, weights_only=True)
    model.load_state_dict(state["model"])
    if order == "optimizer-first":
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    else:
        scheduler.load_state_dict(state["scheduler"])
        optimizer.load_state_dict(state["optimizer"])
    used = train(model, optimizer, scheduler, STEPS - CHECKPOINT_AT)
    torch.save({"used": used, "model": model.state_dict()}, output)


if __name__ == "__main__":
    resume(*sys.argv[1:])
