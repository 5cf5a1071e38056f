"""Sinks write during a real training loop; the event files and MLflow store are read back."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import preheat  # noqa: E402
from preheat.adaptive import Controller, NARSWarmup, Proposal  # noqa: E402
from preheat.integrations.logging import Sink, log_scheduler  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
STEPS = 40


class Doubling(Controller):
    """Starts at 1/8 and doubles the multiplier each update until the peak, then hands over."""

    name = "doubling"

    def start(self) -> float:
        return 0.125

    def decide(self, signals):
        m = min(1.0, self.current * 2)
        return Proposal(m, "raise", f"loss {signals['loss']:.3g} is finite", {"loss": signals["loss"]}, m >= 1.0)


def train(sinks, schedule_or_controller, steps=STEPS):
    """A short real loop on two param groups; returns the LRs each update used, per group."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD([
        {"params": model[0].parameters(), "lr": 0.1},
        {"params": model[2].parameters(), "lr": 0.02},
    ])
    scheduler = preheat.Scheduler(optimizer, schedule_or_controller)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    used = []
    for step in range(steps):
        used.append([g["lr"] for g in optimizer.param_groups])
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for sink in sinks:
            log_scheduler(sink, scheduler, step, signals={"loss": loss.item()})
            log_scheduler(sink, scheduler, step, signals={"loss": loss.item()})  # twice: no dup decisions
        if scheduler.controller is not None:
            scheduler.step(loss=loss.item())
        else:
            scheduler.step()
    for sink in sinks:
        sink.close()
    return used, scheduler


# -- TensorBoard ----------------------------------------------------------------------------


def _tb(log_dir):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _tb_series(acc, tag):
    return {e.step: e.value for e in acc.Scalars(tag)}


def test_tensorboard_lrs_match_the_scheduler(tmp_path):
    pytest.importorskip("tensorboard")
    from preheat.integrations.logging import TensorBoardSink

    sink = TensorBoardSink(tmp_path / "tb")
    assert isinstance(sink, Sink)
    used, _ = train([sink], preheat.warmup_cosine(10, STEPS))
    acc = _tb(tmp_path / "tb")
    tags = acc.Tags()["scalars"]
    assert {"lr/group0", "lr/group1", "signals/loss"} <= set(tags)
    for g in range(2):
        series = _tb_series(acc, f"lr/group{g}")
        assert sorted(series) == list(range(STEPS))
        for step, lrs in enumerate(used):
            assert series[step] == pytest.approx(lrs[g], rel=1e-6, abs=1e-12)  # float32 in events
    assert used[0][0] < used[10][0]  # it did warm up
    assert "controller/multiplier" not in tags


def test_tensorboard_controller_decisions(tmp_path):
    pytest.importorskip("tensorboard")
    from preheat.integrations.logging import TensorBoardSink

    used, scheduler = train([TensorBoardSink(tmp_path / "tb")], Doubling(total=20))
    decisions = scheduler.controller.decisions
    assert decisions and decisions[-1].action == "handover"
    acc = _tb(tmp_path / "tb")
    mult = acc.Scalars("controller/multiplier")
    assert [e.step for e in mult] == [d.step for d in decisions]
    assert [e.value for e in mult] == pytest.approx([d.multiplier for d in decisions], rel=1e-6)
    for step, lrs in enumerate(used):
        assert _tb_series(acc, "lr/group0")[step] == pytest.approx(lrs[0], rel=1e-6)
    texts = acc.Tensors("controller/decision/text_summary")
    assert [t.step for t in texts] == [d.step for d in decisions]
    first = texts[0].tensor_proto.string_val[0].decode()
    assert "raise" in first and decisions[0].reason in first and "loss" in first


# -- MLflow ---------------------------------------------------------------------------------


