"""Durations in the units people think in, resolved to updates once the run's size is known.

Any argument of a schedule function written as a number in updates may instead be a string with
a unit:

===========  ===========================================  =================================
written      means                                        resolved with
===========  ===========================================  =================================
``"5%"``     5 percent of the run's updates               ``total``
``"2ep"``    2 epochs                                     ``updates_per_epoch``
``"500ksp"`` 500,000 samples (examples)                   ``samples_per_update``
``"2Btok"``  2 billion tokens                             ``tokens_per_update``
===========  ===========================================  =================================

The number is a decimal (``"2.5%"``, ``"1e6tok"``), optionally followed by ``k``, ``M`` or ``B``
(10^3, 10^6, 10^9). A plain number is a count of updates, as everywhere else.

A schedule with such a duration is :class:`Unresolved`: it records the call, prints and parses
back as written (``linear_warmup('5%') >> cosine_decay('95%')``) and round-trips through
``to_dict``, but it has no values until :meth:`Schedule.resolve` (or
``Scheduler(..., total=...)``) turns every duration into updates and makes the call.

**Rounding.** ``x`` units are ``x * total / 100``, ``x * updates_per_epoch``,
``x / samples_per_update`` or ``x / tokens_per_update`` updates, computed exactly (the decimal is
read as a fraction, so ``"7%"`` of 100 is exactly 7, where the float ``0.07 * 100`` is
``7.000000000000001``) and rounded to the nearest integer, halves up: ``"2.5%"`` of 100 is 3,
``"5%"`` of 1001 (50.05) is 50, ``"1000sp"`` at 256 samples per update (3.906) is 4. Hugging
Face rounds ``warmup_ratio`` up instead (``ceil``): ``"5%"`` of 1001 is 51 there.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, ClassVar, NamedTuple

from preheat.schedules.base import MAX_NESTING, Schedule, format_value
from preheat.schedules.validate import check_int, shorten

class Unit(NamedTuple):
    """How one unit becomes updates: ``amount * scale * size`` (or ``/ size``)."""

    size: str  #: the :class:`RunSize` field it is resolved with
    scale: Fraction  #: ``"5%"`` is 5/100 of the run
    multiplies: bool  #: updates per unit (True) or units per update (False)
    what: str  #: for messages


UNITS: dict[str, Unit] = {
    "%": Unit("total", Fraction(1, 100), True, "a percentage of the run"),
    "ep": Unit("updates_per_epoch", Fraction(1), True, "epochs"),
    "sp": Unit("samples_per_update", Fraction(1), False, "samples"),
    "tok": Unit("tokens_per_update", Fraction(1), False, "tokens"),
}
#: Magnitude letters allowed between the number and the unit.
MAGNITUDES = {"": 1, "k": 10**3, "M": 10**6, "B": 10**9}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*([kMB]?)\s*(%|ep|sp|tok)")
#: What a duration looks like, for messages.
EXAMPLES = "'5%', '2ep', '500ksp' or '2Btok'"


@dataclass(frozen=True)
class RunSize:
    """What durations in units resolve against: the run's updates and what one update holds.

    ``total`` (updates in the run) resolves ``%``; ``updates_per_epoch`` resolves ``ep``;
    ``samples_per_update`` (the global batch: per-device batch x devices x accumulation steps)
    resolves ``sp``; ``tokens_per_update`` (samples per update x sequence length) resolves
    ``tok``. Each is a whole number >= 1 or ``None`` (not known).
    """

    total: int | None = None
    updates_per_epoch: int | None = None
    samples_per_update: int | None = None
    tokens_per_update: int | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                object.__setattr__(self, field.name, check_int("resolve", field.name, value, minimum=1))

    def __str__(self) -> str:
        given = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                 if getattr(self, f.name) is not None]
        return ", ".join(given) or "no run size"


def duration(value: Any) -> tuple[Fraction, str] | None:
    """``(amount, unit)`` if ``value`` is a string written as a duration with a unit, else None.

    ``duration("2.5k sp") == (Fraction(2500), "sp")``; ``duration("5")`` and ``duration(5)`` are
    None (a count of updates).
    """
    if not isinstance(value, str):
        return None
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        return None
    number = match.group(0)[: match.start(2) - match.start(0)].strip()
    return Fraction(number) * MAGNITUDES[match.group(2)], match.group(3)


def to_updates(value: str, size: RunSize, owner: str = "resolve") -> int:
    """The number of updates a duration stands for (see the module's rounding rule).

    Raises:
        ValueError: the size its unit needs is not given (naming both), or it is not a duration.
    """
    parsed = duration(value)
    if parsed is None:
        raise ValueError(f"{owner}: {shorten(value)} is not a duration; expected e.g. {EXAMPLES}")
    amount, unit = parsed
    name, scale, multiplies, what = UNITS[unit]
    known = getattr(size, name)
    if known is None:
        raise ValueError(
            f"{owner}: {value!r} is in {what} but {name} was not given; expected {name}=... "
            f"(Scheduler(..., {name}=...) or schedule.resolve({name}=...))"
        )
    updates = amount * scale * known if multiplies else amount * scale / known
    return math.floor(updates + Fraction(1, 2))


def has_units(value: Any) -> bool:
    """Whether ``value`` is, or holds (in lists and schedules), a duration that needs resolving."""
    if isinstance(value, Schedule):
        return value.has_units
    if isinstance(value, (list, tuple)):
        return any(has_units(v) for v in value)
    return duration(value) is not None


def _functions() -> dict[str, Callable[..., Schedule]]:
    """What an :class:`Unresolved` may call: every expression function, and ``then`` (``>>``)."""
    from preheat.schedules.compose import then
    from preheat.schedules.text import functions

    return {**functions(), "then": then}


@dataclass(frozen=True, repr=False)
class Unresolved(Schedule):
    """A schedule call with durations in units, made once the run's size is known.

    ``function(*args, **dict(kwargs))`` is the call as written; ``function`` is a schedule
    function's name (``linear_warmup``, ``warmup_cosine``, ``join``, ...) or ``then`` for
    ``a >> b >> ...`` (``args`` are the phases). Nothing is evaluated until :meth:`resolve`:
    ``length`` and every value raise, naming the durations to resolve.
    """

    name: ClassVar[str] = "unresolved"
    function: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Unresolved:
        return object.__new__(cls)

    def __post_init__(self) -> None:
        functions = _functions()
        if self.function not in functions:
            raise ValueError(f"unresolved: function={shorten(self.function)} is unknown; expected one "
                             f"of {', '.join(sorted(functions))}")
        args, kwargs = _frozen(self.args), tuple((str(k), _frozen(v)) for k, v in dict(self.kwargs).items())
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "kwargs", kwargs)
        if not has_units([args, [v for _, v in kwargs]]):
            raise ValueError(f"unresolved: {self} has no duration with a unit; expected at least one, "
                             f"e.g. {EXAMPLES} (call {self.function} directly otherwise)")
        if self.function == "then":
            if len(args) < 2 or kwargs or not all(isinstance(a, Schedule) for a in args):
                raise ValueError(f"unresolved: then({shorten(args)}) is invalid; expected two or more "
                                 "schedules (the phases of a >> b) and no keyword arguments")
        else:
            try:
                inspect.signature(functions[self.function]).bind(*args, **dict(kwargs))
            except TypeError as err:
                raise ValueError(f"unresolved: {self}: {err}") from None
        depth = 1 + max((_depth(v) for v in (*args, *(v for _, v in kwargs))), default=0)
        if depth > MAX_NESTING:
            raise ValueError(f"unresolved: schedules nested {depth} deep are invalid; expected at most "
                             f"{MAX_NESTING} levels")
        object.__setattr__(self, "_depth", depth)

    @property
    def nesting(self) -> int:
        return self._depth  # type: ignore[attr-defined, no-any-return]

    @property
    def has_units(self) -> bool:
        return True

    @property
    def binds_loosely(self) -> bool:
        return self.function == "then"

    @property
    def length(self) -> int | None:
        raise self._unresolved_error()

    def _at(self, t: Any, xp: Any) -> Any:
        raise self._unresolved_error()

    def _unresolved_error(self) -> ValueError:
        return ValueError(
            f"{self} has durations in units ({', '.join(repr(d) for d in self.durations())}); resolve "
            "it first: schedule.resolve(total=...) or Scheduler(optimizer, schedule, total=...)"
        )

    def durations(self) -> list[str]:
        """Every duration with a unit in this call and the schedules inside it, in order."""
        found: list[str] = []
        _walk(list(self.args) + [v for _, v in self.kwargs], found)
        return found

    def _resolved(self, size: RunSize) -> Schedule:
        args = [_resolve(v, size, str(self)) for v in self.args]
        kwargs = {k: _resolve(v, size, str(self)) for k, v in self.kwargs}
        function = _functions()[self.function]
        try:
            return _chain(function, args) if self.function == "then" else function(*args, **kwargs)
        except ValueError as err:
            raise ValueError(f"{self} with {size}: {err}") from None

    def __str__(self) -> str:
        if self.function == "then":
            return " >> ".join(str(part) for part in self.args)
        parts = [format_value(v) for v in self.args] + [f"{k}={format_value(v)}" for k, v in self.kwargs]
        return f"{self.function}({', '.join(parts)})"


def accepts_units(function: Callable[..., Schedule]) -> Callable[..., Schedule]:
    """Wrap a schedule function (a preset) so that a call with durations in units is deferred:
    it returns the :class:`Unresolved` call instead of running ``function`` now."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Schedule:
        if has_units([args, list(kwargs.values())]):
            return Unresolved(function.__name__, args, tuple(kwargs.items()))
        return function(*args, **kwargs)

    return call


def then_with_units(first: Schedule, second: Schedule) -> Unresolved:
    """``first >> second`` where either side has durations in units: one flat ``then`` call."""
    parts: list[Schedule] = []
    for side in (first, second):
        flat = isinstance(side, Unresolved) and side.function == "then"
        parts.extend(side.args if flat else (side,))
    return Unresolved("then", tuple(parts))


def _chain(then: Callable[[Schedule, Schedule], Schedule], parts: list[Schedule]) -> Schedule:
    result = parts[0]
    for part in parts[1:]:
        result = then(result, part)
    return result


def _frozen(value: Any) -> Any:
    """Lists as tuples, all the way down (a call's arguments are part of an immutable schedule)."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _depth(value: Any) -> int:
    if isinstance(value, Schedule):
        return value.nesting
    if isinstance(value, tuple):
        return max((_depth(v) for v in value), default=0)
    return 0


def _walk(value: Any, found: list[str]) -> None:
    if isinstance(value, Unresolved):
        found.extend(value.durations())
    elif isinstance(value, Schedule):
        for field in dataclasses.fields(value):  # type: ignore[arg-type]
            _walk(getattr(value, field.name), found)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _walk(v, found)
    elif duration(value) is not None:
        found.append(value)


def _resolve(value: Any, size: RunSize, owner: str) -> Any:
    if isinstance(value, Schedule):
        return value._resolved(size)
    if isinstance(value, tuple):
        return [_resolve(v, size, owner) for v in value]
    if duration(value) is not None:
        return to_updates(value, size, owner)
    return value
