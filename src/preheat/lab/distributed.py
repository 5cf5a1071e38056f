"""One lab run spread over several processes: ``torchrun`` and ``DistributedDataParallel``.

Launched by ``torchrun --nproc_per_node N`` (which sets ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``), a sweep joins the process group itself (:func:`join`: gloo when its runs are on
the CPU, NCCL when they are on CUDA) and every rank runs every run together:

- each rank draws the same global batch and trains on its share of it (``Task.shard``); DDP
  averages the gradients, so with equal shares the update is the whole batch's;
- the training loss and accuracy are averaged over ranks before they are recorded or checked
  for divergence, and a controller's signals are averaged by the Scheduler, so every rank takes
  the same decision and ends each step with the same LR;
- only rank 0 writes the store and shows progress.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run: ``rank`` of ``size``; ``local_rank``
    is its index on this machine (its GPU under NCCL)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the one that writes the store and prints."""
        return self.rank == 0


def launched() -> World:
    """The world ``torchrun`` announced in the environment (a world of one without it)."""
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                 int(os.environ.get("LOCAL_RANK", 0)))


def current() -> World:
    """The world of the initialised process group (a world of one when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), launched().local_rank)


def join(devices: Sequence[str]) -> bool:
    """Join the process group ``torchrun`` launched, if any and not joined yet; True if joined here.

    ``devices`` are the runs' ``device`` fields: NCCL if any is CUDA (each rank then uses GPU
    ``LOCAL_RANK``), else gloo. Mixing CPU and CUDA runs in one launch raises ``ValueError``.
    """
    if launched().size == 1 or dist.is_initialized():
        return False
    kinds = {torch.device(d).type for d in devices}
    if len(kinds) > 1:
        raise ValueError(f"device={sorted(kinds)} are mixed; a torchrun launch runs all its runs on one kind")
    if kinds == {"cuda"}:
        torch.cuda.set_device(launched().local_rank)
    dist.init_process_group("nccl" if kinds == {"cuda"} else "gloo")
    return True


def leave() -> None:
    """Leave the process group (after :func:`join` returned True).

    The runs' DistributedDataParallel wrappers sit in reference cycles; they are collected
    first, while the group they use still exists, not at interpreter exit after it (where
    torch 2.13's gloo aborted now and then: "terminate called without an active exception").
    """
    gc.collect()
    dist.destroy_process_group()


def device(name: str, world: World) -> torch.device:
    """The device a run's ``device`` field means on this rank: ``cuda`` is GPU ``local_rank``
    when the run is spread over processes."""
    target = torch.device(name)
    if target.type == "cuda" and target.index is None and world.size > 1:
        return torch.device("cuda", world.local_rank)
    return target


def check_batch(batch_size: int, world: World) -> None:
    """Equal shares: ``batch_size`` must be a multiple of the number of processes."""
    if batch_size % world.size:
        raise ValueError(f"batch_size={batch_size} is invalid for {world.size} processes; "
                         f"expected a multiple of {world.size}, so that every rank gets an equal share")


def mean(*values: float, device: torch.device | None = None) -> list[float]:
    """``values`` averaged over all ranks (unchanged in a world of one)."""
    if current().size == 1:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return (tensor / dist.get_world_size()).tolist()


def mean_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` averaged over all ranks (returned as is in a world of one)."""
    if current().size == 1:
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor / dist.get_world_size()


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if current().size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
