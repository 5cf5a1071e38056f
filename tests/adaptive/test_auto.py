"""auto_warmup's decision rule on synthetic loss sequences, its resume, its errors, its names."""

from __future__ import annotations

import json
import math
import random

import pytest

import preheat
from preheat.adaptive import AutoWarmup, parse_controller


def run(controller: AutoWarmup, loss_at, updates: int, grad_at=lambda t, m: 1.0) -> list[float]:
    """Feed ``loss_at(t, multiplier)`` and ``grad_at(t, multiplier)`` (the gradient norm; None:
    not given) for ``updates`` updates; the multipliers used."""
    used = []
    for t in range(updates):
        used.append(controller.multiplier())
        grad = grad_at(t, used[-1])
        controller.observe(loss=loss_at(t, used[-1]), **({} if grad is None else {"grad_norm": grad}))
    return used


def falling(t: int, m: float) -> float:
    return 2.0 * math.exp(-t / 50)


def test_a_falling_loss_doubles_every_patience_updates_and_hands_over_at_the_peak() -> None:
    controller = AutoWarmup(400)
    assert controller.patience == 4 and controller.multiplier() == 2.0**-8
    used = run(controller, falling, 60)
    raises = [d.step for d in controller.decisions if d.action == "raise"]
    first = [falling(t, 0) for t in range(4)]  # a plain mean while 1/n > alpha, then the EMA
    assert controller.decisions[3].reason == f"starting loss {0.7 * sum(first[:3]) / 3 + 0.3 * first[3]:.4g}"
    assert raises == [8, 12, 16, 20, 24, 28, 32, 36]
    assert used[8] == 2.0**-7 and used[36] == 1.0  # exact doublings
    assert controller.handover_step == 40
    after = preheat.cosine_decay(400 - 40)
    assert used[40:] == [after(t) for t in range(len(used) - 40)]  # cosine from the peak


def test_a_spike_undoes_the_last_doubling_and_a_second_one_sets_the_ceiling() -> None:
    controller = AutoWarmup(400, patience=2)

    def loss(t: int, m: float) -> float:  # the run cannot take a quarter of the peak or more
        return 100.0 if m >= 0.25 else falling(t, m)
    used = run(controller, loss, 80)
    lowers = [d for d in controller.decisions if d.action == "lower"]
    assert [d.multiplier for d in lowers[:2]] == [0.125, 0.125]
    assert "undo the last doubling" in lowers[0].reason and "second spike at this level: ceiling 0.125" in lowers[1].reason
    assert controller.state.ceiling == 0.125 and max(used[lowers[1].step:]) <= 0.125
    assert controller.handover_step is not None
    h = controller.handover_step
    assert used[h + 3] == pytest.approx(0.125 * preheat.cosine_decay(400 - h)(3))  # decays from the ceiling


def test_a_loss_that_stays_high_after_a_spike_is_cut_once_per_stall_not_at_every_update() -> None:
    controller = AutoWarmup(400)

    def loss(t: int, m: float) -> float:  # reaching the peak knocks the run onto a plateau for good
        return 5.0 if t > 37 else falling(t, m)
    used = run(controller, loss, 120)
    lowers = [d for d in controller.decisions if d.action == "lower"]
    assert "undo the last doubling" in lowers[0].reason and lowers[0].multiplier == 0.5
    assert all("does not pay" in d.reason for d in lowers[1:])  # the plateau is no new spike
    assert len(lowers) <= 1 + (120 - lowers[0].step) // (controller.stall * controller.patience)
    h = controller.handover_step
    assert h is not None and min(used[40:h]) == controller.stall_above / 2  # the stall rule's last cut


def test_a_gradient_spike_near_the_peak_undoes_the_doubling_and_doubles_the_wait() -> None:
    controller = AutoWarmup(400)
    spiked = []

    def grad(t: int, m: float) -> float:  # the first update two after reaching half the peak spikes 5x
        if m == 0.5 and not spiked and controller.state.since_change >= 2:
            spiked.append(t)
            return 5.0
        return 1.0
    used = run(controller, falling, 120, grad)
    lowers = [d for d in controller.decisions if d.action == "lower"]
    assert len(lowers) == 1 and lowers[0].step == spiked[0] + 1 and lowers[0].multiplier == 0.25
    assert "gradient norm 5 > grad_limit=4.0 x 1: undo the last doubling; the next raise waits 8" in lowers[0].reason
    raises = [d.step for d in controller.decisions if d.action == "raise"]
    wait = 2 * controller.patience  # from now on, every raise waits twice the patience
    assert raises[-2:] == [lowers[0].step + wait, lowers[0].step + 2 * wait]
    assert used[raises[-2]] == 0.5 and used[raises[-1]] == 1.0 and controller.state.grad_spikes == 1
    assert controller.handover_step == raises[-1] + wait


