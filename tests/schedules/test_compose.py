"""Composition: ``a >> b`` (phases), explicit ``join`` boundaries and products ``a * b``."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from preheat import schedules as S

from . import _reference as ref


def _chain_reference(*phases):
    """Reference for phases one after another: ``[(formula, length), ...]``; the last may be None."""

    def value(t: int) -> float:
        offset = 0
        for formula, length in phases[:-1]:
            if t < offset + length:
                return formula(t - offset)
            offset += length
        return phases[-1][0](t - offset)

    return value


def _check(schedule, formula, steps):
    for t in steps:
        assert schedule(t) == pytest.approx(formula(t), rel=1e-12, abs=1e-14), f"step {t}"
    arr = np.array(list(steps))
    np.testing.assert_allclose(schedule(arr), [formula(int(t)) for t in arr], rtol=1e-12, atol=1e-14)


# -- a >> b ------------------------------------------------------------------------------------


def test_then_second_phase_starts_at_its_own_step_zero():
    a, b = S.linear_warmup(4, start=0.2), S.linear_decay(6, end=0.2)
    s = a >> b
    expected = _chain_reference(
        (lambda t: ref.linear_warmup(t, 4, 0.2), 4), (lambda t: ref.linear_decay(t, 6, 0.2), 6)
    )
    _check(s, expected, range(0, 20))
    assert s.length == 10
    assert s(3) == pytest.approx(0.2 + 0.8 * 3 / 4)
    assert s(4) == 1.0  # b's step 0
    assert s(5) == pytest.approx(1 - 0.8 / 6)  # b's step 1
    assert s(10) == pytest.approx(0.2) and s(10**6) == pytest.approx(0.2)


def test_then_three_phases_with_different_families():
    s = S.cosine_warmup(5) >> S.constant(3, value=0.5) >> S.cosine_decay(8, end=0.1)
    expected = _chain_reference(
        (lambda t: ref.cosine_warmup(t, 5), 5),
        (lambda t: 0.5, 3),
        (lambda t: ref.cosine_decay(t, 8, 0.1), 8),
    )
    _check(s, expected, range(0, 25))
    assert s.length == 16


def test_then_with_never_ending_last_phase():
    s = S.linear_warmup(10) >> S.inverse_sqrt(10)
    assert s.length is None
    expected = _chain_reference((lambda t: ref.linear_warmup(t, 10), 10), (lambda t: ref.inverse_sqrt(t, 10.0), None))
    _check(s, expected, [0, 1, 9, 10, 11, 40, 1000, 10**6])


def test_then_after_a_finite_exponential_warmup_starts_at_its_held_value():
    s = S.exponential_warmup(tau=5.0, steps=10) >> S.linear_decay(10)
    assert s(9) == pytest.approx(1 - math.exp(-10 / 5.0))
    assert s(10) == 1.0  # the decay's step 0
    assert s.length == 20


def test_chains_flatten_whatever_the_grouping():
    a, b, c = S.linear_warmup(4), S.constant(3), S.linear_decay(5)
    left, right = (a >> b) >> c, a >> (b >> c)
    for s in (left, right):
        assert isinstance(s, S.Join)
        assert s.schedules == (a, b, c)
        assert s.boundaries == (4, 7)
        assert s.length == 12
    assert left == right
    d = S.cosine_decay(2)
    long = (a >> b) >> (c >> d)
    assert long.schedules == (a, b, c, d)
    assert long.boundaries == (4, 7, 12)


def test_then_equals_explicit_join_at_the_phase_end():
    a, b = S.linear_warmup(7), S.cosine_decay(9)
    assert (a >> b) == S.join([a, b], [7])
    t = np.arange(30)
    np.testing.assert_array_equal((a >> b)(t), S.join([a, b], [7])(t))


# -- zero-length phases ------------------------------------------------------------------------


def test_zero_length_first_phase_is_never_used():
    b = S.linear_decay(6, end=0.1)
    s = S.linear_warmup(0) >> b
    t = np.arange(12)
    np.testing.assert_array_equal(s(t), b(t))
    assert s.length == 6


def test_zero_length_last_phase_gives_its_value_from_the_boundary_on():
    a = S.linear_warmup(4)
    s = a >> S.linear_decay(0, end=0.3)
    assert s.length == 4
    assert [s(t) for t in range(4)] == pytest.approx([0, 0.25, 0.5, 0.75])
    assert s(4) == pytest.approx(0.3) and s(100) == pytest.approx(0.3)


def test_zero_length_middle_phase_is_skipped():
    """``a >> constant(0) >> c`` (WSD with no stable phase) is ``a`` then ``c``."""
    a, c = S.linear_warmup(4), S.linear_decay(5, end=0.1)
    s = a >> S.constant(0) >> c
    expected = _chain_reference((lambda t: ref.linear_warmup(t, 4), 4), (lambda t: ref.linear_decay(t, 5, 0.1), 5))
    _check(s, expected, range(0, 15))
    assert s.length == 9


def test_zero_length_phase_then_more_phases_in_one_chain():
    a, c = S.cosine_warmup(3), S.cosine_decay(4)
    s = (a >> S.linear_decay(0, end=0.5)) >> c
    expected = _chain_reference((lambda t: ref.cosine_warmup(t, 3), 3), (lambda t: ref.cosine_decay(t, 4), 4))
    _check(s, expected, range(0, 10))


# -- explicit boundaries -----------------------------------------------------------------------


def test_join_cuts_a_phase_longer_than_its_interval():
    s = S.join([S.linear_warmup(10), S.constant(value=0.5)], [5])
    assert [s(t) for t in range(5)] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    assert s(5) == 0.5 and s(1000) == 0.5
    assert s.length is None


def test_join_holds_a_phase_shorter_than_its_interval():
    s = S.join([S.linear_warmup(3), S.linear_decay(10)], [8])
    assert [s(t) for t in range(3)] == pytest.approx([0, 1 / 3, 2 / 3])
    assert [s(t) for t in range(3, 8)] == [1.0] * 5
    assert s(8) == 1.0
    assert s(9) == pytest.approx(0.9)
    assert s(18) == 0.0
    assert s.length == 18


def test_join_three_phases_each_from_its_own_step_zero():
    s = S.join([S.constant(value=0.2), S.linear_decay(4), S.cosine_decay(10, end=0.05)], [3, 9])
    expected = _chain_reference(
        (lambda t: 0.2, 3),
        (lambda t: ref.linear_decay(t, 4), 6),  # 4 decay steps, then held for 2
        (lambda t: ref.cosine_decay(t, 10, 0.05), 10),
    )
    _check(s, expected, range(0, 25))
    assert s.length == 19


def test_join_of_joins_nested():
    inner = S.join([S.linear_warmup(4), S.constant(value=0.8)], [2])
    s = S.join([inner, S.linear_decay(4)], [6])
    assert [s(t) for t in range(6)] == pytest.approx([0, 0.25, 0.8, 0.8, 0.8, 0.8])
    assert s(6) == 1.0 and s(8) == pytest.approx(0.5) and s(10) == 0.0


def test_join_of_a_single_phase_is_refused():
    # one phase is that phase; a Join of one would not survive str -> parse as a Join
    with pytest.raises(ValueError, match="at least two schedules"):
        S.join([S.cosine_decay(7)], [])


# -- products ---------------------------------------------------------------------------------


def test_product_multiplies_at_every_step():
    s = S.linear_warmup(10) * S.linear_decay(20, end=0.1)
    expected = lambda t: ref.linear_warmup(t, 10) * ref.linear_decay(t, 20, 0.1)  # noqa: E731
    _check(s, expected, range(0, 30))
    assert s.length == 20
    assert isinstance(s, S.Product)


def test_product_paper_form_exponential_warmup_on_cosine_decay():
    s = S.exponential_warmup(beta2=0.999) * S.cosine_decay(10_000)
    assert s.length is None  # a factor never ends
    expected = lambda t: ref.exponential_warmup(t, beta2=0.999) * ref.cosine_decay(t, 10_000)  # noqa: E731
    _check(s, expected, [0, 1, 10, 999, 1000, 5000, 9999, 10_000, 10_001, 50_000])
    assert s(0) == pytest.approx(1 - math.exp(-0.001))


def test_product_of_three_flattens_and_is_associative():
    a, b, c = S.linear_warmup(5), S.cosine_decay(12), S.constant(value=0.5)
    left, right = (a * b) * c, a * (b * c)
    assert left.factors == right.factors == (a, b, c)
    assert left == right
    expected = lambda t: ref.linear_warmup(t, 5) * ref.cosine_decay(t, 12) * 0.5  # noqa: E731
    _check(left, expected, range(0, 20))


def test_product_with_a_chain_factor_and_chain_of_products():
    chain = S.linear_warmup(3) >> S.linear_decay(6)
    s = chain * S.radam_warmup(0.9, steps=20)
    expected = lambda t: _chain_reference(  # noqa: E731
        (lambda u: ref.linear_warmup(u, 3), 3), (lambda u: ref.linear_decay(u, 6), 6)
    )(t) * ref.radam_warmup(t, 0.9, steps=20)
    _check(s, expected, range(0, 30))
    assert s.length == 20
    later = s >> S.constant(value=0.3)
    assert later(20) == 0.3 and later(19) == pytest.approx(expected(19))


# -- composition that cannot be built ------------------------------------------------------


NEVER_ENDING = [
    S.constant(),
    S.exponential_warmup(tau=5.0),
    S.exponential_warmup(beta2=0.999),
    S.radam_warmup(0.999),
    S.inverse_sqrt(100),
    S.step_decay(every=10),
    S.exponential_decay(rate=0.9),
    S.exponential_warmup(beta2=0.999) * S.cosine_decay(100),
    S.linear_warmup(10) >> S.inverse_sqrt(10),
]


@pytest.mark.parametrize("left", NEVER_ENDING, ids=str)
def test_then_after_a_never_ending_schedule_raises(left):
    assert left.length is None
    with pytest.raises(ValueError, match="never ends"):
        left >> S.linear_decay(10)


def test_operators_with_non_schedules_raise_type_error():
    s = S.linear_warmup(10)
    with pytest.raises(TypeError):
        s >> 5  # noqa: B018
    with pytest.raises(TypeError):
        s * 0.5  # noqa: B018
    with pytest.raises(TypeError):
        0.5 * s  # noqa: B018


@pytest.mark.parametrize(
    ("schedules", "boundaries", "mentions"),
    [
        ([], [], "schedules"),
        ([S.linear_warmup(3), S.constant()], [], "boundaries"),
        ([S.linear_warmup(3), S.constant()], [3, 5], "boundaries"),
        ([S.linear_warmup(3), S.constant(), S.constant()], [5, 5], "boundaries"),
        ([S.linear_warmup(3), S.constant(), S.constant()], [6, 4], "boundaries"),
        ([S.linear_warmup(3), S.constant()], [0], "boundaries"),
        ([S.linear_warmup(3), S.constant()], [-2], "boundaries"),
        ([S.linear_warmup(3), S.constant()], [2.5], "boundaries"),
        ([S.linear_warmup(3), "constant()"], [3], "schedules"),
    ],
)
def test_join_validation(schedules, boundaries, mentions):
    with pytest.raises(ValueError, match=mentions):
        S.join(schedules, boundaries)


def test_product_validation():
    with pytest.raises(ValueError, match="factors"):
        S.Product((S.linear_warmup(3),))
    with pytest.raises(ValueError, match="factors"):
        S.Product((S.linear_warmup(3), 0.5))


# -- immutability and equality ------------------------------------------------------------


def test_schedules_are_immutable_and_hashable():
    s = S.linear_warmup(10) >> S.cosine_decay(90)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.boundaries = (20,)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.schedules[0].steps = 20  # type: ignore[misc]
    assert hash(s) == hash(S.linear_warmup(10) >> S.cosine_decay(90))
    assert s == S.linear_warmup(10) >> S.cosine_decay(90)
    assert s != S.linear_warmup(10) >> S.cosine_decay(91)
    assert s != S.linear_warmup(10) * S.cosine_decay(90)
    assert len({s, S.linear_warmup(10) >> S.cosine_decay(90)}) == 1


def test_normalised_arguments_compare_equal():
    assert S.linear_warmup(10.0) == S.linear_warmup(10)
    assert S.linear_warmup(1e3) == S.linear_warmup(1000)
    assert S.constant(value=1) == S.constant()
    assert S.step_decay(milestones=[3, 7]) == S.step_decay(milestones=(3, 7))
    assert S.join([S.linear_warmup(3), S.constant()], [3.0]) == S.linear_warmup(3) >> S.constant()
    assert isinstance(S.linear_warmup(10.0).steps, int)
    assert isinstance(S.constant(value=1).value, float)
