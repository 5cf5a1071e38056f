"""The sweep's driver side, shared by every engine: progress callbacks and collecting results.

Runs are submitted as futures; as each completes, the driver (the only process that writes the
store) saves its record in one transaction. A future that raises instead of returning a record
lost its process (killed, out of memory, a node gone, after the engine's retries): the run is
set back to ``pending`` and reported, never half-written, and a rerun of the sweep does it.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Callable, Iterable, Protocol

from preheat.lab.config import RunConfig
from preheat.lab.record import RunResult
from preheat.lab.store import Store

POLL_SECONDS = 0.2


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


class SweepConflict(ValueError):
    """The sweep's folder holds unfinished runs of another sweep (see :func:`run_sweep`)."""


class SweepIncomplete(RuntimeError):
    """Some runs lost their process; they are ``pending`` in the store and a rerun does them."""

    def __init__(self, lost: list[tuple[RunConfig, str]]) -> None:
        self.lost = lost
        names = "; ".join(f"{config.method} seed {config.seed}: {error}" for config, error in lost[:3])
        super().__init__(f"{len(lost)} run(s) lost their process and were not stored ({names}); "
                         "rerun the sweep to do them")


def announce(progress: Progress, configs: dict[str, RunConfig], events: Iterable[tuple[str, int]]) -> None:
    """Pass workers' ``(run id, step)`` reports on to ``progress`` (step 0: the run started);
    a report of a run this sweep does not know is dropped (progress is a display)."""
    for run_id, step in events:
        config = configs.get(run_id)
        if config is not None:
            progress.run_started(config) if step == 0 else progress.run_step(config, step)


def collect(
    store: Store,
    pending: dict[Future[RunResult], RunConfig],
    events: Callable[[], Iterable[tuple[str, int]]],
    progress: Progress,
) -> None:
    """Save each run's record as its future completes, passing ``events()`` on meanwhile.

    Raises :class:`SweepIncomplete` at the end if any future raised.
    """
    configs = {config.fingerprint(): config for config in pending.values()}
    lost: list[tuple[RunConfig, str]] = []
    while pending:
        done, _ = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
        announce(progress, configs, events())
        for future in done:
            config = pending.pop(future)
            try:
                result = future.result()
            except Exception as err:
                error = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                lost.append((config, error))
                store.mark_pending(config)
                progress.run_ended(config, RunResult(status="lost", error=error))
                continue
            store.save(config, result)
            progress.run_ended(config, result)
    if lost:
        raise SweepIncomplete(lost)
