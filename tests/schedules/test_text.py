"""The text form: ``preheat.parse`` reads schedule expressions safely (never ``eval``)."""

from __future__ import annotations

import os

import pytest

import preheat
from preheat import schedules as S

# -- valid expressions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linear_warmup(2000) >> cosine_decay(98000, end=0.1)", S.linear_warmup(2000) >> S.cosine_decay(98000, end=0.1)),
        ("linear_warmup(steps=2000, start=0.1)", S.linear_warmup(2000, start=0.1)),
        (
            "join([linear_warmup(10), join([constant(5), linear_decay(10)], [5])], [10])",
            S.join([S.linear_warmup(10), S.join([S.constant(5), S.linear_decay(10)], [5])], [10]),
        ),
        (
            "exponential_warmup(beta2=0.999) * cosine_decay(10000)",
            S.exponential_warmup(beta2=0.999) * S.cosine_decay(10000),
        ),
        (
            # * binds tighter than >>, as in Python
            "exponential_warmup(tau=5, steps=10) * linear_decay(20) >> constant(value=0.1)",
            (S.exponential_warmup(tau=5, steps=10) * S.linear_decay(20)) >> S.constant(value=0.1),
        ),
        (
            "linear_warmup(10) * (linear_decay(5) >> constant(5, value=0.2))",
            S.linear_warmup(10) * (S.linear_decay(5) >> S.constant(5, value=0.2)),
        ),
        ("step_decay(milestones=[10, 20], gamma=0.5)", S.step_decay(milestones=[10, 20], gamma=0.5)),
        ("step_decay(milestones=(10, 20))", S.step_decay(milestones=[10, 20])),
        ("step_decay(every=30)", S.step_decay(every=30)),
        ("linear_warmup(1e3)", S.linear_warmup(1000)),
        ("linear_warmup(+10)", S.linear_warmup(10)),
        ("exponential_warmup(tau=None, beta2=0.99)", S.exponential_warmup(beta2=0.99)),
        ("wsd(10, 100, shape='cosine', end=0.01)", S.wsd(10, 100, shape="cosine", end=0.01)),
        ('wsd(10, 100, shape="1-sqrt")', S.wsd(10, 100, shape="1-sqrt")),
        ("warmup_cosine(100, 1000, end=0.1)", S.warmup_cosine(100, 1000, end=0.1)),
        ("warmup_linear(100, 1000)", S.warmup_linear(100, 1000)),
        ("from_hf_name('linear', 2, 10)", S.from_hf_name("linear", 2, 10)),
        (
            "from_hf_name('cosine_with_min_lr', 2, 10, min_lr=1e-5, peak=1e-3)",
            S.from_hf_name("cosine_with_min_lr", 2, 10, min_lr=1e-5, peak=1e-3),
        ),
        ("  (linear_warmup(10)\n   >> cosine_decay(90))  ", S.linear_warmup(10) >> S.cosine_decay(90)),
        ("untuned_linear_warmup(0.999) >> constant()", S.untuned_linear_warmup(0.999) >> S.constant()),
        ("radam_warmup(0.999) * inverse_sqrt(1000)", S.radam_warmup(0.999) * S.inverse_sqrt(1000)),
    ],
)
def test_parse_valid_expressions(text, expected):
    assert preheat.parse(text) == expected


def test_parse_is_exported_and_parse_error_is_a_value_error():
    assert preheat.parse is S.parse
    assert issubclass(preheat.ParseError, ValueError)


# -- errors -----------------------------------------------------------------------------------


