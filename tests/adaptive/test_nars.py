"""The NARS warmup: NAL truth values (hand-computed numbers and properties), the controller's
rules on synthetic signal streams, its bounds, NaN safety, decision log, exact resume,
validation, and one real run on the digits task."""

from __future__ import annotations

import json
import math
from typing import Callable, Iterable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import preheat
from preheat.adaptive.nars import NARSWarmup, TruthValue, trend
from preheat.lab.tasks import make_task

# -- TruthValue: hand-computed numbers -----------------------------------------------------


def test_truth_value_from_evidence_hand_computed() -> None:
    tv = TruthValue(3.0, 1.0)  # w+ = 3, w- = 1, k = 1
    assert tv.total == 4.0
    assert tv.frequency == 0.75  # 3 / 4
    assert tv.confidence == 0.8  # 4 / (4 + 1)
    assert tv.expectation == pytest.approx(0.7)  # 0.8 * (0.75 - 0.5) + 0.5
    wide = TruthValue(3.0, 1.0, horizon=2.0)
    assert wide.confidence == pytest.approx(4 / 6)  # a larger horizon: less confidence
    assert wide.expectation == pytest.approx(4 / 6 * 0.25 + 0.5)
    assert TruthValue(0.0, 2.0).expectation == pytest.approx(2 / 3 * -0.5 + 0.5)  # 1/6


def test_no_evidence_is_frequency_one_half_confidence_zero() -> None:
    for tv in (TruthValue(), TruthValue(horizon=5.0)):
        assert (tv.total, tv.frequency, tv.confidence, tv.expectation) == (0.0, 0.5, 0.0, 0.5)


def test_revision_adds_evidence_and_matches_the_nal_frequency_confidence_form() -> None:
    a, b = TruthValue(3.0, 1.0), TruthValue(1.0, 1.0)
    r = a.revise(b)
    assert (r.positive, r.negative) == (4.0, 2.0)
    assert r.frequency == pytest.approx(2 / 3)
    assert r.confidence == pytest.approx(6 / 7)
    assert r.expectation == pytest.approx(6 / 7 * (2 / 3 - 0.5) + 0.5)  # 0.642857...
    # NAL revision in (f, c): f = (w1 f1 + w2 f2) / (w1 + w2), c = w2c(w1 + w2), w = k c / (1 - c)
    w1, w2 = a.confidence / (1 - a.confidence), b.confidence / (1 - b.confidence)
    assert r.frequency == pytest.approx((w1 * a.frequency + w2 * b.frequency) / (w1 + w2))
    assert r.confidence == pytest.approx((w1 + w2) / (w1 + w2 + 1))


def test_conversion_from_frequency_and_confidence() -> None:
    tv = TruthValue.from_frequency_confidence(0.9, 0.9)  # w = 1 * 0.9 / 0.1 = 9
    assert tv.positive == pytest.approx(8.1) and tv.negative == pytest.approx(0.9)
    assert TruthValue.from_frequency_confidence(0.25, 0.5, horizon=2.0).total == pytest.approx(2.0)
    assert TruthValue.from_frequency_confidence(0.5, 0.0) == TruthValue()


def test_decay_keeps_the_frequency_and_lowers_the_confidence() -> None:
    tv = TruthValue(4.0, 2.0).decay(0.5)
    assert (tv.positive, tv.negative) == (2.0, 1.0)
    assert tv.frequency == pytest.approx(2 / 3) and tv.confidence == pytest.approx(0.75)  # was 6/7
    assert TruthValue(4.0, 2.0).decay(1.0) == TruthValue(4.0, 2.0)
    assert TruthValue(4.0, 2.0).decay(0.0) == TruthValue()


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: TruthValue(-1.0, 0.0), "positive"),
        (lambda: TruthValue(0.0, math.nan), "negative"),
        (lambda: TruthValue(math.inf, 0.0), "positive"),
        (lambda: TruthValue(1.0, 1.0, horizon=0.0), "horizon"),
        (lambda: TruthValue(True, 0.0), "positive"),
        (lambda: TruthValue.from_frequency_confidence(0.5, 1.0), "confidence"),
        (lambda: TruthValue.from_frequency_confidence(1.5, 0.5), "frequency"),
        (lambda: TruthValue(1.0, 1.0).decay(1.5), "factor"),
        (lambda: TruthValue(1.0, 1.0).revise(TruthValue(1.0, 1.0, horizon=2.0)), "other.horizon"),
    ],
)
def test_truth_value_validation_names_the_argument(build: Callable[[], object], name: str) -> None:
    with pytest.raises(ValueError, match=rf"{name}=.*expected"):
        build()