def test_a_gradient_spike_far_below_the_peak_or_no_gradient_norm_changes_nothing() -> None:
    def low_spikes(t: int, m: float) -> float:
        return 100.0 if m < 0.125 and t % 5 == 0 else 1.0
    assert run(AutoWarmup(400), falling, 60, low_spikes) == run(AutoWarmup(400), falling, 60)
    assert run(AutoWarmup(400), falling, 60, lambda t, m: None) == run(AutoWarmup(400), falling, 60)


def test_a_lucky_first_batch_does_not_hold_the_climb() -> None:
    """The reference is the mean of the first losses, not the first loss alone (a digits run whose
    first batch was its easiest stayed at 2^-8 for 40 updates)."""
    noise = random.Random(0)
    controller = AutoWarmup(400)
    used = run(controller, lambda t, m: 2.2 if t == 0 else 2.4 + 0.03 * noise.gauss(0, 1) - 0.2 * m, 120)
    assert used[4 + 5 * controller.patience] == controller.stall_above  # a doubling every patience updates
    assert controller.decisions[3].evidence["ema"] > 2.3  # the mean of the first losses, not the first


def test_above_stall_above_a_flat_loss_is_no_reason_to_raise() -> None:
    noise = random.Random(1)
    controller = AutoWarmup(400, initial=0.25)
    used = run(controller, lambda t, m: 2.4 + 0.03 * noise.gauss(0, 1), 40)
    assert max(used) <= 0.5  # raises need the average below the reference: by chance, not by margin
    assert any("does not pay" in d.reason for d in controller.decisions)


def test_a_level_where_the_loss_stalls_is_cut_and_becomes_the_ceiling() -> None:
    controller = AutoWarmup(400)

    def loss(t: int, m: float) -> float:  # above half the peak the loss stops falling
        return 1.0 + (0.5 if m > 0.5 else math.exp(-t / 20))
    run(controller, loss, 200)
    stall = next(d for d in controller.decisions if "does not pay" in d.reason)
    assert stall.multiplier == 0.5 and controller.state.ceiling == 0.5
    assert controller.handover_step is not None and controller.multiplier() <= 0.5


def test_it_holds_while_the_loss_is_above_its_reference() -> None:
    controller = AutoWarmup(400, initial=0.25)
    run(controller, lambda t, m: 1.0 + 0.01 * t, 12)  # rising slowly: never a spike, never a raise
    assert {d.action for d in controller.decisions} == {"hold"}
    assert "waiting for the loss to come back" in controller.decisions[-1].reason


def test_a_nan_loss_backs_off() -> None:
    controller = AutoWarmup(400)
    run(controller, falling, 10)
    before = controller.current
    controller.observe(loss=math.nan)
    assert controller.decisions[-1].action == "backoff" and controller.current == before * 0.5


def test_resume_in_a_fresh_controller_repeats_every_decision() -> None:
    def loss(t: int, m: float) -> float:
        return 50.0 if 30 <= t < 32 else 1.0 + 0.5 * math.exp(-t / 30) + (0.3 if m > 0.5 else 0.0)

    def grad(t: int, m: float) -> float:
        return 9.0 if t in (26, 45) else 1.0 + 0.1 * math.sin(t)
    whole = AutoWarmup(300)
    whole.bind(0.1)
    run(whole, loss, 120, grad)
    assert whole.state.grad_spikes > 0 and any(d.action == "lower" for d in whole.decisions[:32])
    first = AutoWarmup(300)
    first.bind(0.1)
    run(first, loss, 40, grad)
    resumed = AutoWarmup(300)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    for t in range(40, 120):
        m = resumed.multiplier()
        resumed.observe(loss=loss(t, m), grad_norm=grad(t, m))
    assert resumed.state_dict() == whole.state_dict()


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"initial": 0.0}, "initial=0.0 is invalid"),
    ({"patience": 0}, "patience=0 is invalid"),
    ({"alpha": 1.5}, "alpha=1.5 is invalid"),
    ({"spike_limit": 1.0}, "spike_limit=1.0 is invalid"),
    ({"stall": 0}, "stall=0 is invalid"),
    ({"grad_limit": 1.0}, "grad_limit=1.0 is invalid"),
    ({"after": "nope("}, "after='nope\\(' is invalid"),
])
def test_bad_arguments_are_named(kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        AutoWarmup(100, **kwargs)


def test_one_name_everywhere() -> None:
    assert isinstance(preheat.auto_warmup(total=100), AutoWarmup)
    parsed = parse_controller("auto_warmup()", total=100)
    assert isinstance(parsed, AutoWarmup) and parsed.bounds.after == "cosine_decay({steps})"
    assert parse_controller("auto_warmup()", total=100, after="constant()").bounds.after == "constant()"
    assert parse_controller("nars_warmup()", total=100).bounds.after == "constant()"  # its own default
