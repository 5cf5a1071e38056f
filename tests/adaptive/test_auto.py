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


def rules(total: int) -> AutoWarmup:
    """The controller the rule tests below drive: a 20 % ramp (``W = 80`` of 400 updates, 60 of
    300) and three windows up for a loss that stays up (SGD's), so their update counts stay
    those they were written for; the rules do not depend on either."""
    return AutoWarmup(total, ramp=0.2, persist=3)


def linear_then_cosine(t: int, warmup: int, total: int) -> float:
    """Written from the formula, not from preheat: (t + 1) / W up to update W - 1, then cosine
    from 1 to 0 over the updates left."""
    if t < warmup - 1:
        return (t + 1) / warmup
    left = total - (warmup - 1)
    return 0.5 * (1 + math.cos(math.pi * min(t - (warmup - 1), left) / left))


def test_undisturbed_it_is_the_linear_warmup_over_two_fifths_of_the_run_then_cosine() -> None:
    controller = AutoWarmup(400)
    assert controller.multiplier() == 1 / 160  # update 0 trains
    used = run(controller, falling, 300)
    assert controller.handover_step == 159
    assert used == pytest.approx([linear_then_cosine(t, 160, 400) for t in range(300)], abs=1e-12)
    assert {d.action for d in controller.decisions[:158]} == {"raise"}
    assert AutoWarmup(400, ramp=0.2).multiplier() == 1 / 80  # ramp sets W = round(ramp * total)


def test_one_high_loss_is_an_outlier_and_two_in_a_row_a_spike_that_halves_the_level() -> None:
    lone = rules(400)
    assert run(lone, lambda t, m: 50.0 if t == 30 else falling(t, m), 60) == run(rules(400), falling, 60)
    controller = rules(400)
    used = run(controller, lambda t, m: 50.0 if t in (30, 31) else falling(t, m), 60)
    [lower] = [d for d in controller.decisions if d.action == "lower"]
    assert lower.step == 32 and "twice in a row: back to half the level" in lower.reason
    assert used[32] == pytest.approx(used[31] / 2) and controller.state.ceiling == 1.0  # no ceiling yet
    assert used[33] == pytest.approx(used[32] + 1 / 80)  # and the ramp goes on from there


def test_a_second_spike_near_the_same_level_sets_the_ceiling_and_the_decay_starts_there() -> None:
    controller = rules(400)

    def loss(t: int, m: float) -> float:  # the run cannot take half the peak or more
        return 100.0 if m >= 0.5 else falling(t, m)
    used = run(controller, loss, 200)
    lowers = [d for d in controller.decisions if d.action == "lower"]
    assert len(lowers) == 2 and "ceiling" in lowers[1].reason and "ceiling" not in lowers[0].reason
    ceiling = controller.state.ceiling
    assert 0.25 <= ceiling < 0.3 and max(used[lowers[1].step:]) <= ceiling
    h = controller.handover_step
    assert h is not None and used[h] == ceiling
    assert used[h + 3] == pytest.approx(ceiling * preheat.cosine_decay(400 - h)(3))


def test_a_gradient_spike_halves_the_level_and_pauses_longer_each_time() -> None:
    controller = rules(400)
    spikes = {40, 70}
    used = run(controller, falling, 120, lambda t, m: 9.0 if t in spikes else 1.0)
    lowers = [d for d in controller.decisions if d.action == "lower"]
    assert [d.step for d in lowers] == [41, 71]
    assert "pause 2 updates" in lowers[0].reason and "pause 4 updates" in lowers[1].reason
    assert used[41] == pytest.approx(used[40] / 2) and used[41] == used[42] == used[43]  # paused
    assert used[44] == pytest.approx(used[43] + 1 / 80)
    assert controller.state.grad_spikes == 2


def test_gradient_spikes_far_below_the_peak_or_no_gradient_norm_change_nothing() -> None:
    def low_spikes(t: int, m: float) -> float:
        return 100.0 if m < 0.125 and t % 3 == 0 else 1.0
    assert run(rules(400), falling, 60, low_spikes) == run(rules(400), falling, 60)
    assert run(rules(400), falling, 60, lambda t, m: None) == run(rules(400), falling, 60)


