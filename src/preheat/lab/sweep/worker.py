"""What runs in the process that trains, whichever engine started it: one run, with progress.

Data loading is the slow part of a small run, so each process loads a task once and reuses it
for every run of that task it is given.
"""

from __future__ import annotations

import json
from typing import Callable

from preheat.lab.config import RunConfig
from preheat.lab.record import RunResult
from preheat.lab.run import train
from preheat.lab.tasks import Task, make_task

PROGRESS_EVERY = 10  # a run reports its step every this many updates (and at its last)

Report = Callable[[str, int], None]  # (run id, completed updates); 0 means the run started

_tasks: dict[str, Task] = {}


def task_for(config: RunConfig) -> Task:
    """The run's task, loaded once per process and reused."""
    key = json.dumps([config.task, config.task_options], sort_keys=True)
    if key not in _tasks:
        _tasks[key] = make_task(config.task, config.task_options)
    return _tasks[key]


def run(config: RunConfig, report: Report) -> RunResult:
    """Train ``config``; ``report(run_id, 0)`` first, then every ``PROGRESS_EVERY`` updates and
    at the last. A task that cannot load fails its run, not the sweep."""
    run_id = config.fingerprint()
    report(run_id, 0)
    try:
        task = task_for(config)
    except Exception as err:
        return RunResult(status="failed", error=f"{type(err).__name__}: {err}")

    def progress(step: int) -> None:
        if step % PROGRESS_EVERY == 0 or step == config.steps:
            report(run_id, step)

    return train(config, task, progress)
