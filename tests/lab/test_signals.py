"""The signal registry: a controller's declared needs are measured by name, so a new signal or a
new measurement before training is one registry entry, with no edit of the loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import pytest
import torch

from preheat import adaptive
from preheat.adaptive import Controller, ControllerState, Proposal
from preheat.lab import signals
from preheat.lab.config import RunConfig
from preheat.lab.run import train
from preheat.torch import prepare


@dataclass
class WatchState(ControllerState):
    seen: list[dict[str, float]] = field(default_factory=list)
    prepared: dict[str, float] = field(default_factory=dict)


class Watch(Controller):
    """Holds at 1/2 and keeps every signal it is fed, and what it was prepared with."""

    name = "watch_warmup"
    State = WatchState
    needs = {"weight_norm": 2}
    prepare_needs = ("initial_norm",)

    def start(self) -> float:
        return 0.5

    def prepare(self, **measurements: float) -> None:
        self.state.prepared = dict(measurements)

    def decide(self, signals: Mapping[str, float]) -> Proposal:
        self.state.seen.append(dict(signals))
        return Proposal(self.current, "hold", "watching")


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adaptive, "CONTROLLERS", (*adaptive.CONTROLLERS, Watch))
    monkeypatch.setitem(signals.AFTER_UPDATE, "weight_norm",
                        lambda: lambda run, update: torch.linalg.vector_norm(update.after).item())
    monkeypatch.setitem(prepare.BEFORE_TRAINING, "initial_norm",
                        lambda before: torch.linalg.vector_norm(signals.flat([p.detach() for p in before.model.parameters()])).item())


def test_a_new_signal_and_preparation_reach_the_controller_through_the_registry(registered, monkeypatch) -> None:
    built: list[Watch] = []
    original = RunConfig.resolved_controller

    def keep(self: RunConfig) -> Controller:
        controller = original(self)
        built.append(controller)
        return controller

    monkeypatch.setattr(RunConfig, "resolved_controller", keep)
    config = RunConfig(task="river-valley", optimizer="sgd", peak_lr=0.1, steps=6, batch_size=1,
                       controller="watch_warmup()")
    record = train(config)
    assert record.status == "finished", record.error
    watch = built[-1]
    assert watch.state.prepared["initial_norm"] > 0
    assert [sorted(s) for s in watch.state.seen] == [
        ["grad_norm", "loss", "weight_norm"] if t % 2 == 0 else ["grad_norm", "loss"] for t in range(6)]
    assert record.steps["lr"] == [0.05] * 6


def test_an_unknown_signal_fails_the_run_naming_what_the_lab_measures(monkeypatch) -> None:
    monkeypatch.setattr(adaptive, "CONTROLLERS", (*adaptive.CONTROLLERS, Watch))
    record = train(RunConfig(task="river-valley", optimizer="sgd", steps=2, batch_size=1,
                             controller="watch_warmup()"))
    assert record.status == "failed"
    assert "initial_norm" in record.error and "catapult_lr" in record.error