def test_a_loss_that_stays_up_cuts_the_ceiling_to_half_the_level_of_its_lowest_window() -> None:
    controller = rules(400)
    noise = random.Random(0)

    def loss(t: int, m: float) -> float:  # falls with time; above 40 % of the peak the LR pushes it up
        return 1.0 + math.exp(-t / 30) + 0.02 * noise.gauss(0, 1) + 2.0 * max(0.0, m - 0.4)
    used = run(controller, loss, 200)
    [lower] = [d for d in controller.decisions if d.action == "lower"]
    assert "3 windows of 10 updates in a row more than 2 standard errors above the lowest" in lower.reason
    lowest = lower.evidence["lowest_level"]  # where the loss was lowest: near 40 % of the peak
    assert 0.35 <= lowest <= 0.5 and controller.state.ceiling == pytest.approx(lowest / 2)
    assert max(used[lower.step:]) <= controller.state.ceiling


def test_a_step_back_keeps_the_lowest_window_so_a_loss_that_stays_up_after_it_still_cuts() -> None:
    controller = rules(400)
    noise = random.Random(2)

    def loss(t: int, m: float) -> float:  # falls; at update 50 it jumps up 1.0 and stays there
        return 1.0 + math.exp(-t / 30) + 0.02 * noise.gauss(0, 1) + (1.0 if t >= 50 else 0.0)
    run(controller, loss, 160, grad_at=lambda t, m: 10.0 if t == 50 else 1.0)
    back, cut, *later = [d for d in controller.decisions if d.action == "lower"]  # later: in the watch
    assert back.step == 51 and "gradient norm" in back.reason
    assert "above the lowest window" in cut.reason and 80 <= cut.step <= 100
    lowest = cut.evidence["lowest_level"]  # the window before the jump, found before the step back
    assert lowest == pytest.approx(50 / 80) and cut.multiplier == pytest.approx(lowest / 2)


def test_a_noisy_flat_loss_and_a_catapult_that_comes_back_down_change_nothing() -> None:
    flat = random.Random(1)
    calm = rules(400)
    used = run(calm, lambda t, m: 1.0 + 0.3 * flat.gauss(0, 1) ** 2, 200)  # noisy, heavy-tailed, flat
    assert calm.state.ceiling == 1.0 and {d.action for d in calm.decisions} <= {"raise", "hold", "handover"}
    assert used == pytest.approx([linear_then_cosine(t, 80, 400) for t in range(200)], abs=1e-12)
    bump = rules(400)  # the loss rises for two windows at half the peak, then falls below its best
    run(bump, catapult, 200)
    assert bump.state.ceiling == 1.0 and bump.handover_step == 79


def catapult(t: int, m: float) -> float:
    """Falls, but rises by 0.5 for the two windows of updates 40-59, then falls below its best."""
    return 2.0 * math.exp(-t / 50) + (0.5 if 40 <= t < 60 else 0.0)


def test_persist_is_how_many_windows_up_make_the_loss_stay_up() -> None:
    eager = AutoWarmup(400, ramp=0.2, persist=2)  # two windows up are enough: the catapult is cut
    run(eager, catapult, 200)
    [cut] = [d for d in eager.decisions if d.action == "lower"]
    assert cut.step == 60 and "mean loss of 2 windows of 10 updates" in cut.reason
    assert eager.state.ceiling == pytest.approx(cut.evidence["lowest_level"] / 2)
    assert run(AutoWarmup(400, ramp=0.2), catapult, 200) == run(AutoWarmup(400, ramp=0.2, persist=2), catapult, 200)
    chosen = AutoWarmup(400, ramp=0.2, persist=2)
    chosen.bind(0.1, sgd=True)  # a chosen persist stays whatever the optimizer (SGD steps back first)
    run(chosen, catapult, 200)
    assert chosen.persist == 2 and [d for d in chosen.decisions if d.action == "lower"][0].step == 60
    for bad in (0, 1.5, "3"):
        with pytest.raises(ValueError, match=f"auto_warmup: persist={bad!r} is invalid; expected an integer >= 1"):
            AutoWarmup(400, persist=bad)


