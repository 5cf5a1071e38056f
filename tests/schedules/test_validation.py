"""Bad arguments raise ValueError naming the argument and the bad value; bad steps raise too."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest

from preheat import schedules as S
from preheat.schedules import Schedule
from preheat.schedules.validate import Check, check_real

NAN, INF = float("nan"), float("inf")

# pytest.param(build(value), argument name, bad value)
BAD = []

STEP_OWNERS = {
    "linear_warmup": lambda v: S.linear_warmup(v),
    "cosine_warmup": lambda v: S.cosine_warmup(v),
    "polynomial_warmup": lambda v: S.polynomial_warmup(v, 2.0),
    "exponential_warmup": lambda v: S.exponential_warmup(tau=5.0, steps=v),
    "radam_warmup": lambda v: S.radam_warmup(0.999, steps=v),
    "constant": lambda v: S.constant(steps=v),
    "linear_decay": lambda v: S.linear_decay(v),
    "cosine_decay": lambda v: S.cosine_decay(v),
    "cosine_restarts": lambda v: S.cosine_restarts(v),
    "polynomial_decay": lambda v: S.polynomial_decay(v),
    "exponential_decay": lambda v: S.exponential_decay(rate=0.9, steps=v),
    "one_minus_sqrt_decay": lambda v: S.one_minus_sqrt_decay(v),
}
for owner, build in STEP_OWNERS.items():
    for value in (-1, -100, 10.5, 1e-3, NAN, INF, -INF, True, False, "10"):
        BAD.append(pytest.param(build, "steps", value, id=f"{owner}-steps={value!r}"))
for owner in ("linear_warmup", "cosine_decay", "linear_decay"):
    BAD.append(pytest.param(STEP_OWNERS[owner], "steps", None, id=f"{owner}-steps=None"))

# start / end / value outside [0, 1], NaN, inf
for value in (1.5, 1.0000001, -0.1, NAN, INF):
    BAD.append(pytest.param(lambda v: S.linear_warmup(10, start=v), "start", value, id=f"linear_warmup-start={value}"))
    BAD.append(pytest.param(lambda v: S.cosine_warmup(10, start=v), "start", value, id=f"cosine_warmup-start={value}"))
    BAD.append(pytest.param(lambda v: S.polynomial_warmup(10, 2.0, start=v), "start", value, id=f"poly_warmup-start={value}"))
    BAD.append(pytest.param(lambda v: S.linear_decay(10, end=v), "end", value, id=f"linear_decay-end={value}"))
    BAD.append(pytest.param(lambda v: S.cosine_decay(10, end=v), "end", value, id=f"cosine_decay-end={value}"))
    BAD.append(pytest.param(lambda v: S.cosine_restarts(10, end=v), "end", value, id=f"cosine_restarts-end={value}"))
    BAD.append(pytest.param(lambda v: S.polynomial_decay(10, end=v), "end", value, id=f"poly_decay-end={value}"))
    BAD.append(pytest.param(lambda v: S.one_minus_sqrt_decay(10, end=v), "end", value, id=f"1-sqrt-end={value}"))
    BAD.append(pytest.param(lambda v: S.constant(value=v), "value", value, id=f"constant-value={value}"))
    BAD.append(pytest.param(lambda v: S.warmup_cosine(10, 100, end=v), "end", value, id=f"warmup_cosine-end={value}"))
    BAD.append(pytest.param(lambda v: S.warmup_linear(10, 100, start=v), "start", value, id=f"warmup_linear-start={value}"))
    BAD.append(pytest.param(lambda v: S.wsd(10, 100, end=v), "end", value, id=f"wsd-end={value}"))

# beta2 outside (0, 1)
for value in (0, 0.0, 1, 1.0, 1.5, -0.1, NAN, INF):
    BAD.append(pytest.param(S.untuned_linear_warmup, "beta2", value, id=f"untuned-beta2={value}"))
    BAD.append(pytest.param(lambda v: S.exponential_warmup(beta2=v), "beta2", value, id=f"exp_warmup-beta2={value}"))
    BAD.append(pytest.param(S.radam_warmup, "beta2", value, id=f"radam-beta2={value}"))
# RAdam's rectification never switches on for beta2 <= 2/3
for value in (0.5, 0.6, 2 / 3, 0.1):
    BAD.append(pytest.param(S.radam_warmup, "beta2", value, id=f"radam-beta2={value:.4f}"))

# other positive reals
for value in (0, 0.0, -1.0, NAN, INF):
    BAD.append(pytest.param(lambda v: S.exponential_warmup(tau=v), "tau", value, id=f"tau={value}"))
    BAD.append(pytest.param(lambda v: S.polynomial_warmup(10, v), "power", value, id=f"poly_warmup-power={value}"))
    BAD.append(pytest.param(lambda v: S.polynomial_decay(10, power=v), "power", value, id=f"poly_decay-power={value}"))
    BAD.append(pytest.param(lambda v: S.cosine_decay(10, cycles=v), "cycles", value, id=f"cosine-cycles={value}"))
    BAD.append(pytest.param(lambda v: S.cosine_restarts(10, cycles=v), "cycles", value, id=f"restarts-cycles={value}"))
    BAD.append(pytest.param(lambda v: S.exponential_decay(half_life=v), "half_life", value, id=f"half_life={value}"))
    BAD.append(pytest.param(S.inverse_sqrt, "timescale", value, id=f"timescale={value}"))
for value in (0, 0.0, 1.5, -0.1, NAN):
    BAD.append(pytest.param(lambda v: S.exponential_decay(rate=v), "rate", value, id=f"rate={value}"))
    BAD.append(pytest.param(lambda v: S.step_decay(every=10, gamma=v), "gamma", value, id=f"gamma={value}"))
for value in (0, -3, 2.5, True):
    BAD.append(pytest.param(lambda v: S.step_decay(every=v), "every", value, id=f"every={value}"))
for value in ([0], [-1, 5], [2.5]):
    BAD.append(pytest.param(lambda v: S.step_decay(milestones=v), "milestones", value, id=f"milestones={value}"))
for value in ([5, 5], [10, 5]):
    BAD.append(pytest.param(lambda v: S.step_decay(milestones=v), "milestones", value, id=f"milestones={value}"))

# presets
BAD.append(pytest.param(lambda v: S.wsd(10, 100, shape=v), "shape", "stepwise", id="wsd-shape"))
BAD.append(pytest.param(lambda v: S.wsd(10, 100, decay_fraction=v), "decay_fraction", 0.0, id="wsd-fraction0"))
BAD.append(pytest.param(lambda v: S.wsd(10, 100, decay_fraction=v), "decay_fraction", 1.2, id="wsd-fraction>1"))
BAD.append(pytest.param(lambda v: S.warmup_cosine(v, 100), "warmup", 101, id="warmup_cosine-warmup>total"))
BAD.append(pytest.param(lambda v: S.warmup_linear(v, 100), "warmup", 150, id="warmup_linear-warmup>total"))
BAD.append(pytest.param(lambda v: S.wsd(v, 100), "warmup", 101, id="wsd-warmup>total"))
BAD.append(pytest.param(lambda v: S.warmup_cosine(10, v), "total", -5, id="warmup_cosine-total<0"))
BAD.append(pytest.param(lambda v: S.warmup_cosine(v, 100), "warmup", True, id="warmup_cosine-warmup=True"))
BAD.append(pytest.param(lambda v: S.from_hf_name(v, 10, 100), "name", "cosine_annealing", id="hf-name"))
BAD.append(pytest.param(lambda v: S.from_hf_name("linear", v, 100), "num_warmup_steps", -1, id="hf-warmup<0"))
BAD.append(pytest.param(lambda v: S.from_hf_name("linear", v, 100), "num_warmup_steps", 2.5, id="hf-warmup=2.5"))
BAD.append(pytest.param(lambda v: S.from_hf_name("linear", 200, v), "warmup=200", 100, id="hf-warmup>total"))
BAD.append(
    pytest.param(
        lambda v: S.from_hf_name("warmup_stable_decay", 2, 10, num_decay_steps=3, decay_type=v),
        "decay_type",
        "exponential",
        id="hf-wsd-decay_type",
    )
)
BAD.append(
    pytest.param(
        lambda v: S.from_hf_name("warmup_stable_decay", 2, 10, num_decay_steps=3, min_lr_ratio=v),
        "min_lr_ratio",
        1.5,
        id="hf-wsd-min_lr_ratio",
    )
)
BAD.append(
    pytest.param(
        lambda v: S.from_hf_name("warmup_stable_decay", 2, 10, num_decay_steps=v), "num_decay_steps", -3, id="hf-wsd-decay<0"
    )
)


def _shown(name, value) -> list[str]:
    """Ways the bad value may appear in the message: repr, str, or for a list, the list or
    the offending item as ``name=item``."""
    forms = {repr(value), str(value)}
    if isinstance(value, list):
        forms |= {str(tuple(value))} | {f"{name}={item!r}" for item in value}
    return sorted(forms)


@pytest.mark.parametrize(("build", "name", "value"), BAD)
def test_bad_argument_raises_value_error_naming_it(build, name, value):
    with pytest.raises(ValueError) as info:
        build(value)
    message = str(info.value)
    assert name in message, message
    assert any(form in message for form in _shown(name, value)), message
    assert "expected" in message or "invalid" in message or "longer" in message, message


# -- exactly one of two forms ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "names"),
    [
        (lambda: S.exponential_warmup(), ("tau", "beta2")),
        (lambda: S.exponential_warmup(tau=10.0, beta2=0.999), ("tau", "beta2", "10.0", "0.999")),
        (lambda: S.exponential_decay(), ("rate", "half_life")),
        (lambda: S.exponential_decay(rate=0.9, half_life=10.0), ("rate", "half_life", "0.9", "10.0")),
        (lambda: S.step_decay(), ("every", "milestones")),
        (lambda: S.step_decay(every=10, milestones=[20]), ("every", "milestones", "10", "20")),
    ],
)
def test_exactly_one_of_two_forms(build, names):
    with pytest.raises(ValueError) as info:
        build()
    for n in names:
        assert n in str(info.value)


def test_radam_threshold_boundary():
    # Just above 2/3, rho_inf > 5 and the rectification eventually switches on.
    s = S.radam_warmup(0.67)
    assert s(10_000) > 0.0
    assert 2 / (1 - 0.67) - 1 > 5


def test_untuned_beta2_extremes_are_valid():
    assert S.untuned_linear_warmup(1e-9).period == 2
    assert S.untuned_linear_warmup(1e-9)(1) == 1.0


def test_validation_accepts_whole_floats_and_numpy_numbers():
    assert S.linear_warmup(1e3).steps == 1000
    assert S.linear_warmup(np.int64(7)).steps == 7
    assert S.linear_warmup(np.float64(7.0)).steps == 7
    assert S.cosine_decay(10, end=np.float32(0.5)).end == 0.5
    assert type(S.linear_warmup(np.int64(7)).steps) is int
    assert type(S.cosine_decay(10, end=np.float32(0.5)).end) is float


# -- evaluation ---------------------------------------------------------------------------------

SCHEDULES = [
    S.linear_warmup(10),
    S.constant(),
    S.linear_warmup(10) >> S.cosine_decay(90),
    S.exponential_warmup(beta2=0.999) * S.cosine_decay(100),
    S.step_decay(every=3),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=str)
@pytest.mark.parametrize(
    "step",
    [-1, -10**12, 1.0, 2.5, NAN, INF, True, "3", None, np.float64(2.0), np.float32(2.0)],
    ids=repr,
)
def test_bad_scalar_steps_raise(schedule, step):
    with pytest.raises(ValueError) as info:
        schedule(step)
    assert "step" in str(info.value)
    if isinstance(step, (int, float)) and not isinstance(step, bool) and not math.isnan(step):
        assert str(step) in str(info.value) or repr(step) in str(info.value)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=str)
@pytest.mark.parametrize(
    "steps",
    [
        np.array([0.0, 1.0, 2.0]),
        np.array([0, 1, 2], dtype=np.float32),
        np.array([0, -1, 2]),
        np.array([[0, 1], [2, -5]]),
        np.array([True, False]),
        np.array(["1", "2"]),
        [0, 1.5],
        [0, -1],
    ],
    ids=["float64", "float32", "negative", "negative2d", "bool", "str", "list-float", "list-negative"],
)
def test_bad_step_arrays_raise(schedule, steps):
    with pytest.raises(ValueError, match="step"):
        schedule(steps)


def test_negative_step_message_names_the_value():
    with pytest.raises(ValueError, match=r"step.*-3"):
        S.linear_warmup(10)(-3)
    with pytest.raises(ValueError, match=r"-7"):
        S.linear_warmup(10)(np.array([1, -7, 2]))


def test_huge_unsigned_steps_do_not_wrap_to_negative():
    """uint64 steps >= 2**63 must not become negative int64 steps (a negative multiplier)."""
    s = S.linear_warmup(10)
    steps = np.array([5, 2**63, 2**64 - 1], dtype=np.uint64)
    try:
        values = s(steps)
    except ValueError:
        return  # refusing them is fine too
    assert np.all(values >= 0.0)
    np.testing.assert_array_equal(values, [0.5, 1.0, 1.0])


def test_huge_python_int_steps_hold_the_final_value():
    assert S.linear_warmup(10)(10**30) == 1.0
    assert S.cosine_decay(10, end=0.1)(10**30) == pytest.approx(0.1)
    assert S.step_decay(milestones=[5])(10**30) == pytest.approx(0.1)


def _floor(owner: str, name: str, value: Any) -> float:
    return check_real(owner, name, value, 0.0, 1.0)


def test_a_family_declares_the_check_of_a_field_name_it_brings(monkeypatch):
    monkeypatch.setattr(Schedule, "registry", dict(Schedule.registry))  # this test's family only

    @dataclass(frozen=True, repr=False)
    class Floored(Schedule):
        name: ClassVar[str] = "floored_example"
        field_checks: ClassVar[dict[str, Check]] = {"floor": _floor}
        steps: int
        floor: float = 0.1

        def _at(self, t: Any, xp: Any) -> Any:
            return xp.maximum(1.0 - t / self.steps, self.floor)

    assert Floored(10, floor=0.5)(8) == 0.5
    assert Floored(10, floor=1).floor == 1.0  # normalised by its check
    with pytest.raises(ValueError, match=r"floored_example: floor=2 is invalid; expected a finite number in \[0.0, 1.0\]"):
        Floored(10, floor=2)
    with pytest.raises(ValueError, match="floored_example: steps=-1"):  # shared names keep their rule
        Floored(-1)


def test_a_family_cannot_redefine_the_check_of_a_shared_field_name():
    with pytest.raises(TypeError, match=r"field_checks redefines \['start'\]"):

        class Loose(Schedule):
            field_checks: ClassVar[dict[str, Check]] = {"start": _floor}
