"""The Ray engine: each run is a Ray task on a cluster (or on a local Ray instance).

The driver (this process) submits one task per run with the resources ``RayBackend`` names,
collects each record as its task completes and writes it to the store (see
:mod:`preheat.lab.sweep.driver`). Workers report their progress to a small actor that the
driver polls, so the progress bars are the same as the local engine's. A task whose worker dies
is retried by Ray up to ``retries`` times; a run still without a record after that is set back
to ``pending``. Interrupting the driver cancels the tasks in flight; rerunning the sweep does
the runs not yet stored.

Workers must be able to import preheat and any user task (``module:function``): on a cluster,
install them on every node or ship them with a Ray runtime environment. A local instance started
here gives its workers this process's ``sys.path``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from preheat.lab.config import RunConfig
from preheat.lab.record import RunResult
from preheat.lab.store import Store
from preheat.lab.sweep import worker
from preheat.lab.sweep.driver import Progress, collect

OBJECT_STORE_BYTES = 256 * 2**20  # a local instance's object store: run records are small


@dataclass(frozen=True)
class RayBackend:
    """Run a sweep's runs as Ray tasks.

    - ``address``: the cluster to join (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``);
      ``None`` joins the instance this process already joined (``ray.init``), else starts a
      local one with this process's CPUs, which is shut down when the sweep ends.
    - ``cpus`` / ``gpus``: resources per run (its task's ``num_cpus`` / ``num_gpus``); a run
      uses ``max(1, floor(cpus))`` torch threads.
    - ``retries``: how many times Ray reruns a run whose worker process died.
    """

    address: str | None = None
    cpus: float = 1.0
    gpus: float = 0.0
    retries: int = 3

    def __post_init__(self) -> None:
        if not (isinstance(self.cpus, (int, float)) and math.isfinite(self.cpus) and self.cpus > 0):
            raise ValueError(f"cpus={self.cpus!r} is invalid; expected a number of CPUs per run > 0")
        if not (isinstance(self.gpus, (int, float)) and math.isfinite(self.gpus) and self.gpus >= 0):
            raise ValueError(f"gpus={self.gpus!r} is invalid; expected a number of GPUs per run >= 0")
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            raise ValueError(f"retries={self.retries!r} is invalid; expected an integer >= 0")

    def run(self, store: Store, todo: list[RunConfig], progress: Progress) -> None:
        """Run ``todo`` as Ray tasks and save each record to ``store`` as it arrives."""
        ray = _import_ray()
        started = self._connect(ray)
        events = ray.remote(num_cpus=0)(_Events).remote()
        task = ray.remote(_train).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.retries)
        threads = max(1, math.floor(self.cpus))
        refs: list[Any] = []
        pending: dict[Future[RunResult], RunConfig] = {}
        try:
            for config in todo:
                store.mark_running(config)
                refs.append(task.remote(config, events, threads))
                pending[refs[-1].future()] = config
            collect(store, pending, lambda: ray.get(events.drain.remote()), progress)
        finally:
            for ref in refs:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()

    def _connect(self, ray: Any) -> bool:
        """Join the cluster; True if this started a local instance (to shut down after)."""
        if self.address is None and ray.is_initialized():
            return False
        options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
        if self.address is not None:
            ray.init(address=self.address, **options)
            return False
        from preheat.lab.sweep.local import cores

        ray.init(num_cpus=cores(), include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES,
                 runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}, **options)
        return True


def _import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise ModuleNotFoundError("the ray backend needs Ray: pip install 'preheat[ray]'") from None
    return ray


class _Events:
    """An actor holding the workers' ``(run id, step)`` reports until the driver drains them."""

    def __init__(self) -> None:
        self.items: list[tuple[str, int]] = []

    def put(self, item: tuple[str, int]) -> None:
        self.items.append(item)

    def drain(self) -> list[tuple[str, int]]:
        items, self.items = self.items, []
        return items


def _train(config: RunConfig, events: Any, threads: int) -> RunResult:
    """One run, in a Ray worker."""
    import torch

    torch.set_num_threads(threads)
    return worker.run(config, lambda run_id, step: events.put.remote((run_id, step)))
