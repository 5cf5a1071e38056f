"""``from_hf_name`` against Hugging Face transformers' own LR lambdas, step by step."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from preheat import schedules as S

# (name, num_warmup_steps, num_training_steps, HF scheduler_specific_kwargs, extra kwargs for
#  from_hf_name (the optimizer LR as ``peak`` where HF reads an absolute LR), optimizer LR)
COMBOS = [
    ("linear", 2, 10, {}, {}, 1.0),
    ("linear", 0, 10, {}, {}, 1.0),
    ("linear", 5, 37, {}, {}, 1.0),
    ("cosine", 2, 10, {}, {}, 1.0),
    ("cosine", 0, 10, {}, {}, 1.0),
    ("cosine", 5, 37, {"num_cycles": 1.5}, {}, 1.0),
    ("cosine", 3, 23, {"num_cycles": 1.0}, {}, 1.0),
    ("cosine", 10, 10, {}, {}, 1.0),  # warmup == total: HF's cosine divides by max(1, 0)
    ("linear", 10, 10, {}, {}, 1.0),
    ("cosine_with_restarts", 2, 10, {}, {}, 1.0),
    ("cosine_with_restarts", 6, 6, {"num_cycles": 2}, {}, 1.0),
    ("cosine_with_restarts", 0, 20, {"num_cycles": 3}, {}, 1.0),
    ("cosine_with_restarts", 5, 37, {"num_cycles": 2.5}, {}, 1.0),
    ("polynomial", 2, 10, {}, {"peak": 1e-3}, 1e-3),  # HF's default lr_end=1e-7
    ("polynomial", 0, 12, {"lr_end": 1e-5, "power": 2.0}, {"peak": 1e-3}, 1e-3),
    ("polynomial", 4, 30, {"lr_end": 2e-4, "power": 0.5}, {"peak": 3e-3}, 3e-3),
    ("constant", 2, 10, {}, {}, 1.0),
    ("constant", 0, 10, {}, {}, 1.0),
    ("constant_with_warmup", 2, 10, {}, {}, 1.0),
    ("constant_with_warmup", 0, 10, {}, {}, 1.0),
    ("constant_with_warmup", 7, 30, {}, {}, 1.0),
    ("inverse_sqrt", 2, 10, {}, {}, 1.0),
    ("inverse_sqrt", 0, 50, {}, {}, 1.0),  # timescale falls back to 10_000
    ("inverse_sqrt", 5, 40, {"timescale": 20}, {}, 1.0),
    ("inverse_sqrt", 0, 40, {"timescale": 7}, {}, 1.0),
    ("cosine_with_min_lr", 2, 10, {"min_lr": 1e-5}, {"peak": 1e-3}, 1e-3),
    ("cosine_with_min_lr", 0, 16, {"min_lr_rate": 0.1}, {}, 1.0),
    ("cosine_with_min_lr", 4, 30, {"min_lr_rate": 0.05, "num_cycles": 1.5}, {}, 1.0),
    ("cosine_with_min_lr", 8, 8, {"min_lr_rate": 0.05}, {}, 1.0),
    ("warmup_stable_decay", 2, 10, {"num_decay_steps": 3}, {}, 1.0),
    ("warmup_stable_decay", 0, 20, {"num_decay_steps": 5, "decay_type": "1-sqrt"}, {}, 1.0),
    (
        "warmup_stable_decay",
        4,
        30,
        {"num_decay_steps": 8, "warmup_type": "cosine", "decay_type": "linear", "min_lr_ratio": 0.1},
        {},
        1.0,
    ),
    ("warmup_stable_decay", 3, None, {"num_decay_steps": 6, "num_stable_steps": 4, "min_lr_ratio": 0.2}, {}, 1.0),
    ("warmup_stable_decay", 3, 15, {"num_decay_steps": 6, "num_cycles": 1.5}, {}, 1.0),
]


def _id(combo) -> str:
    name, w, t, kwargs, _, _ = combo
    extra = ",".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{name}-W{w}-T{t}" + (f"-{extra}" if extra else "")


def _hf_lambda(name, warmup, total, kwargs, lr):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler = transformers.get_scheduler(
            name,
            optimizer,
            num_warmup_steps=warmup,
            num_training_steps=total,
            scheduler_specific_kwargs=dict(kwargs),
        )
    return scheduler.lr_lambdas[0]


def _last_step(warmup, total, kwargs):
    if total is not None:
        return total
    return warmup + kwargs["num_stable_steps"] + kwargs["num_decay_steps"]


def test_every_hf_name_is_covered_including_zero_warmup():
    assert {c[0] for c in COMBOS} == set(S.HF_NAMES)
    assert {c[0] for c in COMBOS if c[1] == 0} == set(S.HF_NAMES)


@pytest.mark.parametrize("combo", COMBOS, ids=[_id(c) for c in COMBOS])
def test_from_hf_name_equals_transformers_at_every_step(combo):
    name, warmup, total, hf_kwargs, extra, lr = combo
    hf = _hf_lambda(name, warmup, total, hf_kwargs, lr)
    ours = S.from_hf_name(name, warmup, total, **hf_kwargs, **extra)
    last = _last_step(warmup, total, hf_kwargs)
    steps = list(range(last + 1))
    expected = [float(hf(t)) for t in steps]
    got = [ours(t) for t in steps]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours(np.array(steps)), expected, rtol=1e-12, atol=1e-15)


HOLDING = [c for c in COMBOS if c[0] not in ("cosine", "cosine_with_min_lr")]


@pytest.mark.parametrize("combo", HOLDING, ids=[_id(c) for c in HOLDING])
def test_from_hf_name_after_training_steps_agrees_where_hf_holds(combo):
    """HF's linear, polynomial, restarts, WSD and constant curves also hold after the end."""
    name, warmup, total, hf_kwargs, extra, lr = combo
    hf = _hf_lambda(name, warmup, total, hf_kwargs, lr)
    ours = S.from_hf_name(name, warmup, total, **hf_kwargs, **extra)
    last = _last_step(warmup, total, hf_kwargs)
    for t in range(last + 1, last + 25):
        assert ours(t) == pytest.approx(float(hf(t)), rel=1e-12, abs=1e-15), f"step {t}"


