"""The benchmark's paired statistics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from preheat.lab.stats import interpolated_steps, outcome, paired_ratio

T_975_1 = 12.706204736174698  # Student t quantile 0.975, 1 degree of freedom (tables)
T_975_2 = 4.302652729749464  # 2 degrees of freedom


def test_the_ratio_is_the_geometric_mean_with_a_paired_t_interval() -> None:
    ratio = paired_ratio([1.0, 2.0], [2.0, 2.0])
    logs = [math.log(0.5), 0.0]
    mean = sum(logs) / 2
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / 1)
    half = T_975_1 * sd / math.sqrt(2)
    assert ratio.value == pytest.approx(math.sqrt(0.5))
    assert (ratio.low, ratio.high) == pytest.approx((math.exp(mean - half), math.exp(mean + half)))
    assert ratio.seeds == 2


def test_pairing_by_seed_removes_what_the_seed_does_to_both() -> None:
    """Seeds that differ a lot, a method 10 % lower on every one: a sure win."""
    method, baseline = [0.9, 1.8, 2.7], [1.0, 2.0, 3.0]
    assert paired_ratio(method, baseline).low == pytest.approx(0.9)
    assert paired_ratio(method, baseline).high == pytest.approx(0.9)
    assert outcome(method, baseline) == "win" and outcome(baseline, method) == "loss"


def test_an_interval_across_1_is_a_tie() -> None:
    method, baseline = [0.9, 1.1, 1.0], [1.0, 1.0, 1.0]
    logs = [math.log(0.9), math.log(1.1), 0.0]
    mean = sum(logs) / 3
    half = T_975_2 * math.sqrt(sum((x - mean) ** 2 for x in logs) / 2) / math.sqrt(3)
    assert math.exp(mean - half) < 1 < math.exp(mean + half)
    assert outcome(method, baseline) == "tie"


def test_divergence_decides_first() -> None:
    inf = math.inf
    assert outcome([1.0, inf, 1.0], [2.0, 2.0, 2.0]) == "loss"  # one seed diverged, none of the baseline's
    assert outcome([5.0, 5.0, 5.0], [inf, 1.0, 1.0]) == "win"
    assert outcome([inf, inf], [inf, inf]) == "tie"
    assert outcome([inf, 0.9, 1.8, 2.7], [inf, 1.0, 2.0, 3.0]) == "win"  # as many: the rest decide
    assert outcome([inf, 0.9, 1.0], [1.0, inf, 1.0]) == "tie"  # one seed left where both finished


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="seeds=1 is too few"):
        paired_ratio([1.0], [1.0])
    with pytest.raises(ValueError, match="one loss per seed"):
        outcome([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="finite, positive"):
        paired_ratio([1.0, math.inf], [1.0, 1.0])


def test_steps_to_target_are_interpolated_between_evaluations() -> None:
    steps, losses = [0, 10, 20, 30], [2.0, 1.5, 0.5, 0.4]
    assert interpolated_steps(steps, losses, 1.0) == pytest.approx(15.0)  # halfway from 1.5 to 0.5
    assert interpolated_steps(steps, losses, 0.5) == pytest.approx(20.0)
    assert interpolated_steps(steps, losses, 3.0) == 0.0
    assert interpolated_steps(steps, losses, 0.1) is None
    assert interpolated_steps([0, 10, 20], [2.0, math.nan, 0.1], 1.0) is None  # diverged first
