"""The local engine: runs in this process, or in worker processes on this machine.

With ``workers > 1`` each worker is a spawned process limited to ``threads`` torch threads, so
the cores are not oversubscribed; results come back to this process, which alone writes the
store (see :mod:`preheat.lab.sweep.driver`).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import torch

from preheat.lab.config import RunConfig
from preheat.lab.record import RunResult
from preheat.lab.store import Store
from preheat.lab.sweep import worker
from preheat.lab.sweep.driver import Progress, announce, collect


def cores() -> int:
    """The CPUs this process may run on (its affinity, which ``taskset`` and cgroups set)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_here(store: Store | None, todo: list[RunConfig], threads: int, progress: Progress) -> None:
    """Run ``todo`` one after another in this process. ``store`` is None on the ranks of a
    ``torchrun`` launch other than 0: they train but do not write."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    configs = {config.fingerprint(): config for config in todo}
    try:
        for config in todo:
            if store is not None:
                store.mark_running(config)
            result = worker.run(config, lambda run_id, step: announce(progress, configs, [(run_id, step)]))
            if store is not None:
                store.save(config, result)
            progress.run_ended(config, result)
    finally:
        torch.set_num_threads(previous)


def run_pool(store: Store, todo: list[RunConfig], workers: int, threads: int, progress: Progress) -> None:
    """Run ``todo`` on ``workers`` spawned processes of ``threads`` torch threads each."""
    context = multiprocessing.get_context("spawn")
    events: Any = context.Queue()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init, initargs=(events, threads))
    pending: dict[Future[RunResult], RunConfig] = {}
    try:
        for config in todo:
            store.mark_running(config)
            pending[pool.submit(_run, config)] = config
        collect(store, pending, lambda: _drain(events), progress)
    finally:
        _stop(pool)


def _stop(pool: ProcessPoolExecutor) -> None:
    """End the pool's workers now: after an interrupt (Ctrl-C, or SIGTERM made one) the runs they
    were training are given up (still to do in the store), not left running as orphans.
    (``ProcessPoolExecutor`` has no public way to end its workers before Python 3.14.)"""
    workers = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
    for worker in workers:
        worker.join(timeout=10)


def _drain(events: Any) -> list[tuple[str, int]]:
    found = []
    while True:
        try:
            found.append(events.get_nowait())
        except queue.Empty:
            return found


# -- in a worker process ---------------------------------------------------------------------

_events: Any = None


def _init(events: Any, threads: int) -> None:
    global _events
    _events = events
    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it ends the workers


def _run(config: RunConfig) -> RunResult:
    return worker.run(config, lambda run_id, step: _events.put((run_id, step)))