@pytest.mark.parametrize("name", ["cosine", "cosine_with_min_lr"])
def test_cosine_holds_where_hf_climbs_back(name):
    kwargs = {"min_lr_rate": 0.1} if name == "cosine_with_min_lr" else {}
    ours = S.from_hf_name(name, 2, 10, **kwargs)
    hf = _hf_lambda(name, 2, 10, kwargs, 1.0)
    assert ours(10) == pytest.approx(float(hf(10)))
    assert float(hf(14)) > float(hf(10))  # HF's cosine climbs back after the end
    for t in (11, 14, 100, 10**6):
        assert ours(t) == ours(10)


# -- the literal numbers (truncated to 2 decimals, so compared within 0.01) -----------------

LINEAR_W2_T10_PEAK10 = [0, 5, 10, 8.75, 7.5, 6.25, 5.0, 3.75, 2.5, 1.25]
COSINE_W2_T10_PEAK10 = [0, 5, 10, 9.61, 8.53, 6.91, 5.0, 3.08, 1.46, 0.38]


@pytest.mark.parametrize(("name", "expected"), [("linear", LINEAR_W2_T10_PEAK10), ("cosine", COSINE_W2_T10_PEAK10)])
def test_literal_numbers_warmup_2_total_10_peak_10(name, expected):
    schedule = S.from_hf_name(name, 2, 10)
    lrs = [10 * schedule(t) for t in range(10)]
    for t, (lr, want) in enumerate(zip(lrs, expected)):
        assert abs(lr - want) < 0.01, f"step {t}: {lr} vs {want}"
    assert 10 * schedule(10) == pytest.approx(0.0, abs=1e-12)


def test_literal_cosine_numbers_match_the_closed_form():
    # The truncated literals above, recomputed exactly: 10 * (1 + cos(pi * (t - 2) / 8)) / 2.
    schedule = S.from_hf_name("cosine", 2, 10)
    for t in range(2, 11):
        assert 10 * schedule(t) == pytest.approx(5 * (1 + math.cos(math.pi * (t - 2) / 8)), rel=1e-12, abs=1e-12)


# -- absolute-LR keyword arguments ----------------------------------------------------------


def test_polynomial_lr_end_with_peak_equals_ratio_form():
    a = S.from_hf_name("polynomial", 3, 20, lr_end=1e-5, peak=1e-3, power=2.0)
    b = S.from_hf_name("polynomial", 3, 20, lr_end_rate=0.01, power=2.0)
    t = np.arange(30)
    np.testing.assert_allclose(a(t), b(t), rtol=1e-12, atol=1e-15)
    assert a(20) == pytest.approx(0.01)
    assert a(1000) == pytest.approx(0.01)


