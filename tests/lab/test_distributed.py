"""One lab run over two processes (torchrun, gloo, DistributedDataParallel on the CPU)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from preheat.lab.config import RunConfig
from preheat.lab.run import train
from preheat.lab.tasks import make_task

HERE = Path(__file__).parent
DIGITS = {"task": "digits", "task_options": {"width": 32}, "steps": 40, "batch_size": 32, "eval_every": 20}
CONFIGS = [
    RunConfig(**DIGITS, optimizer="adamw", peak_lr=3e-3, schedule="warmup_cosine(10, {steps})"),
    RunConfig(**DIGITS, optimizer="sgd", peak_lr=0.3, controller="smoothness_warmup()",
              after="cosine_decay({steps})"),
    RunConfig(**DIGITS, optimizer="adam", peak_lr=1.0, controller="catapult_warmup(steps=10)"),
    RunConfig(task="river-valley", optimizer="sgd", peak_lr=0.3, steps=40, batch_size=2,
              controller="nars_warmup()"),
    RunConfig(**DIGITS, optimizer="adamw", peak_lr=1e-2, controller="sharpness_warmup()"),
    RunConfig(**DIGITS, optimizer="adamw", peak_lr=3e-2, controller="auto_warmup(ramp=0.3)"),
    RunConfig(**DIGITS, optimizer="sgd", peak_lr=0.05, controller="auto_warmup()"),  # the probe on every rank
]


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[list[dict]]:
    out = tmp_path_factory.mktemp("ddp")
    torchrun(str(HERE / "ddp_run.py"), str(out), *(c.model_dump_json() for c in CONFIGS), cwd=out)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=[c.method for c in CONFIGS])
def test_every_rank_ends_every_step_with_the_same_lr_and_parameters(ranks: list[list[dict]], index: int) -> None:
    first, second = ranks[0][index], ranks[1][index]
    assert first["status"] == "finished", first["error"]
    assert len(first["lr"]) == CONFIGS[index].steps
    assert first["lr"] == second["lr"]
    assert first["train_loss"] == second["train_loss"]
    assert first["decisions"] == second["decisions"]
    assert torch.equal(first["params"], second["params"])


@pytest.mark.parametrize("index", [1, 2, 3, 4], ids=[CONFIGS[i].method for i in (1, 2, 3, 4)])
def test_the_lrs_are_the_controllers_logged_decisions(ranks: list[list[dict]], index: int) -> None:
    record, peak = ranks[0][index], CONFIGS[index].peak_lr
    assert len(record["decisions"]) >= 10
    for step, multiplier in record["decisions"]:
        if step < len(record["lr"]):
            assert record["lr"][step] == pytest.approx(peak * multiplier, rel=1e-12)
    assert record["lr"][0] != record["lr"][-1]  # the controller did move the LR


@pytest.mark.parametrize("index", [0, 3], ids=[CONFIGS[i].method for i in (0, 3)])
def test_two_processes_train_like_one_on_the_whole_batch(ranks: list[list[dict]], index: int) -> None:
    """Equal shares and DDP's averaged gradient make the update the whole batch's (up to rounding)."""
    config = CONFIGS[index]
    one = train(config, make_task(config.task, config.task_options))
    assert ranks[0][index]["lr"] == pytest.approx(one.steps["lr"], rel=1e-9)
    assert ranks[0][index]["train_loss"] == pytest.approx(one.steps["train_loss"], rel=1e-4)
    assert ranks[0][index]["val_loss"] == pytest.approx(one.evals["val_loss"], rel=1e-4)


def test_preheat_sweep_under_torchrun_writes_the_store_once(tmp_path: Path) -> None:
    done = torchrun("-m", "preheat.cli", "sweep", "--set", "task=digits", "--set", "steps=20",
                    "--set", "task_options={width: 16}", "--set", "schedule=warmup_linear(5, {steps})",
                    "--quiet", "--out", str(tmp_path / "sweep"), cwd=tmp_path)
    assert done.stdout.count("ranking, best first") == 1
    with sqlite3.connect(tmp_path / "sweep" / "runs.sqlite") as db:
        runs = db.execute("SELECT status, config FROM runs").fetchall()
        steps = db.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
    assert [status for status, _ in runs] == ["finished"]
    assert json.loads(runs[0][1])["steps"] == steps == 20


def test_an_uneven_batch_is_refused() -> None:
    from preheat.lab import distributed
    from preheat.lab.distributed import World

    with pytest.raises(ValueError, match="batch_size=33 is invalid for 2 processes"):
        distributed.check_batch(33, World(rank=0, size=2))


def test_the_default_shard_splits_stacks_and_refuses_other_batches() -> None:
    task = make_task("digits", {})
    x, y = torch.arange(12.0).reshape(6, 2), torch.arange(6)
    part = task.shard((x, y), 1, 3)
    assert torch.equal(part[0], x[2:4]) and torch.equal(part[1], y[2:4])
    assert task.shard((x, y), 0, 1) == (x, y)
    with pytest.raises(TypeError, match="override shard"):
        task.shard({"x": x}, 0, 2)


def test_the_ddp_loop_in_docs_scale_runs_under_torchrun(tmp_path: Path) -> None:
    text = (HERE.parents[1] / "docs" / "scale.md").read_text()
    block = next(b for b in text.split("```python\n")[1:] if b.startswith("# ddp_loop.py"))
    (tmp_path / "ddp_loop.py").write_text(block.split("```")[0])
    done = torchrun("ddp_loop.py", cwd=tmp_path)
    assert "2 ranks agree: handover at update" in done.stdout and (tmp_path / "scheduler.pt").exists()
