"""Run many configs into one store: local worker processes, resumable.

``run_sweep(runs, directory)`` registers every run in ``DIR/runs.sqlite``, skips runs already
done there, and runs the rest: in this process with ``workers=1``, else on that many worker
processes, each limited to ``cores // workers`` torch threads so the cores are not
oversubscribed. Results come back to this process, which alone writes the store, one run per
transaction; a killed sweep loses only the runs in flight, and rerunning it does just those.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import queue
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Callable, Protocol, Sequence

import torch

from preheat.lab.config import RunConfig, SweepConfig
from preheat.lab.run import RunResult, train
from preheat.lab.store import Store
from preheat.lab.tasks import Task, make_task

PROGRESS_EVERY = 10  # a worker reports its step every this many updates


class Progress(Protocol):
    """What a sweep tells its caller (the CLI draws progress bars from it)."""

    def sweep_started(self, total: int, todo: int) -> None: ...
    def run_started(self, config: RunConfig) -> None: ...
    def run_step(self, config: RunConfig, step: int) -> None: ...
    def run_ended(self, config: RunConfig, result: RunResult) -> None: ...


class Silent:
    """A :class:`Progress` that ignores everything."""

    def sweep_started(self, total: int, todo: int) -> None: ...
    def run_started(self, config: RunConfig) -> None: ...
    def run_step(self, config: RunConfig, step: int) -> None: ...
    def run_ended(self, config: RunConfig, result: RunResult) -> None: ...


def run_sweep(
    runs: SweepConfig | Sequence[RunConfig],
    directory: str | os.PathLike[str],
    workers: int = 1,
    progress: Progress | None = None,
) -> Store:
    """Run every config not already done in ``directory``'s store; return the store.

    ``workers=1`` runs in this process; ``workers > 1`` uses that many processes with
    ``max(1, cores // workers)`` torch threads each (cores = the CPUs this process may run on,
    so ``taskset`` limits it). Either way a
    run's numbers depend only on its config and the thread count.
    """
    if isinstance(runs, SweepConfig):
        runs = runs.runs()
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} is invalid; expected an integer >= 1")
    progress = progress or Silent()
    store = Store(directory)
    store.add(runs)
    todo = store.todo()
    progress.sweep_started(len(store.runs()), len(todo))
    threads = max(1, cores() // workers)
    if workers == 1:
        _run_here(store, todo, threads, progress)
    else:
        _run_pool(store, todo, workers, threads, progress)
    return store


def cores() -> int:
    """The CPUs this process may run on (its affinity, which ``taskset`` and cgroups set)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run_here(store: Store, todo: list[RunConfig], threads: int, progress: Progress) -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for config in todo:
            store.mark_running(config)
            progress.run_started(config)
            result = _train(config, functools.partial(progress.run_step, config))
            store.save(config, result)
            progress.run_ended(config, result)
    finally:
        torch.set_num_threads(previous)


def _run_pool(store: Store, todo: list[RunConfig], workers: int, threads: int, progress: Progress) -> None:
    context = multiprocessing.get_context("spawn")
    events: Any = context.Queue()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(events, threads))
    pending: dict[Future[RunResult], RunConfig] = {}
    by_id = {config.fingerprint(): config for config in todo}
    try:
        for config in todo:
            store.mark_running(config)
            pending[pool.submit(_work, config)] = config
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(events, by_id, progress)
            for future in done:
                config = pending.pop(future)
                result = future.result()
                store.save(config, result)
                progress.run_ended(config, result)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _drain(events: Any, by_id: dict[str, RunConfig], progress: Progress) -> None:
    while True:
        try:
            run_id, step = events.get_nowait()
        except queue.Empty:
            return
        config = by_id[run_id]
        progress.run_started(config) if step == 0 else progress.run_step(config, step)


# -- in the process that trains ----------------------------------------------------------------

_events: Any = None
_tasks: dict[str, Task] = {}


def _init_worker(events: Any, threads: int) -> None:
    global _events
    _events = events
    torch.set_num_threads(threads)


def _task(config: RunConfig) -> Task:
    """The run's task, loaded once per process and reused (data loading is the slow part)."""
    key = json.dumps([config.task, config.task_options], sort_keys=True)
    if key not in _tasks:
        _tasks[key] = make_task(config.task, config.task_options)
    return _tasks[key]


def _work(config: RunConfig) -> RunResult:
    run_id = config.fingerprint()
    _events.put((run_id, 0))

    def report(step: int) -> None:
        if step % PROGRESS_EVERY == 0 or step == config.steps:
            _events.put((run_id, step))

    return _train(config, report)


def _train(config: RunConfig, report: Callable[[int], None]) -> RunResult:
    try:
        task = _task(config)
    except Exception as err:  # a task that cannot load fails its runs, not the sweep
        return RunResult(status="failed", error=f"{type(err).__name__}: {err}")
    return train(config, task, report)
