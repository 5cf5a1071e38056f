"""AutoWU (Kim et al. 2021): the exponential ramp against its formula, the GP test on synthetic
losses (falling: never passes; a minimum in the past: passes and hands over after `patience`
tests in a row, reset to the rate at the GP minimum), handover at `warmup` at the latest, exact
resume, NaN backoff and argument validation."""

from __future__ import annotations

import json
import math
from typing import Iterator

import numpy as np
import pytest

from preheat.adaptive import autowu
from preheat.adaptive.autowu import AutoWUWarmup, gp_minimum_test
from preheat.schedules import parse


def falling(n: int, seed: int = 0) -> list[float]:
    """A loss falling geometrically from 5 to 0.5 with 5% multiplicative noise."""
    rng = np.random.default_rng(seed)
    return list(np.geomspace(5.0, 0.5, n) * np.exp(rng.normal(0.0, 0.05, n)))


def u_shaped(controller: AutoWUWarmup, best: float = 0.1, seed: int = 0) -> Iterator[float]:
    """Losses of a run whose loss is lowest at the multiplier ``best``: ``(log10(m / best))^2 + 1``
    plus noise, ``m`` the controller's multiplier when the loss is taken."""
    rng = np.random.default_rng(seed)
    while True:
        yield math.log10(controller.multiplier() / best) ** 2 + 1.0 + rng.normal(0.0, 0.05)


def gp_tests(controller: AutoWUWarmup) -> list:
    return [d for d in controller.decisions if "GP test" in d.reason]


# -- the ramp --------------------------------------------------------------------------------


def test_ramp_follows_the_exponential_formula_and_reaches_the_peak_at_warmup() -> None:
    total, warmup, initial = 300, 120, 2e-3
    ctrl = AutoWUWarmup(total, warmup=warmup, initial=initial, interval=10**6, after="constant()")
    gamma = (1.0 / initial) ** (1.0 / warmup)  # lr_t = min_lr * gamma^t, written independently
    assert ctrl.multiplier() == initial  # update 0
    assert ctrl.gamma == pytest.approx(gamma, rel=1e-15)
    seen = [ctrl.multiplier()] + [ctrl.observe(loss=loss, grad_norm=1.0) for loss in falling(warmup)]
    for t, value in enumerate(seen[:warmup]):
        assert value == pytest.approx(initial * gamma**t, rel=1e-12), t
    assert seen[warmup] == 1.0  # exactly the peak at update `warmup`
    assert ctrl.handover_step == warmup and ctrl.decisions[-1].action == "handover"
    assert "reached warmup=120" in ctrl.decisions[-1].reason
    assert all(d.action == "raise" for d in ctrl.decisions[:-1])
    assert ctrl.observe(loss=float("nan")) == 1.0  # constant() after the handover, signals ignored


def test_default_warmup_is_half_the_run_and_the_ramp_is_exact_there() -> None:
    assert AutoWUWarmup(101).interval == 1
    ctrl = AutoWUWarmup(101, interval=10**6)
    assert ctrl.warmup == 50 and ctrl.initial == 1e-3
    assert AutoWUWarmup(1000).interval == 10
    for loss in falling(50):
        ctrl.observe(loss=loss)
    assert ctrl.handover_step == 50 and ctrl.multiplier() == 1.0


def test_floor_lifts_update_0_and_the_ramp_goes_on_from_there() -> None:
    ctrl = AutoWUWarmup(100, warmup=50, initial=1e-3, floor=0.01, interval=10**6)
    assert ctrl.multiplier() == 0.01
    assert ctrl.observe(loss=1.0) == pytest.approx(0.01 * ctrl.gamma, rel=1e-12)


