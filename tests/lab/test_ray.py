"""Sweeps on Ray (a local instance, ``ray.init(num_cpus=2)``): the same metrics as the local
engine, a worker killed mid-run is retried, a run out of retries is never half-written, and an
interrupted driver resumes."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from preheat.lab.config import RunConfig, SweepConfig
from preheat.lab.metrics import run_metrics
from preheat.lab.record import RunResult
from preheat.lab.sweep import Silent, SweepIncomplete, run_sweep

ray = pytest.importorskip("ray")
from preheat.lab.sweep.ray import RayBackend  # noqa: E402

HERE = Path(__file__).parent


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> None:
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             object_store_memory=100 * 2**20, runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def slow(seeds: range, pid_file: Path, delay: float = 0.02, steps: int = 40) -> list[RunConfig]:
    return [RunConfig(task="slow_task:make", task_options={"delay": delay, "pid_file": str(pid_file)},
                      optimizer="sgd", peak_lr=0.05, steps=steps, batch_size=8, eval_every=10, seed=s)
            for s in seeds]


def statuses(directory: Path) -> dict[str, str]:
    return dict(sqlite3.connect(directory / "runs.sqlite").execute("SELECT id, status FROM runs").fetchall())


def step_counts(directory: Path) -> list[int]:
    rows = sqlite3.connect(directory / "runs.sqlite").execute(
        "SELECT run_id, COUNT(*) FROM steps GROUP BY run_id").fetchall()
    return sorted(n for _, n in rows)


def test_ray_gives_the_local_backends_metrics(tmp_path: Path) -> None:
    sweep = SweepConfig(base={"task": "digits", "task_options": {"width": 16}, "steps": 30, "eval_every": 10,
                              "optimizer": "adamw", "peak_lr": 3e-3},
                        grid={"schedule": ["warmup_cosine(10, {steps})", "constant()"], "seed": [0]})
    runs = sweep.runs() + [RunConfig(**sweep.base, controller="smoothness_warmup()")]
    local = run_sweep(runs, tmp_path / "local", workers=2)  # one torch thread per run, like cpus=1
    on_ray = run_sweep(runs, tmp_path / "ray", backend=RayBackend(cpus=1))
    assert [r.status for r in on_ray.runs()] == ["finished"] * len(runs)
    for a, b in zip(run_metrics(local), run_metrics(on_ray), strict=True):
        for field in dataclasses.fields(a):
            x, y = getattr(a, field.name), getattr(b, field.name)
            assert field.name == "wall_time" or x == y or (x != x and y != y), field.name  # NaN == NaN
    for config in runs:
        a, b = local.steps(config.fingerprint()), on_ray.steps(config.fingerprint())
        assert all(np.array_equal(a[c], b[c], equal_nan=True) for c in a)
        assert on_ray.decisions(config.fingerprint()) == local.decisions(config.fingerprint())


def kill_first_run(pid_file: Path) -> threading.Thread:
    """Kill (SIGKILL) the process that starts the first run, once, while it trains."""

    def kill() -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            lines = pid_file.read_text().split() if pid_file.exists() else []
            if lines:
                time.sleep(0.3)  # mid-run
                os.kill(int(lines[0]), signal.SIGKILL)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


def test_a_killed_worker_is_retried_and_every_run_is_recorded_once(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    runs = slow(range(3), pids)
    killer = kill_first_run(pids)
    store = run_sweep(runs, tmp_path / "sweep", backend=RayBackend(cpus=1, retries=2))
    killer.join()
    started = [line.split() for line in pids.read_text().splitlines()]
    first_pid, first_seed = started[0]
    again = [pid for pid, seed in started[1:] if seed == first_seed]
    assert again and first_pid not in again  # the killed run started again in another process
    assert len(started) == len(runs) + 1
    assert set(statuses(store.directory).values()) == {"finished"}
    assert step_counts(store.directory) == [40] * 3


def test_a_run_out_of_retries_is_left_to_do_not_half_written(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    runs = slow(range(3), pids)
    killer = kill_first_run(pids)
    with pytest.raises(SweepIncomplete, match="1 run\\(s\\) lost their process") as caught:
        run_sweep(runs, tmp_path / "sweep", backend=RayBackend(cpus=1, retries=0))
    killer.join()
    lost = caught.value.lost[0][0].fingerprint()
    assert statuses(tmp_path / "sweep")[lost] == "pending"
    assert step_counts(tmp_path / "sweep") == [40] * 2  # nothing of the lost run
    store = run_sweep(runs, tmp_path / "sweep", backend=RayBackend(cpus=1))
    assert set(statuses(store.directory).values()) == {"finished"}
    assert step_counts(store.directory) == [40] * 3


class Interrupt(Silent):
    """Ctrl-C in the driver as soon as the first run is stored."""

    def run_ended(self, config: RunConfig, result: RunResult) -> None:
        raise KeyboardInterrupt


def test_an_interrupted_driver_resumes_without_redoing_stored_runs(tmp_path: Path) -> None:
    runs = slow(range(4), tmp_path / "pids", delay=0.01)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(runs, tmp_path / "sweep", progress=Interrupt(), backend=RayBackend(cpus=1))
    db = sqlite3.connect(tmp_path / "sweep" / "runs.sqlite")
    stored = dict(db.execute("SELECT id, ended FROM runs WHERE status = 'finished'").fetchall())
    assert len(stored) == 1
    run_sweep(runs, tmp_path / "sweep", backend=RayBackend(cpus=1))
    ended = dict(db.execute("SELECT id, ended FROM runs WHERE status = 'finished'").fetchall())
    assert len(ended) == 4 and ended[next(iter(stored))] == next(iter(stored.values()))
    assert step_counts(tmp_path / "sweep") == [40] * 4


@pytest.mark.parametrize(("fields", "words"), [
    ({"cpus": 0}, "cpus=0 is invalid"), ({"gpus": -1}, "gpus=-1 is invalid"),
    ({"retries": -1}, "retries=-1 is invalid"), ({"retries": 1.5}, "retries=1.5 is invalid"),
])
def test_ray_backend_arguments_are_checked(fields: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        RayBackend(**fields)


def test_preheat_sweep_backend_ray_starts_a_local_instance(tmp_path: Path) -> None:
    """The command the docs give, in a fresh process: it starts Ray, runs, stores, reports."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "preheat.cli", "sweep", "--set", "task=slow_task:make", "--set", "steps=20",
               "--set", "optimizer=sgd", "--set", "peak_lr=0.05", "--grid", "seed=[0, 1]",
               "--backend", "ray", "--cpus-per-run", "1", "--quiet", "--out", str(tmp_path / "sweep")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("finished ") == 2 and "ranking, best first" in done.stdout
    assert set(statuses(tmp_path / "sweep").values()) == {"finished"}
    assert (tmp_path / "sweep" / "report.html").exists()


@pytest.mark.parametrize(("flags", "words"), [
    (["--address", "auto"], "add --backend ray"),
    (["--backend", "dask"], "'dask' is invalid; expected local or ray"),
    (["--backend", "ray", "--retries", "-2"], "expected an integer >= 0"),
])
def test_backend_flags_are_checked(tmp_path: Path, flags: list[str], words: str) -> None:
    from typer.testing import CliRunner

    from preheat.cli import app

    result = CliRunner().invoke(app, ["sweep", "--set", "task=digits", "--out", str(tmp_path), *flags])
    assert result.exit_code == 2
    assert words in " ".join(result.output.split())