def _error(text) -> preheat.ParseError:
    with pytest.raises(preheat.ParseError) as info:
        preheat.parse(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert isinstance(err.position, int) and 0 <= err.position <= len(err.expression)
    # The message shows the expression with a caret under the position.
    lines = str(err).splitlines()
    assert lines[1] == "  " + err.expression
    assert lines[2] == "  " + " " * err.position + "^"
    return err


@pytest.mark.parametrize(
    ("text", "token", "close"),
    [
        ("linear_warmup(10) >> cosine_decya(90)", "cosine_decya", "cosine_decay"),
        ("linear_warmpu(10)", "linear_warmpu", "linear_warmup"),
        ("wsd(10, 100) * exponential_decay(rate=0.9) >> constnat()", "constnat", "constant"),
        ("join([linear_warmup(10), cosine_dcay(5)], [10])", "cosine_dcay", "cosine_decay"),
    ],
)
def test_unknown_name_suggests_a_close_name(text, token, close):
    err = _error(text)
    assert err.position == text.index(token)
    assert token in err.message
    assert close in err.hint
    # a suggestion, not the list of every known name
    assert "from_hf_name" not in err.hint and "one_minus_sqrt_decay" not in err.hint


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("linear_warmup(10) >> >> cosine_decay(90)", 21),
        ("linear_warmup(10,, 5)", 17),
        ("linear_warmup(10 >> cosine_decay(90)", 13),  # '(' was never closed
        ("linear_warmup(10) >> cosine_decay(90))", 37),  # unmatched ')'
        ("linear_warmup(10) cosine_decay(90)", 0),
    ],
)
def test_syntax_error_position_and_hint(text, where):
    err = _error(text)
    assert err.message.startswith("syntax error")
    assert err.hint
    if where:
        assert err.position == where
    else:
        # "invalid syntax. Perhaps you forgot a comma?": Python points somewhere in the first
        # operand; any position inside the text is acceptable.
        assert 0 <= err.position < len(text)


@pytest.mark.parametrize(
    ("text", "arithmetic"),
    [
        ("linear_warmup(100 + 20)", "100 + 20"),
        ("linear_warmup(100 - 20)", "100 - 20"),
        ("linear_warmup(2 * 50)", "2 * 50"),
        ("linear_warmup(1000 / 2)", "1000 / 2"),
        ("linear_warmup(1000 // 2)", "1000 // 2"),
        ("linear_warmup(2 ** 10)", "2 ** 10"),
        ("cosine_decay(100, end=1 - 0.9)", "1 - 0.9"),
        ("linear_warmup(10) >> cosine_decay(9 * 10)", "9 * 10"),
        ("step_decay(milestones=[10, 10 * 2])", "10 * 2"),
    ],
)
def test_arithmetic_in_arguments_is_refused_with_a_hint(text, arithmetic):
    err = _error(text)
    assert err.position == text.index(arithmetic)
    assert "arithmetic" in err.hint


@pytest.mark.parametrize("text", ["linear_warmup(10, **kw)", "linear_warmup(**{'steps': 10})", "wsd(10, 100, **dict(shape='cosine'))"])
def test_double_star_kwargs_refused_with_position_and_hint(text):
    err = _error(text)
    star = text.index("**")
    assert err.position in (star, star + 2)  # at the ** or at what follows it
    assert "**" in err.message
    assert err.hint


def test_star_args_refused():
    text = "linear_warmup(*[10])"
    err = _error(text)
    assert err.position == text.index("*")


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("cosine_decay(total, end=0.1)", "total"),
        ("cosine_decay(100, end=low)", "low"),
        ("linear_warmup(steps=n)", "n"),
        ("step_decay(milestones=[10, m])", "m"),
    ],
)
def test_names_as_arguments_refused(text, name):
    err = _error(text)
    assert err.position == text.rindex(name)
    assert name in err.message
    assert "name" in err.hint


@pytest.fixture
def no_side_effects(tmp_path, monkeypatch):
    """A marker path that an executed expression would create, and a trap on os.system."""
    calls = []
    monkeypatch.setattr(os, "system", lambda *a, **k: calls.append(a) or 0)
    marker = tmp_path / "executed"
    yield marker, calls
    assert not marker.exists(), "the expression was executed"
    assert calls == [], "os.system was called"


