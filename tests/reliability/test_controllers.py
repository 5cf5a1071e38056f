"""Every controller survives any float for any signal: fuzzed signal streams.

For each controller in :data:`preheat.adaptive.CONTROLLERS`, built with its default arguments
and with a few non-default ones, random sequences of signal dicts (``loss``, ``grad_norm``,
``smoothness``, ``sharpness``; any float, NaN and infinities included, mixed with the extremes
1e308, -1e308, 5e-324, 0.0 and -0.0) are observed one by one, with peak LRs from 5e-324 to
1e308. After every observation the multiplier is a float in ``[floor, 1]`` during warmup (never
NaN), the warmup logged a decision with a reason and finite evidence, and the only exception
ever raised is ``ValueError`` (a NARS warmup refuses signals without ``loss``, as documented);
nothing else (no OverflowError, ZeroDivisionError, nor a NumPy warning). Whatever state a
stream leaves, its checkpoint loads and resumes exactly. Signals that are not numbers are
refused by name; an ``after`` schedule that a handover could not build is refused when built.
"""

from __future__ import annotations

import inspect
import json
import math
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preheat.adaptive import CONTROLLERS, Controller

TOTAL = 60
#: The arguments a controller cannot be built without (keyword-only, no default).
REQUIRED: dict[str, dict[str, Any]] = {"catapult_warmup": {"steps": 20}}
#: Non-default builds, by controller name: each dict is passed on top of REQUIRED.
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "catapult_warmup": [
        {"initial": 0.2, "steps": 5, "floor": 0.05, "max_step": 0.3},
        {"initial": 0.05, "persistent": True, "alpha": 1.0, "patience": 1, "spike_limit": 1.5},
    ],
    "nars_warmup": [
        {"interval": 3, "initial": 0.1, "reference_steps": 3, "decay": 1.0, "spike_patience": 1},
        {"interval": 4, "floor": 0.01, "max_step": 0.2, "backoff": 0.9, "threshold_raise": 0.0},
    ],
    "sharpness_warmup": [
        {"every": 1, "optimizer": "adam", "growth": 3.0, "max_jump": 1.5, "floor": 0.02},
        {"every": 2, "optimizer": "momentum", "fallback_steps": 3, "rho_back": 0.5},
    ],
    "smoothness_warmup": [
        {"rho": 1.0, "K0": 0.5, "K_rho": 2.0, "alpha": 1.0, "floor": 0.05},
        {"min_pairs": 3, "window": 5, "refit_every": 1, "alpha": 1.0, "guard": 2, "fallback_steps": 2},
        {"rho": 2.0, "K0": 0.0, "K_rho": 1e-3, "growth": 2.0, "f_star": -1e308},
        {"min_pairs": 3, "refit_every": 2, "f_star": 1e300, "max_rho": 50.0, "c": 1.9},
    ],
}
SIGNALS = ("loss", "grad_norm", "smoothness", "sharpness")
EXTREMES = (1e308, -1e308, 5e-324, -5e-324, 0.0, -0.0, 1e154, 1.7976931348623157e308)
PEAKS = (5e-324, 1e-3, 0.1, 2.0, 1e308)


def builds() -> list[tuple[str, Callable[[], Controller]]]:
    """(id, factory) for every controller: its defaults, then each of its variants."""
    cases = []
    for cls in CONTROLLERS:
        required = REQUIRED.get(cls.name, {})
        for i, extra in enumerate([{}, *VARIANTS.get(cls.name, [])]):
            kwargs = {**required, **extra}
            cases.append((f"{cls.name}-{'default' if i == 0 else i}",
                          lambda cls=cls, kwargs=kwargs: cls(TOTAL, **kwargs)))
    return cases


BUILDS = builds()

values = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(EXTREMES)
signal_dicts = st.dictionaries(st.sampled_from(SIGNALS), values)


