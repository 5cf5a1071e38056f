"""Presets (warmup_cosine, warmup_linear, wsd) against their formulas, and their boundaries."""

from __future__ import annotations

import math

import numpy as np
import pytest

import preheat
from preheat import schedules as S

from . import _reference as ref


def warmup_cosine_formula(t, warmup, total, start=0.0, end=0.0):
    if t < warmup:
        return start + (1 - start) * t / warmup
    if t >= total:
        return end
    p = (t - warmup) / (total - warmup)
    return end + (1 - end) * (1 + math.cos(math.pi * p)) / 2


def warmup_linear_formula(t, warmup, total, start=0.0, end=0.0):
    if t < warmup:
        return start + (1 - start) * t / warmup
    if t >= total:
        return end
    return 1 - (1 - end) * (t - warmup) / (total - warmup)


def wsd_formula(t, warmup, total, decay_fraction=0.2, shape="linear", end=0.0, start=0.0):
    decay = round(decay_fraction * total)
    stable = total - warmup - decay
    if t < warmup:
        return start + (1 - start) * t / warmup
    if t < warmup + stable:
        return 1.0
    p = 1.0 if decay == 0 else min(t - warmup - stable, decay) / decay
    if shape == "linear":
        return 1 - (1 - end) * p
    if shape == "cosine":
        return end + (1 - end) * (1 + math.cos(math.pi * p)) / 2
    if shape == "1-sqrt":
        return 1 - (1 - end) * math.sqrt(p)
    if shape == "exponential":
        return end**p
    raise AssertionError(shape)


def _compare(schedule, formula, total):
    steps = list(range(total + 12)) + [10 * total + 3, 10**6]
    for t in steps:
        assert schedule(t) == pytest.approx(formula(t), rel=1e-12, abs=1e-14), f"step {t}"
    np.testing.assert_allclose(schedule(np.array(steps)), [formula(t) for t in steps], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("warmup", "total", "start", "end"),
    [(10, 100, 0.0, 0.0), (2, 10, 0.0, 0.0), (0, 50, 0.0, 0.1), (7, 40, 0.1, 0.05), (1, 2, 0.5, 0.0), (30, 31, 0.0, 0.2)],
)
def test_warmup_cosine_formula(warmup, total, start, end):
    s = S.warmup_cosine(warmup, total, start=start, end=end)
    _compare(s, lambda t: warmup_cosine_formula(t, warmup, total, start, end), total)
    assert s.length == total
    assert s(0) == pytest.approx(start if warmup else 1.0)
    assert s(warmup) == 1.0
    assert s(total) == pytest.approx(end)


@pytest.mark.parametrize(
    ("warmup", "total", "start", "end"),
    [(10, 100, 0.0, 0.0), (2, 10, 0.0, 0.0), (0, 50, 0.0, 0.1), (7, 40, 0.1, 0.05), (1, 2, 0.5, 0.0)],
)
def test_warmup_linear_formula(warmup, total, start, end):
    s = S.warmup_linear(warmup, total, start=start, end=end)
    _compare(s, lambda t: warmup_linear_formula(t, warmup, total, start, end), total)
    assert s.length == total


def test_warmup_cosine_when_warmup_is_the_whole_run():
    s = S.warmup_cosine(10, 10, end=0.1)
    assert [s(t) for t in range(10)] == pytest.approx([t / 10 for t in range(10)])
    assert s(10) == pytest.approx(0.1)  # update `total` and later get `end`
    assert s.length == 10


def test_presets_are_the_documented_chains():
    assert S.warmup_cosine(10, 100, start=0.1, end=0.05) == S.linear_warmup(10, start=0.1) >> S.cosine_decay(90, end=0.05)
    assert S.warmup_linear(10, 100) == S.linear_warmup(10) >> S.linear_decay(90)
    w = S.wsd(10, 100, decay_fraction=0.3, shape="cosine", end=0.01)
    assert w == S.linear_warmup(10) >> S.constant(60) >> S.cosine_decay(30, end=0.01)
    assert preheat.warmup_cosine is S.warmup_cosine


WSD_CASES = [
    (10, 100, 0.2, "linear", 0.0, 0.0),
    (10, 100, 0.2, "cosine", 0.0, 0.0),
    (10, 100, 0.2, "1-sqrt", 0.0, 0.0),
    (10, 100, 0.2, "exponential", 0.01, 0.0),
    (5, 47, 0.33, "linear", 0.1, 0.2),
    (5, 47, 0.33, "cosine", 0.1, 0.2),
    (5, 47, 0.33, "1-sqrt", 0.1, 0.2),
    (5, 47, 0.33, "exponential", 0.1, 0.2),
    (0, 30, 0.5, "cosine", 0.0, 0.0),
    (0, 30, 0.5, "exponential", 0.5, 0.0),
    (3, 10, 0.6, "linear", 0.0, 0.0),
    (4, 20, 1.0 - 4 / 20 - 0.05, "1-sqrt", 0.0, 0.0),
]