def _mlflow_series(client, run_id, key):
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def test_mlflow_lrs_match_the_scheduler(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from preheat.integrations.logging import MLflowSink

    sink = MLflowSink(experiment="t", run_name="cosine", directory=tmp_path / "mlruns")
    assert isinstance(sink, Sink)
    used, _ = train([sink], preheat.warmup_cosine(10, STEPS))
    client = MlflowClient(tracking_uri=sink.tracking_uri)
    run = client.get_run(sink.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "cosine"
    for g in range(2):
        series = _mlflow_series(client, sink.run_id, f"lr/group{g}")
        assert sorted(series) == list(range(STEPS))
        for step, lrs in enumerate(used):
            assert series[step] == pytest.approx(lrs[g], rel=1e-12)
    assert len(_mlflow_series(client, sink.run_id, "signals/loss")) == STEPS


def test_mlflow_controller_decisions(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # an explicit (old-style) file: URI
    from mlflow.tracking import MlflowClient

    from preheat.integrations.logging import MLflowSink

    sink = MLflowSink(experiment="t", tracking_uri="file:" + str(tmp_path / "store"))
    used, scheduler = train([sink], NARSWarmup(total=30))
    decisions = scheduler.controller.decisions
    assert decisions
    client = MlflowClient(tracking_uri=sink.tracking_uri)
    history = client.get_metric_history(sink.run_id, "controller/multiplier")
    assert sorted((m.step, m.value) for m in history) == [(d.step, d.multiplier) for d in decisions]
    for step, lrs in enumerate(used):
        assert _mlflow_series(client, sink.run_id, "lr/group1")[step] == pytest.approx(lrs[1], rel=1e-12)
    path = client.download_artifacts(sink.run_id, "preheat/decisions.json", str(tmp_path / "dl"))
    saved = json.loads(Path(path).read_text())
    assert [(d["step"], d["action"], d["reason"]) for d in saved] == [
        (d.step, d.action, d.reason) for d in decisions]
    handover = [d for d in decisions if d.action == "handover"]
    assert handover and _mlflow_series(client, sink.run_id, "controller/action/handover")


# -- the protocol, errors, the documented example ------------------------------------------


class Recorder:
    def __init__(self):
        self.scalars, self.decisions, self.closed = [], [], False

    def log_scalars(self, step, values):
        self.scalars.append((step, dict(values)))

    def log_decision(self, decision):
        self.decisions.append(decision)

    def close(self):
        self.closed = True


def test_custom_sink_and_default_step():
    sink = Recorder()
    assert isinstance(sink, Sink)
    used, scheduler = train([sink], Doubling(total=10), steps=12)
    assert [s for s, _ in sink.scalars] == [s for s in range(12) for _ in range(2)]
    assert sink.scalars[0][1] == {"lr/group0": used[0][0], "lr/group1": used[0][1],
                                  "signals/loss": pytest.approx(sink.scalars[0][1]["signals/loss"])}
    assert sink.decisions == scheduler.controller.decisions  # each once, in order
    assert sink.closed
    fresh = Recorder()
    log_scheduler(fresh, scheduler)
    assert fresh.decisions == scheduler.controller.decisions  # a new sink gets the history
    log_scheduler(sink, scheduler)  # default step: scheduler.last_epoch
    assert sink.scalars[-1][0] == scheduler.last_epoch == 12
    assert sink.scalars[-1][1]["lr/group0"] == scheduler.get_last_lr()[0]


def test_bad_arguments_raise():
    sink = Recorder()
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    scheduler = preheat.Scheduler(optimizer, preheat.linear_warmup(5))
    with pytest.raises(ValueError, match="step=-1"):
        log_scheduler(sink, scheduler, -1)
    with pytest.raises(ValueError, match="signals|values"):
        log_scheduler(sink, scheduler, 0, signals={"loss": "high"})


def test_missing_backend_names_the_extra(monkeypatch):
    import builtins

    from preheat.integrations import logging as plog

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.split(".")[0] in ("tensorboard", "mlflow"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=re.escape("pip install 'preheat[logging]'")):
        plog.TensorBoardSink("unused")
    with pytest.raises(ImportError, match=re.escape("pip install 'preheat[logging]'")):
        plog.MLflowSink()


def test_documented_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    section = DOC.read_text().split("\n## Logging to TensorBoard and MLflow")[1].split("\n## ")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, f"no python block in {DOC}"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    sinks = namespace["sinks"]
    acc = _tb(tmp_path / "runs" / "nars")
    assert len(acc.Scalars("lr/group0")) == 100
    assert acc.Scalars("controller/multiplier")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    history = client.get_metric_history(sinks[1].run_id, "lr/group0")
    assert len(history) == 100
    final_lr = namespace["scheduler"].get_last_lr()[0]
    assert max(history, key=lambda m: m.step).value <= 0.05 and final_lr <= 0.05


def test_a_lab_sweep_logs_every_run_to_tensorboard_and_mlflow(tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from preheat.cli import app
    from preheat.lab.store import Store

    out = tmp_path / "sweep"
    result = CliRunner().invoke(app, [
        "sweep", "--out", str(out), "--quiet", "--log", "tensorboard", "--log", "mlflow",
        "--set", "task=river-valley", "--set", "optimizer=sgd", "--set", "steps=10", "--set", "eval_every=5",
        "--set", "schedule=linear_warmup(4) >> constant()", "--grid", "peak_lr=[0.01, 0.02]",
    ])
    assert result.exit_code == 0, result.output
    store = Store(out)
    client = MlflowClient(tracking_uri=f"sqlite:///{(out / 'mlruns').resolve() / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(out.name)
    mlflow_runs = {r.data.tags["preheat.run_id"]: r.info.run_id
                   for r in client.search_runs([experiment.experiment_id])}
    for run in store.runs():
        lrs = list(store.steps(run.id)["lr"])
        events = _tb(out / "tensorboard" / run.id)
        assert [e.value for e in events.Scalars("lr/group0")] == pytest.approx(lrs, rel=1e-6)
        history = client.get_metric_history(mlflow_runs[run.id], "lr/group0")
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(lrs, rel=1e-12)
        assert [e.step for e in events.Scalars("val/val_loss")] == [0, 5, 10]
