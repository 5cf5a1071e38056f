"""Hostile and broken inputs to schedules, the text form, ``from_dict`` and ``preheat show``/``plot``.

Every one gives a ``ValueError`` (``ParseError`` where text is parsed) whose message names the
argument, the bad value (shortened when huge) and what would be valid; on the command line, one
line on stderr and exit status 2, with no traceback and no file written. Never OverflowError,
TypeError, MemoryError or RecursionError. Hypothesis then feeds ``parse`` and ``from_dict``
arbitrary text and data: they raise only ``ValueError`` or return a schedule that evaluates.
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from preheat import schedules as S
from preheat.cli import app
from preheat.schedules import ParseError, from_dict, parse

MAX = 2**63 - 1
TOO_BIG = 2**63  # 9223372036854775808
#: A message names the bad value, shortened: never longer than this.
LONGEST_MESSAGE = 600


def _nested_joins(depth: int) -> S.Schedule:
    """A join nested ``depth`` deep (each level an explicit join, which ``>>`` does not flatten)."""
    schedule: S.Schedule = S.constant(5)
    for _ in range(depth - 1):
        schedule = S.join([schedule, S.constant(5)], [3])
    return schedule


def _deep_dict(depth: int) -> dict:
    data: dict = {"type": "constant", "steps": 5}
    for _ in range(depth):
        data = {"type": "product", "factors": [data, {"type": "constant"}]}
    return data


def _deep_list(depth: int) -> list:
    data: list = [5]
    for _ in range(depth):
        data = [data]
    return data


def _cyclic() -> dict:
    data: dict = {"type": "product"}
    data["factors"] = [data, data]
    return data


V, P = ValueError, ParseError

# (build, exact exception type, fragments its message contains: argument, value, what is valid)
CATALOGUE = [
    # -- step counts that would overflow int64 when evaluated ------------------------------------
    pytest.param(lambda: S.linear_warmup(TOO_BIG), V, ["linear_warmup", "steps=9223372036854775808", "below 2**63"], id="steps=2**63"),
    pytest.param(lambda: S.linear_warmup(1e308), V, ["steps=1e+308", "an integer >= 0 and below 2**63"], id="steps=1e308"),
    pytest.param(lambda: S.cosine_decay(2**64), V, ["cosine_decay", "steps=18446744073709551616", "below 2**63"], id="cosine_decay-steps=2**64"),
    pytest.param(lambda: S.constant(steps=TOO_BIG), V, ["constant", "steps=9223372036854775808"], id="constant-steps=2**63"),
    pytest.param(lambda: S.exponential_warmup(tau=5.0, steps=TOO_BIG), V, ["exponential_warmup", "steps="], id="exp_warmup-steps=2**63"),
    pytest.param(lambda: S.radam_warmup(0.999, steps=1e19), V, ["radam_warmup", "steps=1e+19", "below 2**63"], id="radam-steps=1e19"),
    pytest.param(lambda: S.step_decay(every=TOO_BIG), V, ["step_decay", "every=9223372036854775808", "below 2**63"], id="every=2**63"),
    pytest.param(lambda: S.step_decay(milestones=[10, TOO_BIG]), V, ["milestones=9223372036854775808", "below 2**63"], id="milestone=2**63"),
    pytest.param(lambda: S.join([S.linear_warmup(10), S.constant()], [TOO_BIG]), V, ["join", "boundaries=9223372036854775808"], id="boundary=2**63"),
    pytest.param(lambda: S.linear_warmup(2**62) >> S.linear_decay(2**62), V, ["join", "ends at step 9223372036854775808", "below step 2**63"], id="join-ends-past-2**63"),
    pytest.param(lambda: S.wsd(10, TOO_BIG), V, ["wsd", "total=9223372036854775808", "below 2**63"], id="wsd-total=2**63"),
    pytest.param(lambda: S.warmup_cosine(TOO_BIG, TOO_BIG), V, ["warmup_cosine", "warmup=9223372036854775808"], id="warmup_cosine-warmup=2**63"),
    pytest.param(lambda: S.untuned_linear_warmup(1.0), V, ["beta2=1.0", "(0.0, 1.0)"], id="untuned-beta2=1"),
    # -- time constants in steps, and cycles (2 pi cycles overflowed to a NaN value) ------------
    pytest.param(lambda: S.inverse_sqrt(1e300), V, ["inverse_sqrt", "timescale=1e+300", "(0.0, 2**63)"], id="timescale=1e300"),
    pytest.param(lambda: S.exponential_warmup(tau=1e19), V, ["tau=1e+19", "(0.0, 2**63)"], id="tau=1e19"),
    pytest.param(lambda: S.exponential_decay(half_life=1e300), V, ["half_life=1e+300", "(0.0, 2**63)"], id="half_life=1e300"),
    pytest.param(lambda: S.cosine_decay(10, cycles=1e308), V, ["cosine_decay", "cycles=1e+308", "(0.0, 2**63)"], id="cycles=1e308"),
    # -- numbers too large for a float, shown shortened -----------------------------------------
    pytest.param(lambda: S.linear_warmup(10, start=10**400), V, ["start=10000000000000000000... (401 digits)", "[0.0, 1.0]"], id="start=10**400"),
    pytest.param(lambda: S.cosine_decay(10, end=10**5000), V, ["end=<an integer of about 5001 digits>", "[0.0, 1.0]"], id="end=10**5000"),
    pytest.param(lambda: S.linear_warmup(Fraction(10**400, 3)), V, ["steps=Fraction(", "an integer >= 0"], id="steps=huge-Fraction"),
    pytest.param(lambda: S.polynomial_warmup(10, power=-(10**400)), V, ["power=-1000000000000000000", "(0.0, inf]"], id="power=-10**400"),
    # -- wrong types that raised TypeError ---------------------------------------------------------
    pytest.param(lambda: S.step_decay(milestones=5), V, ["step_decay", "milestones=5", "a list of increasing steps"], id="milestones=5"),
    pytest.param(lambda: S.step_decay(milestones="12"), V, ["milestones='12'", "a list of"], id="milestones=str"),
    pytest.param(lambda: S.step_decay(milestones={10: 1}), V, ["milestones={10: 1}", "a list of"], id="milestones=dict"),
    pytest.param(lambda: S.join(5, [1]), V, ["join", "schedules=5", "a list of at least two schedules"], id="join-schedules=5"),
    pytest.param(lambda: S.join([S.linear_warmup(10), S.constant()], 10), V, ["join", "boundaries=10", "a list of steps"], id="join-boundaries=10"),
    pytest.param(lambda: S.Product(5), V, ["product", "factors=5", "a list of"], id="product-factors=5"),
    pytest.param(lambda: S.wsd(10, 100, shape=np.array(["linear", "cosine"])), V, ["wsd", "shape=array(", "one of 'linear'"], id="wsd-shape=array"),
    pytest.param(lambda: S.wsd(10, 100, shape=["linear"]), V, ["shape=['linear']", "one of"], id="wsd-shape=list"),
    pytest.param(lambda: S.from_hf_name("polynomial", 10, 100, lr_end="x", peak=1.0), V, ["lr_end='x'", "a finite number"], id="hf-lr_end=str"),
    pytest.param(lambda: S.from_hf_name("polynomial", 10, 100, lr_end=10**400, peak=1.0), V, ["lr_end=1000", "digits"], id="hf-lr_end=10**400"),
    pytest.param(lambda: S.from_hf_name("cosine_with_min_lr", 10, 100, min_lr=[1], peak=1.0), V, ["min_lr=[1]"], id="hf-min_lr=list"),
    pytest.param(lambda: S.from_hf_name("linear", 10, TOO_BIG), V, ["num_training_steps=9223372036854775808", "below 2**63"], id="hf-total=2**63"),
    pytest.param(lambda: S.from_hf_name("warmup_stable_decay", 10, "x", num_decay_steps=5), V, ["num_training_steps='x'", "an integer"], id="hf-wsd-total=str"),
    pytest.param(lambda: S.from_hf_name(["linear"], 10, 100), V, ["from_hf_name", "name=['linear']", "one of 'linear'"], id="hf-name=list"),
    pytest.param(lambda: S.from_hf_name("inverse_sqrt", 10, timescale=1e300), V, ["timescale=1e+300", "2**63"], id="hf-timescale=1e300"),
    pytest.param(lambda: S.from_hf_name("cosine", 10, 100, num_cycles=10**400), V, ["cycles=1000", "digits"], id="hf-num_cycles=10**400"),
    # -- steps given to a schedule --------------------------------------------------------------
    pytest.param(lambda: S.constant()(10**5000), V, ["step=<an integer of about 5001 digits>", "below 2**63"], id="step=10**5000"),
    pytest.param(lambda: S.inverse_sqrt(10)(TOO_BIG), V, ["step=9223372036854775808", "below 2**63"], id="never-ending-step=2**63"),
    pytest.param(lambda: S.constant()([[1], [1, 2]]), V, ["step=[[1], [1, 2]]", "an integer array"], id="step=ragged"),
    pytest.param(lambda: S.constant()(range(10**15)), V, ["step=range(0, 1000000000000000)", "fits in memory"], id="step=range(10**15)"),
    pytest.param(lambda: S.constant()("x" * 10**6), V, ["step='xxxx", "an integer"], id="step=huge-str"),
    pytest.param(lambda: S.constant()([2**70]), V, ["step=[1180591620717411303424]", "dtype object"], id="step=[2**70]"),
    # -- nesting ----------------------------------------------------------------------------------
    pytest.param(lambda: _nested_joins(51), V, ["join", "nested 51 deep", "at most 50"], id="join-nested-51"),
    pytest.param(lambda: S.Product((_nested_joins(50), S.constant())), V, ["product", "nested 51 deep"], id="product-nested-51"),
    # -- the text form ---------------------------------------------------------------------------
    pytest.param(lambda: parse(12345), P, ["expected a schedule expression as a string, got int 12345"], id="parse(12345)"),
    pytest.param(lambda: parse(None), P, ["expected a schedule expression as a string, got NoneType"], id="parse(None)"),
    pytest.param(lambda: parse(b"linear_warmup(10)"), P, ["as a string, got bytes b'linear_warmup(10)'"], id="parse(bytes)"),
    pytest.param(lambda: parse(["linear_warmup(10)"] * 10**5), P, ["as a string, got list", "..."], id="parse(long-list)"),
    pytest.param(lambda: parse("linear_warmup(" + "-" * 10000 + "1)"), P, ["expression nested too deeply"], id="10000-minus-signs"),
    pytest.param(lambda: parse("linear_warmup(10, start=" + "9" * 400 + ")"), P, ["start=99999999999999999999... (400 digits)", "[0.0, 1.0]"], id="text-start=400-digits"),
    pytest.param(lambda: parse("linear_warmup(" + "9" * 5000 + ")"), P, ["syntax error", "4300 digits"], id="text-5000-digits"),
    pytest.param(lambda: parse("linear_warmup(1e308)"), P, ["linear_warmup", "steps=1e+308", "below 2**63"], id="text-steps=1e308"),
    pytest.param(lambda: parse("linear_warmup(9223372036854775808)"), P, ["steps=9223372036854775808", "below 2**63"], id="text-steps=2**63"),
    pytest.param(lambda: parse("linear_warmup(4611686018427387904) >> linear_decay(4611686018427387904)"), P, ["ends at step 9223372036854775808"], id="text-join-past-2**63"),
    pytest.param(lambda: parse("step_decay(milestones=5)"), P, ["milestones=5", "a list of"], id="text-milestones=5"),
    pytest.param(lambda: parse("join([linear_warmup(10), constant()], 10)"), P, ["boundaries=10", "a list of steps"], id="text-boundaries=10"),
    pytest.param(lambda: parse("cosine_decay(10, cycles=1e308)"), P, ["cycles=1e+308", "2**63"], id="text-cycles=1e308"),
    pytest.param(lambda: parse("from_hf_name('polynomial', 10, 100, lr_end='x', peak=1)"), P, ["lr_end='x'"], id="text-hf-lr_end=str"),
    pytest.param(lambda: parse("linear_warmup(1\x00)"), P, ["syntax error", "null"], id="text-null-byte"),
    pytest.param(lambda: parse("(" * 300 + "constant()" + ")" * 300), P, ["syntax error", "too many nested parentheses"], id="text-300-parentheses"),
    pytest.param(lambda: parse("x" * 100_000), P, ["expected a schedule, found 'xxx", "..."], id="text-100000-letters"),
    pytest.param(lambda: parse("linear_warmup(10, " + "x" * 100_000 + ")"), P, ["is not allowed as an argument", "..."], id="text-huge-name-argument"),
    pytest.param(lambda: parse("exponential_warmup(tau=1e19)"), P, ["tau=1e+19", "2**63"], id="text-tau=1e19"),
    # -- from_dict ---------------------------------------------------------------------------------
    pytest.param(lambda: from_dict({"type": "linear_warmup"}), V, ["from_dict", "linear_warmup needs field(s) ['steps']"], id="dict-missing-field"),
    pytest.param(lambda: from_dict({"type": "join", "schedules": []}), V, ["join needs field(s) ['boundaries']"], id="dict-missing-boundaries"),
    pytest.param(lambda: from_dict({"type": ["linear_warmup"]}), V, ["type=['linear_warmup'] is unknown", "expected one of constant"], id="dict-type=list"),
    pytest.param(lambda: from_dict({"type": {"a": 1}}), V, ["type={'a': 1} is unknown"], id="dict-type=dict"),
    pytest.param(lambda: from_dict(_deep_dict(5000)), V, ["nests dicts and lists more than 102 levels deep"], id="dict-5000-deep"),
    pytest.param(lambda: from_dict({"type": "constant", "steps": _deep_list(5000)}), V, ["more than 102 levels deep"], id="dict-5000-deep-list"),
    pytest.param(lambda: from_dict(_cyclic()), V, ["more than 102 levels deep"], id="dict-cyclic"),
    pytest.param(lambda: from_dict({"type": "constant", 1: 2, "a": 3}), V, ["constant has no field(s) ['1', 'a']"], id="dict-int-key"),
    pytest.param(lambda: from_dict({"type": "step_decay", "milestones": 5}), V, ["milestones=5", "a list of"], id="dict-milestones=5"),
    pytest.param(lambda: from_dict({"type": "linear_warmup", "steps": 1e308}), V, ["steps=1e+308", "below 2**63"], id="dict-steps=1e308"),
    pytest.param(lambda: from_dict({"type": "join", "schedules": "ab", "boundaries": [1]}), V, ["join", "schedules='ab'"], id="dict-schedules=str"),
    pytest.param(lambda: from_dict([1, 2]), V, ["from_dict: [1, 2] is not a schedule dict"], id="dict-is-a-list"),
    pytest.param(lambda: from_dict({"type": "constant", "steps": [0] * 10**5}), V, ["steps=(0, 0, 0, 0, 0, 0, 0, 0, ...)"], id="dict-steps=long-list"),
]


@pytest.mark.parametrize(("build", "kind", "fragments"), CATALOGUE)
def test_hostile_input_raises_a_clear_value_error(build, kind, fragments):
    with pytest.raises(ValueError) as info:
        build()
    err = info.value
    assert type(err) is kind, f"{type(err).__name__}: {err}"
    message = str(err)
    for fragment in fragments:
        assert fragment in message, message
    assert len(message) < LONGEST_MESSAGE, message


# -- extremes that are valid work, at every step ---------------------------------------------------

WORKS = [
    pytest.param(lambda: S.linear_warmup(MAX), id="steps=2**63-1"),
    pytest.param(lambda: S.linear_warmup(2**62) >> S.linear_decay(2**62 - 1), id="join-ends-at-2**63-1"),
    pytest.param(lambda: S.step_decay(milestones=np.array([10, MAX])), id="milestones-array-up-to-2**63-1"),
    pytest.param(lambda: S.step_decay(every=MAX), id="every=2**63-1"),
    pytest.param(lambda: S.exponential_warmup(tau=9.2e18, steps=MAX), id="tau=9.2e18"),
    pytest.param(lambda: S.inverse_sqrt(9.2e18), id="timescale=9.2e18"),
    pytest.param(lambda: S.cosine_decay(MAX, cycles=9.2e18, end=0.5), id="cycles=9.2e18"),
    pytest.param(lambda: S.wsd(10, MAX), id="wsd-total=2**63-1"),
    pytest.param(lambda: S.wsd(0, MAX, decay_fraction=1.0, shape="cosine"), id="wsd-all-decay-2**63-1"),
    pytest.param(lambda: S.from_hf_name("linear", MAX, MAX), id="hf-total=2**63-1"),
    pytest.param(lambda: _nested_joins(50), id="nested-50"),
    pytest.param(lambda: S.exponential_warmup(tau=5e-324, steps=10), id="tau=5e-324"),
    pytest.param(lambda: S.exponential_decay(half_life=5e-324), id="half_life=5e-324"),
    pytest.param(lambda: S.polynomial_warmup(10, 5e-324) * S.exponential_decay(rate=5e-324), id="power-rate=5e-324"),
    pytest.param(lambda: parse("linear_warmup(" + "-+" * 1000 + "10)"), id="2000-signs"),
    pytest.param(lambda: parse("linear_warmup(9223372036854775807)"), id="text-steps=2**63-1"),
    pytest.param(lambda: parse("constant(\n  5\n) >> linear_decay(\r\n 10)"), id="text-line-breaks"),
]


@pytest.mark.filterwarnings("error")  # not even a NumPy overflow warning
@pytest.mark.parametrize("build", WORKS)
def test_valid_extremes_evaluate_everywhere_and_round_trip(build):
    schedule = build()
    last = schedule.length if schedule.length is not None else MAX
    values = [schedule(0), schedule(last), schedule(MAX), *schedule(np.array([0, 1, last, MAX]))]
    assert all(0.0 <= v <= 1.0 for v in values), values
    assert from_dict(json.loads(json.dumps(schedule.to_dict()))) == schedule
    assert parse(str(schedule)) == schedule


def test_the_torch_scheduler_runs_a_schedule_of_2_to_the_63_minus_1_steps():
    torch = pytest.importorskip("torch")
    from preheat.torch import Scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = Scheduler(optimizer, S.linear_warmup(MAX) >> S.constant())
    optimizer.step()
    scheduler.step()
    assert scheduler.get_last_lr() == [pytest.approx(1 / MAX)]


def test_a_parse_error_in_a_huge_expression_shows_the_problem_not_all_of_it():
    text = "linear_warmup(10) >> " * 1000 + "cosine_decya(90)"
    with pytest.raises(ParseError) as info:
        parse(text)
    err = info.value
    assert err.expression == text and text[err.position :].startswith("cosine_decya")
    shown, column = err.excerpt()
    assert len(shown) < 300 and shown[column:].startswith("cosine_decya")
    assert len(str(err)) < LONGEST_MESSAGE


def test_positions_count_characters_on_every_line():
    text = "(constant(5)\n >> step_decay(milestones=['é', x]))"
    with pytest.raises(ParseError) as info:
        parse(text)
    assert text[info.value.position :].startswith("x]))")
    lines = str(info.value).splitlines()
    assert lines[2].index("^") - 2 == info.value.position  # the line break shows as a space


@pytest.mark.parametrize("text", ["constant(1if 1 else 2)", "linear_warmup(0x1for)", r"wsd(10, 100, shape='\d')"])
def test_parse_lets_no_python_warning_through(text):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ParseError):
            parse(text)
    assert caught == []
    result = CliRunner().invoke(app, ["show", text, "--total", "3", "--peak", "1"])
    assert result.exit_code == 2 and "Warning" not in result.stderr, result.stderr


# -- preheat show / preheat plot --------------------------------------------------------------------

EXPR = "linear_warmup(10) >> cosine_decay(90)"
HUGE = "99999999999999999999"

# (arguments, the option and the value the one line names); {out} is a figure path in tmp_path,
# {dir} an existing folder there, {file} an existing file there.
CLI = [
    pytest.param(["plot", EXPR, "--total", HUGE, "--peak", "1", "--out", "{out}"], ["--total", HUGE, "2**63 - 1"], id="plot-total-huge"),
    pytest.param(["plot", EXPR, "--total", HUGE, "--peak", "1"], ["--total", HUGE], id="plot-terminal-total-huge"),
    pytest.param(["show", EXPR, "--total", HUGE, "--peak", "1"], ["--total", HUGE, "2**63 - 1"], id="show-total-huge"),
    pytest.param(["show", EXPR, "--total", str(TOO_BIG), "--peak", "1", "-f", "csv"], ["--total", str(TOO_BIG)], id="show-total=2**63"),
    pytest.param(["plot", EXPR, "--total", "0", "--peak", "1", "--out", "{out}"], ["--total", "0"], id="plot-total=0"),
    pytest.param(["show", EXPR, "--total", "5000000", "--peak", "1"], ["--total 5000000", "--every 1", "--every 5 or more"], id="show-too-many-rows"),
    pytest.param(["plot", EXPR, "--total", "100", "--peak", "1", "--out", "{dir}"], ["--out", "is a folder"], id="plot-out-is-a-folder"),
    pytest.param(["plot", EXPR, "--total", "100", "--peak", "1", "--out", "{file}/figure.png"], ["--out", "is a file, so"], id="plot-out-under-a-file"),
    pytest.param(["plot", EXPR, "--total", "100", "--peak", "1", "--out", "{out}.jpg"], ["--out", ".jpg", "unknown extension"], id="plot-out-jpg"),
    pytest.param(["plot", EXPR, "--total", "100", "--peak", "1", "--out", "{dir}/" + "x" * 300 + ".png"], ["--out", "cannot be written", "too long"], id="plot-out-name-too-long"),
    pytest.param(["plot", EXPR, "--total", "100", "--peak", "nan", "--out", "{out}"], ["--peak", "nan", "finite number > 0"], id="plot-peak=nan"),
    pytest.param(["show", EXPR, "--total", "100", "--peak", "inf"], ["--peak", "inf"], id="show-peak=inf"),
    pytest.param(["show", EXPR, "--total", "100", "--peak", "1e-400"], ["--peak", "0.0"], id="show-peak-underflows"),
    pytest.param(["show", EXPR, "--total", "100", "--peak", "1", "--every", "0"], ["--every", "0", "integer >= 1"], id="show-every=0"),
    # click's own conversions: one line too (their wording is click's or typer's)
    pytest.param(["show", EXPR, "--total", "abc", "--peak", "1"], ["Invalid value for '--total'", "integer"], id="show-total=abc"),
    pytest.param(["plot", EXPR, "--total", "100", "--peak", "x", "--out", "{out}"], ["Invalid value for '--peak'"], id="plot-peak=x"),
    pytest.param(["show", EXPR, "--total", "100", "--peak", "1", "-f", "xml"], ["Invalid value for '--format'", "'xml'"], id="show-format=xml"),
    pytest.param(["plot", EXPR, "--peak", "1", "--out", "{out}"], ["Missing option '--total'"], id="plot-no-total"),
]


def _cli(args, tmp_path):
    folder = tmp_path / "folder.png"
    folder.mkdir()
    (tmp_path / "file").write_text("not a folder")
    places = {"out": str(tmp_path / "new" / "figure.png"), "dir": str(folder), "file": str(tmp_path / "file")}
    args = [a.format(**places) for a in args]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80", "NO_COLOR": "1"})
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    return result, before, after


@pytest.mark.parametrize(("args", "names"), CLI)
def test_a_bad_option_is_one_line_and_exit_2_before_any_work(args, names, tmp_path):
    result, before, after = _cli(args, tmp_path)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for name in names:
        assert name in lines[0], lines[0]
    assert result.stdout == ""
    assert after == before  # nothing written, no folder made


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("linear_warmup(1e308)", ["steps=1e+308", "below 2**63"]),
        ("linear_warmup(" + "-" * 10000 + "1)", ["nested too deeply"]),
        ("linear_warmup(10, start=" + "9" * 400 + ")", ["start=", "(400 digits)"]),
        ("step_decay(milestones=5)", ["milestones=5"]),
    ],
    ids=["steps=1e308", "10000-signs", "400-digits", "milestones=5"],
)
@pytest.mark.parametrize("command", ["show", "plot"])
def test_a_bad_expression_exits_2_with_its_message_and_writes_nothing(command, expression, names, tmp_path):
    out = ["--out", "{out}"] if command == "plot" else []
    result, before, after = _cli([command, expression, "--total", "100", "--peak", "1", *out], tmp_path)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    first = result.stderr.splitlines()[0]
    for name in names:
        assert name in first, first
    assert max(len(line) for line in result.stderr.splitlines()) < 520  # the expression, up to 500 characters
    assert after == before


def test_plot_and_show_run_2_to_the_63_minus_1_steps_quickly(tmp_path):
    pytest.importorskip("matplotlib")
    expression = "linear_warmup(1000000) >> cosine_decay(9000000000000000000)"
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["plot", expression, "--total", str(MAX), "--peak", "1", "--out", str(tmp_path / "a.svg")])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["plot", expression, "--total", str(MAX), "--peak", "1e308"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["show", expression, "--total", str(MAX), "--peak", "1", "--every", str(2**62), "-f", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["steps"] == [0, 2**62]
    assert time.perf_counter() - started < 20


def test_plot_writes_titles_as_written_and_makes_missing_folders(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "new" / "deeper" / "figure.png"
    result = CliRunner().invoke(app, ["plot", EXPR, "--total", "100", "--peak", "1", "--title", r"$\frac{", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in out.parent.iterdir()] == ["figure.png"]  # no partial file left beside it


def test_a_failed_figure_leaves_no_file_and_no_folder(tmp_path, monkeypatch):
    Figure = pytest.importorskip("matplotlib.figure").Figure

    def broken(self, path, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", broken)
    out = tmp_path / "new" / "figure.png"
    result = CliRunner().invoke(app, ["plot", EXPR, "--total", "100", "--peak", "1", "--out", str(out)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write ") and "No space left on device" in lines[0]
    assert list(tmp_path.iterdir()) == []


# -- fuzzing: parse and from_dict raise only ValueError, or return a schedule that evaluates --------

#: Each example within 5 s (they take milliseconds): parse and from_dict end in bounded time.
FUZZ = settings(max_examples=250, deadline=5000, suppress_health_check=[HealthCheck.too_slow])


def _evaluates(schedule: S.Schedule) -> None:
    last = schedule.length if schedule.length is not None else 10**6
    values = [schedule(0), schedule(last), *schedule(np.array([0, last]))]
    assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values), (str(schedule), values)


def _outcome(read, value) -> None:
    try:
        schedule = read(value)
    except ValueError as err:
        assert len(str(err)) < 5000
    else:
        assert isinstance(schedule, S.Schedule)
        _evaluates(schedule)
        assert parse(str(schedule)) == schedule
        assert from_dict(json.loads(json.dumps(schedule.to_dict()))) == schedule


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a NumPy warning while evaluating fails too
@FUZZ
@given(st.text(max_size=200))
def test_parse_any_text(text):
    _outcome(parse, text)


#: Valid schedules of every family, the presets and compositions: the fuzzers mutate these.
VALID = [
    S.linear_warmup(100, start=0.1), S.cosine_warmup(50), S.polynomial_warmup(20, 2.0),
    S.exponential_warmup(tau=10.0, steps=40), S.exponential_warmup(beta2=0.999), S.untuned_linear_warmup(0.99),
    S.radam_warmup(0.999, steps=30), S.constant(5, value=0.5), S.linear_decay(10, end=0.1),
    S.cosine_decay(90, end=0.1, cycles=1.5), S.cosine_restarts(60, cycles=3.0), S.polynomial_decay(40, power=2.0),
    S.exponential_decay(rate=0.9, steps=20), S.exponential_decay(half_life=7.0), S.step_decay(every=10, gamma=0.5),
    S.step_decay(milestones=[10, 20]), S.inverse_sqrt(100.0), S.one_minus_sqrt_decay(30, end=0.2),
    S.warmup_cosine(10, 100, end=0.1), S.warmup_linear(5, 50), S.wsd(10, 100, decay_fraction=0.3, shape="1-sqrt"),
    S.join([S.linear_warmup(10), S.constant(value=0.5), S.cosine_decay(20)], [5, 30]),
    S.exponential_warmup(beta2=0.99, steps=20) * (S.linear_warmup(3) >> S.linear_decay(6)) >> S.constant(value=0.3),
    S.from_hf_name("warmup_stable_decay", 5, 50, num_decay_steps=10, warmup_type="cosine"),
]
VALID_TEXTS = [str(schedule) for schedule in VALID] + [
    "from_hf_name('polynomial', 10, 100, lr_end=1e-5, peak=1e-3)",
    "from_hf_name('cosine_with_min_lr', 2, 10, min_lr_rate=0.1)",
    "from_hf_name('inverse_sqrt', 10, timescale=50)",
]
HOSTILE_NUMBERS = ["1e308", "1e-400", "9223372036854775807", "9223372036854775808", "9" * 400, "1e19",
                   "-0.0", "-1", "0", "nan", "inf", "True", "None", "1j", "0x10", "1_000", "-" * 50 + "1", "5e-324"]
NUMBERS = st.one_of(
    st.integers(0, 100).map(str),
    st.floats(0.0, 1.0).map(repr),
    st.sampled_from(HOSTILE_NUMBERS),
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(repr),
)
STRINGS = st.sampled_from(["'linear'", "'cosine'", "'1-sqrt'", "'exponential'", "'polynomial'",
                           "'warmup_stable_decay'", "''", "'\\x00'", "b'x'"])
NAMES = [*S.EXPRESSION_NAMES, "product", "eval", "__import__", "os", "x"]
KEYWORDS = ["steps", "start", "end", "value", "power", "cycles", "tau", "beta2", "half_life", "rate",
            "gamma", "every", "milestones", "timescale", "warmup", "total", "shape", "decay_fraction",
            "num_cycles", "lr_end", "peak", "min_lr_rate", "num_decay_steps", "bogus"]
LITERAL = re.compile(r"\d[\d_.]*(?:e[-+]?\d+)?|'[^']*'|\b[a-z_]+(?=\()|\b[a-z_0-9]+(?==)|\[|\]|\(|\)|,|>>|\*")
TOKENS = st.one_of(NUMBERS, STRINGS, st.sampled_from(NAMES), st.sampled_from(KEYWORDS),
                   st.sampled_from(["", "(", ")", ",", "[", "]", ">>", "*", "+", "=", " ", "**", "\n"]))


NUMBER = re.compile(r"(?<![\w.])\d[\d_.]*(?:e[-+]?\d+)?")


@st.composite
def mutated_texts(draw) -> str:
    """A valid schedule's text with one to three of its numbers replaced by other numbers (sane
    or hostile), or of its tokens (numbers, strings, names, keywords, brackets, operators) by
    other tokens."""
    text = draw(st.sampled_from(VALID_TEXTS))
    numbers_only = draw(st.booleans())
    for _ in range(draw(st.integers(1, 3))):
        spans = [m.span() for m in (NUMBER if numbers_only else LITERAL).finditer(text)]
        if not spans:
            break
        start, end = draw(st.sampled_from(spans))
        text = text[:start] + draw(NUMBERS if numbers_only else TOKENS) + text[end:]
    return text


def _calls(arguments):
    keyword = st.tuples(st.sampled_from(KEYWORDS), arguments).map(lambda kv: f"{kv[0]}={kv[1]}")
    listed = st.lists(st.one_of(arguments, arguments, keyword), max_size=3).map(", ".join)
    return st.tuples(st.sampled_from(NAMES), listed).map(lambda call: f"{call[0]}({call[1]})")


def _grow(children):
    arguments = st.one_of(NUMBERS, STRINGS, children, st.lists(st.one_of(NUMBERS, children), max_size=4).map(
        lambda items: "[" + ", ".join(items) + "]"))
    joined = st.tuples(children, st.sampled_from([" >> ", " * ", " + ", ", ", " "]), children).map("".join)
    return st.one_of(_calls(arguments), joined, children.map(lambda c: f"({c})"), children.map(lambda c: "-" + c))


#: Expressions built from a grammar of schedule calls, arguments and operators.
EXPRESSIONS = st.recursive(_calls(st.one_of(NUMBERS, STRINGS)), _grow, max_leaves=8)


@pytest.mark.filterwarnings("error::RuntimeWarning")
@FUZZ
@given(st.one_of(EXPRESSIONS, mutated_texts()))
def test_parse_schedule_like_text(text):
    _outcome(parse, text)


FIELDS = ["type", "steps", "start", "end", "value", "power", "cycles", "tau", "beta2", "half_life", "rate",
          "gamma", "every", "milestones", "timescale", "schedules", "boundaries", "factors"]
TYPES = st.sampled_from(sorted(S.Schedule.registry) + ["nope", ""])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 100), st.integers(-(2**70), 2**70), st.floats(0.0, 1.0),
    st.sampled_from([2**63 - 1, 2**63, 10**400, 0.5, 1e308, 5e-324, 1e19]), st.floats(), st.text(max_size=10), TYPES,
)


def _data(children):
    schedule_like = st.tuples(TYPES, st.dictionaries(st.sampled_from(FIELDS[1:]), children, max_size=4)).map(
        lambda t: {"type": t[0], **t[1]}
    )
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=5), st.integers()), children, max_size=4),
        schedule_like,
    )


#: JSON-like data: None, booleans, numbers, strings, lists and dicts, nested.
JSON_LIKE = st.recursive(SCALARS, _data, max_leaves=12)


def _places(data):
    """Every (container, key) of a dict's nested values, the dict's own keys included."""
    places = []
    for key, value in (data.items() if isinstance(data, dict) else enumerate(data)):
        places.append((data, key))
        if isinstance(value, (dict, list)):
            places.extend(_places(value))
    return places


@st.composite
def mutated_dicts(draw) -> dict:
    """A valid schedule's dict with one to three values (or whole parts) replaced, or a field dropped."""
    data = copy.deepcopy(draw(st.sampled_from(VALID)).to_dict())
    for _ in range(draw(st.integers(1, 3))):
        container, key = draw(st.sampled_from(_places(data)))
        if isinstance(container, dict) and draw(st.booleans()) and draw(st.booleans()):
            del container[key]
        else:
            container[key] = draw(st.one_of(SCALARS, JSON_LIKE))
        if not _places(data):
            break
    return data


@pytest.mark.filterwarnings("error::RuntimeWarning")
@FUZZ
@given(st.one_of(JSON_LIKE, mutated_dicts()))
def test_from_dict_any_data(data):
    _outcome(from_dict, data)
