"""What the trainer integration tests share: a controller that records the losses it is fed."""

from __future__ import annotations

from typing import Any, Mapping

from preheat.adaptive import Controller


class Recording(Controller):
    """Raises the multiplier by 0.2 per observed update and records every loss it sees."""

    name = "recording"

    def __init__(self, total: int) -> None:
        self.losses: list[float] = []
        super().__init__(total)

    def start(self) -> float:
        return 0.2

    def decide(self, signals: Mapping[str, float]) -> tuple[float, str, str, dict[str, float], bool]:
        self.losses.append(signals["loss"])
        return self.current + 0.2, "raise", "test", {"loss": signals["loss"]}, False

    def extra_state(self) -> dict[str, Any]:
        return {"losses": list(self.losses)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.losses = list(state["losses"])
