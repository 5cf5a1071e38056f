"""Argument checks shared by every schedule.

Each check returns the normalised value or raises ``ValueError`` whose message names the
schedule, the argument, the bad value (:func:`shorten`: a huge one is cut) and what would be
valid.

Steps are int64 everywhere (NumPy, torch, the adapters), so every step count and every time
constant in steps is below ``2**63`` (:data:`STEP_LIMIT`): a schedule that validates can be
evaluated at any step.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np

#: Steps, step counts and time constants in steps are below this (a step is an int64).
STEP_LIMIT = 2**63
#: The largest step: ``2**63 - 1``.
MAX_STEP = STEP_LIMIT - 1


class _Short(reprlib.Repr):
    """``repr`` for messages: as ``repr`` for ordinary values; long ones cut in the middle, deep
    ones cut at a few levels, integers too long to print given by their number of digits."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 4
        self.maxstring = self.maxother = 80
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = self.maxarray = 8
        self.maxlong = 40

    def repr_int(self, x: int, level: int) -> str:
        try:
            text = repr(x)
        except ValueError:  # beyond Python's limit on the digits it converts (4300)
            return f"<an integer of about {int(x.bit_length() * math.log10(2)) + 1} digits>"
        digits = len(text.lstrip("-"))
        if digits > self.maxlong:
            return f"{text[: self.maxlong // 2]}... ({digits} digits)"
        return text

    def repr_instance(self, x: Any, level: int) -> str:
        try:
            text = repr(x)
        except Exception:  # a repr that fails (a nested structure too deep, a broken object)
            return f"<{type(x).__name__} object>"
        if len(text) > self.maxother:
            half = (self.maxother - 3) // 2
            return f"{text[:half]}...{text[-half:]} ({len(text)} characters)"
        return text


_SHORT = _Short()


def shorten(value: Any) -> str:
    """``repr(value)`` for a message, cut when huge (a 400-digit integer, a long list, a long
    string), so a message names the bad value without repeating all of it."""
    try:
        return _SHORT.repr(value)
    except Exception:  # reprlib on an object whose len() or iteration fails
        return _SHORT.repr_instance(value, 0)


def _fail(owner: str, name: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"{owner}: {name}={shorten(value)} is invalid; expected {expected}")


def check_int(owner: str, name: str, value: Any, minimum: int = 0, maximum: int | None = None) -> int:
    """Return ``value`` as an int if it is a whole number >= ``minimum`` (``1e3`` is accepted).

    With ``maximum`` it must also be at most that (:data:`MAX_STEP` for a step count).
    """
    expected = f"an integer >= {minimum}"
    whole = None if isinstance(value, bool) else _whole(value)
    if whole is None or whole < minimum:
        raise _fail(owner, name, value, expected)
    if maximum is not None and whole > maximum:
        limit = "below 2**63" if maximum == MAX_STEP else f"<= {maximum}"
        raise _fail(owner, name, value, f"{expected} and {limit}")
    return whole


def _whole(value: Any) -> int | None:
    """``value`` as an int if it is a whole real number (``7``, ``7.0``, ``np.int64(7)``), else None."""
    if not isinstance(value, numbers.Real):
        return None
    try:
        if isinstance(value, numbers.Integral):
            return int(value)
        return int(value) if math.isfinite(value) and float(value).is_integer() else None
    except (OverflowError, TypeError, ValueError):  # a Real too large for a float, ...
        return None


def check_steps(owner: str, name: str, value: Any, minimum: int = 0) -> int:
    """A step count: an integer from ``minimum`` up to :data:`MAX_STEP` (below ``2**63``).

    A string is refused with a reminder of the durations in units a schedule accepts instead
    (``"5%"``, ``"2ep"``, ...: they never reach this check, see :mod:`~.units`).
    """
    if isinstance(value, str):
        raise _fail(owner, name, value, f"an integer >= {minimum} (updates) or a duration with a unit: "
                    "'5%' of the run, '2ep' epochs, '500ksp' samples or '2Btok' tokens")
    return check_int(owner, name, value, minimum, maximum=MAX_STEP)