# -- TruthValue: properties ----------------------------------------------------------------

amounts = st.one_of(st.just(0.0), st.floats(min_value=1e-9, max_value=1e6))  # no subnormals
horizons = st.floats(min_value=0.01, max_value=100.0)


@given(amounts, amounts, horizons)
def test_truth_value_bounds(positive: float, negative: float, horizon: float) -> None:
    tv = TruthValue(positive, negative, horizon)
    assert 0.0 <= tv.frequency <= 1.0
    assert 0.0 <= tv.confidence < 1.0
    assert (tv.confidence > 0.0) == (tv.total > 0.0)
    assert 0.0 < tv.expectation < 1.0
    assert abs(tv.expectation - 0.5) <= tv.confidence / 2 + 1e-12


@given(amounts, amounts, amounts, amounts)
def test_revision_is_commutative(p1: float, n1: float, p2: float, n2: float) -> None:
    a, b = TruthValue(p1, n1), TruthValue(p2, n2)
    assert a.revise(b) == b.revise(a)


@given(amounts, amounts, amounts, amounts, amounts, amounts)
def test_revision_is_associative(p1: float, n1: float, p2: float, n2: float, p3: float, n3: float) -> None:
    a, b, c = TruthValue(p1, n1), TruthValue(p2, n2), TruthValue(p3, n3)
    left, right = a.revise(b).revise(c), a.revise(b.revise(c))
    assert left.positive == pytest.approx(right.positive, rel=1e-12, abs=1e-300)
    assert left.negative == pytest.approx(right.negative, rel=1e-12, abs=1e-300)


@given(amounts, amounts, amounts, amounts)
def test_revision_never_lowers_confidence_and_nothing_is_its_identity(
    p1: float, n1: float, p2: float, n2: float
) -> None:
    a, b = TruthValue(p1, n1), TruthValue(p2, n2)
    assert a.revise(b).confidence >= max(a.confidence, b.confidence)
    assert a.revise(TruthValue()) == a


@given(st.floats(min_value=0.0, max_value=1e4), st.floats(min_value=0.0, max_value=1e4), horizons)
def test_conversion_round_trip(positive: float, negative: float, horizon: float) -> None:
    tv = TruthValue(positive, negative, horizon)
    back = TruthValue.from_frequency_confidence(tv.frequency, tv.confidence, horizon)
    assert back.positive == pytest.approx(positive, rel=1e-6, abs=1e-9)
    assert back.negative == pytest.approx(negative, rel=1e-6, abs=1e-9)
    assert back.horizon == horizon


@given(amounts, amounts, st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1.0)))
def test_decay_property(positive: float, negative: float, factor: float) -> None:
    tv = TruthValue(positive, negative)
    faded = tv.decay(factor)
    assert faded.confidence <= tv.confidence
    if faded.total > 0:
        assert faded.frequency == pytest.approx(tv.frequency)


def test_trend_hand_computed() -> None:
    assert trend([1.0, 2.0, 3.0]) == (1.0, 0.0)
    slope, error = trend([3.0, 1.0, 2.0])  # residuals 0.5, -1, 0.5; S = 2
    assert slope == pytest.approx(-0.5) and error == pytest.approx(math.sqrt(1.5 / 2))


# -- the controller on synthetic streams -----------------------------------------------------


def drive(controller: NARSWarmup, loss_of: Callable[[int, float], float], steps: int,
          grad_of: Callable[[int], float] | None = None) -> list[float]:
    """Feed ``steps`` updates; ``loss_of(t, S)`` gets the update and ``S``, the sum of the
    multipliers so far (this update's included). Returns the multipliers of updates 0..steps."""
    values, total_lr = [controller.multiplier()], 0.0
    for t in range(steps):
        total_lr += values[-1]
        signals = {"loss": loss_of(t, total_lr)}
        if grad_of is not None:
            signals["grad_norm"] = grad_of(t)
        values.append(controller.observe(**signals))
    return values


def exp_loss(t: int, total_lr: float) -> float:
    """``exp(-0.01 sum(m))``: a raise by 1.5 makes the loss fall about 1.5 times faster."""
    return math.exp(-0.01 * total_lr)


def interval_ends(controller: NARSWarmup) -> list:
    return [d for d in controller.decisions if "interval end" in d.reason]


def test_update_zero_gets_initial() -> None:
    assert NARSWarmup(1000).multiplier() == 0.01
    assert NARSWarmup(1000, initial=0.1).multiplier() == 0.1


