"""Argument checks shared by every schedule.

Each check returns the normalised value or raises ``ValueError`` whose message names the
schedule, the argument, the bad value and what would be valid.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import numpy as np


def _fail(owner: str, name: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"{owner}: {name}={value!r} is invalid; expected {expected}")


def check_int(owner: str, name: str, value: Any, minimum: int = 0) -> int:
    """Return ``value`` as an int if it is a whole number >= ``minimum`` (``1e3`` is accepted)."""
    expected = f"an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(owner, name, value, expected)
    if isinstance(value, numbers.Integral):
        as_int = int(value)
    elif math.isfinite(value) and float(value).is_integer():
        as_int = int(value)
    else:
        raise _fail(owner, name, value, expected)
    if as_int < minimum:
        raise _fail(owner, name, value, expected)
    return as_int


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
    expected = f"a finite number in {left}{low}, {high}{right}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(owner, name, value, expected)
    as_float = float(value)
    if not math.isfinite(as_float):
        raise _fail(owner, name, value, expected)
    too_low = as_float <= low if low_open else as_float < low
    too_high = as_float >= high if high_open else as_float > high
    if too_low or too_high:
        raise _fail(owner, name, value, expected)
    return as_float + 0.0  # -0.0 -> 0.0, so equal schedules have equal dicts and fingerprints


def check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise _fail(owner, name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def _unit(owner: str, name: str, value: Any) -> float:
    return check_real(owner, name, value, 0.0, 1.0)


def _positive(owner: str, name: str, value: Any) -> float:
    return check_real(owner, name, value, 0.0, low_open=True)


def _fraction(owner: str, name: str, value: Any) -> float:
    return check_real(owner, name, value, 0.0, 1.0, low_open=True)


def _beta(owner: str, name: str, value: Any) -> float:
    return check_real(owner, name, value, 0.0, 1.0, low_open=True, high_open=True)


def _every(owner: str, name: str, value: Any) -> int:
    return check_int(owner, name, value, minimum=1)


#: A field check: ``check(owner, name, value)`` returns the normalised value or raises.
Check = Callable[[str, str, Any], Any]

#: How a schedule field is checked, by its name: the same name means the same rule everywhere.
#: A family that brings a new field name declares its check itself (``Schedule.field_checks``).
FIELD_CHECKS: dict[str, Check] = {
    "steps": check_int,
    "every": _every,
    "start": _unit,
    "end": _unit,
    "value": _unit,
    "power": _positive,
    "cycles": _positive,
    "tau": _positive,
    "half_life": _positive,
    "timescale": _positive,
    "rate": _fraction,
    "gamma": _fraction,
    "beta2": _beta,
}


def check_step(step: Any) -> int | np.ndarray:
    """Validate the step passed to a schedule: an int >= 0, or an integer array of them.

    Returns a Python int or an int64 array. Floats are refused even when whole: a step is a
    count of completed optimizer updates.
    """
    if type(step) is int or (isinstance(step, numbers.Integral) and not isinstance(step, bool)):
        if step < 0:
            raise ValueError(f"step={step!r} is invalid; expected an integer >= 0")
        return int(step)
    array = np.asarray(step)
    if array.dtype.kind not in "iu":
        raise ValueError(
            f"step={step!r} is invalid; expected an integer >= 0 or an integer array of them "
            f"(got dtype {array.dtype})"
        )
    if array.size and array.min() < 0:
        raise ValueError(f"step contains {array.min()}; expected integers >= 0")
    if array.size and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"step contains {array.max()}; expected integers below 2**63")
    return array.astype(np.int64)
