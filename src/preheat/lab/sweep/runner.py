"""``run_sweep``: register runs in a store, skip the done ones, and hand the rest to an engine.

The engines are :mod:`preheat.lab.sweep.local` (this process or worker processes),
:mod:`preheat.lab.sweep.ray` and, under ``torchrun``, every rank together
(:mod:`preheat.lab.distributed`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

from preheat.lab import distributed
from preheat.lab.config import RunConfig, SweepConfig
from preheat.lab.store import Store
from preheat.lab.sweep.driver import Progress, Silent
from preheat.lab.sweep.local import cores, run_here, run_pool

if TYPE_CHECKING:
    from preheat.lab.sweep.ray import RayBackend


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