def test_raises_when_each_raise_makes_the_loss_fall_faster() -> None:
    ctrl = NARSWarmup(1000)
    values = drive(ctrl, exp_loss, 300)
    ends = interval_ends(ctrl)
    assert ctrl.handover_step is not None and ctrl.handover_step <= 140  # 12 raises, one calm interval
    assert values[ctrl.handover_step] == 1.0 and ctrl.decisions[-1].action == "handover"
    assert [d.action for d in ends[:-1]] == ["raise"] * (len(ends) - 1)
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert all(d.evidence["speedup_z"] > 0 for d in ends[1:])  # each raise sped up the decrease
    assert ctrl.gain.expectation > 0.8 and ctrl.instability.expectation < 0.2
    assert all(d.multiplier == values[d.step] for d in ctrl.decisions)


def test_multiplier_changes_only_at_interval_ends() -> None:
    ctrl = NARSWarmup(1000, interval=7)
    values = drive(ctrl, exp_loss, 100)
    changed = [t for t in range(1, len(values)) if values[t] != values[t - 1]]
    assert changed and all(t % 7 == 0 for t in changed)


def test_a_raise_that_slows_the_decrease_is_evidence_against_b1() -> None:
    """Loss falling at a rate ``0.01 / m``: raising slows it. After the first raise B1 is
    disbelieved, so the controller only keeps up with the plan (never runs ahead of it)."""
    ctrl = NARSWarmup(2000)
    values = [ctrl.multiplier()]
    level = 0.0
    for _ in range(600):
        level += 0.01 / values[-1] * 0.01
        values.append(ctrl.observe(loss=math.exp(-level)))
    first = interval_ends(ctrl)[1]
    assert first.evidence["speedup_z"] < 0 and first.evidence["b1_w_minus"] > first.evidence["b1_w_plus"]
    assert ctrl.gain.expectation < 0.5
    for t, m in enumerate(values):
        assert m <= max(ctrl.initial, ctrl.raise_factor * ctrl.plan(t)) + 1e-12


def test_lowers_on_an_injected_spike_and_believes_in_instability() -> None:
    ctrl = NARSWarmup(1000)

    def spiky(t: int, total_lr: float) -> float:
        return exp_loss(t, total_lr) * (10.0 if t in (63, 64) else 1.0)

    values = drive(ctrl, spiky, 100)
    spike = ctrl.decisions[64]  # the second high loss in a row (spike_patience=2)
    assert ctrl.decisions[63].action == "hold" and "not yet a spike" in ctrl.decisions[63].reason
    assert spike.action == "lower" and "spike" in spike.reason
    assert values[65] == pytest.approx(values[64] * 0.5)
    assert spike.evidence["b2_w_plus"] == pytest.approx(1.0)  # one unit for B2 ...
    assert spike.evidence["b1_w_minus"] >= 1.0  # ... and against B1: the interval was raised


def test_a_single_outlier_is_not_a_spike_unless_patience_is_one() -> None:
    def outlier(t: int, total_lr: float) -> float:
        return exp_loss(t, total_lr) * (10.0 if t == 43 else 1.0)

    patient = NARSWarmup(1000)
    drive(patient, outlier, 60)
    assert "lower" not in [d.action for d in patient.decisions]
    assert interval_ends(patient)[4].action == "hold"  # the interval with the outlier was not calm
    eager = NARSWarmup(1000, spike_patience=1)
    drive(eager, outlier, 60)
    assert eager.decisions[43].action == "lower"


def test_holds_while_instability_is_believed_then_resumes() -> None:
    ctrl = NARSWarmup(1000)

    def early_spike(t: int, total_lr: float) -> float:
        return exp_loss(t, total_lr) * (5.0 if t in (4, 5) else 1.0)

    values = drive(ctrl, early_spike, 300)
    assert ctrl.decisions[5].action == "lower"
    ends = interval_ends(ctrl)
    assert "instability believed" in ends[0].reason and ends[0].evidence["b2_e"] >= 0.6
    resumed = next(d for d in ends if d.action == "raise")
    assert resumed.evidence["b2_e"] < 0.6  # the spike's evidence faded
    assert max(values) == 1.0


def test_grad_norm_spike_lowers() -> None:
    ctrl = NARSWarmup(1000)
    drive(ctrl, exp_loss, 40, grad_of=lambda t: 50.0 if t in (33, 34) else 1.0)
    assert ctrl.decisions[34].action == "lower" and "grad_norm" in ctrl.decisions[34].reason


