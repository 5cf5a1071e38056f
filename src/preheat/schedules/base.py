"""The ``Schedule`` base: evaluation, the dict and text forms, the fingerprint, composition operators.

Conventions (DESIGN.md): a schedule maps a *step*, the number of completed optimizer updates,
to a multiplier of the peak learning rate; update ``t`` (0-based) uses ``peak * schedule(t)``.
A schedule of finite ``length`` holds its value at ``length`` for every later step: it never
climbs back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, ClassVar, overload

import numpy as np

from preheat.schedules.validate import FIELD_CHECKS, MAX_STEP, Check, check_step, shorten

#: How deep schedules may nest (a join inside a product inside a join ...). Deeper ones are
#: refused where they are built, so evaluating, printing and serialising never recurse too far.
MAX_NESTING = 50


class Schedule:
    """A pure, immutable map from step (completed updates) to a multiplier of the peak LR.

    Subclasses are frozen dataclasses that set ``name`` (the function name users write) and
    implement ``_at(t, xp)``, their formula written once against an array namespace (NumPy,
    ``jax.numpy``, ``keras.ops``); fields are checked by name (``FIELD_CHECKS``, or the family's
    own ``field_checks`` for a name it introduces) and ``length`` is the ``steps`` field unless a
    family says otherwise.

    - ``schedule(t)`` takes an int >= 0 and returns a float, or an integer NumPy array and
      returns a float array of the same shape. Steps past ``length`` get the value at ``length``.
    - ``a >> b`` runs ``a`` for its ``length`` steps, then ``b`` from its own step 0.
    - ``a * b`` multiplies the two values at every step (e.g. an asymptotic warmup on a decay).
    - ``to_dict()`` / :func:`preheat.from_dict` round-trip exactly; ``str(s)`` is the Python
      expression that :func:`preheat.parse` reads back to an equal schedule.
    """

    name: ClassVar[str]
    registry: ClassVar[dict[str, type[Schedule]]] = {}
    #: Checks for the field names a family introduces (not in ``FIELD_CHECKS``), by name.
    field_checks: ClassVar[dict[str, Check]] = {}

    def __new__(cls, *args: Any, **kwargs: Any) -> Schedule:
        """A call with a duration in units (``"5%"``, ``"2ep"``, ...; see :mod:`~.units`) in its
        arguments builds the :class:`~preheat.schedules.units.Unresolved` call instead, which
        :meth:`resolve` makes once the run's size is known; any other call builds ``cls``."""
        if any(isinstance(v, (str, list, tuple, Schedule)) for v in (*args, *kwargs.values())):
            from preheat.schedules.units import Unresolved, has_units  # numbers alone skip this

            if has_units([args, list(kwargs.values())]):
                return Unresolved(cls.name, args, tuple(kwargs.items()))
        return super().__new__(cls)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        shared = sorted(FIELD_CHECKS.keys() & cls.field_checks.keys())
        if shared:
            raise TypeError(
                f"{cls.__name__}.field_checks redefines {shared}; expected only new field names "
                "(a name in FIELD_CHECKS has one rule for every family)"
            )
        if "name" in cls.__dict__:
            Schedule.registry[cls.name] = cls

    def __post_init__(self) -> None:
        """Check and normalise every field by its name (``FIELD_CHECKS``, then ``field_checks``).

        ``None`` passes only where it is the field's default. Families with rules across fields
        check those first, then call this.
        """
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            check = FIELD_CHECKS.get(field.name, self.field_checks.get(field.name))
            value = getattr(self, field.name)
            if check is not None and not (value is None and field.default is None):
                object.__setattr__(self, field.name, check(self.name, field.name, value))

    # -- evaluation ------------------------------------------------------------------------

    @property
    def length(self) -> int | None:
        """Steps after which the value holds (``None``: the schedule never ends).

        By default the ``steps`` field; families without one say their own.
        """
        return self.steps  # type: ignore[attr-defined]

    @property
    def nesting(self) -> int:
        """How many schedules deep this one is: 1 for a family, one more than its deepest part
        for a composition (at most :data:`MAX_NESTING`)."""
        return 1

    @property
    def has_units(self) -> bool:
        """Whether a duration in this schedule is written in units and must be resolved
        (:meth:`resolve`) before the schedule has values."""
        return False

    @property
    def binds_loosely(self) -> bool:
        """Whether the text form needs brackets as a factor of ``*`` (phases joined by ``>>``)."""
        return False

    def resolve(
        self,
        total: int | None = None,
        *,
        updates_per_epoch: int | None = None,
        samples_per_update: int | None = None,
        tokens_per_update: int | None = None,
    ) -> Schedule:
        """This schedule with every duration in units turned into updates (:mod:`~.units`).

        ``"5%"`` needs ``total`` (the run's updates), ``"2ep"`` ``updates_per_epoch``, ``"500sp"``
        ``samples_per_update``, ``"1Mtok"`` ``tokens_per_update``; each duration becomes the
        nearest whole number of updates (halves up), then the schedule is built and validated as
        if written in updates. A schedule without units is returned as it is, whatever is given.

        Raises:
            ValueError: a size a duration needs is missing (naming both), a size is not an
                integer >= 1, or the resolved schedule is invalid (warmup longer than the run, ...).
        """
        from preheat.schedules.units import RunSize

        return self._resolved(RunSize(total, updates_per_epoch, samples_per_update, tokens_per_update))

    def _resolved(self, size: Any) -> Schedule:
        """:meth:`resolve` with the sizes as one :class:`~preheat.schedules.units.RunSize`."""
        return self

    def _at(self, t: Any, xp: Any) -> Any:
        """The family's formula: the values at steps ``t``, ``0 <= t <= length``.

        ``xp`` is the array namespace: ``numpy`` (``t`` an int64 array), ``jax.numpy`` or
        ``keras.ops`` (``t`` a float array, possibly traced). Write it with arithmetic and the
        functions all three share (``cos``, ``sqrt``, ``exp``, ``power``, ``where``, ``minimum``,
        ``maximum``, ``ones_like``, ``zeros_like``, ``floor_divide``, ``mod``), branch in Python
        only on the fields, never on ``t``, and return an array of ``t``'s shape.
        """
        raise NotImplementedError

    def held(self, t: Any, xp: Any) -> Any:
        """The values at steps ``t >= 0`` in namespace ``xp`` (see :meth:`_at`), holding the value
        at ``length`` after it: the hold for NumPy arrays, optax and Keras (an int step is held
        before it becomes an array, see :meth:`__call__`)."""
        n = self.length
        return self._at(t if n is None else xp.minimum(t, n), xp)

    @overload
    def __call__(self, step: int) -> float: ...
    @overload
    def __call__(self, step: np.ndarray) -> np.ndarray: ...

    def __call__(self, step: int | np.ndarray) -> float | np.ndarray:
        """The multiplier for update ``step`` (0-based count of completed updates)."""
        t = check_step(step)
        if not isinstance(t, np.ndarray):
            # Through a 1-element array, so an int gets exactly the value an array would: NumPy's
            # scalar and array math (pow, for one) can differ in the last bit.
            # Held here, in Python, so that a huge step of a finite schedule fits int64.
            n = self.length
            t = t if n is None else min(t, n)
            if t > MAX_STEP:
                raise ValueError(f"step={shorten(t)} is invalid; expected an integer below 2**63")
            return float(self._at(np.array([t], dtype=np.int64), np)[0])
        out = np.empty(t.shape, dtype=np.float64)
        out[...] = self.held(t, np)
        return out

    # -- composition -----------------------------------------------------------------------

    def __rshift__(self, other: Schedule) -> Schedule:
        if not isinstance(other, Schedule):
            return NotImplemented
        from preheat.schedules.compose import then

        return then(self, other)

    def __mul__(self, other: Schedule) -> Schedule:
        if not isinstance(other, Schedule):
            return NotImplemented
        from preheat.schedules.compose import Product

        return Product((self, other))

    # -- dict, text and fingerprint ----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"type": name, <every field>}``; nested schedules as dicts."""
        out: dict[str, Any] = {"type": self.name}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            out[field.name] = _plain(getattr(self, field.name))
        return out

    def fingerprint(self) -> str:
        """A stable 16-hex-digit hash of ``to_dict()`` (same schedule, same fingerprint)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __str__(self) -> str:
        parts = []
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if field.default is dataclasses.MISSING:
                parts.append(format_value(value))
            elif value != field.default:
                parts.append(f"{field.name}={format_value(value)}")
        return f"{self.name}({', '.join(parts)})"

    def __repr__(self) -> str:
        return str(self)


def _plain(value: Any) -> Any:
    if isinstance(value, Schedule):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def format_value(value: Any) -> str:
    """The Python literal for a field value, as written in a schedule expression."""
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, (str, float)):
        return repr(value)
    return str(value)


def from_dict(data: dict[str, Any]) -> Schedule:
    """Rebuild a schedule from :meth:`Schedule.to_dict` output (validated like any other build).

    Anything else raises ``ValueError`` naming what is wrong: not a dict, an unknown ``type``,
    a missing or unknown field, a bad value, or data nested deeper than any schedule can be.
    """
    return _from_dict(data, 0)


#: Dicts and lists a schedule's dict may nest: each level of schedules is a dict in a list.
_MAX_CONTAINERS = 2 * MAX_NESTING + 2


def _from_dict(data: Any, level: int) -> Schedule:
    if not isinstance(data, dict) or "type" not in data:
        raise ValueError(f"from_dict: {shorten(data)} is not a schedule dict; expected a dict with a 'type' key")
    kind = data["type"]
    cls = Schedule.registry.get(kind) if isinstance(kind, str) else None
    if cls is None:
        known = ", ".join(sorted(Schedule.registry))
        raise ValueError(f"from_dict: type={shorten(kind)} is unknown; expected one of {known}")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = sorted(f.name for f in fields)
    extra = set(data) - set(names) - {"type"}
    if extra:
        shown = sorted(shorten(k) if not isinstance(k, str) else k for k in extra)
        raise ValueError(f"from_dict: {kind} has no field(s) {shown}; its fields are {names}")
    missing = [
        f.name for f in fields
        if f.name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"from_dict: {kind} needs field(s) {missing}; its fields are {names}")
    values = {k: _rebuild(v, level + 1) for k, v in data.items() if k != "type"}
    try:
        return cls(**values)
    except TypeError as err:  # a family's own rule that did not expect the value's type
        raise ValueError(f"from_dict: {kind}: {err}") from None


def _rebuild(value: Any, level: int) -> Any:
    if isinstance(value, (dict, list)) and level > _MAX_CONTAINERS:
        raise ValueError(
            f"from_dict: the data nests dicts and lists more than {_MAX_CONTAINERS} levels deep; "
            f"expected a schedule dict from to_dict() (schedules nest at most {MAX_NESTING} deep)"
        )
    if isinstance(value, dict):
        return _from_dict(value, level)
    if isinstance(value, list):
        return tuple(_rebuild(v, level + 1) for v in value)
    return value


def progress(t: Any, steps: int, xp: Any) -> Any:
    """``t / steps``, taken as 1 when ``steps`` is 0 (a zero-length phase is already at its end)."""
    return t / steps if steps else xp.ones_like(t)
