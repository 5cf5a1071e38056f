"""Run many configs into one store, resumably, on the engine of your choice.

``run_sweep(runs, directory)`` registers every run in ``DIR/runs.sqlite``, skips runs already
done there, and runs the rest:

- locally: in this process with ``workers=1``, else on that many worker processes, each with
  ``cores // workers`` torch threads (:mod:`preheat.lab.sweep.local`);
- on a Ray cluster, one Ray task per run, retried when its worker dies
  (``backend=RayBackend(...)``, :mod:`preheat.lab.sweep.ray`);
- under ``torchrun``: every rank runs every run together, each run spread over the processes
  with DistributedDataParallel (:mod:`preheat.lab.distributed`); rank 0 writes the store.

Results come back to this process, which alone writes the store, one run per transaction; a
killed sweep loses only the runs in flight, and rerunning it does just those.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

from preheat.lab import distributed
from preheat.lab.config import RunConfig, SweepConfig
from preheat.lab.store import Store
from preheat.lab.sweep.driver import Progress, Silent, SweepIncomplete
from preheat.lab.sweep.local import run_here, run_pool
from preheat.lab.sweep.worker import PROGRESS_EVERY

if TYPE_CHECKING:
    from preheat.lab.sweep.ray import RayBackend

__all__ = ["PROGRESS_EVERY", "Progress", "Silent", "SweepIncomplete", "cores", "run_sweep"]


def cores() -> int:
    """The CPUs this process may run on (its affinity, which ``taskset`` and cgroups set)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_sweep(
    runs: SweepConfig | Sequence[RunConfig],
    directory: str | os.PathLike[str],
    workers: int = 1,
    progress: Progress | None = None,
    backend: RayBackend | None = None,
) -> Store | None:
    """Run every config not already done in ``directory``'s store; return the store.

    - ``backend=None`` (local): ``workers=1`` runs in this process; ``workers > 1`` uses that
      many processes with ``max(1, cores // workers)`` torch threads each (cores = the CPUs
      this process may run on, so ``taskset`` limits it).
    - ``backend=RayBackend(...)``: one Ray task per run with the resources it names.
    - Launched by ``torchrun``: joins the process group (unless joined already) and runs each
      run over all the processes, with ``cores // (workers * processes)`` threads each; only
      rank 0 writes the store and reports progress, and the other ranks get ``None`` back.

    A run's numbers depend only on its config, the thread count and the number of processes.
    Raises :class:`SweepIncomplete` if some runs lost their process (they stay to do).
    """
    if isinstance(runs, SweepConfig):
        runs = runs.runs()
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} is invalid; expected an integer >= 1")
    progress = progress or Silent()
    joined = distributed.join([config.device for config in runs])
    world = distributed.current()
    try:
        if world.size > 1:
            return _run_ranks(runs, directory, workers, backend, progress, world)
        store = Store(directory)
        store.add(runs)
        todo = store.todo()
        progress.sweep_started(len(store.runs()), len(todo))
        if backend is not None:
            backend.run(store, todo, progress)
        elif workers == 1:
            run_here(store, todo, max(1, cores()), progress)
        else:
            run_pool(store, todo, workers, max(1, cores() // workers), progress)
        return store
    finally:
        if joined:
            distributed.leave()


def _run_ranks(runs: Sequence[RunConfig], directory: str | os.PathLike[str], workers: int,
               backend: RayBackend | None, progress: Progress, world: distributed.World) -> Store | None:
    if workers != 1 or backend is not None:
        raise ValueError(f"workers={workers}, backend={backend!r} are invalid under torchrun; expected "
                         "workers=1 and the local backend (every process trains every run together)")
    store = None
    if world.main:
        store = Store(directory)
        store.add(runs)
        todo = store.todo()
        progress.sweep_started(len(store.runs()), len(todo))
    todo = distributed.broadcast(todo if world.main else None)
    run_here(store, todo, max(1, cores() // world.size), progress if world.main else Silent())
    return store