@pytest.mark.parametrize(("sgd", "windows"), [(True, 3), (False, 2)])
def test_by_default_sgd_waits_three_windows_and_every_other_optimizer_two(sgd: bool, windows: int) -> None:
    controller = AutoWarmup(400, ramp=0.2)
    controller.bind(0.1, sgd=sgd)
    run(controller, catapult, 200)  # a bump of two windows: SGD's catapult, left alone with SGD
    assert controller.persist == windows
    assert [d.step for d in controller.decisions if d.action == "lower"] == ([] if sgd else [60])


def test_the_scheduler_tells_the_controller_whether_the_optimizer_is_sgd() -> None:
    torch = pytest.importorskip("torch")
    params = [torch.nn.Parameter(torch.zeros(2, 2))]  # a matrix, as Muon wants
    for optimizer, windows in [(torch.optim.SGD(params, lr=0.1, momentum=0.9), 3),
                               (torch.optim.AdamW(params, lr=1e-3), 2), (torch.optim.Muon(params, lr=0.02), 2)]:
        controller = AutoWarmup(400)
        preheat.Scheduler(optimizer, controller)
        assert controller.persist == windows, type(optimizer).__name__


def test_with_sgd_a_peak_below_twice_the_catapult_lr_gets_a_short_ramp() -> None:
    probed = AutoWarmup(400)
    probed.bind(0.1, sgd=True)
    assert probed.prepare_needs == ("catapult_lr",) and probed.multiplier() == 1 / 160
    probed.prepare(catapult_lr=0.06)  # 0.1 / 0.06 = 1.67 < 2: 5 % of 400 updates
    assert probed.ramp == 0.05 and probed.multiplier() == 1 / 20
    used = run(probed, falling, 100)
    assert used == pytest.approx([linear_then_cosine(t, 20, 400) for t in range(100)], abs=1e-12)
    assert probed.handover_step == 19
    resumed = AutoWarmup(400)  # a fresh controller, bound as the scheduler binds it, then restored
    resumed.bind(0.1, sgd=True)
    resumed.load_state_dict(json.loads(json.dumps(probed.state_dict())))
    assert resumed.ramp == 0.05 and run(resumed, falling, 50) == run(probed, falling, 50)
    at_two = AutoWarmup(400)
    at_two.bind(0.1, sgd=True)
    at_two.prepare(catapult_lr=0.05)  # exactly 2: not below, the 40 % ramp
    assert at_two.ramp == 0.4 and at_two.multiplier() == 1 / 160
    # the first decision says where the ramp came from; the later ones do not repeat it
    assert probed.decisions[0].reason == ("ramp; ramp 0.05 of the run: with SGD the peak is 1.67x the catapult "
                                          "LR 0.06, below 2x") and probed.decisions[1].reason == "ramp"
    run(at_two, falling, 1)
    assert at_two.decisions[0].reason.endswith("the peak is 2x the catapult LR 0.05, not below 2x")
    for controller, origin in [(AutoWarmup(400), "ramp 0.4 of the run"),
                               (AutoWarmup(400, ramp=0.2), "ramp 0.2 of the run, as chosen")]:
        run(controller, falling, 1)
        assert controller.decisions[0].reason == f"ramp; {origin}"
    unprobed = AutoWarmup(400)
    unprobed.bind(0.1, sgd=True)
    run(unprobed, falling, 1)
    assert unprobed.decisions[0].reason == "ramp; ramp 0.4 of the run (SGD, no probe before training)"


