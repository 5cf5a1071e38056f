"""Durations in units ("5%", "2ep", "500ksp", "2Btok"): resolved to updates exactly, once, with
the text and dict forms round-tripping the call as written."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import preheat
from preheat.schedules import from_dict, parse
from preheat.schedules.units import Unresolved, duration, to_updates, RunSize


def half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, halves up, in integers only."""
    return (2 * numerator + denominator) // (2 * denominator)


# -- what a duration means ------------------------------------------------------------------


@given(percent=st.integers(0, 10_000), total=st.integers(1, 10**12))
def test_a_whole_percentage_is_the_nearest_update_halves_up(percent, total):
    assert to_updates(f"{percent}%", RunSize(total=total)) == half_up(percent * total, 100)


@given(tenths=st.integers(0, 10_000), total=st.integers(1, 10**9))
def test_a_decimal_percentage_is_exact_not_float(tenths, total):
    text = f"{tenths // 10}.{tenths % 10}%"
    assert to_updates(text, RunSize(total=total)) == half_up(tenths * total, 1000)


@pytest.mark.parametrize(
    ("text", "size", "updates"),
    [
        ("7%", RunSize(total=100), 7),  # the float 0.07 * 100 is 7.000000000000001
        ("2.5%", RunSize(total=100), 3),  # a half rounds up
        ("5%", RunSize(total=1001), 50),  # 50.05
        ("0.4%", RunSize(total=100), 0),
        ("2ep", RunSize(updates_per_epoch=391), 782),
        ("0.5ep", RunSize(updates_per_epoch=97), 49),  # 48.5
        ("1000sp", RunSize(samples_per_update=256), 4),  # 3.906
        ("500ksp", RunSize(samples_per_update=512), 977),  # 976.56
        ("2.5k sp", RunSize(samples_per_update=1000), 3),  # 2.5
        ("2Btok", RunSize(tokens_per_update=2**19), 3815),  # 3814.7
        ("1e6tok", RunSize(tokens_per_update=1000), 1000),
        ("3M tok", RunSize(tokens_per_update=3000), 1000),
    ],
)
def test_each_unit_resolves_against_its_own_size(text, size, updates):
    assert to_updates(text, size) == updates


@pytest.mark.parametrize("text", ["5", "5 percent", "-5%", "5%%", "%", "ep", "1e6", "two ep", "5 Ktok"])
def test_only_a_number_with_a_unit_is_a_duration(text):
    assert duration(text) is None


def test_a_size_must_be_a_whole_number_of_at_least_one():
    with pytest.raises(ValueError, match=r"resolve: total=0 is invalid; expected an integer >= 1"):
        RunSize(total=0)
    with pytest.raises(ValueError, match=r"tokens_per_update=2.5 is invalid"):
        RunSize(tokens_per_update=2.5)


# -- schedules written with units ---------------------------------------------------------


def test_a_percentage_schedule_resolves_to_the_schedule_in_updates():
    schedule = preheat.linear_warmup("5%") >> preheat.cosine_decay("95%", end=0.1)
    assert isinstance(schedule, Unresolved) and schedule.has_units
    assert schedule.resolve(total=2000) == preheat.linear_warmup(100) >> preheat.cosine_decay(1900, end=0.1)


