"""The smoothness-, sharpness- and catapult-guided warmups: their rules on synthetic signal
streams, NaN safety, exact resume, handover, validation, and one real run each on the river
valley at a peak LR where a constant LR diverges."""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Iterable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import preheat
from preheat.adaptive.base import Controller
from preheat.adaptive.catapult import CatapultWarmup
from preheat.adaptive.sharpness import SharpnessWarmup, stability_rule, stability_threshold
from preheat.adaptive.smoothness import SmoothnessWarmup, fit_smoothness_law
from preheat.lab.tasks import make_task


def drive(controller: Controller, stream: Iterable[dict[str, float]]) -> list[float]:
    """Feed ``stream``; return the multipliers of updates 0, 1, ..., one more than signals."""
    values = [controller.multiplier()]
    for signals in stream:
        values.append(controller.observe(**signals))
    return values


def falling_losses(n: int, start: float = 50.0, end: float = 0.05, seed: int = 0) -> list[float]:
    """A loss falling geometrically from ``start`` to ``end`` with 10% multiplicative noise."""
    rng = np.random.default_rng(seed)
    base = np.geomspace(start, end, n)
    return list(base * np.exp(rng.normal(0.0, 0.1, n)))


# -- SmoothnessWarmup ------------------------------------------------------------------------


def test_smoothness_given_constants_follow_the_formula_on_an_independent_ema() -> None:
    rho, k0, k_rho, c, f_star, alpha, peak = 1.5, 2.0, 3.0, 0.8, 0.02, 0.2, 0.3
    ctrl = SmoothnessWarmup(1000, rho=rho, K0=k0, K_rho=k_rho, c=c, f_star=f_star, alpha=alpha,
                            initial=0.05)
    ctrl.bind(peak)
    assert ctrl.needs == {} and ctrl.multiplier() == 0.05  # update 0 gets `initial`
    losses = falling_losses(400)
    ema = None
    for t, loss in enumerate(losses):
        got = ctrl.observe(loss=loss)
        ema = loss if ema is None else (1 - alpha) * ema + alpha * loss
        expected = min(peak, c / (k0 + k_rho * max(ema - f_star, 0.0) ** rho)) / peak
        if ctrl.handover_step is not None:
            assert expected >= 0.99 and got == 1.0  # handed over to constant()
            assert ctrl.decisions[-1].action == "handover"
            break
        assert got == pytest.approx(expected, rel=1e-12), t
    else:
        pytest.fail("never handed over")


def test_smoothness_given_constants_without_reaching_the_peak_holds_c_over_k0() -> None:
    ctrl = SmoothnessWarmup(50, rho=1.0, K0=2.0, K_rho=20.0, alpha=1.0)
    ctrl.bind(1.0)  # c / K0 = 0.5 < peak: the law never allows the peak
    values = drive(ctrl, [{"loss": 1e-30}] * 49)
    assert values[1:49] == pytest.approx([0.5] * 48)
    assert ctrl.observe(loss=1e-30) == 1.0 and ctrl.handover_step == 50  # total reached


LAWS = [(1.0, 2.0, 20.0), (0.5, 1.0, 5.0), (2.0, 0.5, 0.3), (1.5, 0.0, 3.0)]