def test_holds_on_a_flat_uninformative_loss() -> None:
    ctrl = NARSWarmup(1000)
    values = drive(ctrl, lambda t, s: 1.0, 500)
    assert values == [0.01] * 501
    assert {d.action for d in ctrl.decisions} == {"hold"}
    assert "the loss did not fall" in interval_ends(ctrl)[0].reason
    assert ctrl.gain == TruthValue() and ctrl.instability == TruthValue()  # no evidence either way


def noisy_losses(n: int, seed: int) -> list[float]:
    """A falling loss with 30% multiplicative noise, a spike and a NaN."""
    rng = np.random.default_rng(seed)
    base = np.geomspace(3.0, 0.05, n) * np.exp(rng.normal(0.0, 0.3, n))
    base[n // 3: n // 3 + 3] *= 8.0
    base[n // 2] = math.nan
    return [float(v) for v in base]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-3, max_value=1e3), min_size=30, max_size=300),
    st.sampled_from([(2.0, 100), (1.0, 1000), (1.5, 50)]),
    st.floats(min_value=0.0, max_value=0.01),
)
def test_bounds_on_any_loss_stream(losses: list[float], envelope: tuple[float, int], floor: float) -> None:
    factor, reference = envelope
    ctrl = NARSWarmup(1000, envelope_factor=factor, reference_steps=reference, floor=floor)
    values = [ctrl.multiplier()] + [ctrl.observe(loss=v) for v in losses]
    for t, m in enumerate(values):
        assert math.isfinite(m) and floor <= m <= 1.0
        if ctrl.handover_step is None or t < ctrl.handover_step:
            assert m <= ctrl.envelope(t) + 1e-12


def test_the_envelope_caps_raises_and_does_not_block_the_peak() -> None:
    ctrl = NARSWarmup(1000, envelope_factor=1.0, reference_steps=500, interval=5)
    values = drive(ctrl, exp_loss, 999)
    assert all(m <= ctrl.envelope(t) + 1e-12 for t, m in enumerate(values))
    assert any("capped by the envelope" in d.reason for d in ctrl.decisions)
    assert max(values) == 1.0 and ctrl.envelope(1000) == 1.0 and NARSWarmup(1000).plan(100) == 1.0


def test_never_below_floor() -> None:
    ctrl = NARSWarmup(1000, floor=0.005, spike_patience=1)
    values = drive(ctrl, lambda t, s: 1.0 if t % 12 else 100.0 * (t + 1), 400)
    assert min(values) == 0.005 and "lower" in [d.action for d in ctrl.decisions]


def test_nan_loss_backs_off_and_counts_as_instability() -> None:
    ctrl = NARSWarmup(1000)

    def with_nan(t: int, total_lr: float) -> float:
        return math.nan if t == 45 else exp_loss(t, total_lr)

    values = drive(ctrl, with_nan, 80)
    assert all(math.isfinite(m) for m in values)
    assert ctrl.decisions[45].action == "backoff" and values[46] == values[45] * 0.5
    after = ctrl.decisions[46]
    assert "backed off" in after.reason and after.evidence["b2_w_plus"] == pytest.approx(1.0)
    inf_ctrl = NARSWarmup(1000)
    drive(inf_ctrl, exp_loss, 20, grad_of=lambda t: math.inf if t == 15 else 1.0)
    assert inf_ctrl.decisions[15].action == "backoff"
    assert all(math.isfinite(d.multiplier) for d in inf_ctrl.decisions)


def test_every_decision_logs_the_truth_values() -> None:
    ctrl = NARSWarmup(1000)
    losses = noisy_losses(200, 0)
    drive(ctrl, lambda t, s: losses[t], 200)
    keys = {f"{b}_{q}" for b in ("b1", "b2") for q in ("f", "c", "e", "w_plus", "w_minus")}
    for d in ctrl.decisions:
        if d.action == "backoff":  # the base class's decision: the bad signal is named in the reason
            assert "loss" in d.reason and d.evidence == {}
            continue
        assert keys <= set(d.evidence) and d.reason
        for b in ("b1", "b2"):
            tv = TruthValue(d.evidence[f"{b}_w_plus"], d.evidence[f"{b}_w_minus"])
            assert (tv.frequency, tv.confidence) == (d.evidence[f"{b}_f"], d.evidence[f"{b}_c"])
            assert tv.expectation == d.evidence[f"{b}_e"]
    ends = interval_ends(ctrl)
    assert ends and all("rate" in d.evidence and "trend_z" in d.evidence for d in ends)
    actions = {d.action for d in ctrl.decisions}
    assert {"raise", "hold", "lower", "backoff"} <= actions


def run_signals(ctrl: NARSWarmup, signals: Iterable[dict[str, float]]) -> list[float]:
    return [ctrl.observe(**s) for s in signals]


