"""Property tests (hypothesis): bounds, monotonicity, continuity, holding, array == scalar."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from preheat import schedules as S

from . import _strategies as gen

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _grid(schedule, extra: int = 40) -> np.ndarray:
    n = schedule.length
    top = (n if n is not None else 200) + extra
    return np.unique(np.concatenate([np.arange(min(top, 400) + 1), [top, 10 * top + 7, 10**6]]).astype(np.int64))


@FAST
@given(gen.schedules)
def test_values_lie_in_zero_one(schedule):
    values = schedule(_grid(schedule))
    assert np.all(np.isfinite(values))
    assert np.all(values >= 0.0), values.min()
    assert np.all(values <= 1.0), values.max()


@FAST
@given(gen.warmups)
def test_warmups_never_decrease(schedule):
    values = schedule(_grid(schedule))
    assert np.all(np.diff(values) >= -1e-12), np.diff(values).min()
    n = schedule.length
    if n is not None and not isinstance(schedule, (S.ExponentialWarmup, S.RAdamWarmup)):
        assert schedule(n) == 1.0  # a finite warmup reaches the peak at its last step


@FAST
@given(gen.monotone_decays)
def test_decays_never_increase(schedule):
    values = schedule(_grid(schedule))
    assert np.all(np.diff(values) <= 1e-12), np.diff(values).max()
    if isinstance(schedule, S.Constant):
        assert schedule(0) == schedule.value
    elif schedule.length != 0:  # a zero-length decay is already at its end
        assert schedule(0) == 1.0


@FAST
@given(gen.schedules, st.integers(1, 10**9))
def test_holds_after_length(schedule, later):
    n = schedule.length
    if n is None:
        return
    assert schedule(n + later) == schedule(n)
    assert schedule(n + 1) == schedule(n)
    held = schedule(np.array([n, n + 1, n + later, n + 2 * later]))
    assert np.all(held == held[0])


@FAST
@given(gen.schedules, st.lists(st.integers(0, 500), min_size=1, max_size=30))
@example(S.exponential_decay(half_life=10), [0, 1, 2, 3, 7, 20, 41])
@example(S.step_decay(every=3, gamma=0.1), list(range(0, 40, 3)))
@example(S.radam_warmup(0.999) * S.cosine_decay(400), list(range(0, 60)))
def test_array_equals_elementwise_scalar(schedule, steps):
    array = np.array(steps, dtype=np.int64)
    values = schedule(array)
    assert values.dtype == np.float64 and values.shape == array.shape
    np.testing.assert_array_equal(values, [schedule(t) for t in steps])


def _assert_boundaries_continuous(schedule):
    """The jump across each boundary is at most the largest step-to-step change inside a phase."""
    phases = schedule.schedules if isinstance(schedule, S.Join) else (schedule,)
    biggest = 0.0
    for phase in phases:
        if phase.length:
            biggest = max(biggest, float(np.max(np.abs(np.diff(phase(np.arange(phase.length + 1)))))))
    for b in getattr(schedule, "boundaries", ()):
        assert abs(schedule(b) - schedule(b - 1)) <= biggest + 1e-12, (b, schedule)


@FAST
@given(
    st.integers(0, 60),
    st.integers(1, 300),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.sampled_from([S.warmup_cosine, S.warmup_linear]),
)
def test_warmup_decay_presets_are_continuous(warmup, extra, start, end, preset):
    # (warmup == total is left out: the decay then has no steps and update `total` gets `end`.)
    schedule = preset(warmup, warmup + extra, start=start, end=end)
    _assert_boundaries_continuous(schedule)
    assert schedule(warmup) == 1.0
    assert abs(schedule(warmup + extra) - end) <= 1e-12


@FAST
@given(
    st.integers(1, 60),
    st.integers(1, 300),
    st.floats(0.0, 1.0),
    st.floats(0.05, 1.0),
    st.floats(0.0, 1.0),
    st.sampled_from(["linear", "cosine", "1-sqrt", "exponential"]),
)
def test_wsd_is_continuous(warmup, decay, start, end, stable_share, shape):
    stable = 1 + int(stable_share * 200)  # a stable phase of at least one step
    total = warmup + stable + decay
    # pick decay_fraction so that round(decay_fraction * total) == decay
    fraction = decay / total
    schedule = S.wsd(warmup, total, decay_fraction=fraction, shape=shape, end=end, start=start)
    assert schedule.length == total
    _assert_boundaries_continuous(schedule)
    assert schedule(warmup) == 1.0
    assert abs(schedule(total) - end) <= 1e-12


@FAST
@given(gen.schedules, st.lists(st.integers(0, 400), min_size=1, max_size=20))
def test_join_and_product_semantics(schedule, steps):
    """A join gives phase i at ``t - boundary_i``; a product multiplies its factors."""
    for t in steps:
        if isinstance(schedule, S.Join):
            starts = (0, *schedule.boundaries)
            i = sum(1 for b in schedule.boundaries if b <= t)
            assert schedule(t) == schedule.schedules[i](t - starts[i])
        elif isinstance(schedule, S.Product):
            expected = float(np.prod([f(t) for f in schedule.factors]))
            assert abs(schedule(t) - expected) <= 1e-15 * max(expected, 1e-300) + 1e-300