def check_real(
    owner: str,
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a float if it is finite and inside the interval from ``low`` to ``high``.

    ``low_open`` / ``high_open`` exclude the end points.
    """
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    expected = f"a finite number in {left}{_bound(low)}, {_bound(high)}{right}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(owner, name, value, expected)
    try:
        as_float = float(value)
    except (OverflowError, TypeError, ValueError):  # an integer beyond the largest float, ...
        raise _fail(owner, name, value, expected) from None
    if not math.isfinite(as_float):
        raise _fail(owner, name, value, expected)
    too_low = as_float <= low if low_open else as_float < low
    too_high = as_float >= high if high_open else as_float > high
    if too_low or too_high:
        raise _fail(owner, name, value, expected)
    return as_float + 0.0  # -0.0 -> 0.0, so equal schedules have equal dicts and fingerprints


def _bound(x: float) -> str:
    return "2**63" if x == STEP_LIMIT else str(x)


def check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices`` (strings)."""
    if not isinstance(value, str) or value not in choices:
        raise _fail(owner, name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def check_sequence(owner: str, name: str, value: Any, expected: str) -> tuple[Any, ...]:
    """Return ``value`` as a tuple if it is a list, tuple or 1-d array (not a string or a mapping);
    ``expected`` says what its items should be."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return tuple(value.tolist())
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _fail(owner, name, value, f"a list of {expected}")
    return tuple(value)


def _unit(owner: str, name: str, value: Any) -> float:
    return check_real(owner, name, value, 0.0, 1.0)


def _positive(owner: str, name: str, value: Any) -> float:
    return check_real(owner, name, value, 0.0, low_open=True)


def _fraction(owner: str, name: str, value: Any) -> float:
    return check_real(owner, name, value, 0.0, 1.0, low_open=True)


def _beta(owner: str, name: str, value: Any) -> float:
    return check_real(owner, name, value, 0.0, 1.0, low_open=True, high_open=True)


def _in_steps(owner: str, name: str, value: Any) -> float:
    """A positive time constant in steps (or count of cycles), below ``2**63`` like any step."""
    return check_real(owner, name, value, 0.0, float(STEP_LIMIT), low_open=True, high_open=True)


def _every(owner: str, name: str, value: Any) -> int:
    return check_steps(owner, name, value, minimum=1)


#: A field check: ``check(owner, name, value)`` returns the normalised value or raises.
Check = Callable[[str, str, Any], Any]

#: How a schedule field is checked, by its name: the same name means the same rule everywhere.
#: A family that brings a new field name declares its check itself (``Schedule.field_checks``).
FIELD_CHECKS: dict[str, Check] = {
    "steps": check_steps,
    "every": _every,
    "start": _unit,
    "end": _unit,
    "value": _unit,
    "power": _positive,
    "cycles": _in_steps,
    "tau": _in_steps,
    "half_life": _in_steps,
    "timescale": _in_steps,
    "rate": _fraction,
    "gamma": _fraction,
    "beta2": _beta,
}


def check_step(step: Any) -> int | np.ndarray:
    """Validate the step passed to a schedule: an int >= 0, or an integer array of them.

    Returns a Python int or an int64 array. Floats are refused even when whole: a step is a
    count of completed optimizer updates.
    """
    expected = "expected an integer >= 0 or an integer array of them"
    if type(step) is int or (isinstance(step, numbers.Integral) and not isinstance(step, bool)):
        if step < 0:
            raise ValueError(f"step={shorten(step)} is invalid; expected an integer >= 0")
        return int(step)
    try:
        array = np.asarray(step)
    except (ValueError, TypeError, OverflowError, RecursionError) as err:  # ragged, too deep, ...
        raise ValueError(f"step={shorten(step)} is invalid; {expected} (NumPy: {err})") from None
    except MemoryError:  # NumPy refused to allocate it (range(10**15), say)
        raise ValueError(f"step={shorten(step)} is invalid; {expected} that fits in memory") from None
    if array.dtype.kind not in "iu":
        raise ValueError(f"step={shorten(step)} is invalid; {expected} (got dtype {array.dtype})")
    if array.size and array.min() < 0:
        raise ValueError(f"step contains {array.min()}; expected integers >= 0")
    if array.size and array.max() > MAX_STEP:
        raise ValueError(f"step contains {array.max()}; expected integers below 2**63")
    return array.astype(np.int64)