@pytest.mark.parametrize("k", [7, 30, 101, 134, 150, 151, 152])
def test_state_round_trip_mid_warmup_gives_identical_multipliers(k: int) -> None:
    losses = noisy_losses(400, seed=3)
    grads = [1.0 + 0.1 * (i % 7) for i in range(400)]
    stream = [{"loss": v, "grad_norm": g} for v, g in zip(losses, grads)]
    kwargs = {"interval": 8, "decay": 0.9}
    original = NARSWarmup(400, **kwargs)
    run_signals(original, stream[:k])
    assert original.handover_step is None  # still warming up at k
    resumed = NARSWarmup(400, **kwargs)
    resumed.load_state_dict(json.loads(json.dumps(original.state_dict())))
    assert resumed.multiplier() == original.multiplier()
    assert run_signals(resumed, stream[k:]) == run_signals(original, stream[k:])
    assert resumed.state_dict() == original.state_dict()


def test_scheduler_resume_reproduces_the_learning_rates() -> None:
    losses = noisy_losses(300, seed=4)

    def build() -> tuple[torch.optim.Optimizer, preheat.Scheduler]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.5)
        return opt, preheat.Scheduler(opt, NARSWarmup(300))

    opt, sched = build()
    lrs = []
    for i, loss in enumerate(losses):
        opt.step()
        sched.step(loss=loss)
        lrs.append(sched.get_last_lr()[0])
        if i == 140:
            state = sched.state_dict()
    opt2, sched2 = build()
    sched2.load_state_dict(state)
    resumed = []
    for loss in losses[141:]:
        opt2.step()
        sched2.step(loss=loss)
        resumed.append(sched2.get_last_lr()[0])
    assert resumed == lrs[141:]


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"total": 0}, "total"),
        ({"interval": 2}, "interval"),
        ({"interval": 2.5}, "interval"),
        ({"interval": True}, "interval"),
        ({"initial": 0.0}, "initial"),
        ({"initial": 1.5}, "initial"),
        ({"initial": math.nan}, "initial"),
        ({"initial": 0.01, "floor": 0.1}, "initial"),
        ({"raise_factor": 1.0}, "raise_factor"),
        ({"lower_factor": 1.0}, "lower_factor"),
        ({"lower_factor": 0.0}, "lower_factor"),
        ({"threshold_raise": 1.5}, "threshold_raise"),
        ({"threshold_instability": -0.1}, "threshold_instability"),
        ({"spike_factor": 1.0}, "spike_factor"),
        ({"spike_floor": 2.0}, "spike_floor"),
        ({"spike_patience": 0}, "spike_patience"),
        ({"decay": 0.0}, "decay"),
        ({"decay": 1.5}, "decay"),
        ({"horizon": 0.0}, "horizon"),
        ({"envelope_factor": 0.5}, "envelope_factor"),
        ({"reference_steps": 0}, "reference_steps"),
        ({"reference_steps": 1001}, "reference_steps"),
        ({"after": "nope("}, "after"),
        ({"backoff": 1.0}, "backoff"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs: dict, name: str) -> None:
    kwargs = {"total": 1000, **kwargs}
    with pytest.raises(ValueError, match=rf"nars_warmup: {name}=.* is invalid; expected"):
        NARSWarmup(**kwargs)


def test_signals_without_loss_are_refused() -> None:
    with pytest.raises(ValueError, match="lack 'loss'"):
        NARSWarmup(100).observe(grad_norm=1.0)


# -- a real run ------------------------------------------------------------------------------


def test_digits_run_reaches_the_peak_with_finite_loss() -> None:
    """Adam at peak LR 0.05 on digits (a peak where no warmup spikes the loss early)."""
    torch.manual_seed(0)
    task, total = make_task("digits"), 600
    model = task.model(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    ctrl = NARSWarmup(total)
    sched = preheat.Scheduler(opt, ctrl)
    batches = task.batches(0, 128)
    losses, lrs = [], []
    for _ in range(total):
        loss, _ = task.loss(model, next(batches))
        opt.zero_grad()
        loss.backward()
        opt.step()
        lrs.append(opt.param_groups[0]["lr"])
        sched.step(loss=loss.item())
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert ctrl.handover_step is not None and ctrl.handover_step < total
    assert max(lrs) == pytest.approx(0.05) and lrs[0] == pytest.approx(0.05 * 0.01)
    assert max(losses) < 1.5 * losses[0]  # without warmup the loss doubles at update 1
    assert sum(losses[-50:]) / 50 < 0.2 * losses[0]
    assert task.evaluate(model)["val_accuracy"] > 0.8
