"""Configs, the store and sweeps: grids expand as documented, the store holds every run once,
local worker processes give the numbers a single process gives, and a killed sweep resumes
without redoing finished runs."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from preheat.lab.config import RunConfig, SweepConfig, load_config
from preheat.lab.optimizers import build_optimizer
from preheat.lab.run import train
from preheat.lab.store import Store
from preheat.lab.sweep import run_sweep

HERE = Path(__file__).parent
TASK = "slow_task:make"


def tiny(**fields) -> RunConfig:
    return RunConfig(**{"task": TASK, "optimizer": "sgd", "peak_lr": 0.05, "steps": 12, "batch_size": 8,
                        "eval_every": 4, **fields})


# -- configs ----------------------------------------------------------------------------------


def test_run_config_fills_the_schedule_template() -> None:
    config = tiny(schedule="warmup_cosine({warmup}, {steps})", warmup=3)
    assert config.schedule_text == "warmup_cosine(3, 12)"
    assert config.resolved_schedule()(3) == 1.0
    assert config.method == "warmup_cosine(3, 12)"
    assert tiny(label="mine").method == "mine"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"schedule": "warmup_cosine({warmup}, {steps})"}, "warmup"),
        ({"schedule": "linear_warmup({length})"}, "length"),
        ({"schedule": "cosin_decay(10)"}, "cosine_decay"),
        ({"warmup": 50}, "longer than steps"),
        ({"peak_lr": 0}, "peak_lr"),
        ({"optimizer": "lion"}, "optimizer"),
        ({"betas": (0.9, 1.0)}, "betas"),
        ({"stepz": 3}, "stepz"),
    ],
)
def test_run_config_errors_name_the_problem(fields: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        tiny(**fields)


def test_sweep_grid_expands_and_drops_warmup_where_the_schedule_has_none() -> None:
    sweep = SweepConfig(
        base={"task": TASK, "steps": 10},
        grid={"schedule": ["cosine_decay({steps})", "warmup_cosine({warmup}, {steps})"],
              "warmup": [0, 2, 5], "seed": [0, 1]},
    )
    runs = sweep.runs()
    # cosine_decay ignores warmup: 2 seeds; warmup_cosine: 3 warmups x 2 seeds
    assert len(runs) == 2 + 6
    assert {r.warmup for r in runs if r.schedule == "cosine_decay({steps})"} == {None}
    assert len({r.fingerprint() for r in runs}) == len(runs)


def test_sweep_config_rejects_unknown_fields_and_empty_axes() -> None:
    with pytest.raises(ValueError, match="peak"):
        SweepConfig(grid={"peak": [1]})
    with pytest.raises(ValueError, match="empty"):
        SweepConfig(grid={"seed": []})


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_load_config_from_toml_and_yaml(tmp_path: Path, suffix: str) -> None:
    text = {
        ".toml": 'name = "g"\n[base]\ntask = "digits"\nsteps = 30\n[grid]\npeak_lr = [0.001, 0.01]\nseed = [0, 1]\n',
        ".yaml": "name: g\nbase:\n  task: digits\n  steps: 30\ngrid:\n  peak_lr: [0.001, 0.01]\n  seed: [0, 1]\n",
    }[suffix]
    path = tmp_path / f"sweep{suffix}"
    path.write_text(text)
    sweep = load_config(path)
    assert sweep.name == "g"
    assert sorted((r.peak_lr, r.seed) for r in sweep.runs()) == [(0.001, 0), (0.001, 1), (0.01, 0), (0.01, 1)]


def test_a_file_without_tables_is_one_run(tmp_path: Path) -> None:
    path = tmp_path / "one.toml"
    path.write_text('task = "digits"\nsteps = 7\n')
    (run,) = load_config(path).runs()
    assert (run.task, run.steps) == ("digits", 7)


# -- one run ----------------------------------------------------------------------------------


def test_a_run_records_every_step_and_uses_the_schedule() -> None:
    config = tiny(schedule="linear_warmup(4) >> constant()")
    result = train(config)
    assert result.status == "finished"
    assert result.steps["step"] == list(range(12))
    assert result.steps["lr"][:5] == pytest.approx([0.0, 0.0125, 0.025, 0.0375, 0.05])
    assert result.steps["update_norm"][0] == 0.0  # update 0 runs at LR 0
    assert result.evals["step"] == [0, 4, 8, 12]
    assert result.evals["val_loss"][-1] < result.evals["val_loss"][0]


def test_same_config_same_numbers() -> None:
    a, b = train(tiny(seed=3)), train(tiny(seed=3))
    assert a.steps == b.steps and a.evals == b.evals
    assert train(tiny(seed=4)).steps["train_loss"] != a.steps["train_loss"]


def test_radamw_is_radam_with_decoupled_weight_decay() -> None:
    """``radam`` adds weight decay to the gradient (L2, like ``adam``); ``radamw`` decays the
    weights apart from it, like ``adamw``. Without weight decay the two are the same run."""
    params = [torch.nn.Parameter(torch.ones(3))]
    for name, decoupled in (("radam", False), ("radamw", True)):
        optimizer = build_optimizer(tiny(optimizer=name, weight_decay=0.1), params)
        assert isinstance(optimizer, torch.optim.RAdam)
        assert optimizer.param_groups[0]["decoupled_weight_decay"] is decoupled
        assert optimizer.param_groups[0]["weight_decay"] == 0.1
    plain = [train(tiny(optimizer=name)) for name in ("radam", "radamw")]
    assert plain[0].steps == plain[1].steps
    decayed = [train(tiny(optimizer=name, weight_decay=0.5)) for name in ("radam", "radamw")]
    assert decayed[0].steps["train_loss"][-1] != decayed[1].steps["train_loss"][-1]


def test_a_diverging_run_stops_and_is_marked() -> None:
    result = train(tiny(peak_lr=50.0, steps=50))
    assert result.status == "diverged"
    assert len(result.steps["step"]) < 50


def test_a_crashing_task_is_a_failed_run_not_an_exception() -> None:
    result = train(tiny(task="no_such_module_xyz:make"))
    assert result.status == "failed" and "no_such_module_xyz" in result.error


# -- sweeps and the store -------------------------------------------------------------------------


def grid(steps: int = 12, seeds: int = 2) -> list[RunConfig]:
    return [tiny(peak_lr=lr, seed=s, steps=steps) for lr in (0.02, 0.05) for s in range(seeds)]


def test_sweep_stores_every_run_once_and_skips_done_runs(tmp_path: Path) -> None:
    runs = grid()
    store = run_sweep(runs, tmp_path)
    stored = store.runs()
    assert [r.id for r in stored] == [c.fingerprint() for c in runs]
    assert all(r.status == "finished" and r.versions["torch"] for r in stored)
    for config in runs:
        steps = store.steps(config.fingerprint())
        assert np.array_equal(steps["step"], np.arange(config.steps))
        assert np.array_equal(steps["train_loss"], train(config).steps["train_loss"])
    ended = {r[0]: r[1] for r in sqlite3.connect(store.path).execute("SELECT id, ended FROM runs")}
    again = run_sweep(runs + [tiny(seed=9)], tmp_path)
    rows = {r[0]: r[1] for r in sqlite3.connect(again.path).execute("SELECT id, ended FROM runs")}
    assert {k: rows[k] for k in ended} == ended  # finished runs were not run again
    assert len(rows) == len(runs) + 1


def test_worker_processes_give_the_same_numbers_as_one_process(tmp_path: Path) -> None:
    runs = grid()
    here, pool = run_sweep(runs, tmp_path / "one"), run_sweep(runs, tmp_path / "two", workers=2)
    threads_one = os.cpu_count() or 1
    for config in runs:
        a, b = here.steps(config.fingerprint()), pool.steps(config.fingerprint())
        if threads_one == max(1, threads_one // 2):  # same thread count: bit-identical
            assert np.array_equal(a["train_loss"], b["train_loss"])
        else:
            np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-5)


def test_a_killed_sweep_resumes_without_redoing_finished_runs(tmp_path: Path) -> None:
    runs = [tiny(peak_lr=0.05, seed=s, steps=40, task_options={"delay": 0.02}) for s in range(4)]
    config = tmp_path / "sweep.yaml"
    config.write_text(SweepConfig(name="k", base=runs[0].model_dump(exclude={"seed"}),
                                  grid={"seed": [0, 1, 2, 3]}).model_dump_json())
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "preheat.cli", "sweep", str(config), "--out", str(tmp_path / "k"), "--quiet",
               "--trust-tasks"]  # the file names a task of ours
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = tmp_path / "k" / "runs.sqlite"
    deadline = time.time() + 120
    finished: dict[str, float] = {}
    while time.time() < deadline and not finished:
        time.sleep(0.2)
        if db.exists():
            try:
                rows = sqlite3.connect(db).execute("SELECT id, ended FROM runs WHERE status = 'finished'").fetchall()
            except sqlite3.OperationalError:
                continue
            finished = dict(rows)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert finished, "no run finished before the deadline"
    killed = dict(sqlite3.connect(db).execute("SELECT id, status FROM runs").fetchall())
    assert "running" in killed.values() or "pending" in killed.values()

    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    rows = sqlite3.connect(db).execute("SELECT id, status, ended FROM runs").fetchall()
    assert len(rows) == 4 and {status for _, status, _ in rows} == {"finished"}
    ended = {run_id: end for run_id, _, end in rows}
    assert {k: ended[k] for k in finished} == finished
    counts = sqlite3.connect(db).execute("SELECT run_id, COUNT(*) FROM steps GROUP BY run_id").fetchall()
    assert sorted(n for _, n in counts) == [40] * 4


def test_configs_stored_before_after_existed_read_as_meant() -> None:
    import json

    old = RunConfig(task="digits", controller="nars_warmup()", after="cosine_decay({steps})").model_dump()
    old["schedule"] = old.pop("after")  # how a controller's handover schedule was stored
    assert RunConfig.from_stored(json.dumps(old)).after == "cosine_decay({steps})"
    peer = RunConfig(task="digits", optimizer="adam", peer="untuned_warmup").model_dump()
    peer["schedule"] = "constant()"
    del peer["after"]
    assert RunConfig.from_stored(json.dumps(peer)).schedule is None
    unparsable = RunConfig(schedule="linear_warmup(5)").model_dump() | {"schedule": "gone_warmup(5)"}
    assert RunConfig.from_stored(json.dumps(unparsable)).schedule == "gone_warmup(5)"
    # while after defaulted to "constant()", every stored config held it: it reads as the default
    plain = RunConfig(schedule="linear_warmup(5)")
    assert RunConfig.from_stored(json.dumps(plain.model_dump() | {"after": "constant()"})) == plain
    nars = RunConfig(controller="nars_warmup()")
    stored = RunConfig.from_stored(json.dumps(nars.model_dump() | {"after": "constant()"}))
    assert stored == nars and stored.fingerprint() == nars.fingerprint()
    assert stored.resolved_controller().bounds.after == "constant()"