def synthetic_pairs(law: tuple[float, float, float], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaps log-uniform in [1e-2, 1e2]; ``S = law(gap)`` times 5% log-normal noise, 10% outliers
    off by a factor e..e^3 either way."""
    rho, k0, k_rho = law
    rng = np.random.default_rng(seed)
    gap = np.exp(rng.uniform(math.log(1e-2), math.log(1e2), n))
    s = (k0 + k_rho * gap**rho) * np.exp(rng.normal(0.0, 0.05, n))
    wild = rng.random(n) < 0.1
    s[wild] *= np.exp(rng.choice([-1.0, 1.0], wild.sum()) * rng.uniform(1.0, 3.0, wild.sum()))
    return s, gap


@pytest.mark.parametrize("law", LAWS)
@pytest.mark.parametrize("seed", [0, 1])
def test_fit_recovers_a_known_law_despite_noise_and_outliers(law: tuple[float, float, float], seed: int) -> None:
    rho, k0, k_rho = law
    got_rho, got_k0, got_k_rho = fit_smoothness_law(*synthetic_pairs(law, 200, seed))  # type: ignore[misc]
    assert got_rho == pytest.approx(rho, abs=0.1)
    assert got_k0 == pytest.approx(k0, rel=0.25, abs=0.05)
    assert got_k_rho == pytest.approx(k_rho, rel=0.25)


def test_fit_refuses_pairs_without_spread_and_finds_constant_smoothness() -> None:
    assert fit_smoothness_law([1.0, 2.0, 3.0], [1.0, 1.1, 1.2]) is None  # gaps too alike
    assert fit_smoothness_law([1.0, math.nan], [1.0, 5.0]) is None  # fewer than 3 usable
    rng = np.random.default_rng(0)
    gap = np.geomspace(0.01, 100, 100)
    rho, k0, k_rho = fit_smoothness_law(5.0 * np.exp(rng.normal(0, 0.05, 100)), gap)  # type: ignore[misc]
    assert k0 + k_rho * 100**rho == pytest.approx(5.0, rel=0.15)  # flat: no growth with the gap
    assert k0 + k_rho * 0.01**rho == pytest.approx(5.0, rel=0.15)


def test_smoothness_online_fit_recovers_the_law_the_signals_follow() -> None:
    law = (1.0, 2.0, 20.0)
    ctrl = SmoothnessWarmup(10_000, envelope=0.5, min_pairs=20, refit_every=5, fallback_steps=400)
    assert ctrl.needs == {"smoothness": 1} and SmoothnessWarmup.needs == {}
    ctrl.bind(10.0)  # c / S < 1 / K0 = 0.5, far below this peak: no handover, the fit is what is tested
    s, gap = synthetic_pairs(law, 300, seed=3)
    order = np.argsort(-gap)  # the loss falls over the run
    for k in order:
        ctrl.observe(loss=float(gap[k]), smoothness=float(s[k]))
    rho, k0, k_rho = ctrl.constants()  # type: ignore[misc]
    assert (rho, k0, k_rho) == pytest.approx(law, rel=0.25, abs=0.1)


def test_smoothness_fallback_is_a_slow_linear_warmup_until_enough_pairs() -> None:
    ctrl = SmoothnessWarmup(1000, initial=0.02, fallback_steps=100, min_pairs=10, guard=0)
    values = drive(ctrl, [{"loss": 10 * 0.8**t, "smoothness": 1.0 + 2.0 * 0.8**t} for t in range(9)])
    assert values == pytest.approx([0.02 + 0.98 * t / 100 for t in range(10)])
    assert all("fallback linear warmup" in d.reason for d in ctrl.decisions)
    assert ctrl.fit is None
    ctrl.observe(loss=10 * 0.8**9, smoothness=1.0 + 2.0 * 0.8**9)  # the 10th pair: the first fit
    assert ctrl.fit is not None and "fitted" in ctrl.decisions[-1].reason
    alike = SmoothnessWarmup(1000, min_pairs=3)
    drive(alike, [{"loss": 5.0 - 0.1 * t, "smoothness": 2.0} for t in range(5)])
    assert alike.fit is None and "too alike" in alike.decisions[-1].reason


def test_smoothness_fallback_is_capped_by_the_measured_smoothness() -> None:
    ctrl = SmoothnessWarmup(1000, initial=0.05, fallback_steps=2, min_pairs=50, c=1.0)
    ctrl.bind(0.1)  # c / S = 1 / 50 = 0.02 = multiplier 0.2, below the fallback's 0.525
    got = ctrl.observe(loss=3.0, smoothness=50.0)
    assert got == pytest.approx(0.2) and "capped by the measured smoothness" in ctrl.decisions[-1].reason


def test_smoothness_fit_raises_by_at_most_growth_and_measurements_above_the_law_win() -> None:
    ctrl = SmoothnessWarmup(10_000, min_pairs=5, refit_every=1, growth=1.2, guard=3, initial=0.01)
    ctrl.bind(1.0)
    values = [ctrl.multiplier()]
    for gap in np.geomspace(10, 1e-3, 60):
        values.append(ctrl.observe(loss=float(gap), smoothness=float(1 + gap)))
        if ctrl.handover_step is not None:
            break
    ratios = np.array(values[1:]) / np.array(values[:-1])
    fitted = [i for i, d in enumerate(ctrl.decisions) if "fitted" in d.reason and d.action != "handover"]
    assert fitted and max(ratios[i] for i in fitted) <= 1.2 + 1e-12
    # a measurement far above the law: the LR drops to c / S at once, but not below `initial`
    ctrl = SmoothnessWarmup(10_000, min_pairs=5, refit_every=1000, guard=3, initial=0.001)
    for gap in np.geomspace(10, 1, 6):
        ctrl.observe(loss=float(gap), smoothness=float(1 + gap))
    got = ctrl.observe(loss=1.0, smoothness=400.0)
    assert got == pytest.approx(1 / 400) and ctrl.decisions[-1].action == "lower"
    assert "above the law" in ctrl.decisions[-1].reason
    assert ctrl.observe(loss=1.0, smoothness=1e9) == 0.001


# -- SharpnessWarmup -------------------------------------------------------------------------


@pytest.mark.parametrize(("optimizer", "kwargs", "threshold"), [
    ("sgd", {}, 2.0),
    ("momentum", {"beta": 0.9}, 3.8),
    ("adam", {"beta1": 0.9}, 38.0),
    ("adam", {"beta1": 0.0}, 2.0),
])
def test_sharpness_thresholds(optimizer: str, kwargs: dict[str, float], threshold: float) -> None:
    assert SharpnessWarmup(10, optimizer=optimizer, **kwargs).threshold == pytest.approx(threshold)


def test_stability_thresholds_are_the_constant_over_the_lr() -> None:
    assert stability_threshold("adam", 0.1, 0.9) == pytest.approx(380.0)  # (2 + 1.8) / (0.1 * 0.1)
    assert stability_threshold("sgd", 0.5) == 4.0
    assert stability_threshold("momentum", 0.5, 0.5) == 6.0  # (2 + 1) / 0.5
    assert stability_threshold("sgd", 0.0) == math.inf
    assert stability_rule("momentum", 0.5) == "(2 + 2 beta) / eta, beta = 0.5"
    for kind, lr in (("rmsprop", 0.1), ("sgd", -1.0), ("sgd", math.nan)):
        with pytest.raises(ValueError, match="kind|lr"):
            stability_threshold(kind, lr)


def test_sharpness_rules_keep_the_ratio_below_rho_back_and_raise_by_at_most_growth() -> None:
    ctrl = SharpnessWarmup(100_000, every=1, optimizer="momentum", beta=0.5, growth=1.15,
                           rho_hi=0.4, rho_back=0.8, max_jump=1e9)
    peak, c = 2.0, 3.0
    ctrl.bind(peak)
    rng = np.random.default_rng(1)
    lam = 50.0
    seen = {"raise": 0, "hold": 0, "lower": 0}
    for t in range(1500):
        lam *= math.exp(rng.normal(0.0, 0.15)) * (4.0 if rng.random() < 0.03 else 1.0)
        lam = min(lam, 5e3)
        before = ctrl.current
        ratio_before = before * peak * lam / c
        after = ctrl.observe(loss=1.0, sharpness=lam)
        if ctrl.handover_step is not None:
            break
        decision = ctrl.decisions[-1]
        seen[decision.action] += 1
        ratio = after * peak * lam / c
        assert ratio <= 0.8 + 1e-12, t
        assert after <= 1.15 * before * (1 + 1e-12)
        if ratio_before > 0.8:
            assert decision.action == "lower" and ratio == pytest.approx(0.4)
        elif ratio_before < 0.4:
            assert decision.action == "raise" and ratio <= 0.4 + 1e-12
        else:
            assert decision.action == "hold" and after == before
        assert decision.evidence["used"] == decision.evidence["measurements"] == t + 1
    assert min(seen.values()) > 5, seen


def test_sharpness_holds_the_last_measurement_between_measurements() -> None:
    ctrl = SharpnessWarmup(1000, every=5, growth=2.0)
    assert ctrl.needs == {"sharpness": 5}
    ctrl.bind(1.0)
    ctrl.observe(loss=1.0, sharpness=20.0)  # target 0.5 * 2 / 20 = 0.05
    values = drive(ctrl, [{"loss": 1.0}] * 8)[1:]
    assert values[-1] == pytest.approx(0.05) and max(values) <= 0.05 + 1e-15
    assert ctrl.decisions[-1].evidence["sharpness"] == 20.0


def test_sharpness_without_measurements_follows_the_untuned_warmup() -> None:
    adam = SharpnessWarmup(5000, optimizer="adam", beta2=0.99)
    untuned = preheat.untuned_linear_warmup(0.99)
    values = drive(adam, [{"loss": 1.0}] * 300)
    assert values[:200] == pytest.approx([float(untuned(t)) for t in range(200)])
    assert adam.handover_step == 199  # update 199 is untuned's first at 1
    assert "fallback to untuned warmup" in adam.decisions[0].reason
    assert "no sharpness measured yet" in adam.decisions[0].reason
    sgd = SharpnessWarmup(5000, fallback_steps=50)
    assert drive(sgd, [{"loss": 1.0}] * 10) == pytest.approx([(t + 1) / 50 for t in range(11)])
    assert "linear warmup over 50" in sgd.decisions[0].reason


def test_sharpness_falls_back_on_nan_and_caps_at_the_backed_off_value() -> None:
    ctrl = SharpnessWarmup(5000, every=1, optimizer="adam", growth=1.5)
    drive(ctrl, [{"loss": 1.0, "sharpness": 100.0}] * 30)
    reached = ctrl.current
    assert reached == pytest.approx(0.5 * 38 / 100)  # peak_lr 1: rho_hi C / lambda
    got = ctrl.observe(loss=1.0, sharpness=math.nan)
    assert got == pytest.approx(reached * 0.5) and ctrl.decisions[-1].action == "backoff"
    values = drive(ctrl, [{"loss": 1.0}] * 5)[1:]
    for t, value in zip(range(31, 36), values):
        assert value == pytest.approx(min(reached * 0.5, float(preheat.untuned_linear_warmup(0.999)(t + 1))))
    assert all("fallback" in d.reason and "nan" in d.reason for d in ctrl.decisions[-5:])
    ctrl.observe(loss=1.0, sharpness=100.0)  # a good measurement: the rule again
    assert "raise" in ctrl.decisions[-1].reason and ctrl.decisions[-1].evidence["used"] == 31


def test_sharpness_falls_back_on_jumps_non_positive_and_stale_measurements() -> None:
    ctrl = SharpnessWarmup(5000, every=2, max_jump=10.0, growth=2.0)  # max_age 4
    ctrl.bind(1.0)
    drive(ctrl, [{"loss": 1.0, "sharpness": 10.0}] * 12)
    assert ctrl.current == pytest.approx(0.5 * 2 / 10)  # raised x2 per update up to rho_hi C / lambda
    # up 100x: unreliable; the fallback is capped by what the jumped value would allow
    got = ctrl.observe(loss=1.0, sharpness=1000.0)
    decision = ctrl.decisions[-1]
    assert "fallback" in decision.reason and "jumped from 10 to 1000" in decision.reason
    assert got == pytest.approx(0.5 * 2 / 1000) and got <= float(preheat.untuned_linear_warmup(0.999)(13))
    assert decision.evidence["measurements"] == 13 and decision.evidence["used"] == 12
    # a second measurement near it: reliable again (ratio 0.5: hold)
    ctrl.observe(loss=1.0, sharpness=1000.0)
    assert ctrl.decisions[-1].action == "hold" and "fallback" not in ctrl.decisions[-1].reason
    # down 1000x: unreliable, and no raise on it
    got = ctrl.observe(loss=1.0, sharpness=1.0)
    assert "jumped" in ctrl.decisions[-1].reason and got == pytest.approx(1e-3)
    # not positive
    ctrl.observe(loss=1.0, sharpness=-3.0)
    assert "not positive" in ctrl.decisions[-1].reason and ctrl.current == pytest.approx(1e-3)
    # stale: reliable at update 16, then nothing for more than max_age = 4 updates
    ctrl.observe(loss=1.0, sharpness=1.5)
    assert ctrl.decisions[-1].action == "raise"
    drive(ctrl, [{"loss": 1.0}] * 5)
    assert "no sharpness since update 16 (max_age=4)" in ctrl.decisions[-1].reason
    assert [d.action for d in ctrl.decisions[-5:-1]] == ["raise"] * 4


# -- CatapultWarmup --------------------------------------------------------------------------


def test_catapult_starts_at_initial_and_is_linear_to_the_peak_in_steps() -> None:
    ctrl = CatapultWarmup(1000, initial=0.3, steps=40)
    assert ctrl.saved_steps == 12 and ctrl.multiplier() == 0.3
    values = drive(ctrl, [{"loss": 1.0}] * 45)
    assert values[:41] == pytest.approx([0.3 + 0.7 * t / 40 for t in range(41)], rel=1e-12)
    assert values[40:] == [1.0] * 6 and ctrl.handover_step == 40
    assert ctrl.decisions[0].evidence["saved_steps"] == 12
    assert all("saved_steps" not in d.evidence for d in ctrl.decisions[1:])
    assert CatapultWarmup(10, initial=0.004, steps=100).saved_steps == 0


def test_persistent_catapult_raises_only_after_recovery() -> None:
    ctrl = CatapultWarmup(1000, initial=0.1, steps=50, persistent=True, factor=2.0, alpha=1.0,
                          patience=2, spike_limit=4.0)
    losses = [10, 9, 8, 20, 12, 8.5, 40, 30, 8, 7, 6, 5, 4]
    values = drive(ctrl, [{"loss": x} for x in losses])
    assert values == pytest.approx([0.1, 0.1, 0.2, 0.2, 0.2, 0.2, 0.4, 0.2, 0.2, 0.4, 0.4, 0.8, 0.8, 1.0])
    actions = [d.action for d in ctrl.decisions]
    assert actions == ["hold", "raise", "hold", "hold", "hold", "raise", "lower", "hold", "raise",
                       "hold", "raise", "hold", "handover"]
    assert "waiting for recovery" in ctrl.decisions[3].reason
    assert "spike_limit" in ctrl.decisions[6].reason


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.1, 100.0), min_size=5, max_size=60), st.floats(0.1, 1.0), st.integers(1, 5))
def test_persistent_catapult_raises_only_when_the_smoothed_loss_is_below_the_reference(
        losses: list[float], alpha: float, patience: int) -> None:
    ctrl = CatapultWarmup(10_000, initial=0.01, steps=10, persistent=True, alpha=alpha,
                          patience=patience, spike_limit=1e6)
    ema, reference, since = None, None, 0
    for loss in losses:
        before = ctrl.current
        ctrl.observe(loss=loss)
        ema = loss if ema is None else (1 - alpha) * ema + alpha * loss
        reference = ema if reference is None else reference
        since += 1
        raised = ema < reference and since >= patience
        assert (ctrl.current > before) == raised
        if raised:
            assert ctrl.current == pytest.approx(min(1.0, 2 * before))
            reference, since = ema, 0
        if ctrl.handover_step is not None:
            break


# -- what every controller guarantees --------------------------------------------------------

FACTORIES: dict[str, Callable[..., Controller]] = {
    "smoothness-given": lambda **kw: SmoothnessWarmup(rho=1.0, K0=2.0, K_rho=20.0, **kw),
    "smoothness-fitted": lambda **kw: SmoothnessWarmup(min_pairs=5, refit_every=3, **kw),
    "sharpness": lambda **kw: SharpnessWarmup(every=2, optimizer="adam", growth=1.3, **kw),
    "catapult": lambda **kw: CatapultWarmup(initial=0.1, steps=40, **kw),
    "catapult-persistent": lambda **kw: CatapultWarmup(initial=0.05, steps=40, persistent=True,
                                                       patience=4, **kw),
}
PEAK = 0.05


def stream(n: int, seed: int = 0) -> list[dict[str, float]]:
    """Signals for every controller: a falling loss, smoothness growing with it, sharpness
    every other update."""
    signals = []
    for t, loss in enumerate(falling_losses(n, seed=seed)):
        s = {"loss": loss, "smoothness": (2.0 + 20.0 * loss) * (1.0 + 0.1 * math.sin(t))}
        if t % 2 == 0:
            s["sharpness"] = 10.0 + 3.0 * loss
        signals.append(s)
    return signals


def build(kind: str, **kw: Any) -> Controller:
    ctrl = FACTORIES[kind](**{"total": 10_000, **kw})
    ctrl.bind(PEAK)
    return ctrl


BAD = [math.nan, math.inf, -math.inf, 1e308, -1e308, 0.0, -1.0, 5e-324]


@pytest.mark.parametrize("kind", FACTORIES)
@settings(max_examples=25, deadline=None)
@given(corruptions=st.lists(st.tuples(st.integers(0, 59), st.sampled_from(["loss", "smoothness", "sharpness"]),
                                      st.sampled_from(BAD) | st.none()), max_size=25))
def test_bad_signals_never_produce_nan_multipliers(kind: str, corruptions: list[tuple[int, str, float | None]]) -> None:
    signals = stream(60)
    for t, name, value in corruptions:
        if value is None:
            signals[t].pop(name, None)
        else:
            signals[t][name] = value
    ctrl = build(kind, floor=0.001)
    for value in drive(ctrl, signals):
        assert math.isfinite(value) and 0.001 <= value <= 1.0
    for t, signal in enumerate(signals):
        bad = [name for name, value in signal.items() if not math.isfinite(value)]
        if bad and (ctrl.handover_step is None or t < ctrl.handover_step - 1):
            decision = ctrl.decisions[t]
            assert decision.action == "backoff" and all(name in decision.reason for name in bad)


@pytest.mark.parametrize("kind", FACTORIES)
def test_state_dict_round_trip_mid_warmup_gives_identical_multipliers(kind: str) -> None:
    signals = stream(200, seed=2)
    first = build(kind)
    k = 15
    drive(first, signals[:k])
    assert first.handover_step is None  # mid-warmup
    state = json.loads(json.dumps(first.state_dict()))  # plain data
    second = FACTORIES[kind](total=10_000)
    second.load_state_dict(state)
    assert second.multiplier() == first.multiplier()
    assert drive(second, signals[k:]) == drive(first, signals[k:])
    assert second.state_dict() == first.state_dict()


@pytest.mark.parametrize("kind", FACTORIES)
def test_handover_to_the_after_schedule(kind: str) -> None:
    total = 400
    ctrl = build(kind, total=total, after="cosine_decay({steps})")
    values = drive(ctrl, stream(300, seed=1))
    h = ctrl.handover_step
    assert h is not None and h < 300, kind
    decay = preheat.cosine_decay(total - h)
    assert values[h:] == pytest.approx([float(decay(t)) for t in range(len(values) - h)])
    assert ctrl.decisions[h - 1].action == "handover"
    assert ctrl.observe(loss=math.nan) == pytest.approx(float(decay(len(values) - h)))  # ignored


@pytest.mark.parametrize(("make", "name"), [
    (lambda: SmoothnessWarmup(100, rho=1.0), "rho"),
    (lambda: SmoothnessWarmup(100, rho=-1.0, K0=1.0, K_rho=1.0), "rho"),
    (lambda: SmoothnessWarmup(100, rho=1.0, K0=math.nan, K_rho=1.0), "K0"),
    (lambda: SmoothnessWarmup(100, rho=1.0, K0=1.0, K_rho=-2.0), "K_rho"),
    (lambda: SmoothnessWarmup(100, c=2.0), "c"),
    (lambda: SmoothnessWarmup(100, alpha=0.0), "alpha"),
    (lambda: SmoothnessWarmup(100, initial=0.0), "initial"),
    (lambda: SmoothnessWarmup(100, growth=1.0), "growth"),
    (lambda: SmoothnessWarmup(100, min_pairs=2), "min_pairs"),
    (lambda: SmoothnessWarmup(100, min_pairs=30, window=20), "window"),
    (lambda: SmoothnessWarmup(100, envelope=1.0), "envelope"),
    (lambda: SmoothnessWarmup(100, max_rho=0.0), "max_rho"),
    (lambda: SmoothnessWarmup(100, guard=-1), "guard"),
    (lambda: SmoothnessWarmup(100, handover_at=1.5), "handover_at"),
    (lambda: SmoothnessWarmup(0), "total"),
    (lambda: SharpnessWarmup(100, optimizer="lion"), "optimizer"),
    (lambda: SharpnessWarmup(100, every=0), "every"),
    (lambda: SharpnessWarmup(100, beta=1.0), "beta"),
    (lambda: SharpnessWarmup(100, beta1=-0.1), "beta1"),
    (lambda: SharpnessWarmup(100, beta2=1.0), "beta2"),
    (lambda: SharpnessWarmup(100, growth=1.0), "growth"),
    (lambda: SharpnessWarmup(100, rho_hi=0.0), "rho_hi"),
    (lambda: SharpnessWarmup(100, rho_hi=0.9, rho_back=0.5), "rho_back"),
    (lambda: SharpnessWarmup(100, max_jump=1.0), "max_jump"),
    (lambda: SharpnessWarmup(100, every=10, max_age=5), "max_age"),
    (lambda: SharpnessWarmup(100, fallback_steps=0), "fallback_steps"),
    (lambda: SharpnessWarmup(100, after="bogus("), "after"),
    (lambda: CatapultWarmup(100, initial=0.0, steps=10), "initial"),
    (lambda: CatapultWarmup(100, initial=1.5, steps=10), "initial"),
    (lambda: CatapultWarmup(100, initial=0.1, steps=0), "steps"),
    (lambda: CatapultWarmup(100, initial=0.1, steps=10, persistent="yes"), "persistent"),  # type: ignore[arg-type]
    (lambda: CatapultWarmup(100, initial=0.1, steps=10, factor=1.0), "factor"),
    (lambda: CatapultWarmup(100, initial=0.1, steps=10, alpha=1.5), "alpha"),
    (lambda: CatapultWarmup(100, initial=0.1, steps=10, patience=0), "patience"),
    (lambda: CatapultWarmup(100, initial=0.1, steps=10, spike_limit=1.0), "spike_limit"),
    (lambda: CatapultWarmup(100, initial=0.1, steps=10, max_step=0.0), "max_step"),
])
def test_validation_names_the_argument_the_value_and_what_is_valid(make: Callable[[], Controller], name: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{name}=.*(expected|invalid)"):
        make()


@pytest.mark.parametrize(("text", "cls", "attrs"), [
    ("smoothness_warmup(rho=1, K0=2.0, K_rho=20)", SmoothnessWarmup, {"fixed": True, "K_rho": 20.0}),
    ("smoothness_warmup(envelope=0.5, growth=1.2)", SmoothnessWarmup, {"fixed": False, "growth": 1.2}),
    ("sharpness_warmup(every=5, optimizer='adam', beta1=0.8)", SharpnessWarmup, {"threshold": 18.0}),
    ("catapult_warmup(initial=0.25, steps=40)", CatapultWarmup, {"saved_steps": 10}),
])
def test_controllers_read_from_expressions(text: str, cls: type[Controller], attrs: dict[str, Any]) -> None:
    """The names are expression names (``preheat.adaptive.text`` builds controllers this way)."""
    import functools

    ctrl = preheat.parse(text, {cls.name: functools.partial(cls, total=100, after="cosine_decay({steps})")})
    assert isinstance(ctrl, cls) and ctrl.total == 100
    for name, value in attrs.items():
        assert getattr(ctrl, name) == pytest.approx(value)


# -- real runs: the river valley at peak 0.5, where a constant LR diverges -------------------

PEAK_LR, STEPS = 0.5, 300


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def exact_sharpness(task: Any, theta: torch.Tensor) -> float:
    """The top |eigenvalue| of the exact Hessian (the river valley has 11 parameters)."""
    hessian = torch.autograd.functional.hessian(task.value, theta.detach())
    return torch.linalg.eigvalsh(hessian).abs().max().item()


def river_valley(controller: Controller | None, extra: frozenset[str] = frozenset(), every: int = 10,
                 lr: float = PEAK_LR, steps: int = STEPS, checkpoint_at: int | None = None) -> dict[str, Any]:
    """Full-batch GD on the river valley driven by ``preheat.Scheduler(opt, controller)`` (or a
    constant ``lr``); the loop computes the signals the controller needs."""
    task = make_task("river-valley")
    model = task.model(0)
    batches = task.batches(0, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    scheduler = None if controller is None else preheat.Scheduler(optimizer, controller)
    initial = task.evaluate(model)["val_loss"]
    theta = next(model.parameters())
    previous: tuple[torch.Tensor, torch.Tensor] | None = None
    out: dict[str, Any] = {"losses": [], "lrs": [], "diverged": None}
    for t in range(steps):
        if checkpoint_at == t:
            out["checkpoint"] = (json.loads(json.dumps(scheduler.state_dict())),  # type: ignore[union-attr]
                                 theta.detach().clone(), previous)
        loss = task.loss(model, next(batches))[0]
        optimizer.zero_grad()
        loss.backward()
        out["lrs"].append(optimizer.param_groups[0]["lr"])
        signals = {"loss": loss.item()}
        grad, point = theta.grad.detach().clone(), theta.detach().clone()
        if "smoothness" in extra and previous is not None:
            moved = torch.linalg.vector_norm(point - previous[1]).item()
            if moved > 0:
                signals["smoothness"] = torch.linalg.vector_norm(grad - previous[0]).item() / moved
        if "sharpness" in extra and t % every == 0:
            signals["sharpness"] = exact_sharpness(task, point)
        previous = (grad, point)
        optimizer.step()
        if scheduler is not None:
            scheduler.step(**signals)
        out["losses"].append(loss.item())
        if not math.isfinite(loss.item()) or loss.item() > 10 * initial:
            out["diverged"] = t
            break
    out["final"] = task.evaluate(model)["val_loss"]
    return out


def assert_survives(run: dict[str, Any], controller: Controller) -> None:
    assert run["diverged"] is None, f"diverged at update {run['diverged']}"
    assert run["final"] < 1e-8
    assert controller.handover_step is not None and run["lrs"][-1] == PEAK_LR


def test_constant_peak_lr_diverges_on_the_river_valley() -> None:
    assert river_valley(None)["diverged"] is not None


@pytest.mark.parametrize("fitted", [False, True])
def test_smoothness_warmup_survives_the_river_valley(fitted: bool) -> None:
    task = make_task("river-valley")
    if fitted:  # smoothness from consecutive gradients and parameters
        controller = SmoothnessWarmup(STEPS)
        run = river_valley(controller, frozenset({"smoothness"}))
    else:  # the task's own constants (rho, K0, K_rho) = (1, 2, 2c)
        rho, k0, k_rho = task.smoothness_constants()
        controller = SmoothnessWarmup(STEPS, rho=rho, K0=k0, K_rho=k_rho)
        run = river_valley(controller)
    assert_survives(run, controller)
    assert max(run["losses"]) <= run["losses"][0]


def test_smoothness_warmup_resumes_mid_run_with_the_same_lrs() -> None:
    controller = SmoothnessWarmup(STEPS)
    full = river_valley(controller, frozenset({"smoothness"}), checkpoint_at=60, steps=120)
    state, theta, previous = full["checkpoint"]
    assert state["controller"]["state"]["handover"] is None and controller.handover_step is not None
    task = make_task("river-valley")
    model = task.model(0)
    with torch.no_grad():
        next(model.parameters()).copy_(theta)
    optimizer = torch.optim.SGD(model.parameters(), lr=PEAK_LR)
    scheduler = preheat.Scheduler(optimizer, SmoothnessWarmup(STEPS))
    scheduler.load_state_dict(state)
    lrs = []
    param = next(model.parameters())
    for t in range(60, 120):
        loss = task.loss(model, torch.zeros(11, dtype=torch.float64))[0]
        optimizer.zero_grad()
        loss.backward()
        lrs.append(optimizer.param_groups[0]["lr"])
        grad, point = param.grad.detach().clone(), param.detach().clone()
        moved = torch.linalg.vector_norm(point - previous[1]).item()
        signals = {"loss": loss.item()}
        if moved > 0:
            signals["smoothness"] = torch.linalg.vector_norm(grad - previous[0]).item() / moved
        previous = (grad, point)
        optimizer.step()
        scheduler.step(**signals)
    assert lrs == full["lrs"][60:120]


@pytest.mark.parametrize("every", [1, 10])
def test_sharpness_warmup_survives_the_river_valley(every: int) -> None:
    controller = SharpnessWarmup(STEPS, every=every)
    run = river_valley(controller, frozenset({"sharpness"}), every=every)
    assert_survives(run, controller)
    assert max(run["losses"]) <= run["losses"][0]
    evidence = [d.evidence for d in controller.decisions if "sharpness" in d.evidence]
    assert all(e["ratio"] <= 0.9 + 1e-9 for e in evidence)
    assert controller.decisions[-1].evidence["measurements"] == pytest.approx(
        (controller.handover_step - 1) // every + 1)


def catapult_initial(lrs: Iterable[float] = (0.4, 0.2, 0.1, 0.05, 0.02, 0.01), steps: int = 20) -> float:
    """A tiny stand-in for ``preheat.probes.catapult_search``: the largest LR whose constant-LR
    run ends below its starting loss without blowing up."""
    for lr in lrs:
        run = river_valley(None, lr=lr, steps=steps)
        if run["diverged"] is None and run["final"] < run["losses"][0]:
            return lr
    raise AssertionError("no LR survives")


@pytest.mark.parametrize("persistent", [False, True])
def test_catapult_warmup_survives_the_river_valley(persistent: bool) -> None:
    initial = catapult_initial() / PEAK_LR
    assert 0 < initial < 1
    controller = CatapultWarmup(STEPS, initial=initial, steps=50, persistent=persistent)
    run = river_valley(controller)
    assert_survives(run, controller)
    assert run["lrs"][0] == pytest.approx(initial * PEAK_LR)
    assert controller.decisions[0].evidence["saved_steps"] == round(initial * 50)