def test_max_step_limits_every_warmup_change() -> None:
    ctrl = AutoWUWarmup(400, initial=1e-3, max_step=0.002, after="cosine_decay({steps})")
    values = [ctrl.multiplier()]
    for loss in u_shaped(ctrl, best=0.01):
        values.append(ctrl.observe(loss=loss))
        if ctrl.handover_step is not None:
            break
    warm = values[:-1] + [ctrl.current]
    assert max(abs(b - a) for a, b in zip(warm, warm[1:])) <= 0.002 + 1e-15


# -- the GP test -----------------------------------------------------------------------------


def test_gp_test_direct_falling_fails_and_a_past_minimum_passes() -> None:
    n = 200
    x = np.linspace(0.0, 1.0, n)
    rng = np.random.default_rng(3)
    rates = list(np.geomspace(1e-3, 1.0, n))
    down = gp_minimum_test(3.0 * np.exp(-2.0 * x) + rng.normal(0.0, 0.05, n), rates, seed=0)
    assert down["passed"] == 0.0 and down["votes"] == 0.0 and down["probability"] < 0.95
    valley = (x - 0.6) ** 2 * 10.0 + rng.normal(0.0, 0.05, n)
    up = gp_minimum_test(valley, rates, seed=0)
    assert up["passed"] == 1.0 and up["votes"] == 5.0 and up["probability"] > 0.95
    assert abs(up["argmin_update"] - 0.6 * (n - 1)) < 0.05 * n
    assert up["reset"] == rates[int(up["argmin_update"])]
    flat = gp_minimum_test([2.0] * 50, rates[:50])
    assert flat["passed"] == 0.0 and flat["probability"] == 0.5
    huge = gp_minimum_test(list(valley * 1e300), rates, seed=0)  # no overflow: the same answer
    assert huge["passed"] == 1.0 and huge["argmin_update"] == up["argmin_update"]


def test_gp_test_subsamples_more_than_points_and_is_deterministic_in_its_seed() -> None:
    n = 120
    x = np.linspace(0.0, 1.0, n)
    y = list((x - 0.5) ** 2 + np.random.default_rng(0).normal(0.0, 0.2, n))
    rates = list(np.linspace(0.01, 1.0, n))
    a = gp_minimum_test(y, rates, points=40, seed=(7, n))
    assert a == gp_minimum_test(y, rates, points=40, seed=(7, n))
    assert a["points"] == 40.0
    assert a != gp_minimum_test(y, rates, points=40, seed=(8, n))  # other draws


def test_a_falling_loss_never_passes_and_hands_over_at_warmup() -> None:
    ctrl = AutoWUWarmup(400, after="cosine_decay({steps})")
    for loss in falling(400, seed=1):
        ctrl.observe(loss=loss, grad_norm=1.0)
        if ctrl.handover_step is not None:
            break
    tests = gp_tests(ctrl)
    assert len(tests) == (200 - 20) // 4 + 1  # every 4 losses from the 20th
    assert all(d.evidence["passed"] == 0.0 for d in tests)
    assert ctrl.handover_step == 200 and "reached warmup=200" in ctrl.decisions[-1].reason
    assert ctrl.multiplier() == 1.0  # cosine_decay(200) at its step 0, from the peak


def independent_gp_argmin(losses: list[float], ratio: float, lengthscale: float = 0.2) -> int:
    """The loss index nearest the argmin of the GP posterior mean, computed directly."""
    y = np.asarray(losses)
    y = (y - y.mean()) / y.std()
    n = y.size
    x = np.arange(n) / (n - 1)
    grid = np.linspace(0.0, 1.0, 500)
    k = lambda a, b: np.exp(-((a[:, None] - b[None, :]) ** 2) / (2 * lengthscale**2))  # noqa: E731
    mean = k(grid, x) @ np.linalg.solve(k(x, x) + ratio * np.eye(n), y)
    return int(round(grid[np.argmin(mean)] * (n - 1)))


