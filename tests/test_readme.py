"""README.md's commands and its Python example run as written.

Every ``preheat ...`` command of the README's bash blocks (not ``make``, not comments) runs
through the app, in the README's order, in one temporary folder (so ``runs/...`` and ``lr.png``
land there), at a tiny size: ``compare`` with ``--steps 10``, ``sweep`` with ``steps`` just long
enough for its longest warmup, both on one worker without progress bars. Each command's check
is about what it wrote, not only its exit status. The README's Python example runs too.
"""

from __future__ import annotations

import ast
import math
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from preheat.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PNG = b"\x89PNG\r\n\x1a\n"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def commands() -> list[list[str]]:
    """The arguments of every ``preheat`` (or ``.venv/bin/preheat``) command in the bash blocks."""
    found = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv and Path(argv[0]).name == "preheat":
                found.append(argv[1:])
    return found


def option(argv: list[str], name: str) -> str | None:
    """The value of the last ``name VALUE`` in ``argv``."""
    values = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == name]
    return values[-1] if values else None


def grid(argv: list[str]) -> dict[str, list]:
    """The sweep's --grid axes, ``{"warmup": [0, 20, 50], ...}``."""
    axes = {}
    for i, arg in enumerate(argv[:-1]):
        if arg == "--grid":
            key, _, values = argv[i + 1].partition("=")
            axes[key.strip()] = ast.literal_eval(values.strip())
    return axes


def tiny(argv: list[str]) -> list[str]:
    """``argv`` at a tiny size: short runs on one worker, a line per run instead of progress bars."""
    if argv[0] == "compare":
        return [*argv, "--steps", "10", "--workers", "1", "--quiet"]
    if argv[0] == "sweep":
        steps = max([10, *grid(argv).get("warmup", [])])  # a warmup may not be longer than the run
        return [*argv, "--set", f"steps={steps}", "--workers", "1", "--quiet"]
    if argv[0] == "diagnose":
        return [*argv, "--quiet"]
    return argv


def check(argv: list[str], text: str, folder: Path) -> None:
    """What the README says the command does, checked on what it printed and wrote."""
    from preheat.lab.store import Store

    command = argv[0]
    if command == "--help":
        assert "Usage: preheat" in text and all(name in text for name in ("compare", "sweep", "plot", "show"))
    elif command == "compare":
        task = option(argv, "--task")
        out = folder / (option(argv, "--out") or f"runs/compare-{task}{'-quick' if '--quick' in argv else ''}")
        assert (out / "report.html").stat().st_size > 10_000
        runs = Store(out, read_only=True).runs()
        assert f"{len(runs)} runs in" in text and "ranking" in text and len(runs) >= 10
        assert all(run.config.task == task and run.config.steps == 10 for run in runs)
        assert {run.status for run in runs} <= {"finished", "diverged"}
    elif command == "sweep":
        out = folder / option(argv, "--out")
        runs = Store(out, read_only=True).runs()
        assert len(runs) == math.prod(len(values) for values in grid(argv).values())
        assert {run.status for run in runs} <= {"finished", "diverged"}
        swept = {(run.config.peak_lr, run.config.warmup) for run in runs}
        axes = grid(argv)
        assert swept == {(lr, w) for lr in axes["peak_lr"] for w in axes["warmup"]}
        assert all(run.config.schedule == "warmup_cosine({warmup}, {steps})" for run in runs)
        assert (out / "report.html").exists() and "ranking" in text
    elif command == "report":
        assert "ranking" in text and (folder / argv[1] / "report.html").exists()
        assert re.search(rf"report: \S*{re.escape(str(Path(argv[1]) / 'report.html'))}\n", text), text
    elif command == "plot" and option(argv, "--out"):
        path = folder / option(argv, "--out")
        assert path.read_bytes()[:8] == PNG and f"wrote {option(argv, '--out')}" in text
    elif command == "plot":
        expressions = [arg for arg in argv[1:] if not arg.startswith("-")]
        expressions = [e for e in expressions if "(" in e]
        assert expressions and all(e in text for e in expressions)
        assert text.count("first update") == len(expressions)
    elif command == "show" and option(argv, "--format") == "csv":
        lines = text.splitlines()
        total = int(option(argv, "--total"))
        assert lines[0] == "step,multiplier,lr" and len(lines) == total + 1
        assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(total))
    elif command == "advise":
        assert "peak LR" in text and "schedule" in text and "Hugging Face" in text
    elif command == "check":
        assert "no warmup mistakes found" in text or "0 error(s)" in text
    elif command == "diagnose":
        task = option(argv, "--task")
        out = folder / (option(argv, "--out") or f"runs/diagnose-{task}")
        assert (out / "diagnosis.json").exists() and (out / "sharpness.png").read_bytes()[:8] == PNG
        assert "fitted rho" in text
    else:
        raise AssertionError(f"the README has a preheat command this test does not check: {shlex.join(argv)}")


def test_the_readme_shows_each_command() -> None:
    """The README keeps a command of each kind (so the test below cannot pass on an empty list)."""
    kinds = [argv[0] for argv in commands()]
    for kind in ("--help", "compare", "sweep", "report", "plot", "show", "check", "advise", "diagnose"):
        assert kind in kinds, kind
    sweep = next(argv for argv in commands() if argv[0] == "sweep")
    assert any("{warmup}" in arg for arg in sweep) and len(grid(sweep)["warmup"]) > 1  # it sweeps warmups


def test_every_preheat_command_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for argv in commands():
        args = tiny(argv)
        result = CliRunner().invoke(app, args, prog_name="preheat", env={"COLUMNS": "120", "NO_COLOR": "1"})
        text = ANSI.sub("", result.output)
        assert result.exit_code == 0, f"preheat {shlex.join(args)}\n{text}"
        check(argv, text, tmp_path)


def test_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (block,) = blocks("python")
    scope = {"__name__": "__readme__"}
    exec(compile(block, str(README), "exec"), scope)
    # auto_warmup(total=1000): a ramp from 1/400 of the peak, never above it, handed over to a
    # cosine decay that ends at 0 after the last update
    decisions = scope["scheduler"].controller.decisions
    assert decisions[0].multiplier == pytest.approx(2 / 400)
    assert all(0 < d.multiplier <= 1 for d in decisions)
    assert scope["scheduler"].controller.handover_step is not None
    assert scope["scheduler"].get_last_lr() == [pytest.approx(0.0, abs=1e-12)]
    assert scope["optimizer"].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
