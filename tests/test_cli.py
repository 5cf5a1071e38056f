"""The `preheat` command: figures, terminal view, show formats, errors, version.

Expected values are written from the formulas in docs/schedules.md, not read from the library.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from preheat import __version__
from preheat.cli import app
from preheat.plotting import key_steps, phase_boundaries, sparkline
from preheat.schedules import parse

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SCRIPT = Path(sys.executable).with_name("preheat")

# linear_warmup(100) >> cosine_decay(900, end=0.1), peak 0.5: written out by hand.
EXPR = "linear_warmup(100) >> cosine_decay(900, end=0.1)"
PEAK = 0.5


def formula(t: int) -> float:
    if t <= 100:
        return t / 100
    p = min(t - 100, 900) / 900
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))


def run(*args: str):
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "100", "NO_COLOR": "1"})
    return result, ANSI.sub("", result.output)


def table_rows(text: str) -> dict[int, tuple[float, float]]:
    """{step: (multiplier, lr)} from the rows of a rich table printed as plain text."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^\s*(\d+)\s+([-+.\deE]+)\s+([-+.\deE]+)(\s|$)", line)
        if match:
            rows[int(match[1])] = (float(match[2]), float(match[3]))
    return rows


# -- plot ------------------------------------------------------------------------------------


def test_plot_writes_a_png_that_matplotlib_reads(tmp_path):
    out = tmp_path / "figs" / "lr.png"
    result, text = run("plot", EXPR, "wsd(100, 1000)", "--total", "1200", "--peak", "0.5",
                       "--out", str(out), "--title", "two", "--log")
    assert result.exit_code == 0, text
    assert str(out) in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    pixels = matplotlib.image.imread(out)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert out.stat().st_size < 200_000


def test_plot_writes_svg_by_extension(tmp_path):
    out = tmp_path / "lr.svg"
    result, text = run("plot", EXPR, "--total", "1000", "--peak", "1", "--out", str(out))
    assert result.exit_code == 0, text
    assert out.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_plot_rejects_an_unknown_extension(tmp_path):
    result, text = run("plot", EXPR, "--total", "10", "--peak", "1", "--out", str(tmp_path / "lr.jpg"))
    assert result.exit_code == 2
    assert ".png" in text and not (tmp_path / "lr.jpg").exists()


def test_plot_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result, text = run("plot", EXPR, "--total", "10", "--peak", "1", "--out", str(tmp_path / "a.png"))
    assert result.exit_code == 1
    assert "preheat[plot]" in text and "Traceback" not in text


def test_terminal_view_shows_the_values_around_each_boundary():
    result, text = run("plot", EXPR, "--total", "1200", "--peak", str(PEAK))
    assert result.exit_code == 0, text
    assert EXPR in text
    spark = [line for line in text.splitlines() if line and set(line) <= set("▁▂▃▄▅▆▇█")]
    assert len(spark) == 1 and len(spark[0]) == 60
    rows = table_rows(text)
    # step 0, before/at the boundary 100, the end 1000, the last step drawn 1199
    assert set(rows) == {0, 99, 100, 1000, 1199}
    expected = {0: 0.0, 99: 0.99, 100: 1.0, 1000: 0.1, 1199: 0.1}
    for step, multiplier in expected.items():
        assert rows[step][0] == pytest.approx(multiplier, rel=1e-5, abs=1e-9)
        assert rows[step][1] == pytest.approx(PEAK * multiplier, rel=1e-5, abs=1e-9)


def test_terminal_view_of_several_schedules_and_an_end_after_the_run():
    result, text = run("plot", "wsd(10, 100, decay_fraction=0.2)", "constant()",
                       "--total", "50", "--peak", "2")
    assert result.exit_code == 0, text
    # wsd: boundaries at 10 (stable) and 80 (decay), ends at 100 > total
    wsd_block, constant_block = text.split("constant()")
    rows = table_rows(wsd_block)
    assert set(rows) == {0, 9, 10, 49, 79, 80, 100}
    assert rows[9] == pytest.approx((0.9, 1.8))
    assert rows[100] == pytest.approx((0.0, 0.0))
    assert "after the run" in wsd_block
    assert table_rows(constant_block) == {0: (1.0, 2.0), 49: (1.0, 2.0)}


def test_sparkline_and_key_steps_helpers():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([1.0] * 500, width=60) == "█" * 60
    assert sparkline([0.001, 0.01, 0.1, 1.0], log=True) == "▁▃▆█"
    assert sparkline([]) == ""
    nested = parse("exponential_warmup(tau=5, steps=10) * (constant(30) >> linear_decay(20)) >> constant()")
    assert phase_boundaries(nested) == [30, 50]
    assert [s for s, _ in key_steps(parse("linear_warmup(1) >> constant()"), 3)] == [0, 1, 2]