@pytest.mark.parametrize(
    ("written", "sizes", "in_updates"),
    [
        (lambda: preheat.warmup_cosine("5%", 1000), {"total": 1000}, lambda: preheat.warmup_cosine(50, 1000)),
        (lambda: preheat.warmup_linear("1ep", "10ep", end=0.1), {"updates_per_epoch": 30},
         lambda: preheat.warmup_linear(30, 300, end=0.1)),
        (lambda: preheat.wsd("1Mtok", "100%", decay_fraction=0.1), {"total": 500, "tokens_per_update": 4096},
         lambda: preheat.wsd(244, 500, decay_fraction=0.1)),
        (lambda: preheat.from_hf_name("cosine", "10%", "100%"), {"total": 420},
         lambda: preheat.from_hf_name("cosine", 42, 420)),
        (lambda: preheat.join([preheat.linear_warmup(10), preheat.constant(), preheat.cosine_decay("50%")],
                              ["10sp", "20%"]), {"total": 100, "samples_per_update": 2},
         lambda: preheat.join([preheat.linear_warmup(10), preheat.constant(), preheat.cosine_decay(50)], [5, 20])),
        (lambda: preheat.exponential_warmup(beta2=0.99) * (preheat.linear_warmup("2%") >> preheat.constant()),
         {"total": 1000}, lambda: preheat.exponential_warmup(beta2=0.99) * (preheat.linear_warmup(20) >> preheat.constant())),
        (lambda: preheat.step_decay(every="1ep", gamma=0.5), {"updates_per_epoch": 7},
         lambda: preheat.step_decay(every=7, gamma=0.5)),
    ],
    ids=["warmup_cosine", "warmup_linear", "wsd", "from_hf_name", "join", "product", "step_decay"],
)
def test_presets_joins_and_products_take_units(written, sizes, in_updates):
    schedule = written()
    assert schedule.has_units
    resolved = schedule.resolve(**sizes)
    assert resolved == in_updates()
    assert not resolved.has_units


@pytest.mark.parametrize(
    "text",
    [
        "linear_warmup('5%') >> cosine_decay('95%', end=0.1)",
        "warmup_cosine('2ep', '100%', start=0.01)",
        "exponential_warmup(beta2=0.999) * (linear_warmup('5%') >> constant())",
        "linear_warmup(10) >> constant('1ksp') >> linear_decay('20%')",
        "join([linear_warmup(10), cosine_decay(90)], ['3%'])",
        "wsd('1Btok', '100%', shape='1-sqrt')",
    ],
)
def test_the_text_and_dict_forms_keep_the_call_as_written(text):
    schedule = parse(text)
    assert str(schedule) == text
    assert parse(str(schedule)) == schedule
    data = json.loads(json.dumps(schedule.to_dict()))
    assert from_dict(data) == schedule
    assert from_dict(data).fingerprint() == schedule.fingerprint()


def test_a_chain_prints_flat_however_it_was_built():
    a, b, c = preheat.linear_warmup("5%"), preheat.constant(10), preheat.cosine_decay("50%")
    assert (a >> b) >> c == a >> (b >> c)
    assert str(a >> (b >> c)) == "linear_warmup('5%') >> constant(steps=10) >> cosine_decay('50%')"


def test_a_schedule_with_units_has_no_values_until_resolved():
    schedule = preheat.linear_warmup("5%") >> preheat.cosine_decay("95%")
    message = r"has durations in units \('5%', '95%'\); resolve it first"
    with pytest.raises(ValueError, match=message):
        schedule(0)
    with pytest.raises(ValueError, match=message):
        schedule.length  # noqa: B018


def test_a_schedule_in_updates_resolves_to_itself():
    schedule = preheat.warmup_cosine(10, 100)
    assert schedule.resolve() is schedule
    assert schedule.resolve(total=5, tokens_per_update=3) is schedule


def test_a_missing_size_names_the_duration_and_the_size():
    schedule = preheat.linear_warmup("2Btok") >> preheat.constant()
    with pytest.raises(ValueError, match=r"linear_warmup\('2Btok'\): '2Btok' is in tokens but "
                                         r"tokens_per_update was not given; expected tokens_per_update="):
        schedule.resolve(total=100)


def test_a_resolved_schedule_is_validated_as_if_written_in_updates():
    with pytest.raises(ValueError, match=r"warmup_cosine\('120%', 1000\) with total=1000: warmup_cosine: "
                                         r"warmup=1200 is longer than total=1000"):
        preheat.warmup_cosine("120%", 1000).resolve(total=1000)


