"""Hostile and broken inputs to the lab and its command line: stores, sweep files, flags.

Each case asserts the exact outcome: the exit code, one clear line naming the problem, no
traceback, and the bytes of a store it must not touch unchanged. Reading a store never imports
or calls anything named in it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from preheat.cli import app
from preheat.lab.config import RunConfig
from preheat.lab.record import RunResult
from preheat.lab.store import APPLICATION_ID, SCHEMA_VERSION, Store

LAB_TESTS = Path(__file__).parents[1] / "lab"  # slow_task.py
ANSI = re.compile(r"\x1b\[[0-9;]*m")
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))
TINY = ["--set", "task=river-valley", "--set", "steps=3", "--set", "batch_size=1", "--quiet"]


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", "NO_COLOR": "1"})
    text = ANSI.sub("", result.output)
    assert "Traceback" not in text, text
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, " ".join(text.split())


# -- stores that are not this preheat's: refused, never written -------------------------------


def finished_store(folder: Path, config: RunConfig | None = None) -> Store:
    config = config or RunConfig(task="river-valley", steps=3, batch_size=1)
    store = Store(folder)
    store.add([config])
    result = RunResult(status="finished", wall_time=1.0)
    for step in range(3):
        for column, value in zip(result.steps, (step, 0.1, 1.0, float("nan"), 1.0, 0.1)):
            result.steps[column].append(value)
    for column, value in zip(result.evals, (3, 0.5, float("nan"))):
        result.evals[column].append(value)
    store.save(config, result)
    return store


def foreign(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE contacts (name TEXT)")
    db.execute("INSERT INTO contacts VALUES ('someone')")
    db.commit()
    db.close()


def other_schema(path: Path, version: int) -> None:
    finished_store(path.parent).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()


def pre_version(path: Path) -> None:
    other_schema(path, SCHEMA_VERSION)
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 0")
    db.execute("PRAGMA user_version = 0")
    db.commit()
    db.close()


def tampered_config(path: Path) -> None:
    finished_store(path.parent).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE runs SET config = '{not json'")
    db.commit()
    db.close()


def truncated(path: Path) -> None:
    finished_store(path.parent).close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


STORES: dict[str, tuple[Callable[[Path], None], str]] = {
    "foreign SQLite database": (foreign, "is not a preheat store (its tables: contacts); nothing was written"),
    "not SQLite at all": (lambda p: p.write_bytes(b"\x00garbage" * 500), "is not a readable SQLite database"),
    "empty file": (lambda p: p.write_bytes(b""), "is an empty database; expected a preheat store"),
    "newer schema": (lambda p: other_schema(p, SCHEMA_VERSION + 1), "written by a newer preheat"),
    "older schema": (lambda p: other_schema(p, 1), "written by an older preheat"),
    "before schema versions": (pre_version, "before stores had a schema version"),
    "tampered config": (tampered_config, "holds data this preheat cannot read"),
    "truncated": (truncated, "runs.sqlite"),
}


@pytest.mark.parametrize("kind", list(STORES))
def test_report_refuses_a_file_that_is_not_a_readable_store_and_leaves_it(tmp_path: Path, kind: str) -> None:
    make, words = STORES[kind]
    path = tmp_path / "runs.sqlite"
    make(path)
    before = path.read_bytes()
    code, text = cli("report", tmp_path)
    assert code == 2 and words in text, text
    assert path.read_bytes() == before
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("kind", ["foreign SQLite database", "not SQLite at all", "newer schema",
                                  "before schema versions"])
def test_a_sweep_into_a_folder_with_such_a_file_refuses_before_any_run(tmp_path: Path, kind: str) -> None:
    make, words = STORES[kind]
    path = tmp_path / "runs.sqlite"
    make(path)
    before = path.read_bytes()
    code, text = cli("sweep", *TINY, "--out", tmp_path)
    assert code == 2 and words in text, text
    assert path.read_bytes() == before


def test_report_of_a_folder_without_a_store(tmp_path: Path) -> None:
    code, text = cli("report", tmp_path)
    assert code == 2 and "holds no runs.sqlite" in text
    assert list(tmp_path.iterdir()) == []


def test_out_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("mine")
    code, text = cli("sweep", *TINY, "--out", tmp_path / "file")
    assert code == 2 and "is a file; expected a sweep directory" in text
    assert (tmp_path / "file").read_text() == "mine"


# -- a store someone hands you: reading it runs nothing -----------------------------------------


def hostile(folder: Path, marker: Path, done: bool) -> RunConfig:
    config = RunConfig(task="os:system", task_options={"command": f"touch {marker}"}, steps=3)
    if done:
        finished_store(folder, config).close()
    else:
        store = Store(folder)
        store.add([config])
        store.close()
    return config


def test_reporting_a_hostile_store_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    hostile(tmp_path / "sweep", marker, done=True)
    code, text = cli("report", tmp_path / "sweep")
    assert code == 0, text  # ranked and reported, as data
    assert not marker.exists()
    assert (tmp_path / "sweep" / "report.html").exists()


@pytest.mark.parametrize("flags", [[], ["--run-leftovers"]])
def test_a_sweep_into_a_hostile_store_runs_nothing(tmp_path: Path, flags: list[str]) -> None:
    marker = tmp_path / "PWNED"
    hostile(tmp_path / "sweep", marker, done=False)
    before = (tmp_path / "sweep" / "runs.sqlite").read_bytes()
    code, text = cli("sweep", *TINY, *flags, "--out", tmp_path / "sweep")
    expected = "would import and run code" if flags else "unfinished run(s) of another sweep"
    assert code == 2 and expected in text, text
    assert not marker.exists()
    assert (tmp_path / "sweep" / "runs.sqlite").read_bytes() == before


def test_leftovers_of_a_killed_sweep_run_only_when_asked(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.add([RunConfig(task="river-valley", steps=4, batch_size=1, label="left over")])
    store.close()
    code, text = cli("sweep", *TINY, "--out", tmp_path)
    assert code == 2 and "1 unfinished run(s) of another sweep (e.g. left over @ 0.001)" in text
    code, text = cli("sweep", *TINY, "--run-leftovers", "--out", tmp_path)
    assert code == 0, text
    assert {run.status for run in Store(tmp_path, read_only=True).runs()} == {"finished"}


# -- sweep files and flags: one clear line, exit 2, nothing run -------------------------------

FILES: dict[str, tuple[str, bytes, str]] = {  # case: (file name, content, words)
    "YAML alias bomb": ("bomb.yaml", BOMB.encode(), "expands to more than 100,000 values"),
    "YAML tag": ("tag.yaml", b"!!python/object/apply:os.system ['touch PWNED']\n", "is not valid YAML"),
    "YAML syntax": ("bad.yaml", b"base: [1\n", "is not valid YAML"),
    "YAML scalar": ("scalar.yaml", b"5\n", "is a int, not a table"),
    "YAML list": ("list.yaml", b"- 1\n- 2\n", "is a list, not a table"),
    "binary garbage": ("garbage.yaml", bytes(range(256)) * 4, "garbage.yaml' is not UTF-8 text"),
    "TOML syntax": ("bad.toml", b"task = \n", "is not valid TOML"),
    "unknown extension": ("sweep.json", b"{}", "has an unknown extension; expected .toml, .yaml or .yml"),
    "a task of its own": ("own.toml", b'task = "os:system"\n[task_options]\ncommand = "touch PWNED"\n',
                          "names the task(s) ['os:system'], which would import and run code"),
    "a task in the grid": ("grid.toml", b'[grid]\ntask = ["digits", "evil:make"]\n', "['evil:make']"),
    "unknown field": ("field.toml", b"learning_rate = 0.1\n", "learning_rate"),
    "misspelt task": ("typo.toml", b'task = "digts"\n', "task='digts' is unknown"),
}


@pytest.mark.parametrize("case", list(FILES))
def test_a_broken_or_hostile_sweep_file_is_one_line_and_exit_2(tmp_path: Path, monkeypatch, case: str) -> None:
    monkeypatch.chdir(tmp_path)
    name, content, words = FILES[case]
    (tmp_path / name).write_bytes(content)
    code, text = cli("sweep", tmp_path / name, "--out", tmp_path / "out")
    assert code == 2 and words in text, text
    assert not (tmp_path / "out").exists() and not (tmp_path / "PWNED").exists()


FLAGS: dict[str, tuple[list[str], str]] = {
    "schedule not text": (["--set", "schedule=5"], "schedule"),
    "empty value": (["--set", "schedule="], "expected KEY=VALUE (KEY=null for none)"),
    "unclosed list": (["--set", "schedule=[unclosed"], "is not valid YAML"),
    "no equals sign": (["--set", "schedule"], "expected KEY=VALUE"),
    "misspelt task": (["--set", "task=digts"], "task='digts' is unknown"),
    "grid not a list": (["--grid", "peak_lr=5"], "expected a list like [1, 2]"),
    "bad schedule": (["--set", "schedule=linear_warmup(-3)"], "steps=-3 is invalid"),
    "alias bomb in a flag": (["--set", "task_options={a: &a [x,x,x,x,x,x,x,x,x], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], "
                              "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], "
                              "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d], f: [*e,*e,*e,*e,*e,*e,*e,*e,*e]}"],
                             "expands to more than 100,000 values"),
    "unknown optimizer": (["--set", "optimizer=lion"], "optimizer"),
    "negative peak": (["--set", "peak_lr=-1"], "peak_lr"),
    "controller and schedule": (["--set", "controller=nars_warmup()", "--set", "schedule=constant()"],
                                "is for runs without a controller"),
}


@pytest.mark.parametrize("case", list(FLAGS))
def test_a_bad_flag_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    flags, words = FLAGS[case]
    code, text = cli("sweep", *flags, "--quiet", "--out", tmp_path / "out")
    assert code == 2 and words in text, text
    assert not (tmp_path / "out").exists()


# -- exit codes scripts can trust ---------------------------------------------------------------


def test_a_sweep_whose_runs_fail_exits_1_saying_how_many(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "failing.py").write_text(
        "from preheat.lab.tasks.river_valley import RiverValley\n\n\n"
        "def make(**options) -> RiverValley:\n    raise RuntimeError('no data here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, text = cli("sweep", *TINY, "--set", "task=failing:make", "--grid", "seed=[0, 1]",
                     "--out", tmp_path / "out")
    assert code == 1 and "2 of 2 runs failed" in text and "no data here" in text, text
    assert (tmp_path / "out" / "report.html").exists()  # the report is still written


# -- an interrupted sweep leaves no workers behind ------------------------------------------------


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_sweep_ends_its_workers_and_keeps_what_finished(tmp_path: Path, sent: int) -> None:
    pids = tmp_path / "pids"
    env = {**os.environ, "PYTHONPATH": f"{LAB_TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "preheat.cli", "sweep", "--set", "task=slow_task:make", "--set", "steps=400",
               "--set", f"task_options={{delay: 0.05, pid_file: {pids}}}", "--grid", "seed=[0, 1, 2]",
               "--workers", "2", "--quiet", "--out", str(tmp_path / "out")]
    driver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not pids.exists() or len(pids.read_text().split("\n")) < 3):
        time.sleep(0.2)
    workers = [int(line.split()[0]) for line in pids.read_text().splitlines()]
    assert len(workers) == 2 and all(alive(pid) for pid in workers)
    driver.send_signal(sent)
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr, stderr
    time.sleep(1.0)
    assert not any(alive(pid) for pid in workers)
    runs = {run.status for run in Store(tmp_path / "out", read_only=True).runs()}
    assert runs <= {"running", "pending", "finished"}  # what was not finished is still to do


# -- progress is a display: late or unknown events are ignored ----------------------------------


def test_progress_events_out_of_order_are_ignored() -> None:
    from preheat.cli.lab import _Bars
    from preheat.lab.sweep.driver import announce

    bars = _Bars()
    config = RunConfig(task="river-valley", steps=3)
    bars.sweep_started(1, 1)
    bars.run_step(config, 2)  # before it started
    bars.run_started(config)
    bars.run_ended(config, RunResult(status="finished"))
    bars.run_step(config, 3)  # drained after its result was collected
    bars.run_started(config)  # a late start event
    announce(bars, {}, [("unknown-run", 5), ("unknown-run", 0)])
    bars.stop()
    assert bars.active == {}


def test_config_json_round_trip_is_what_the_store_reads() -> None:
    config = RunConfig(task="digits", controller="nars_warmup()", after="cosine_decay({steps})")
    assert RunConfig.from_stored(json.dumps(config.model_dump(mode="json"))) == config


# -- files the other commands are given ---------------------------------------------------------


@pytest.mark.parametrize(("content", "words"), [(b"", "is empty"), (bytes(range(128, 256)) * 8, "is not UTF-8 text")])
def test_compare_data_that_is_empty_or_not_text_names_data_and_the_file(tmp_path: Path, content: bytes,
                                                                         words: str) -> None:
    (tmp_path / "corpus.txt").write_bytes(content)
    code, text = cli("compare", "--task", "shakespeare-char", "--quick", "--data", tmp_path / "corpus.txt",
                     "--out", tmp_path / "out")
    assert code == 2 and text.startswith("error: --data: data=") and "corpus.txt" in text and words in text, text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [["compare", "--task", "river-valley", "--quick"],
                                     ["diagnose", "--task", "river-valley", "--steps", "3", "--every", "1"]])
def test_out_that_is_a_file_is_refused_before_any_training(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "file").write_text("mine")
    code, text = cli(*command, "--out", tmp_path / "file")
    assert code == 2 and "is a file" in text, text
    assert (tmp_path / "file").read_text() == "mine"


def test_a_label_with_broken_mathtext_is_reported_as_written(tmp_path: Path) -> None:
    code, text = cli("sweep", *TINY, "--set", "label=$\\frac{ 100% $x", "--out", tmp_path / "out")
    assert code == 0, text
    assert "$\\frac{ 100% $x" in (tmp_path / "out" / "report.html").read_text()