# -- show ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_show_matches_the_formula(fmt):
    result, text = run("show", EXPR, "--total", "1100", "--peak", str(PEAK), "--format", fmt)
    assert result.exit_code == 0, text
    if fmt == "json":
        data = json.loads(text)
        assert data["schedule"] == EXPR and data["peak"] == PEAK
        values = {s: (m, lr) for s, m, lr in zip(data["steps"], data["multiplier"], data["lr"])}
    elif fmt == "csv":
        reader = csv.reader(io.StringIO(text))
        assert next(reader) == ["step", "multiplier", "lr"]
        values = {int(s): (float(m), float(lr)) for s, m, lr in reader}
    else:
        values = table_rows(text)
    assert sorted(values) == list(range(1100))
    rel = 1e-5 if fmt == "table" else 1e-12
    for step in (0, 1, 50, 99, 100, 101, 550, 999, 1000, 1099):
        multiplier, lr = values[step]
        assert multiplier == pytest.approx(formula(step), rel=rel, abs=1e-12)
        assert lr == pytest.approx(PEAK * formula(step), rel=rel, abs=1e-12)


def test_show_every_thins_the_output():
    result, text = run("show", "linear_warmup(2) >> linear_decay(8)", "--total", "12", "--peak", "10",
                       "--format", "csv", "--every", "3")
    assert result.exit_code == 0, text
    assert text.splitlines() == ["step,multiplier,lr", "0,0.0,0.0", "3,0.875,8.75", "6,0.5,5.0", "9,0.125,1.25"]
    result, text = run("show", "constant()", "--total", "10", "--peak", "1", "-f", "json", "--every", "4")
    assert json.loads(text)["steps"] == [0, 4, 8]


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expression", "column", "hint"),
    [
        ("show", "linear_warmup(20", 13, "check brackets"),
        ("show", "linear_warmup(10) >> cosine_decy(90)", 21, "did you mean cosine_decay"),
        ("plot", "linear_warmup(steps=x)", 20, "arguments are numbers"),
    ],
)
def test_parse_errors_exit_2_with_a_caret_and_the_hint(command, expression, column, hint):
    result, text = run(command, expression, "--total", "10", "--peak", "1")
    assert result.exit_code == 2
    assert "Traceback" not in text
    lines = text.splitlines()
    at = lines.index(f"  {expression}")
    assert lines[at + 1] == "  " + " " * column + "^"
    assert hint in text


def test_invalid_schedule_arguments_exit_2():
    result, text = run("show", "cosine_decay(100, end=2)", "--total", "10", "--peak", "1")
    assert result.exit_code == 2
    assert "end=2" in text and "Traceback" not in text


@pytest.mark.parametrize(
    "options",
    [
        ["--total", "0", "--peak", "1"],
        ["--total", "-5", "--peak", "1"],
        ["--total", "10", "--peak", "0"],
        ["--total", "10", "--peak", "-1e-3"],
        ["--total", "10", "--peak", "nan"],
        ["--total", "10", "--peak", "1", "--every", "0"],
    ],
)
def test_bad_total_peak_or_every_exit_2(options):
    result, text = run("show", "constant()", *options)
    assert result.exit_code == 2
    assert "Invalid value" in text and "Traceback" not in text


def test_version():
    result, text = run("--version")
    assert result.exit_code == 0
    assert text.strip() == f"preheat {__version__}"


# -- the installed console script ------------------------------------------------------------


