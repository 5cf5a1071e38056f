"""Composition: phases one after another (``join``, ``a >> b``) and products (``a * b``)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Sequence

import numpy as np

from preheat.schedules.base import MAX_NESTING, Schedule, format_value
from preheat.schedules.units import then_with_units
from preheat.schedules.validate import MAX_STEP, check_sequence, check_steps, shorten


def _nesting(owner: str, parts: tuple[Schedule, ...]) -> int:
    """One more than the deepest part, refused beyond :data:`MAX_NESTING`."""
    depth = 1 + max(part.nesting for part in parts)
    if depth > MAX_NESTING:
        raise ValueError(
            f"{owner}: schedules nested {depth} deep are invalid; expected at most {MAX_NESTING} "
            "levels (write the phases in one join([...], [...]) instead of nesting them)"
        )
    return depth


@dataclass(frozen=True, repr=False)
class Join(Schedule):
    """Phases one after another at explicit boundaries.

    ``join([s0, s1, ..., sn], [b1, ..., bn])`` gives ``s0(t)`` for ``t < b1``, ``s1(t - b1)``
    for ``b1 <= t < b2``, ..., and ``sn(t - bn)`` from ``bn`` on: each phase starts at its own
    step 0. A phase shorter than its interval holds its final value; a longer one is cut.
    Update 0 gets ``s0(0)``; the join ends when its last phase ends (``bn + sn.length``).
    ``a >> b`` is ``join([a, b], [a.length])``.
    """

    name: ClassVar[str] = "join"
    schedules: tuple[Schedule, ...]
    boundaries: tuple[int, ...]

    def __post_init__(self) -> None:
        expected = "at least two schedules"
        schedules = check_sequence("join", "schedules", self.schedules, expected)
        if len(schedules) < 2 or not all(isinstance(s, Schedule) for s in schedules):
            raise ValueError(f"join: schedules={shorten(list(schedules))} is invalid; expected a list of {expected}")
        boundaries = check_sequence("join", "boundaries", self.boundaries, "steps")
        boundaries = tuple(
            b if type(b) is int and 1 <= b <= MAX_STEP else check_steps("join", "boundaries", b, minimum=1)
            for b in boundaries  # ints in range pass as they are: >> rebuilds long chains often
        )
        if len(boundaries) != len(schedules) - 1:
            raise ValueError(
                f"join: boundaries={shorten(list(boundaries))} is invalid; expected {len(schedules) - 1} "
                f"boundaries for {len(schedules)} schedules"
            )
        if any(b <= a for a, b in zip(boundaries, boundaries[1:])):
            raise ValueError(
                f"join: boundaries={shorten(list(boundaries))} is invalid; expected strictly increasing steps"
            )
        last = schedules[-1].length
        if last is not None and boundaries[-1] + last > MAX_STEP:
            raise ValueError(
                f"join: the last phase starts at step {boundaries[-1]} and lasts {last} steps, so the "
                f"join ends at step {boundaries[-1] + last}; expected it to end below step 2**63"
            )
        object.__setattr__(self, "schedules", schedules)
        object.__setattr__(self, "boundaries", boundaries)
        object.__setattr__(self, "_depth", _nesting("join", schedules))

    @property
    def nesting(self) -> int:
        return self._depth  # type: ignore[attr-defined, no-any-return]

    @property
    def binds_loosely(self) -> bool:
        return True

    @cached_property
    def length(self) -> int | None:
        last = self.schedules[-1].length
        if last is None:
            return None
        return (self.boundaries[-1] if self.boundaries else 0) + last

    def _at(self, t: Any, xp: Any) -> Any:
        if xp is np and t.size == 1:
            # One NumPy step (``schedule(int)``, once per update under LambdaLR): evaluate only its
            # phase, not all of them; the where() below would cost about twice as much here.
            i = bisect.bisect_right(self.boundaries, int(t.reshape(-1)[0]))
            return self.schedules[i].held(t - ((0,) + self.boundaries)[i], np)
        # Every phase at its own step (0 before it starts), then per step the phase it is in.
        values = [self.schedules[0].held(t, xp)]
        for schedule, start in zip(self.schedules[1:], self.boundaries):
            values.append(schedule.held(xp.maximum(t - start, 0), xp))
        out = values[-1]
        for value, boundary in zip(reversed(values[:-1]), reversed(self.boundaries)):
            out = xp.where(t < boundary, value, out)
        return out

    def is_chain(self) -> bool:
        """Whether each boundary is where the phase before it ends (the ``a >> b`` form)."""
        if any(isinstance(s, Join) for s in self.schedules):
            return False
        ends, total = [], 0
        for schedule in self.schedules[:-1]:
            if schedule.length is None:
                return False
            total += schedule.length
            ends.append(total)
        return tuple(ends) == self.boundaries

    def __str__(self) -> str:
        if self.is_chain():
            return " >> ".join(str(s) for s in self.schedules)
        return f"join([{', '.join(str(s) for s in self.schedules)}], {format_value(self.boundaries)})"


@dataclass(frozen=True, repr=False)
class Product(Schedule):
    """The product of schedules at every step: ``(a * b)(t) = a(t) * b(t)``.

    Use it for warmups that approach 1 without ending (exponential, RAdam), applied on top of a
    decay as Ma & Yarats do. It ends when its longest factor ends (never, if one never ends);
    update 0 gets the product of the factors' step-0 values.
    """

    name: ClassVar[str] = "product"
    factors: tuple[Schedule, ...]

    def __new__(cls, *args: Any, **kwargs: Any) -> Product:
        return object.__new__(cls)  # factors with durations in units are resolved in place

    def __post_init__(self) -> None:
        flat: list[Schedule] = []
        for factor in check_sequence("product", "factors", self.factors, "at least two schedules"):
            if not isinstance(factor, Schedule):
                raise ValueError(f"product: factors contains {shorten(factor)}; expected schedules only")
            flat.extend(factor.factors if isinstance(factor, Product) else (factor,))
        if len(flat) < 2:
            raise ValueError(f"product: factors={shorten(flat)} is invalid; expected at least two schedules")
        object.__setattr__(self, "factors", tuple(flat))
        object.__setattr__(self, "_depth", _nesting("product", self.factors))

    @property
    def nesting(self) -> int:
        return self._depth  # type: ignore[attr-defined, no-any-return]

    @property
    def has_units(self) -> bool:
        return any(f.has_units for f in self.factors)

    def _resolved(self, size: Any) -> Schedule:
        return Product(tuple(f._resolved(size) for f in self.factors)) if self.has_units else self

    @cached_property
    def length(self) -> int | None:
        lengths = [f.length for f in self.factors]
        return None if None in lengths else max(lengths)  # type: ignore[type-var]

    def _at(self, t: Any, xp: Any) -> Any:
        value = self.factors[0].held(t, xp)
        for factor in self.factors[1:]:
            value = value * factor.held(t, xp)
        return value

    def __str__(self) -> str:
        return " * ".join(f"({f})" if f.binds_loosely else str(f) for f in self.factors)


def then(first: Schedule, second: Schedule) -> Schedule:
    """``first >> second``: ``first`` for its ``length`` steps, then ``second`` from its step 0.

    Chains flatten into one :class:`Join`, and a zero-length phase followed by another is
    dropped (no update ever uses it). ``first`` must end: a schedule that never ends cannot be
    followed. Where either side has durations in units the chain waits for them to be resolved
    (:func:`~preheat.schedules.units.then_with_units`).
    """
    if first.has_units or second.has_units:
        return then_with_units(first, second)
    if first.length is None:
        raise ValueError(
            f"{shorten(first)} >> ...: the left side never ends (no steps), so nothing can follow it; "
            "give it steps=..., or multiply it onto the rest with *"
        )
    phases: list[Schedule] = []
    starts: list[int] = []
    for part, offset in ((first, 0), (second, first.length)):
        chain = isinstance(part, Join) and part.is_chain()
        parts = part.schedules if chain else (part,)
        for phase, start in zip(parts, (0,) + part.boundaries if chain else (0,)):
            if starts and starts[-1] == offset + start:
                phases.pop()
                starts.pop()
            phases.append(phase)
            starts.append(offset + start)
    if len(phases) == 1:
        return phases[0]
    return Join(tuple(phases), tuple(starts[1:]))


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Join:
    """Phases at explicit boundaries; see :class:`Join` for the formula."""
    return Join(schedules, boundaries)  # type: ignore[arg-type]  # Join checks and makes tuples