@pytest.mark.parametrize("patience", [1, 3])
def test_a_past_minimum_passes_and_hands_over_after_patience_resetting_to_the_gp_minimum(patience: int) -> None:
    ctrl = AutoWUWarmup(400, patience=patience, after="cosine_decay({steps})")
    for loss in u_shaped(ctrl, best=0.1):
        ctrl.observe(loss=loss, grad_norm=1.0)
        if ctrl.handover_step is not None:
            break
    h = ctrl.handover_step
    assert h is not None and h < 200  # before the ramp's end
    tests = gp_tests(ctrl)
    passed = [d.evidence["passed"] for d in tests]
    assert passed[-patience:] == [1.0] * patience and (len(passed) == patience or passed[-patience - 1] == 0.0)
    last = ctrl.decisions[-1]
    assert last.action == "handover" and "stopped falling" in last.reason and last.evidence["passes"] == patience
    # the reset: the multiplier in use at the loss nearest the posterior mean's argmin
    index = independent_gp_argmin(ctrl.state.losses, last.evidence["noise_ratio"])
    assert last.evidence["argmin_update"] == index
    reset = ctrl.state.rates[index]
    assert ctrl.current == reset == last.evidence["reset"]
    assert 0.03 < reset < 0.3  # near the loss's minimum at 0.1 of the peak
    after = parse(f"cosine_decay({400 - h})")
    assert ctrl.multiplier() == pytest.approx(reset * after(0))
    for k in range(1, 5):
        assert ctrl.observe(loss=1.0) == pytest.approx(reset * after(k), rel=1e-12)


def test_a_failed_test_resets_the_count_of_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    script = iter([1.0, 1.0, 0.0, 1.0, 1.0, 1.0])

    def scripted(losses, rates, **kw) -> dict[str, float]:
        return {"passed": next(script), "votes": 5.0, "probability": 0.99, "argmin_update": 0.0,
                "reset": rates[0], "noise_ratio": 0.01, "points": float(len(losses))}

    monkeypatch.setattr(autowu, "gp_minimum_test", scripted)
    ctrl = AutoWUWarmup(1000, interval=5, min_points=5)
    for loss in falling(100):
        ctrl.observe(loss=loss)
        if ctrl.handover_step is not None:
            break
    assert [d.evidence["passes"] for d in gp_tests(ctrl)] == [1, 2, 0, 1, 2, 3]
    assert ctrl.handover_step == 30 and ctrl.current == 1e-3  # reset to the first loss's rate


