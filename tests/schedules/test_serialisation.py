"""The dict form, JSON, the fingerprint and the text form (``str`` -> ``parse``)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import preheat
from preheat import schedules as S

from . import _strategies as gen
from .test_families import CASES

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EXAMPLES = [c[1] for c in CASES] + [
    S.linear_warmup(10) >> S.cosine_decay(90, end=0.1),
    S.warmup_cosine(100, 1000, start=0.01, end=0.1),
    S.wsd(10, 100, decay_fraction=0.3, shape="1-sqrt", end=0.01),
    S.wsd(10, 100, shape="exponential", end=0.01),
    S.exponential_warmup(beta2=0.999) * S.cosine_decay(10_000),
    S.join([S.linear_warmup(10), S.constant(value=0.5), S.cosine_decay(20)], [5, 30]),
    S.join([S.linear_warmup(3) >> S.constant(3), S.linear_decay(9)], [4]),
    (S.linear_warmup(3) >> S.linear_decay(6)) * S.radam_warmup(0.9, steps=20) >> S.constant(value=0.3),
    S.from_hf_name("cosine_with_min_lr", 5, 50, min_lr_rate=0.1),
    S.from_hf_name("warmup_stable_decay", 5, 50, num_decay_steps=10, warmup_type="cosine"),
    S.step_decay(milestones=[3, 9, 27], gamma=0.5),
]
IDS = [c[0] for c in CASES] + [f"composed{i}" for i in range(len(EXAMPLES) - len(CASES))]


def _same_values(a, b):
    t = np.array([0, 1, 2, 5, 10, 33, 99, 100, 101, 1000, 10**6])
    np.testing.assert_array_equal(a(t), b(t))


# -- to_dict / from_dict ---------------------------------------------------------------------


@pytest.mark.parametrize("schedule", EXAMPLES, ids=IDS)
def test_dict_round_trip(schedule):
    data = schedule.to_dict()
    assert data["type"] == schedule.name
    rebuilt = preheat.from_dict(data)
    assert rebuilt == schedule
    assert type(rebuilt) is type(schedule)
    _same_values(rebuilt, schedule)


@pytest.mark.parametrize("schedule", EXAMPLES, ids=IDS)
def test_json_round_trip(schedule):
    text = json.dumps(schedule.to_dict())
    rebuilt = preheat.from_dict(json.loads(text))
    assert rebuilt == schedule
    assert rebuilt.fingerprint() == schedule.fingerprint()
    assert json.loads(text) == schedule.to_dict()  # plain JSON types only


@FAST
@given(gen.schedules)
def test_dict_and_json_round_trip_property(schedule):
    assert preheat.from_dict(schedule.to_dict()) == schedule
    rebuilt = preheat.from_dict(json.loads(json.dumps(schedule.to_dict(), allow_nan=False)))
    assert rebuilt == schedule
    assert rebuilt.fingerprint() == schedule.fingerprint()


def test_to_dict_nests_schedules_as_dicts():
    s = S.linear_warmup(10) >> S.cosine_decay(90, end=0.1)
    data = s.to_dict()
    assert data == {
        "type": "join",
        "schedules": [
            {"type": "linear_warmup", "steps": 10, "start": 0.0},
            {"type": "cosine_decay", "steps": 90, "end": 0.1, "cycles": 0.5},
        ],
        "boundaries": [10],
    }


@pytest.mark.parametrize(
    ("data", "mentions"),
    [
        ({"type": "linear_warmpu", "steps": 10}, "linear_warmpu"),
        ({"steps": 10}, "type"),
        ("linear_warmup(10)", "dict"),
        ({"type": "linear_warmup", "steps": 10, "stop": 1.0}, "stop"),
        ({"type": "linear_warmup", "steps": -1}, "steps=-1"),
        ({"type": "cosine_decay", "steps": 10, "end": 2.0}, "end=2.0"),
        ({"type": "join", "schedules": [{"type": "constant"}, {"type": "nope"}], "boundaries": [3]}, "nope"),
    ],
)
def test_from_dict_errors(data, mentions):
    with pytest.raises(ValueError, match=mentions):
        preheat.from_dict(data)


# -- fingerprint ------------------------------------------------------------------------------


def _sha16(canonical_json: str) -> str:
    return hashlib.sha256(canonical_json.encode("utf-8")).hexdigest()[:16]


def test_fingerprint_of_known_dicts():
    # Canonical JSON written by hand: sorted keys, no spaces.
    assert S.linear_warmup(100).fingerprint() == _sha16('{"start":0.0,"steps":100,"type":"linear_warmup"}')
    composed = S.linear_warmup(10) >> S.cosine_decay(90, end=0.1)
    assert composed.fingerprint() == _sha16(
        '{"boundaries":[10],"schedules":[{"start":0.0,"steps":10,"type":"linear_warmup"},'
        '{"cycles":0.5,"end":0.1,"steps":90,"type":"cosine_decay"}],"type":"join"}'
    )
    assert S.constant().fingerprint() == _sha16('{"steps":null,"type":"constant","value":1.0}')


@pytest.mark.parametrize("schedule", EXAMPLES, ids=IDS)
def test_fingerprint_is_16_hex_and_stable(schedule):
    fp = schedule.fingerprint()
    assert len(fp) == 16 and all(c in "0123456789abcdef" for c in fp)
    assert fp == schedule.fingerprint()
    assert fp == preheat.from_dict(schedule.to_dict()).fingerprint()
    assert fp == preheat.parse(str(schedule)).fingerprint()


def test_fingerprints_of_all_examples_are_distinct():
    # equal schedules may repeat in EXAMPLES; otherwise every fingerprint is different
    assert len({s.fingerprint() for s in EXAMPLES}) == len(set(EXAMPLES))


def test_fingerprint_depends_on_every_field():
    base = S.cosine_decay(90, end=0.1, cycles=0.5)
    others = [S.cosine_decay(91, end=0.1), S.cosine_decay(90, end=0.2), S.cosine_decay(90, end=0.1, cycles=1.5)]
    assert len({base.fingerprint(), *(o.fingerprint() for o in others)}) == 4
    assert (S.linear_warmup(5) >> base).fingerprint() != (S.linear_warmup(6) >> base).fingerprint()
    assert (S.linear_warmup(5) * base).fingerprint() != (S.linear_warmup(5) >> base).fingerprint()


@FAST
@given(gen.schedules, gen.schedules)
def test_different_schedules_have_different_fingerprints(a, b):
    if a == b:
        assert a.fingerprint() == b.fingerprint()
    else:
        assert a.fingerprint() != b.fingerprint()


def test_equal_schedules_have_equal_fingerprints_even_with_signed_zero():
    a, b = S.linear_warmup(10, start=0.0), S.linear_warmup(10, start=-0.0)
    assert a == b
    assert a.fingerprint() == b.fingerprint()


def test_fingerprint_is_the_same_in_another_process():
    s = S.wsd(10, 100, decay_fraction=0.3, shape="cosine", end=0.01)
    code = (
        "import preheat;"
        "print(preheat.wsd(10, 100, decay_fraction=0.3, shape='cosine', end=0.01).fingerprint())"
    )
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert out.stdout.strip() == s.fingerprint()


# -- str -> parse -----------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", EXAMPLES, ids=IDS)
def test_str_parses_back_to_an_equal_schedule(schedule):
    text = str(schedule)
    assert repr(schedule) == text
    parsed = preheat.parse(text)
    assert parsed == schedule
    _same_values(parsed, schedule)


@pytest.mark.parametrize("schedule", EXAMPLES, ids=IDS)
def test_str_is_the_python_expression(schedule):
    """The text form is what a user would write in Python: evaluating it gives the same schedule."""
    namespace = {name: getattr(S, name) for name in S.EXPRESSION_NAMES}
    assert eval(str(schedule), {"__builtins__": {}}, namespace) == schedule  # noqa: S307


@FAST
@given(gen.schedules)
def test_str_parse_round_trip_property(schedule):
    assert preheat.parse(str(schedule)) == schedule


def test_str_shows_only_non_default_keywords():
    assert str(S.linear_warmup(100)) == "linear_warmup(100)"
    assert str(S.linear_warmup(100, start=0.1)) == "linear_warmup(100, start=0.1)"
    assert "cycles" not in str(S.cosine_decay(90))
    assert "milestones=[3, 9]" in str(S.step_decay(milestones=[3, 9]))
    assert ">>" in str(S.warmup_cosine(10, 100))
    assert str(S.linear_warmup(3) * S.cosine_decay(9)).count("*") == 1
