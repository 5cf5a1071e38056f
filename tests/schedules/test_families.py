"""Every schedule family against an independently written formula (see ``_reference.py``).

Each case checks step 0, a few interior steps, the last step, and steps after the end (where
the value must hold), with both int and NumPy-array evaluation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import preheat
from preheat import schedules as S

from . import _reference as ref

# (id, schedule, reference(t), expected length)
CASES = [
    # warmups
    ("linear_warmup", S.linear_warmup(10), lambda t: ref.linear_warmup(t, 10), 10),
    ("linear_warmup_start", S.linear_warmup(8, start=0.25), lambda t: ref.linear_warmup(t, 8, 0.25), 8),
    ("linear_warmup_one_step", S.linear_warmup(1, start=0.5), lambda t: ref.linear_warmup(t, 1, 0.5), 1),
    ("linear_warmup_zero", S.linear_warmup(0), lambda t: 1.0, 0),
    ("cosine_warmup", S.cosine_warmup(10), lambda t: ref.cosine_warmup(t, 10), 10),
    ("cosine_warmup_start", S.cosine_warmup(7, start=0.1), lambda t: ref.cosine_warmup(t, 7, 0.1), 7),
    ("cosine_warmup_zero", S.cosine_warmup(0, start=0.3), lambda t: 1.0, 0),
    ("polynomial_warmup_sq", S.polynomial_warmup(10, 2.0), lambda t: ref.polynomial_warmup(t, 10, 2.0), 10),
    (
        "polynomial_warmup_sqrt_start",
        S.polynomial_warmup(9, power=0.5, start=0.2),
        lambda t: ref.polynomial_warmup(t, 9, 0.5, 0.2),
        9,
    ),
    ("exponential_warmup_tau", S.exponential_warmup(tau=50.0), lambda t: ref.exponential_warmup(t, tau=50.0), None),
    (
        "exponential_warmup_beta2",
        S.exponential_warmup(beta2=0.999),
        lambda t: ref.exponential_warmup(t, beta2=0.999),
        None,
    ),
    (
        "exponential_warmup_tau_steps",
        S.exponential_warmup(tau=20, steps=30),
        lambda t: ref.exponential_warmup(t, tau=20.0, steps=30),
        30,
    ),
    (
        "exponential_warmup_beta2_steps",
        S.exponential_warmup(beta2=0.99, steps=100),
        lambda t: ref.exponential_warmup(t, beta2=0.99, steps=100),
        100,
    ),
    ("untuned_0.999", S.untuned_linear_warmup(0.999), lambda t: ref.untuned_linear_warmup(t, 0.999), 1999),
    ("untuned_0.99", S.untuned_linear_warmup(0.99), lambda t: ref.untuned_linear_warmup(t, 0.99), 199),
    ("untuned_0.9", S.untuned_linear_warmup(0.9), lambda t: ref.untuned_linear_warmup(t, 0.9), 19),
    ("radam_0.999", S.radam_warmup(0.999), lambda t: ref.radam_warmup(t, 0.999), None),
    ("radam_0.9", S.radam_warmup(0.9), lambda t: ref.radam_warmup(t, 0.9), None),
    ("radam_0.999_steps", S.radam_warmup(0.999, steps=50), lambda t: ref.radam_warmup(t, 0.999, steps=50), 50),
    # decays
    ("constant", S.constant(), lambda t: 1.0, None),
    ("constant_phase", S.constant(steps=20, value=0.3), lambda t: 0.3, 20),
    ("constant_zero_steps", S.constant(0, value=0.7), lambda t: 0.7, 0),
    ("linear_decay", S.linear_decay(10), lambda t: ref.linear_decay(t, 10), 10),
    ("linear_decay_end", S.linear_decay(10, end=0.1), lambda t: ref.linear_decay(t, 10, 0.1), 10),
    ("linear_decay_zero", S.linear_decay(0, end=0.4), lambda t: 0.4, 0),
    ("cosine_decay", S.cosine_decay(20), lambda t: ref.cosine_decay(t, 20), 20),
    ("cosine_decay_end", S.cosine_decay(20, end=0.1), lambda t: ref.cosine_decay(t, 20, 0.1), 20),
    ("cosine_decay_1.5_cycles", S.cosine_decay(24, cycles=1.5), lambda t: ref.cosine_decay(t, 24, 0.0, 1.5), 24),
    (
        "cosine_decay_1_cycle",
        S.cosine_decay(16, end=0.2, cycles=1.0),
        lambda t: ref.cosine_decay(t, 16, 0.2, 1.0),
        16,
    ),
    ("cosine_decay_zero", S.cosine_decay(0, end=0.3), lambda t: 0.3, 0),
    ("cosine_restarts_3", S.cosine_restarts(30, cycles=3), lambda t: ref.cosine_restarts(t, 30, 3.0), 30),
    ("cosine_restarts_1", S.cosine_restarts(20), lambda t: ref.cosine_restarts(t, 20), 20),
    (
        "cosine_restarts_2.5_end",
        S.cosine_restarts(25, cycles=2.5, end=0.05),
        lambda t: ref.cosine_restarts(t, 25, 2.5, 0.05),
        25,
    ),
    ("polynomial_decay", S.polynomial_decay(10), lambda t: ref.polynomial_decay(t, 10), 10),
    (
        "polynomial_decay_sq_end",
        S.polynomial_decay(12, power=2.0, end=0.1),
        lambda t: ref.polynomial_decay(t, 12, 2.0, 0.1),
        12,
    ),
    ("polynomial_decay_sqrt", S.polynomial_decay(8, power=0.5), lambda t: ref.polynomial_decay(t, 8, 0.5), 8),
    ("exponential_decay_rate", S.exponential_decay(rate=0.9), lambda t: ref.exponential_decay(t, rate=0.9), None),
    (
        "exponential_decay_half_life",
        S.exponential_decay(half_life=10),
        lambda t: ref.exponential_decay(t, half_life=10.0),
        None,
    ),
    (
        "exponential_decay_rate_steps",
        S.exponential_decay(rate=0.95, steps=40),
        lambda t: ref.exponential_decay(t, rate=0.95, steps=40),
        40,
    ),
    (
        "exponential_decay_half_life_steps",
        S.exponential_decay(half_life=7.5, steps=30),
        lambda t: ref.exponential_decay(t, half_life=7.5, steps=30),
        30,
    ),
    ("step_decay_every", S.step_decay(every=10), lambda t: ref.step_decay(t, every=10), None),
    ("step_decay_every_gamma", S.step_decay(every=3, gamma=0.5), lambda t: ref.step_decay(t, every=3, gamma=0.5), None),
    (
        "step_decay_milestones",
        S.step_decay(milestones=[5, 12, 20], gamma=0.3),
        lambda t: ref.step_decay(t, gamma=0.3, milestones=(5, 12, 20)),
        20,
    ),
    ("inverse_sqrt", S.inverse_sqrt(100), lambda t: ref.inverse_sqrt(t, 100.0), None),
    ("inverse_sqrt_small", S.inverse_sqrt(2.5), lambda t: ref.inverse_sqrt(t, 2.5), None),
    ("one_minus_sqrt", S.one_minus_sqrt_decay(16), lambda t: ref.one_minus_sqrt_decay(t, 16), 16),
    (
        "one_minus_sqrt_end",
        S.one_minus_sqrt_decay(10, end=0.2),
        lambda t: ref.one_minus_sqrt_decay(t, 10, 0.2),
        10,
    ),
]

IDS = [c[0] for c in CASES]


def _rtol(schedule) -> float:
    # RAdam's rectification is ill-conditioned just above its rho > 5 threshold (it subtracts
    # two nearly equal numbers), so beta2**k computed by NumPy or by Python differs there by a
    # few parts in 1e12.
    return 1e-9 if isinstance(schedule, S.RAdamWarmup) else 1e-12


def _steps(length: int | None) -> list[int]:
    """Step 0, interior steps, the last step and steps after the end."""
    if length is None:
        return [0, 1, 2, 3, 5, 9, 10, 11, 17, 50, 99, 100, 101, 1000, 12345, 10**6]
    picks = {0, 1, 2, length // 3, length // 2, max(length - 1, 0), length, length + 1, length + 7, 3 * length + 11, 10**6}
    return sorted(picks)


@pytest.mark.parametrize(("schedule", "formula", "length"), [c[1:] for c in CASES], ids=IDS)
def test_family_matches_formula_at_chosen_steps(schedule, formula, length):
    assert schedule.length == length
    rtol = _rtol(schedule)
    for t in _steps(length):
        value = schedule(t)
        assert isinstance(value, float)
        assert value == pytest.approx(formula(t), rel=rtol, abs=1e-14), f"step {t}"


@pytest.mark.parametrize(("schedule", "formula", "length"), [c[1:] for c in CASES], ids=IDS)
def test_family_matches_formula_at_every_step(schedule, formula, length):
    horizon = 300 if length is None else min(length, 2500) + 5
    steps = np.arange(horizon + 1)
    expected = np.array([formula(int(t)) for t in steps])
    np.testing.assert_allclose(schedule(steps), expected, rtol=_rtol(schedule), atol=1e-14)


FINITE = [c for c in CASES if c[3] is not None]


@pytest.mark.parametrize(("schedule", "formula", "length"), [c[1:] for c in FINITE], ids=[c[0] for c in FINITE])
def test_family_holds_after_length(schedule, formula, length):
    final = schedule(length)
    for k in (1, 2, 13, 1000, 10**9):
        assert schedule(length + k) == final
    after = schedule(np.arange(length, length + 50))
    assert np.all(after == final)


@pytest.mark.parametrize(("schedule", "formula", "length"), [c[1:] for c in CASES], ids=IDS)
def test_array_equals_elementwise_scalar(schedule, formula, length):
    top = 150 if length is None else length + 20
    steps = np.array([0, top, 3, 1, 0, top // 2, 7, top - 1, 10**6], dtype=np.int64)
    values = schedule(steps)
    assert isinstance(values, np.ndarray)
    assert values.dtype == np.float64
    assert values.shape == steps.shape
    np.testing.assert_array_equal(values, [schedule(int(t)) for t in steps])

    grid = np.arange(24).reshape(2, 3, 4) * max(1, top // 20)
    values2d = schedule(grid)
    assert values2d.shape == (2, 3, 4)
    np.testing.assert_array_equal(values2d, np.vectorize(lambda t: schedule(int(t)))(grid))

    # Other integer dtypes, 0-d arrays, lists and empty arrays.
    np.testing.assert_array_equal(schedule(steps.astype(np.uint32)), values)
    np.testing.assert_array_equal(schedule(steps.astype(np.int32)), values)
    zero_d = schedule(np.array(5))
    assert zero_d.shape == () and float(zero_d) == schedule(5)
    np.testing.assert_array_equal(schedule([0, 1, 2]), [schedule(0), schedule(1), schedule(2)])
    assert schedule(np.array([], dtype=np.int64)).shape == (0,)
    # NumPy integer scalars are steps too.
    assert schedule(np.int64(3)) == schedule(3)
    assert schedule(np.uint8(3)) == schedule(3)


# -- facts each docstring states, checked by hand ------------------------------------------


def test_linear_warmup_update_zero_gets_start_and_steps_gets_one():
    s = S.linear_warmup(4, start=0.2)
    assert s(0) == 0.2
    assert s(2) == pytest.approx(0.2 + 0.8 * 0.5)
    assert s(4) == 1.0
    assert S.linear_warmup(4)(0) == 0.0


def test_cosine_warmup_is_half_way_at_mid_point():
    assert S.cosine_warmup(10)(5) == pytest.approx(0.5)
    assert S.cosine_warmup(10, start=0.2)(5) == pytest.approx(0.6)


def test_polynomial_warmup_power_one_is_linear_warmup():
    a, b = S.polynomial_warmup(12, 1.0, start=0.1), S.linear_warmup(12, start=0.1)
    t = np.arange(20)
    np.testing.assert_allclose(a(t), b(t), rtol=0, atol=1e-15)


def test_exponential_warmup_update_zero_and_beta2_equivalence():
    # Update 0 gets 1 - exp(-1/tau): the paper's t = 1.
    assert S.exponential_warmup(tau=10)(0) == pytest.approx(1 - math.exp(-0.1))
    # beta2 form: tau = 1 / (1 - beta2).
    a = S.exponential_warmup(beta2=0.99)
    b = S.exponential_warmup(tau=100.0)
    t = np.array([0, 1, 50, 99, 100, 500, 5000])
    np.testing.assert_allclose(a(t), b(t), rtol=1e-12)
    assert a.time_constant == pytest.approx(100.0)
    # It approaches 1 but never ends.
    assert a.length is None
    assert a(500) < 1.0
    assert a(10_000) <= 1.0
    assert a(10_000) == pytest.approx(1.0)


def test_exponential_warmup_with_steps_holds_its_value_at_steps():
    s = S.exponential_warmup(tau=5.0, steps=10)
    held = 1 - math.exp(-11 / 5.0)
    assert s(10) == pytest.approx(held)
    assert s(11) == s(10) == s(10**7)


def test_untuned_linear_warmup_paper_numbers_for_beta2_0999():
    s = S.untuned_linear_warmup(0.999)
    assert s.period == 2000
    assert s.length == 1999
    assert s(0) == pytest.approx(1 / 2000)
    assert s(999) == pytest.approx(0.5)
    assert s(1998) == pytest.approx(1999 / 2000)
    assert s(1998) < 1.0
    assert s(1999) == 1.0
    assert s(2000) == 1.0 and s(10**6) == 1.0


@pytest.mark.parametrize("beta2", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999])
def test_untuned_period_is_nearest_integer(beta2):
    s = S.untuned_linear_warmup(beta2)
    exact = 2.0 / (1.0 - beta2)
    assert s.period == round(exact)
    assert abs(s.period - exact) <= 0.5
    assert s.length == s.period - 1
    assert s(s.period - 2) < 1.0 <= s(s.period - 1)


def test_radam_update_zero_gets_zero_and_switch_on_step():
    s = S.radam_warmup(0.999)
    assert s(0) == 0.0
    # rho_1 = 1 exactly (k = 1): RAdam is off at its first update.
    assert ref.radam_rho(1, 0.999) == pytest.approx(1.0)
    first_on = next(k for k in range(1, 100) if ref.radam_rho(k, 0.999) > 5.0)
    assert s(first_on - 2) == 0.0
    assert s(first_on - 1) > 0.0
    assert s(10**6) == pytest.approx(1.0, abs=1e-9)
    assert s(10**6) <= 1.0


def test_constant_value_everywhere():
    s = S.constant(value=0.25)
    assert s.length is None
    assert s(0) == s(10**9) == 0.25
    assert S.constant()(7) == 1.0


def test_cosine_decay_half_way_and_end():
    s = S.cosine_decay(10, end=0.2)
    assert s(0) == 1.0
    assert s(5) == pytest.approx(0.6)
    assert s(10) == pytest.approx(0.2)
    # 1.5 cycles: down, up, down. At p = 1/3 it is at the bottom, p = 2/3 at the top.
    w = S.cosine_decay(30, cycles=1.5)
    assert w(10) == pytest.approx(0.0, abs=1e-15)
    assert w(20) == pytest.approx(1.0)
    assert w(30) == pytest.approx(0.0, abs=1e-15)


def test_cosine_decay_integer_cycles_holds_value_at_steps_not_climbing():
    s = S.cosine_decay(10, cycles=1.0, end=0.1)
    assert s(10) == pytest.approx(1.0)
    assert s(11) == s(10)


def test_cosine_restarts_restart_points_get_one():
    s = S.cosine_restarts(30, cycles=3, end=0.1)
    for start in (0, 10, 20):
        assert s(start) == pytest.approx(1.0)
    for mid in (5, 15, 25):
        assert s(mid) == pytest.approx(0.1 + 0.9 * 0.5)
    assert s(9) < s(10)
    assert s(30) == 0.1 and s(31) == 0.1


def test_exponential_decay_half_life_and_rate():
    assert S.exponential_decay(half_life=10)(10) == pytest.approx(0.5)
    assert S.exponential_decay(half_life=10)(30) == pytest.approx(0.125)
    assert S.exponential_decay(rate=0.5)(3) == pytest.approx(0.125)
    assert S.exponential_decay(rate=1.0)(1000) == 1.0
    assert S.exponential_decay(rate=0.9)(0) == 1.0


def test_inverse_sqrt_half_at_three_timescales():
    s = S.inverse_sqrt(250)
    assert s(0) == 1.0
    assert s(750) == pytest.approx(0.5)
    assert s(15 * 250) == pytest.approx(0.25)  # sqrt(1 / (1 + 15)) = 1/4


def test_one_minus_sqrt_quarter_point():
    s = S.one_minus_sqrt_decay(100, end=0.0)
    assert s(25) == pytest.approx(0.5)
    assert s(0) == 1.0 and s(100) == 0.0


def test_step_decay_milestones_end_at_last_milestone():
    s = S.step_decay(milestones=[3, 7], gamma=0.5)
    assert s.length == 7
    assert [s(t) for t in range(10)] == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25])


# -- cross-checks against PyTorch ----------------------------------------------------------


def _torch_lrs(make_scheduler, n):
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = make_scheduler(torch, optimizer)
    lrs = []
    for _ in range(n):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize(("every", "gamma"), [(10, 0.1), (3, 0.5), (1, 0.9), (7, 0.25)])
def test_step_decay_every_matches_torch_steplr(every, gamma):
    lrs = _torch_lrs(lambda torch, opt: torch.optim.lr_scheduler.StepLR(opt, step_size=every, gamma=gamma), 60)
    ours = S.step_decay(every=every, gamma=gamma)
    np.testing.assert_allclose([ours(t) for t in range(60)], lrs, rtol=1e-12)
    np.testing.assert_allclose(ours(np.arange(60)), lrs, rtol=1e-12)


@pytest.mark.parametrize(("milestones", "gamma"), [([5, 12, 20], 0.3), ([1], 0.1), ([2, 3, 4, 40], 0.5)])
def test_step_decay_milestones_matches_torch_multisteplr(milestones, gamma):
    lrs = _torch_lrs(
        lambda torch, opt: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=gamma), 60
    )
    ours = S.step_decay(milestones=milestones, gamma=gamma)
    np.testing.assert_allclose([ours(t) for t in range(60)], lrs, rtol=1e-12)


@pytest.mark.parametrize("beta2", [0.999, 0.99, 0.9, 0.7])
def test_radam_warmup_matches_torch_radam_rectification(beta2):
    """With a constant gradient of 1, torch's RAdam moves the parameter by lr * r_t per update
    when rectified (rho_t > 5) and by lr (un-adapted momentum step, m_hat = 1) otherwise."""
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = torch.optim.RAdam([param], lr=1.0, betas=(0.9, beta2), eps=0.0, foreach=False)
    ours = S.radam_warmup(beta2)
    n = 120
    rectified_steps = 0
    for t in range(n):
        before = param.detach().clone()
        param.grad = torch.ones_like(param)
        optimizer.step()
        delta = float((before - param.detach())[0])
        if ref.radam_rho(t + 1, beta2) > 5.0:
            rectified_steps += 1
            assert ours(t) == pytest.approx(delta, rel=1e-9), f"update {t}"
        else:
            assert ours(t) == 0.0, f"update {t}"
            assert delta == pytest.approx(1.0, rel=1e-9)  # torch's un-rectified SGD-momentum step
    assert rectified_steps > 0


def test_radam_threshold_matches_torch_source():
    pytest.importorskip("torch")
    import importlib
    import inspect

    source = inspect.getsource(importlib.import_module("torch.optim.radam"))
    assert "rho_t > 5.0" in source
    # The switch-on update of ours is the first k with rho_k > 5 (k = t + 1).
    for beta2 in (0.9, 0.99, 0.999):
        s = S.radam_warmup(beta2)
        first_k = next(k for k in range(1, 1000) if ref.radam_rho(k, beta2) > 5.0)
        assert s(first_k - 2) == 0.0 < s(first_k - 1)


def test_public_names_are_exported():
    for name in S.EXPRESSION_NAMES:
        assert callable(getattr(preheat, name))
    assert set(S.HF_NAMES) >= {"linear", "cosine", "warmup_stable_decay"}