def test_reset_is_never_above_the_current_multiplier(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(autowu, "gp_minimum_test", lambda losses, rates, **kw: {
        "passed": 1.0, "votes": 5.0, "probability": 1.0, "argmin_update": 5.0, "reset": rates[5],
        "noise_ratio": 0.01, "points": 9.0})
    ctrl = AutoWUWarmup(1000, interval=1, min_points=9, patience=1)
    for loss in [1.0] * 8:
        ctrl.observe(loss=loss)
    ctrl.observe(loss=math.nan)  # backoff after the loss at update 5
    ctrl.observe(loss=1.0)
    assert ctrl.handover_step == 10 and ctrl.current == ctrl.state.rates[-1] < ctrl.state.rates[5]


# -- NaN, missing loss -----------------------------------------------------------------------


def test_nan_loss_backs_off_and_the_ramp_resumes_from_the_cut_value() -> None:
    ctrl = AutoWUWarmup(200, interval=10**6)
    for loss in falling(10):
        ctrl.observe(loss=loss)
    before = ctrl.current
    assert ctrl.observe(loss=float("nan"), grad_norm=1.0) == pytest.approx(before * 0.5)
    assert ctrl.decisions[-1].action == "backoff" and "loss" in ctrl.decisions[-1].reason
    assert len(ctrl.state.losses) == 10  # a NaN loss is not data for the GP
    assert ctrl.observe(loss=1.0) == pytest.approx(before * 0.5 * ctrl.gamma, rel=1e-12)
    assert ctrl.observe(grad_norm=1.0) == ctrl.current and ctrl.decisions[-1].action == "hold"


def test_a_nan_at_the_last_ramp_update_hands_over_at_the_next_finite_loss() -> None:
    ctrl = AutoWUWarmup(100, warmup=20, interval=10**6)
    for loss in falling(19):
        ctrl.observe(loss=loss)
    ctrl.observe(loss=math.inf)
    assert ctrl.handover_step is None
    ctrl.observe(loss=1.0)
    assert ctrl.handover_step == 21 and ctrl.current < 1.0


# -- resume ----------------------------------------------------------------------------------


def test_exact_resume_mid_warmup_and_after_the_handover() -> None:
    def build() -> AutoWUWarmup:
        ctrl = AutoWUWarmup(600, interval=3, points=40, patience=3, seed=5, after="cosine_decay({steps})")
        ctrl.bind(0.3)
        return ctrl

    first = build()
    stream = u_shaped(first, best=0.05, seed=2)
    for _ in range(150):  # past several tests, with subsampled draws (150 > points)
        first.observe(loss=next(stream), grad_norm=1.0)
    assert first.handover_step is None and len(gp_tests(first)) > 10
    saved = json.loads(json.dumps(first.state_dict()))
    second = build()
    second.load_state_dict(saved)
    assert second.state_dict() == first.state_dict()
    losses = [next(stream) for _ in range(300)]  # the same losses from here on for both
    a = [first.observe(loss=loss) for loss in losses]
    b = [second.observe(loss=loss) for loss in losses]
    assert a == b and first.handover_step == second.handover_step is not None
    assert first.state_dict() == second.state_dict()
    third = build()
    third.load_state_dict(json.loads(json.dumps(first.state_dict())))  # after the handover
    assert [third.observe(loss=1.0) for _ in range(5)] == [first.observe(loss=1.0) for _ in range(5)]


def test_load_state_dict_checks_the_autowu_fields() -> None:
    ctrl = AutoWUWarmup(100, interval=10**6)
    for loss in falling(5):
        ctrl.observe(loss=loss)
    good = ctrl.state_dict()
    for key, value, fragment in [("rates", [0.5] * 4, "rates"), ("rates", [2.0] * 5, "rates"),
                                 ("passes", 4, "passes"), ("losses", [1.0] * 6, "losses")]:
        bad = json.loads(json.dumps(good))
        bad["state"][key] = value
        with pytest.raises(ValueError, match=fragment):
            ctrl.load_state_dict(bad)
    assert ctrl.state_dict() == good


# -- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, fragment", [
    ({"total": 0}, "total=0"),
    ({"warmup": 0}, "warmup=0"),
    ({"warmup": 101}, "warmup=101"),
    ({"initial": 0.0}, "initial=0.0"),
    ({"initial": 1.5}, "initial=1.5"),
    ({"initial": math.nan}, "initial=nan"),
    ({"interval": 0}, "interval=0"),
    ({"patience": 0}, "patience=0"),
    ({"draws": 0}, "draws=0"),
    ({"confidence": 0.5}, "confidence=0.5"),
    ({"confidence": 1.0}, "confidence=1.0"),
    ({"lengthscale": -0.1}, "lengthscale=-0.1"),
    ({"min_points": 2}, "min_points=2"),
    ({"points": 10}, "points=10"),  # below min_points=20
    ({"seed": -1}, "seed=-1"),
    ({"seed": 1.5}, "seed=1.5"),
    ({"floor": 2.0}, "floor=2.0"),
    ({"after": "nonsense("}, "after="),
])
def test_bad_arguments_raise_naming_them(kwargs: dict, fragment: str) -> None:
    args = {"total": 100, **kwargs}
    with pytest.raises(ValueError, match=r"autowu_warmup: .*" + fragment.replace("(", r"\(") + ".*expected"):
        AutoWUWarmup(**args)
