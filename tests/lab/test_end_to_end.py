"""Every built-in task end to end at tiny size, through the command a user types: a sweep
runs, the store holds every run, the report renders in a browser; and `preheat compare`
on the smallest task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from preheat.cli import app
from preheat.lab.compare import SETUPS, comparison
from preheat.lab.store import Store

from browser import rendered
from cifar_files import write_fake_cifar

TINY = {
    "river-valley": ({}, "sgd", [0.02, 0.3]),
    "digits": ({"width": 32}, "adam", [1e-3, 1e-2]),
    "shakespeare-char": ({"size": "tiny", "n_layer": 1, "block_size": 16}, "adamw", [1e-3, 1e-2]),
    "cifar10": ({"width": 8}, "adamw", [1e-3, 1e-2]),
}


def sweep(task: str, out: Path, options: dict, optimizer: str, lrs: list[float]) -> None:
    result = CliRunner().invoke(app, [
        "sweep", "--out", str(out), "--quiet",
        "--set", f"task={task}", "--set", f"task_options={json.dumps(options)}",
        "--set", f"optimizer={optimizer}", "--set", "steps=12", "--set", "batch_size=8",
        "--set", "eval_every=4", "--set", "schedule=warmup_cosine({warmup}, {steps})",
        "--grid", f"peak_lr={json.dumps(lrs)}", "--grid", "warmup=[0, 4]",
    ])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("task", list(TINY))
def test_a_sweep_on_each_task_is_stored_and_reported(task: str, tmp_path: Path) -> None:
    options, optimizer, lrs = TINY[task]
    if task == "cifar10":
        write_fake_cifar(tmp_path / "data")
        options = {**options, "data_dir": str(tmp_path / "data")}
    out = tmp_path / "sweep"
    sweep(task, out, options, optimizer, lrs)
    runs = Store(out).runs()
    assert len(runs) == 4 and {r.status for r in runs} <= {"finished", "diverged"}
    assert {(r.config.peak_lr, r.config.warmup) for r in runs} == {(lr, w) for lr in lrs for w in (0, 4)}
    assert all(r.method == r.config.method for r in runs)
    (chance,) = {r.chance_accuracy for r in runs}  # the task's, kept for metrics that build no task
    assert chance is None if task == "river-valley" else 0 < chance < 1
    seen = rendered(out / "report.html", tmp_path)
    assert seen.loaded == seen.images >= 3


def test_compare_quick_on_the_river_valley(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ranking, every method explained, the verdict with its next commands, and the
    report's absolute path, at 80 columns (rich's width where the output is not a terminal)."""
    monkeypatch.chdir(tmp_path)
    out = Path("compare")  # relative: the summary prints it absolute
    result = CliRunner().invoke(app, ["compare", "--task", "river-valley", "--quick", "--out", str(out),
                                      "--quiet", "--workers", "1"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.index("ranking, best first") < text.index("methods") < text.index("verdict")
    words = " ".join(text.split())  # rich wraps the verdict's sentences at 80 columns
    assert "(2+ seeds, 95% intervals)" in words  # --quick: two seeds, so an interval
    assert "auto_warmup (no warmup length to choose)" in words or "auto_warmup, with no warmup length" in words
    assert "$ preheat compare --task river-valley\n" in text  # the full size next
    assert f"report: {(tmp_path / 'compare' / 'report.html').resolve()}" in text
    summary = text[text.index("ranking, best first"):text.index("verdict")]
    assert max(len(line) for line in summary.splitlines()) <= 80
    runs = Store(out).runs()
    assert len(runs) == len(comparison("river-valley", quick=True))
    labels = {r.method for r in runs}
    assert {"no warmup", "exponential", "auto"} <= labels and "nars" not in labels  # research: --research
    assert not any("radam" in label or "untuned" in label for label in labels)  # SGD task: Adam methods left out
    assert all(label in summary for label in labels)  # ranked and explained


def test_every_task_has_a_curated_comparison() -> None:
    from preheat.lab.catalog import BUILTIN

    assert set(SETUPS) == set(BUILTIN)  # the CLI's --task help reads BUILTIN too
    for task in SETUPS:
        runs = comparison(task, quick=True, data="x" if SETUPS[task].data_option else None)
        assert {r.peak_lr for r in runs} == set(SETUPS[task].peak_lrs)
        assert len({r.fingerprint() for r in runs}) == len(runs)


def test_compare_on_another_text_file(tmp_path: Path) -> None:
    text = tmp_path / "poem.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 400)
    runs = comparison("shakespeare-char", quick=True, data=str(text))
    assert {r.task_options["data"] for r in runs} == {str(text)}
    with pytest.raises(ValueError, match="makes its own data"):
        comparison("digits", data=str(text))


def test_compare_without_cifar_data_says_what_to_download(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["compare", "--task", "cifar10", "--quick", "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert "cifar-10-python.tar.gz" in result.output
