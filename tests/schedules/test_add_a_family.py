"""The worked example of docs/schedules.md, "Add a family in three places", run as written there.

The family's code and its case are read from the page. The family is defined here with its
export done in memory (its name goes into a copy of ``Schedule.registry`` and of
``EXPRESSION_NAMES`` for this test only, so no other test sees it), then it gets every check a
case of ``test_families.CASES`` gets, and the optax (x64) and Keras (float64) ones.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from preheat import schedules as S
from preheat.schedules import Schedule

from . import test_families, test_namespaces, test_serialisation

DOC = Path(__file__).resolve().parents[2] / "docs" / "schedules.md"


def _blocks() -> list[str]:
    """The python blocks of the section: the family, its export, its case."""
    section = DOC.read_text().split("\n## Add a family in three places\n")[1].split("\n## ")[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_page_shows_the_family_its_export_and_its_case():
    family, export, case = _blocks()
    assert "class SqrtWarmup(Schedule):" in family
    for line in ("SqrtWarmup, sqrt_warmup", 'EXPRESSION_NAMES = (..., "sqrt_warmup")', '__all__ = [..., "SqrtWarmup"]'):
        assert line in export
    assert case.startswith('("sqrt_warmup", S.sqrt_warmup(')


def test_the_example_family_works_everywhere_with_no_other_edit(monkeypatch):
    family, _, case = _blocks()
    monkeypatch.setattr(Schedule, "registry", dict(Schedule.registry))
    namespace: dict = {"__name__": "sqrt_warmup_example"}
    exec(compile(family, str(DOC), "exec", dont_inherit=True), namespace)  # not this file's __future__
    # the export, in memory: what block 2 of the page adds to preheat/schedules/__init__.py
    monkeypatch.setattr(S, "sqrt_warmup", namespace["sqrt_warmup"], raising=False)
    monkeypatch.setattr(S, "EXPRESSION_NAMES", S.EXPRESSION_NAMES + ("sqrt_warmup",))
    _, schedule, formula, length = eval(case.strip().rstrip(","), {"S": S, "math": math})

    assert Schedule.registry["sqrt_warmup"] is namespace["SqrtWarmup"]
    assert schedule(0) == 0.1 and schedule(25) == pytest.approx(0.55) and schedule(10**6) == 1.0
    test_families.test_family_matches_formula_at_chosen_steps(schedule, formula, length)
    test_families.test_family_matches_formula_at_every_step(schedule, formula, length)
    test_families.test_family_holds_after_length(schedule, formula, length)
    test_families.test_array_equals_elementwise_scalar(schedule, formula, length)
    test_serialisation.test_dict_round_trip(schedule)
    test_serialisation.test_json_round_trip(schedule)
    test_serialisation.test_fingerprint_is_16_hex_and_stable(schedule)
    test_serialisation.test_str_parses_back_to_an_equal_schedule(schedule)
    test_serialisation.test_str_is_the_python_expression(schedule)
    test_namespaces.check_optax(schedule)
    (values,), cosine_dtype = test_namespaces.keras_values("float64", [schedule], prelude=family)
    test_namespaces.check_keras("float64", schedule, values, cosine_dtype)