def test_every_controller_is_fuzzed_and_needs_only_the_listed_arguments() -> None:
    names = {cls.name for cls in CONTROLLERS}
    assert set(VARIANTS) <= names and set(REQUIRED) <= names
    for cls in CONTROLLERS:
        required = {p.name for p in inspect.signature(cls).parameters.values()
                    if p.default is inspect.Parameter.empty and p.kind is p.KEYWORD_ONLY}
        assert required == set(REQUIRED.get(cls.name, {})), cls.name


@pytest.mark.filterwarnings("error")  # no RuntimeWarning from NumPy either: nothing overflows
@pytest.mark.parametrize(("case", "make"), BUILDS, ids=[case for case, _ in BUILDS])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=st.lists(signal_dicts, max_size=TOTAL + 5), peak=st.sampled_from(PEAKS))
def test_any_float_for_any_signal_gives_a_multiplier_in_bounds(
        case: str, make: Callable[[], Controller], stream: list[dict[str, float]], peak: float) -> None:
    controller = make()
    controller.bind(peak)
    floor = controller.bounds.floor
    for signals in stream:
        logged, warming = len(controller.decisions), controller.handover_step is None
        try:
            value = controller.observe(**signals)
        except ValueError:
            assert controller.name == "nars_warmup" and "loss" not in signals, signals
            continue
        assert isinstance(value, float) and not math.isnan(value), (signals, value)
        assert floor <= value <= 1.0 and value == controller.multiplier(), (signals, value)
        if warming:
            assert len(controller.decisions) == logged + 1, signals
            decision = controller.decisions[-1]
            assert decision.reason and decision.multiplier == value, decision
            assert all(math.isfinite(v) for v in decision.evidence.values()), decision
    # whatever state the stream left, a checkpoint of it loads and resumes exactly
    state = json.loads(json.dumps(controller.state_dict()))
    resumed = make()
    resumed.load_state_dict(state)
    assert resumed.state_dict() == controller.state_dict()
    assert resumed.observe(loss=1.0, sharpness=2.0) == controller.observe(loss=1.0, sharpness=2.0)


@pytest.mark.parametrize(("case", "make"), BUILDS[:1] + BUILDS[-1:], ids=[BUILDS[0][0], BUILDS[-1][0]])
@pytest.mark.parametrize("value", ["1.5", None, [1.0], b"1", complex(1, 2)])
def test_a_signal_that_is_not_a_number_is_refused_by_name(case: str, make: Callable[[], Controller],
                                                          value: Any) -> None:
    controller = make()
    before = controller.state_dict()
    with pytest.raises(ValueError, match="signal loss="):
        controller.observe(loss=value)
    assert controller.state_dict() == before


def test_an_int_beyond_the_float_range_is_backed_off_as_infinite() -> None:
    controller = BUILDS[0][1]()
    controller.observe(loss=10**400)
    assert controller.decisions[-1].action == "backoff" and "loss" in controller.decisions[-1].reason


@pytest.mark.parametrize("after", ["inverse_sqrt({steps})", "warmup_cosine(1, {steps})", "exponential_decay({steps})"])
def test_an_after_schedule_that_a_handover_could_not_build_is_refused_when_built(after: str) -> None:
    # each builds for {steps}=1 but not for 0 (a handover at total) or for total - 1
    with pytest.raises(ValueError, match=r"after=.*for \{steps\}="):
        CONTROLLERS[0](TOTAL, after=after, **REQUIRED.get(CONTROLLERS[0].name, {}))


@pytest.mark.parametrize("value", [None, "x", [1.0], 10**400])
def test_a_scheduler_passes_on_a_signal_the_controller_refuses_by_name_or_backs_off(value: Any) -> None:
    import torch

    from preheat.torch import Scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    scheduler = Scheduler(optimizer, BUILDS[0][1]())
    optimizer.step()
    if value == 10**400:  # a number beyond the float range: backed off
        scheduler.step(loss=value)
        assert scheduler.controller.decisions[-1].action == "backoff"
        return
    before = (scheduler.state_dict(), optimizer.param_groups[0]["lr"])
    with pytest.raises(ValueError, match="signal loss="):
        scheduler.step(loss=value)
    assert (scheduler.state_dict(), optimizer.param_groups[0]["lr"]) == before