def test_the_probe_is_for_sgd_before_update_0_and_a_chosen_ramp_needs_none() -> None:
    adam = AutoWarmup(400)
    adam.bind(0.1)
    assert adam.prepare_needs == ()
    with pytest.raises(ValueError, match=r"auto_warmup.prepare: \['catapult_lr'\] given after 0 update\(s\); "
                                         r"expected \[\] before update 0"):
        adam.prepare(catapult_lr=0.06)
    chosen = AutoWarmup(400, ramp=0.4)
    chosen.bind(0.1, sgd=True)
    assert chosen.prepare_needs == ()
    late = AutoWarmup(400)
    late.bind(0.1, sgd=True)
    run(late, falling, 1)
    with pytest.raises(ValueError, match=r"given after 1 update\(s\)"):
        late.prepare(catapult_lr=0.06)
    for bad in (0.0, -1.0, math.nan, "0.1"):
        fresh = AutoWarmup(400)
        fresh.bind(0.1, sgd=True)
        with pytest.raises(ValueError, match="auto_warmup: catapult_lr="):
            fresh.prepare(catapult_lr=bad)
        assert fresh.ramp == 0.4 and fresh.state.catapult_lr is None  # a failed prepare changes nothing


@pytest.mark.parametrize(("optimizer", "ramp"), [("sgd", 2), ("adamw", 16)])
def test_the_lab_probes_sgd_runs_before_update_0(optimizer: str, ramp: int) -> None:
    pytest.importorskip("torch")
    from preheat.lab.config import RunConfig
    from preheat.lab.run import train

    peak = 1e-4  # far below any catapult LR: the search stops at the peak, peak / eta_c = 1
    done = train(RunConfig(task="digits", task_options={"width": 16}, optimizer=optimizer, peak_lr=peak, steps=40,
                           batch_size=16, eval_every=20, controller="auto_warmup()"))
    assert done.status == "finished", done.error
    assert done.steps["lr"][0] == pytest.approx(peak / ramp)  # SGD: 5 % of 40 updates; AdamW: 40 %


def test_the_watch_after_the_ramp_follows_the_decay_and_can_still_cut_the_peak() -> None:
    controller = rules(400)

    def loss(t: int, m: float) -> float:  # fine on the way up; from update 100, at the peak, it climbs
        return 2.0 * math.exp(-t / 50) + (0.02 * (t - 100) if t >= 100 else 0.0)
    used = run(controller, loss, 240)
    [lower] = [d for d in controller.decisions if d.action == "lower"]
    assert 110 <= lower.step < 160 and controller.state.ceiling == pytest.approx(0.5)
    assert used[:lower.step] == pytest.approx([linear_then_cosine(t, 80, 400) for t in range(lower.step)])
    assert controller.handover_step == 79  # dated back to the ramp's end: the decay never jumps
    tail = range(lower.step, 240)
    assert [used[t] for t in tail] == pytest.approx([0.5 * linear_then_cosine(t, 80, 400) for t in tail])


def test_a_nan_loss_backs_off() -> None:
    controller = rules(400)
    run(controller, falling, 10)
    before = controller.current
    controller.observe(loss=math.nan)
    assert controller.decisions[-1].action == "backoff" and controller.current == before * 0.5


def test_resume_in_a_fresh_controller_repeats_every_decision() -> None:
    noise = random.Random(2)
    losses = [1.0 + 0.5 * math.exp(-t / 30) + 0.05 * noise.random() for t in range(200)]

    def loss(t: int, m: float) -> float:
        return 50.0 if t in (30, 31) else losses[t] + (0.5 if m > 0.6 else 0.0)

    def grad(t: int, m: float) -> float:
        return 9.0 if t in (26, 45) else 1.0 + 0.1 * math.sin(t)
    whole = rules(300)
    whole.bind(0.1)
    run(whole, loss, 200, grad)
    assert whole.state.grad_spikes > 0 and sum(d.action == "lower" for d in whole.decisions) >= 3
    assert whole.state.since is not None and whole.handover_step == whole.state.since  # through the watch
    first = rules(300)
    first.bind(0.1)
    run(first, loss, 40, grad)
    resumed = rules(300)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    for t in range(40, 200):
        m = resumed.multiplier()
        resumed.observe(loss=loss(t, m), grad_norm=grad(t, m))
    assert resumed.state_dict() == whole.state_dict()


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"ramp": 0.0}, "ramp=0.0 is invalid"),
    ({"ramp": 1.5}, "ramp=1.5 is invalid"),
    ({"alpha": 1.5}, "alpha=1.5 is invalid"),
    ({"spike_limit": 1.0}, "spike_limit=1.0 is invalid"),
    ({"grad_limit": 1.0}, "grad_limit=1.0 is invalid"),
    ({"window": 0.0}, "window=0.0 is invalid"),
    ({"watch": 1.5}, "watch=1.5 is invalid"),
    ({"watch_above": -0.1}, "watch_above=-0.1 is invalid"),
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


