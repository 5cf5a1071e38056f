"""The controller: a closed-loop warmup that turns training signals into the next multiplier.

Where a schedule is a pure function of the step, a controller watches the run. After each
update it is shown that update's signals (the loss, the gradient norm, and whatever else it
asked for in ``needs``), decides the multiplier of the peak LR for the next update, and logs the
decision with its evidence. When its warmup ends it hands over to a pure schedule for the rest
of the run. Controllers are plain Python (no torch): the PyTorch ``Scheduler`` drives them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Mapping

from preheat.schedules import Schedule, parse
from preheat.schedules.validate import check_int, check_real


@dataclass
class Decision:
    """One decision: after update ``step - 1`` the controller set ``multiplier`` for update ``step``.

    ``action`` is ``raise``, ``hold``, ``lower``, ``backoff`` (a NaN/inf signal), or ``handover``
    (the warmup ended; the ``after`` schedule runs from here); ``reason`` says why in words and
    ``evidence`` holds the numbers behind it.
    """

    step: int
    multiplier: float
    action: str
    reason: str
    evidence: dict[str, float] = field(default_factory=dict)


class Controller(ABC):
    """Base of every adaptive warmup. Subclasses implement :meth:`start` and :meth:`decide`.

    Contract, with ``t`` the number of updates observed so far (``self.step``):

    - :meth:`multiplier` is the multiplier for update ``t``: before any observation it is
      ``start()``, update 0's value.
    - :meth:`observe` takes update ``t``'s signals and advances to ``t + 1``. A NaN or infinite
      signal never reaches the LR: the multiplier is cut by ``backoff`` and the decision says
      which signal was bad. Without signals (none given) the controller holds.
    - Every multiplier lies in ``[floor, 1]`` (1 is the peak LR) and, during warmup, changes by at
      most ``max_step`` (absolute) per update in either direction.
    - The warmup ends when :meth:`decide` says so, or at update ``total`` at the latest; from the
      handover step ``h`` the multiplier is ``after(t - h)``, where ``after`` is the schedule
      expression with ``{steps}`` replaced by ``total - h`` (default ``constant()``: hold the peak).
      After that the controller ignores signals.
    - ``peak_lr`` (set by the scheduler from the first param group) lets a controller reason in
      absolute learning rates; multipliers are ``lr / peak_lr``.
    - :meth:`state_dict` is plain data; :meth:`load_state_dict` on a freshly built controller
      with the same arguments restores every future decision exactly.

    The base calls :meth:`start` from ``__init__``: a subclass sets the attributes ``start``
    reads before calling ``super().__init__``.
    """

    name: ClassVar[str] = "controller"
    #: Extra signals a controller needs and how often: name -> every how many updates (an
    #: instance may set its own, e.g. only when it fits constants online).
    needs: dict[str, int] = {}

    def __init__(self, total: int, after: str = "constant()", floor: float = 0.0,
                 max_step: float = 1.0, backoff: float = 0.5) -> None:
        self.total = check_int(self.name, "total", total, minimum=1)
        self.after = after
        self._after_at(1)  # a bad expression fails here, not at the handover
        self.floor = check_real(self.name, "floor", floor, 0.0, 1.0)
        self.max_step = check_real(self.name, "max_step", max_step, 0.0, 1.0, low_open=True)
        self.backoff = check_real(self.name, "backoff", backoff, 0.0, 1.0, low_open=True, high_open=True)
        self.peak_lr = 1.0
        self.step = 0
        self.handover_step: int | None = None
        self._after_for: int | None = None  # the handover step self._after was built for
        self.current = self._bound(self.start())
        self.decisions: list[Decision] = []

    # -- what subclasses provide ------------------------------------------------------------

    @abstractmethod
    def start(self) -> float:
        """The multiplier for update 0."""

    @abstractmethod
    def decide(self, signals: Mapping[str, float]) -> tuple[float, str, str, dict[str, float], bool]:
        """Given update ``self.step``'s finite signals: ``(multiplier, action, reason, evidence,
        done)`` for the next update; ``done`` ends the warmup. Called during warmup only."""

    def extra_state(self) -> dict[str, Any]:
        """A subclass's own state, as plain data (see :meth:`state_dict`)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    # -- the loop ---------------------------------------------------------------------------

    def bind(self, peak_lr: float) -> None:
        """Tell the controller the peak LR (multiplier 1); before the first update this also
        recomputes update 0's multiplier, which may depend on it."""
        self.peak_lr = check_real(self.name, "peak_lr", peak_lr, 0.0, low_open=True)
        if self.step == 0:
            self.current = self._bound(self.start())

    def multiplier(self) -> float:
        """The multiplier for update ``self.step``."""
        if self.handover_step is None:
            return self.current
        if self._after_for != self.handover_step:
            self._after, self._after_for = self._after_at(self.total - self.handover_step), self.handover_step
        return self._after(self.step - self.handover_step)

    def observe(self, **signals: float) -> float:
        """Take update ``self.step``'s signals, decide, advance; return the next multiplier."""
        if self.handover_step is not None:
            self.step += 1
            return self.multiplier()
        bad = {k: float(v) for k, v in signals.items() if not math.isfinite(float(v))}
        if bad:
            proposal = self.current * self.backoff
            action, reason, evidence, done = "backoff", f"non-finite signal(s) {bad}", {}, False
        elif not signals:
            proposal, action, reason, evidence, done = self.current, "hold", "no signals", {}, False
        else:
            proposal, action, reason, evidence, done = self.decide({k: float(v) for k, v in signals.items()})
        change = max(-self.max_step, min(self.max_step, proposal - self.current))
        self.current = self._bound(self.current + change if action != "backoff" else proposal)
        self.step += 1
        if done or self.step >= self.total:
            self.handover_step = self.step
            action, reason = "handover", (reason if done else f"{reason}; reached total={self.total}")
        self.decisions.append(Decision(self.step, self.multiplier(), action, reason, evidence))
        return self.multiplier()

    def state_dict(self) -> dict[str, Any]:
        """Plain data: the step, the current multiplier, the handover, the decisions, and the
        subclass's :meth:`extra_state`."""
        return {
            "name": self.name, "step": self.step, "current": self.current,
            "handover_step": self.handover_step, "peak_lr": self.peak_lr,
            "decisions": [asdict(d) for d in self.decisions], "extra": self.extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output of a controller built with the same arguments."""
        if state.get("name") != self.name:
            raise ValueError(f"{self.name}.load_state_dict: the state is of {state.get('name')!r}; "
                             f"expected the state of a {self.name}")
        self.step, self.current = int(state["step"]), float(state["current"])
        self.handover_step = state["handover_step"]
        self.peak_lr = float(state["peak_lr"])
        self.decisions = [Decision(**d) for d in state["decisions"]]
        self.load_extra_state(dict(state["extra"]))

    # -- helpers ----------------------------------------------------------------------------

    def _bound(self, value: float) -> float:
        return min(1.0, max(self.floor, value))

    def _after_at(self, remaining: int) -> Schedule:
        try:
            return parse(self.after.format(steps=remaining))
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"{self.name}: after={self.after!r} is invalid; expected a schedule "
                             f"expression, optionally with {{steps}} (the steps left): {err}") from None