def test_a_step_count_in_the_wrong_form_says_what_a_duration_looks_like():
    with pytest.raises(ValueError, match=r"steps='5 percent' is invalid; expected an integer >= 0 \(updates\) "
                                         r"or a duration with a unit: '5%'"):
        preheat.linear_warmup("5 percent")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "unresolved", "function": "print", "args": ["5%"], "kwargs": []}, "function='print' is unknown"),
        ({"type": "unresolved", "function": "linear_warmup", "args": [5], "kwargs": []},
         "has no duration with a unit"),
        ({"type": "unresolved", "function": "linear_warmup", "args": ["5%"], "kwargs": [["nope", 1]]},
         "unexpected keyword argument 'nope'"),
        ({"type": "unresolved", "function": "then", "args": ["5%", "10%"], "kwargs": []},
         "expected two or more schedules"),
    ],
)
def test_a_stored_call_is_checked_when_loaded(data, message):
    with pytest.raises(ValueError, match=message):
        from_dict(data)


# -- where the run's size is known ------------------------------------------------------------


def lrs(scheduler: preheat.Scheduler, optimizer: torch.optim.Optimizer, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def adamw(lr: float = 0.5) -> torch.optim.Optimizer:
    return torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=lr)


def test_the_scheduler_resolves_once_and_resumes_exactly():
    written = preheat.linear_warmup("10%") >> preheat.cosine_decay("90%", end=0.1)
    optimizer = adamw()
    scheduler = preheat.Scheduler(optimizer, written, total=50)
    assert scheduler.schedules == [preheat.linear_warmup(5) >> preheat.cosine_decay(45, end=0.1)]
    whole = lrs(scheduler, optimizer, 50)
    assert whole == pytest.approx([0.5 * scheduler.schedules[0](t) for t in range(50)], abs=0, rel=0)

    first = adamw()
    early = preheat.Scheduler(first, written, total=50)
    head = lrs(early, first, 20)
    state = early.state_dict()
    assert state["schedules"] == [scheduler.schedules[0].to_dict()]  # stored in updates
    second = adamw()
    resumed = preheat.Scheduler(second, written, total=50)
    resumed.load_state_dict(state)
    assert head + lrs(resumed, second, 30) == whole


def test_the_scheduler_refuses_units_it_cannot_resolve_naming_both():
    with pytest.raises(ValueError, match=r"Scheduler: schedule: linear_warmup\('2Btok'\): '2Btok' is in tokens "
                                         r"but tokens_per_update was not given"):
        preheat.Scheduler(adamw(), preheat.linear_warmup("2Btok") >> preheat.constant(), total=100)
    with pytest.raises(ValueError, match=r"Scheduler: .*'5%' is in a percentage of the run but total was not given"):
        preheat.Scheduler(adamw(), preheat.linear_warmup("5%") >> preheat.constant())
    with pytest.raises(ValueError, match=r"Scheduler: samples_per_update=0 is invalid; expected an integer >= 1"):
        preheat.Scheduler(adamw(), preheat.constant(), samples_per_update=0)


def test_the_scheduler_resolves_hyperparameter_schedules_too():
    optimizer = adamw()
    scheduler = preheat.Scheduler(optimizer, preheat.constant(),
                                  hyperparams={"weight_decay": preheat.linear_warmup("1ep") >> preheat.constant()},
                                  updates_per_epoch=4)
    assert scheduler.hyperparams["weight_decay"] == [preheat.linear_warmup(4) >> preheat.constant()]


def test_a_lab_run_resolves_units_against_its_steps_and_batch_size():
    from preheat.lab.config import RunConfig

    config = RunConfig(schedule="linear_warmup('10%') >> constant('64sp') >> cosine_decay('85%')",
                       steps=200, batch_size=32)
    assert config.resolved_schedule() == (
        preheat.linear_warmup(20) >> preheat.constant(2) >> preheat.cosine_decay(170)
    )
    with pytest.raises(ValueError, match=r"'1ep' is in epochs but updates_per_epoch was not given"):
        RunConfig(schedule="linear_warmup('1ep') >> constant()")


def test_the_optax_adapter_asks_for_the_schedule_resolved():
    pytest.importorskip("jax")
    from preheat.integrations.optax import to_optax

    with pytest.raises(ValueError, match=r"to_optax: schedule=linear_warmup\('5%'\) has durations in units; "
                                         r"expected them resolved to updates first"):
        to_optax(preheat.linear_warmup("5%"), 0.1)
    assert float(to_optax(preheat.linear_warmup("5%").resolve(total=200), 0.1)(5)) == pytest.approx(0.05)