@pytest.mark.parametrize(("warmup", "total", "fraction", "shape", "end", "start"), WSD_CASES)
def test_wsd_formula_every_shape(warmup, total, fraction, shape, end, start):
    s = S.wsd(warmup, total, decay_fraction=fraction, shape=shape, end=end, start=start)
    _compare(s, lambda t: wsd_formula(t, warmup, total, fraction, shape, end, start), total)
    assert s.length == total
    assert s(total) == pytest.approx(end)
    assert s(0) == pytest.approx(start if warmup else 1.0)


def test_wsd_default_decay_is_a_fifth_linear_to_zero():
    s = S.wsd(100, 1000)
    assert [s(t) for t in (0, 50, 100, 500, 799, 800)] == pytest.approx([0, 0.5, 1, 1, 1, 1])
    assert s(900) == pytest.approx(0.5)
    assert s(1000) == 0.0


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt", "exponential"])
def test_wsd_without_stable_phase(shape):
    """warmup + round(decay_fraction * total) == total leaves a stable phase of 0 steps."""
    end = 0.1
    s = S.wsd(100, 500, decay_fraction=0.8, shape=shape, end=end)
    _compare(s, lambda t: wsd_formula(t, 100, 500, 0.8, shape, end), 500)


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt", "exponential"])
def test_wsd_decay_rounding_to_zero_steps(shape):
    """round(0.001 * 100) == 0: either a clear ValueError naming decay_fraction, or a schedule
    that is 1 until ``total`` and ``end`` from then on."""
    try:
        s = S.wsd(10, 100, decay_fraction=0.001, shape=shape, end=0.1)
    except ValueError as err:
        assert "decay_fraction" in str(err)
        return
    assert s(99) == 1.0
    assert s(100) == pytest.approx(0.1)
    assert s(10**6) == pytest.approx(0.1)
    # its value holds from `total` on, so it ends there (and `>>` can follow it, as for D > 0)
    assert s.length == 100


@pytest.mark.parametrize(
    ("kwargs", "mentions"),
    [
        ({"warmup": 200, "total": 100}, ["warmup=200", "total=100"]),
        ({"warmup": -1, "total": 100}, ["warmup", "-1"]),
        ({"warmup": 10, "total": 100.5}, ["total", "100.5"]),
    ],
)
@pytest.mark.parametrize("preset", [S.warmup_cosine, S.warmup_linear, S.wsd])
def test_preset_bad_warmup_total(preset, kwargs, mentions):
    with pytest.raises(ValueError) as info:
        preset(**kwargs)
    for m in mentions:
        assert m in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "mentions"),
    [
        ({"shape": "step"}, ["shape", "'step'"]),
        ({"shape": "exponential", "end": 0.0}, ["end", "exponential"]),
        ({"decay_fraction": 0.0}, ["decay_fraction", "0.0"]),
        ({"decay_fraction": 1.5}, ["decay_fraction", "1.5"]),
        ({"decay_fraction": float("nan")}, ["decay_fraction", "nan"]),
        ({"end": 1.5}, ["end", "1.5"]),
        ({"start": -0.1}, ["start", "-0.1"]),
        ({"warmup": 50, "decay_fraction": 0.6}, ["warmup=50", "decay_fraction"]),
    ],
)
def test_wsd_bad_arguments(kwargs, mentions):
    args = {"warmup": 10, "total": 100, **kwargs}
    with pytest.raises(ValueError) as info:
        S.wsd(**args)
    for m in mentions:
        assert m in str(info.value)


@pytest.mark.parametrize(("start", "end"), [(1.5, 0.0), (0.0, 1.5), (-0.5, 0.0)])
def test_warmup_cosine_bad_start_end(start, end):
    with pytest.raises(ValueError, match="start|end"):
        S.warmup_cosine(10, 100, start=start, end=end)


# -- continuity at the phase boundaries ------------------------------------------------------


def _phase_steps(schedule):
    phases = schedule.schedules if isinstance(schedule, S.Join) else (schedule,)
    biggest = 0.0
    for phase in phases:
        if phase.length:
            values = phase(np.arange(phase.length + 1))
            biggest = max(biggest, float(np.max(np.abs(np.diff(values)))))
    return biggest


def _assert_continuous(schedule):
    assert isinstance(schedule, S.Join)
    step = _phase_steps(schedule)
    starts = (0, *schedule.boundaries)
    for i, b in enumerate(schedule.boundaries):
        before, after = schedule.schedules[i], schedule.schedules[i + 1]
        # the phase before ends where the next one starts ...
        assert before(b - starts[i]) == pytest.approx(after(0), abs=1e-12)
        # ... so the jump across the boundary is one ordinary step of the phases
        assert abs(schedule(b) - schedule(b - 1)) <= step + 1e-12


@pytest.mark.parametrize(("warmup", "total", "start", "end"), [(10, 100, 0.0, 0.0), (3, 50, 0.2, 0.1), (1, 5, 0.0, 0.0)])
def test_warmup_cosine_and_linear_continuous(warmup, total, start, end):
    _assert_continuous(S.warmup_cosine(warmup, total, start, end))
    _assert_continuous(S.warmup_linear(warmup, total, start, end))


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt", "exponential"])
def test_wsd_continuous(shape):
    _assert_continuous(S.wsd(20, 200, decay_fraction=0.25, shape=shape, end=0.05, start=0.1))