def climbs_above(level: float):
    """Falls, but above a multiplier of ``level`` it is up by twice the excess (a peak the
    network cannot take yet)."""
    def loss(t: int, m: float) -> float:
        return 2.0 * math.exp(-t / 50) + 2.0 * max(0.0, m - level)
    return loss


def test_with_sgd_the_first_loss_that_stays_up_steps_back_and_the_ramp_goes_on() -> None:
    sgd = AutoWarmup(400, ramp=0.2)
    sgd.bind(0.1, sgd=True)
    used = run(sgd, climbs_above(0.6), 400)
    first, second = [d for d in sgd.decisions if d.action == "lower"]
    # the first: back to half the lowest window's level, the ceiling untouched, the ramp goes on
    assert "the ramp goes on" in first.reason and first.multiplier == pytest.approx(first.evidence["lowest_level"] / 2)
    # (a decision's step is the update its multiplier is for)
    assert used[first.step: first.step + 6] == pytest.approx([first.multiplier + k / 80 for k in range(6)])
    # the second, once the ramp is back above 0.6: half the lowest window's level is the ceiling
    assert second.step > first.step + 30 and "ceiling" in second.reason
    assert sgd.state.ceiling == pytest.approx(second.evidence["lowest_level"] / 2) and sgd.state.ceiling < 0.6
    assert max(used[second.step:]) <= sgd.state.ceiling + 1e-12
    for cut in (first.step + 1, second.step - 1):  # resumed after the step back, it makes the same decisions
        again = AutoWarmup(400, ramp=0.2)
        again.bind(0.1, sgd=True)
        head = run(again, climbs_above(0.6), cut)
        resumed = AutoWarmup(400, ramp=0.2)
        resumed.bind(0.1, sgd=True)
        resumed.load_state_dict(json.loads(json.dumps(again.state_dict())))
        assert resumed.state.stepped_back
        assert head + run(resumed, lambda t, m: climbs_above(0.6)(t + cut, m), 400 - cut) == used
        assert [d.step for d in resumed.decisions if d.action == "lower"][-1] == second.step
    adam = AutoWarmup(400, ramp=0.2, persist=3)  # the same windows without SGD: the first time cuts
    adam.bind(0.1)
    run(adam, climbs_above(0.6), 400)
    assert [d.step for d in adam.decisions if d.action == "lower"] == [first.step]
    assert adam.state.ceiling == pytest.approx(first.multiplier)


def test_with_sgd_a_loss_that_stays_up_in_the_watch_ends_it_and_the_ramp_goes_on() -> None:
    sgd = AutoWarmup(400, ramp=0.2)
    sgd.bind(0.1, sgd=True)

    def loss(t: int, m: float) -> float:  # fine on the way up; in the watch it climbs for 35 updates
        return 2.0 * math.exp(-t / 50) + (0.02 * (t - 100) if 100 <= t < 135 else 0.0)
    used = run(sgd, loss, 400)
    first = next(d for d in sgd.decisions if d.action == "lower")
    assert [first] == [d for d in sgd.decisions if d.action == "lower"] and sgd.state.ceiling == 1.0
    assert 110 <= first.step < 160 and "the ramp goes on" in first.reason
    assert used[first.step] == pytest.approx(0.5)  # half the lowest window's level, 1: the peak's
    back = first.step + 40  # 40 raises of 1 / 80 later the ramp is at the peak again
    assert used[first.step: back + 1] == pytest.approx([0.5 + k / 80 for k in range(41)])
    assert sgd.handover_step == back  # a new watch from there, and the decay dated from it
    assert used[back + 1:] == pytest.approx([linear_then_cosine(t - back + 79, 80, 400 - back + 79)
                                             for t in range(back + 1, 400)])
