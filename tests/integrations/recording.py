"""What the trainer integration tests share: a controller that records the losses (and gradient
norms, -1 where none came) it is fed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from preheat.adaptive import Controller, ControllerState, Proposal


@dataclass
class RecordingState(ControllerState):
    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)


class Recording(Controller):
    """Raises the multiplier by 0.2 per observed update and records every loss it sees."""

    name = "recording"
    State = RecordingState

    def start(self) -> float:
        return 0.2

    @property
    def losses(self) -> list[float]:
        return self.state.losses

    @property
    def grad_norms(self) -> list[float]:
        return self.state.grad_norms

    def decide(self, signals: Mapping[str, float]) -> Proposal:
        self.state.losses.append(signals["loss"])
        self.state.grad_norms.append(signals.get("grad_norm", -1.0))
        return Proposal(self.current + 0.2, "raise", "test", {"loss": signals["loss"]})
