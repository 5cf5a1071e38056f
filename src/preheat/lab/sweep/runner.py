"""``run_sweep``: register runs in a store, skip the done ones, and hand the rest to an engine.

The engines are :mod:`preheat.lab.sweep.local` (this process or worker processes),
:mod:`preheat.lab.sweep.ray` and, under ``torchrun``, every rank together
(:mod:`preheat.lab.distributed`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

from preheat.lab import distributed
from preheat.lab.catalog import BUILTIN
from preheat.lab.config import RunConfig, SweepConfig
from preheat.lab.store import Store
from preheat.lab.sweep.driver import Progress, Silent, SweepConflict
from preheat.lab.sweep.local import cores, run_here, run_pool

if TYPE_CHECKING:
    from preheat.lab.sweep.ray import RayBackend


def run_sweep(
    runs: SweepConfig | Sequence[RunConfig],
    directory: str | os.PathLike[str],
    workers: int = 1,
    progress: Progress | None = None,
    backend: RayBackend | None = None,
    leftovers: bool = False,
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

    A store that holds unfinished runs of another sweep (runs not in ``runs``, left by a killed
    sweep) is refused with :class:`SweepConflict` before anything is written, unless
    ``leftovers`` (then they run too; one that names a task other than the built-ins is still
    refused: a store is data, and importing a task runs code). An existing file that is not a
    store of this preheat raises :class:`~preheat.lab.store.StoreError`, also before any work.
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
            return _run_ranks(runs, directory, workers, backend, progress, world, leftovers)
        store, todo = _open(runs, directory, progress, leftovers)
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


def _open(runs: Sequence[RunConfig], directory: str | os.PathLike[str], progress: Progress,
          leftovers: bool) -> tuple[Store, list[RunConfig]]:
    """The store with ``runs`` added, and what is to do in it (see :func:`run_sweep` on leftovers)."""
    store = Store(directory)
    ours = {config.fingerprint() for config in runs}
    others = [config for config in store.todo() if config.fingerprint() not in ours]
    foreign = sorted({config.task for config in others} - set(BUILTIN))
    if others and (not leftovers or foreign):
        store.close()
        why = (f"they name the task(s) {foreign}, which would import and run code"
               if leftovers else "pass leftovers=True (--run-leftovers) to run them too")
        raise SweepConflict(f"{store.path} holds {len(others)} unfinished run(s) of another sweep "
                            f"(e.g. {others[0].method} @ {others[0].peak_lr:g}); {why}, or use another folder")
    store.add(runs)
    todo = store.todo()
    progress.sweep_started(len(store.runs()), len(todo))
    return store, todo


def _run_ranks(runs: Sequence[RunConfig], directory: str | os.PathLike[str], workers: int,
               backend: RayBackend | None, progress: Progress, world: distributed.World,
               leftovers: bool) -> Store | None:
    if workers != 1 or backend is not None:
        raise ValueError(f"workers={workers}, backend={backend!r} are invalid under torchrun; expected "
                         "workers=1 and the local backend (every process trains every run together)")
    store, todo = _open(runs, directory, progress, leftovers) if world.main else (None, None)
    todo = distributed.broadcast(todo)
    run_here(store, todo, max(1, cores() // world.size), progress if world.main else Silent())
    return store
