"""Resume in a new process from a checkpoint: the same LRs and bit-identical parameters."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("resume_worker.py")
_spec = importlib.util.spec_from_file_location("resume_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


@pytest.mark.parametrize("order", ["optimizer-first", "scheduler-first"])
def test_resume_in_a_new_process_reproduces_the_run(tmp_path: Path, order: str) -> None:
    full_model, optimizer, scheduler = worker.build(seed=0)
    full_used = worker.train(full_model, optimizer, scheduler, worker.STEPS)

    model, optimizer, scheduler = worker.build(seed=0)
    head_used = worker.train(model, optimizer, scheduler, worker.CHECKPOINT_AT)
    checkpoint, output = tmp_path / "checkpoint.pt", tmp_path / "resumed.pt"
    torch.save(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
        checkpoint,
    )
    subprocess.run([sys.executable, str(WORKER), str(checkpoint), str(output), order], check=True, cwd=tmp_path)
    resumed = torch.load(output, weights_only=True)

    assert head_used + [tuple(pair) for pair in resumed["used"]] == full_used
    full_state = full_model.state_dict()
    assert resumed["model"].keys() == full_state.keys()
    for name, tensor in resumed["model"].items():
        assert torch.equal(tensor, full_state[name]), name