@pytest.mark.skipif(not SCRIPT.exists(), reason="the preheat console script is not installed")
def test_installed_script_runs_and_reports_errors_cleanly():
    good = subprocess.run([str(SCRIPT), "show", "linear_warmup(4)", "--total", "6", "--peak", "2", "-f", "json"],
                          capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["lr"] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    bad = subprocess.run([str(SCRIPT), "plot", "linear_warmup(10) + constant()", "--total", "5", "--peak", "1"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "^" in bad.stderr and "hint:" in bad.stderr


def test_importing_the_cli_does_not_import_matplotlib():
    code = "import sys, preheat.cli; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


# -- lab ---------------------------------------------------------------------------------------


def test_compare_help_names_every_method_it_runs():
    """`preheat compare --help` lists what the curated comparison runs, GI-Adam and the
    adaptive warmups (preheat.lab.compare.adaptive_menu) included."""
    from preheat.lab.compare import adaptive_menu

    result, text = run("compare", "--help")
    assert result.exit_code == 0, text
    words = " ".join(text.lower().replace("│", " ").split())
    for label, _ in adaptive_menu(300, (0.9, 0.99)):
        name = label.split(" + ")[0].replace(" warmup", "")
        assert name.lower() in words, label
    for name in ("no warmup", "linear warmup", "exponential warmup", "wsd", "untuned", "radam", "auto_warmup",
                 "--research"):
        assert name in words, name


# -- defaults and help -------------------------------------------------------------------------


def test_peak_defaults_to_1_the_multipliers():
    """Without --peak, plot and show give the schedule's multipliers (peak 1)."""
    result, text = run("show", "linear_warmup(4)", "--total", "6", "-f", "json")
    assert result.exit_code == 0, text
    data = json.loads(text)
    assert data["peak"] == 1.0 and data["lr"] == data["multiplier"] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    result, text = run("plot", "linear_warmup(4)", "--total", "6")
    assert result.exit_code == 0, text
    assert "lr 0..1" in text and table_rows(text)[4] == (1.0, 1.0)
    result, text = run("show", "--help")
    assert "[default: 1.0]" in " ".join(text.replace("│", " ").split())


@pytest.mark.parametrize("command", [[], ["compare"], ["plot"], ["show"], ["sweep"], ["report"], ["diagnose"]],
                         ids=lambda command: command[0] if command else "preheat")
def test_help_shows_flags_without_a_value_type(command):
    """A flag (--quick, --log of plot, --help, --version) takes no value, so its help row shows no
    type: typer's rich help would print `<bool>` there."""
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"})
    text = ANSI.sub("", result.output)
    assert result.exit_code == 0, text
    assert "<bool>" not in text and "bool" not in text.lower().replace("boolean", "")
    assert re.search(r"│\s+--help\s+Show this message and exit\.", text), text
    flags = {"compare": "--quick", "plot": "--log", "sweep": "--trust-tasks", "diagnose": "--quiet"}
    if command and command[0] in flags:
        assert re.search(rf"│\s+{flags[command[0]]}\s+(-q\s+)?[A-Z]", text), text
    # options that take a value still show its type
    if command and command[0] in ("plot", "show"):
        assert "<int>" in text and "<float>" in text


def test_show_resolves_durations_in_units_against_the_run_it_is_told():
    result, _ = run("show", "linear_warmup('25%') >> constant()", "--total", "8", "--format", "json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["schedule"] == "linear_warmup(2) >> constant()"
    assert shown["multiplier"] == [0.0, 0.5, 1, 1, 1, 1, 1, 1]
    result, _ = run("show", "linear_warmup('3ep') >> constant()", "--total", "8", "--epoch", "2",
                    "--format", "json")
    assert json.loads(result.output)["schedule"] == "linear_warmup(6) >> constant()"
    result, text = run("plot", "linear_warmup('2ep') >> constant()", "--total", "8")
    assert result.exit_code == 2
    assert "updates_per_epoch was not given" in text and "--epoch for updates_per_epoch" in text


def test_check_finds_a_schedule_that_does_not_fit_the_run_and_exits_1():
    result, text = run("check", "warmup_cosine(10, 90)", "--total", "100")
    assert result.exit_code == 1, text
    assert "1 error(s), 1 note(s)" in text
    assert "decay-ends-early" in text and "holds it for the last 10 of 100 updates" in text
    assert "zero-first-update" in text
    result, text = run("check", "linear_warmup('5%', start=0.01) >> cosine_decay('95%')", "--total", "1000")
    assert result.exit_code == 0 and "no warmup mistakes found" in text
    result, text = run("check", "linear_warmup(10) >> constant()")
    assert result.exit_code == 2 and "EXPR needs --total" in text


SETUP = '''
import torch
import preheat


def setup():
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    return {"scheduler": preheat.Scheduler(optimizer, preheat.linear_warmup(300) >> preheat.constant()),
            "total": 200}
'''


def test_check_runs_a_setup_named_on_the_command_line_and_nothing_else(tmp_path, monkeypatch):
    (tmp_path / "my_setup.py").write_text(SETUP)
    monkeypatch.syspath_prepend(str(tmp_path))
    result, text = run("check", "--setup", "my_setup:setup")
    assert result.exit_code == 1, text
    assert "warmup-too-long" in text
    result, text = run("check", "--setup", "os:system")
    assert result.exit_code == 2 and "expected a function defined in os" in text


def test_check_reads_a_checkpoint_as_data_and_finds_a_schedule_free_train_mode(tmp_path):
    schedulefree = pytest.importorskip("schedulefree")
    import torch

    optimizer = schedulefree.AdamWScheduleFree(torch.nn.Linear(2, 1).parameters(), lr=1e-3)
    optimizer.train()
    torch.save({"optimizer": optimizer.state_dict()}, tmp_path / "ckpt.pt")
    result, text = run("check", "--checkpoint", str(tmp_path / "ckpt.pt"))
    assert result.exit_code == 1 and "schedule-free-train-mode" in text
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    result, text = run("check", "--checkpoint", str(tmp_path / "bad.pt"))
    assert result.exit_code == 2 and "cannot be read as data" in text


def test_advise_prints_the_advice_and_writes_its_record(tmp_path):
    result, text = run("advise", "--task", "digits", "--steps", "1000", "--out", str(tmp_path / "advice"))
    assert result.exit_code == 0, text
    assert "peak LR" in text and "stable range" in text and "eta_c (catapult)" in text
    record = json.loads((tmp_path / "advice" / "advice.json").read_text())
    assert f"{record['peak_lr']:.3g}" in text and record["schedule"] in text
    assert record["total"] == 1000 and record["budget"] == 20
    assert (tmp_path / "advice" / "advice.png").read_bytes()[:4] == b"\x89PNG"
    assert "optimizers_for_trainer" in text and "estimated_stepping_batches" in text
    result, text = run("advise", "--task", "digits", "--budget", "lots")
    assert result.exit_code == 2 and "--budget='lots' is invalid" in text