def test_polynomial_default_lr_end_is_1e_minus_7_absolute():
    s = S.from_hf_name("polynomial", 2, 10, peak=1e-3)
    assert s(10) == pytest.approx(1e-7 / 1e-3)
    assert s(2) == 1.0


def test_cosine_with_min_lr_absolute_equals_ratio_form():
    a = S.from_hf_name("cosine_with_min_lr", 2, 12, min_lr=2e-5, peak=1e-3)
    b = S.from_hf_name("cosine_with_min_lr", 2, 12, min_lr_rate=0.02)
    t = np.arange(20)
    np.testing.assert_allclose(a(t), b(t), rtol=1e-12, atol=1e-15)
    assert b(12) == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("name", "kwargs", "mentions"),
    [
        ("polynomial", {}, "peak"),
        ("polynomial", {"lr_end": 1e-5}, "peak"),
        ("cosine_with_min_lr", {"min_lr": 1e-5}, "peak"),
        ("cosine_with_min_lr", {}, "min_lr"),
    ],
)
def test_absolute_lr_without_peak_raises_clear_error(name, kwargs, mentions):
    with pytest.raises(ValueError, match=mentions) as info:
        S.from_hf_name(name, 2, 10, **kwargs)
    assert name in str(info.value)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("polynomial", {"lr_end": 1e-5, "lr_end_rate": 0.01, "peak": 1e-3}),
        ("cosine_with_min_lr", {"min_lr": 1e-5, "min_lr_rate": 0.01, "peak": 1e-3}),
    ],
)
def test_absolute_and_ratio_together_raise(name, kwargs):
    with pytest.raises(ValueError, match="not both"):
        S.from_hf_name(name, 2, 10, **kwargs)


def test_lr_end_not_below_peak_raises_like_hf():
    with pytest.raises(ValueError, match="lr_end"):
        S.from_hf_name("polynomial", 2, 10, lr_end=1e-3, peak=1e-3)
    with pytest.raises(ValueError, match="peak"):
        S.from_hf_name("polynomial", 2, 10, lr_end=1e-5, peak=0.0)
    with pytest.raises(ValueError, match="min_lr"):
        S.from_hf_name("cosine_with_min_lr", 2, 10, min_lr=2e-3, peak=1e-3)


def test_from_hf_name_rejects_unknown_kwargs_and_names():
    with pytest.raises(ValueError, match="num_cylces"):
        S.from_hf_name("cosine", 2, 10, num_cylces=1.0)
    with pytest.raises(ValueError, match="cosine_annealing"):
        S.from_hf_name("cosine_annealing", 2, 10)
    with pytest.raises(ValueError, match="num_training_steps"):
        S.from_hf_name("linear", 2)
    with pytest.raises(ValueError, match="warmup=12"):
        S.from_hf_name("cosine", 12, 10)
    with pytest.raises(ValueError, match="num_decay_steps"):
        S.from_hf_name("warmup_stable_decay", 2, 10)


def test_hf_wsd_without_stable_phase_matches_hf():
    """num_training_steps = warmup + decay leaves no stable phase (a common WSD setting)."""
    hf = _hf_lambda("warmup_stable_decay", 4, 12, {"num_decay_steps": 8}, 1.0)
    ours = S.from_hf_name("warmup_stable_decay", 4, 12, num_decay_steps=8)
    for t in range(13):
        assert ours(t) == pytest.approx(float(hf(t)), rel=1e-12, abs=1e-15)


def test_hf_wsd_whole_cycle_decay_matches_hf_at_and_after_the_end():
    """With num_cycles=1 the cosine is back at 1 at progress 1; HF still ends the decay at
    min_lr_ratio from step warmup + stable + decay on (its lambda's last branch)."""
    kwargs = {"num_decay_steps": 6, "num_cycles": 1.0, "min_lr_ratio": 0.1}
    hf = _hf_lambda("warmup_stable_decay", 2, 12, kwargs, 1.0)
    ours = S.from_hf_name("warmup_stable_decay", 2, 12, **kwargs)
    for t in range(20):
        assert ours(t) == pytest.approx(float(hf(t)), rel=1e-12, abs=1e-15), f"step {t}"