@pytest.mark.parametrize(
    ("template", "token"),
    [
        ("os.system('touch {m}')", "os.system"),
        ("linear_warmup(10) >> os.system('touch {m}')", "os.system"),
        ("__import__('os').system('touch {m}')", "__import__"),
        ("linear_warmup(__import__('os').system('touch {m}'))", "__import__"),
        ("open('{m}', 'w')", "open"),
        ("linear_warmup(10) * exec(\"open('{m}', 'w')\")", "exec"),
        ("preheat.schedules.linear_warmup(10)", "preheat"),
        ("linear_warmup(10).__class__.__init__(linear_warmup(1), 5)", "linear_warmup(10).__class__"),
    ],
)
def test_calls_that_are_not_schedule_functions_are_refused_and_never_run(no_side_effects, template, token):
    marker, _ = no_side_effects
    text = template.format(m=marker)
    err = _error(text)
    assert err.position == text.index(token)
    assert err.hint


def test_dunder_import_is_an_unknown_schedule(no_side_effects):
    err = _error("__import__('os')")
    assert err.position == 0
    assert "__import__" in err.message
    assert "unknown" in err.message
    assert err.hint


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("lambda: linear_warmup(10)", "lambda"),
        ("linear_warmup(10) if True else constant()", "linear_warmup(10) if"),
        ("linear_warmup(10).__class__", "linear_warmup(10).__class__"),
        ("[linear_warmup(10)][0]", "[linear_warmup(10)][0]"),
        ("linear_warmup(10) + constant()", "linear_warmup(10) + constant()"),
        ("10", "10"),
    ],
)
def test_other_expressions_are_not_schedules(text, token):
    err = _error(text)
    assert err.position == text.index(token)
    assert err.hint


@pytest.mark.parametrize(
    ("text", "token", "mentions"),
    [
        ("linear_warmup(-5)", "linear_warmup", ["steps", "-5"]),
        ("linear_warmup(10) >> cosine_decay(90, end=1.5)", "cosine_decay", ["end", "1.5"]),
        ("linear_warmup(10) >> cosine_decay(90, end=-0.1)", "cosine_decay", ["end", "-0.1"]),
        ("constant() >> linear_decay(10)", ">>", ["never ends"]),
        ("wsd(10, 100, shape='stepwise')", "wsd", ["shape", "stepwise"]),
        ("join([linear_warmup(10), constant()], [0])", "join", ["boundaries"]),
        ("warmup_cosine(200, 100)", "warmup_cosine", ["warmup=200", "total=100"]),
    ],
)
def test_validation_errors_become_parse_errors_at_the_call(text, token, mentions):
    err = _error(text)
    assert err.position == text.index(token)
    for m in mentions:
        assert m in err.message


@pytest.mark.parametrize(
    ("text", "mentions"),
    [("linear_warmup()", "steps"), ("linear_warmup(10, stat=0.1)", "stat"), ("constant(1, 2, 3)", "constant")],
)
def test_wrong_arguments_give_the_signature(text, mentions):
    err = _error(text)
    assert err.position == 0
    assert mentions in err.message
    assert "signature" in err.hint


@pytest.mark.parametrize("text", ["", "   ", None, 42])
def test_empty_or_non_text_input(text):
    with pytest.raises(preheat.ParseError) as info:
        preheat.parse(text)
    assert info.value.position == 0
    assert info.value.hint


def test_positions_are_relative_to_the_expression_shown():
    err = _error("   linear_warmup(10) >> cosine_decya(90)")
    assert err.expression[err.position :].startswith("cosine_decya")


def test_pathologically_deep_expression_raises_parse_error():
    text = "linear_warmup(10)" + " >> constant(5)" * 5000
    with pytest.raises(preheat.ParseError):
        preheat.parse(text)


def test_long_chain_text_round_trips():
    """A 1000-phase chain (e.g. a long cyclic schedule) prints and parses back."""
    schedule = S.join([S.linear_warmup(10)] + [S.constant(5)] * 1000, [10 + 5 * i for i in range(1000)])
    assert preheat.parse(str(schedule)) == schedule


def test_booleans_parse_but_schedules_refuse_them_by_name():
    # the parser reads True/False (controllers have switches); a schedule's validation refuses them
    with pytest.raises(preheat.ParseError, match="steps=True"):
        preheat.parse("linear_warmup(True)")
