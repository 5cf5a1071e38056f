"""Every study in studies/ runs end to end at its --smoke size (a few runs of a few steps) and
writes its figure, its table file, and the table into its page between the markers.

At its full size (the tests marked ``slow``, left out of the default run; run them with
``.venv/bin/python -m pytest -m slow``) each study trains the runs its page's table shows."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # studies/ sits at the repository root

from studies import catapult, gi_adam, smoothness, untuned, warmup_tolerance  # noqa: E402
from studies.common import BEGIN, END  # noqa: E402

#: Per study, the leading cells of every table row its smoke run must write.
EXPECTED: dict[ModuleType, list[str]] = {
    warmup_tolerance: [
        "| digits MLP, cross-entropy, Adam | warmup 1 |",
        "| digits MLP, cross-entropy, Adam | warmup 4 |",
        "| Shakespeare GPT (tiny), Adam | warmup 1 |",
        "| Shakespeare GPT (tiny), Adam | warmup 2 |",
    ],
    gi_adam: [
        "| digits MLP, cross-entropy | Adam, warmup 1 |",
        "| digits MLP, cross-entropy | GI-Adam, warmup 1 |",
        "| digits MLP, cross-entropy | Adam, warmup 4 |",
        "| digits MLP, cross-entropy | GI-Adam, warmup 4 |",
        "| digits, beta2=0.999 | Adam |",
        "| digits, beta2=0.999 | GI-Adam |",
    ],
    catapult: [
        f"| {setting} | 10 | {method} |"
        for setting in ("river valley, GD, peak 0.3", "digits MLP, Adam, peak 0.03")
        for method in catapult.METHODS
    ],
    smoothness: [
        "| 10 |", "| 20 |", "| 40 |",
        "| 0.1 |", "| 0.01 |", "| 0.0001 |", "| 1e-08 |",
        "| digits MLP, sgd, peak 0.5,", "| digits MLP, adam, peak 0.01,",
    ],
    untuned: [f"| {label} |" for label, _, _ in untuned.METHODS] + ["| untuned linear minus RAdam |"],
}


@pytest.mark.parametrize("study", list(EXPECTED), ids=lambda module: module.NAME)
def test_smoke_run_writes_figure_and_table(study: ModuleType, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    page = docs / f"{study.NAME}.md"
    begin = BEGIN.format(name=study.NAME)
    page.write_text(f"# a study\n\n{begin}\nold table\n{END}\n\nafter the table\n")

    study.main(["--smoke", "--out", str(tmp_path / "runs"), "--docs", str(docs)])

    figure = docs / f"{study.NAME}.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure.stat().st_size > 10_000
    table = (docs / f"{study.NAME}_table.md").read_text()
    assert "--smoke" in table and "wall time" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    for start in EXPECTED[study]:
        assert sum(row.startswith(start) for row in rows) == 1, f"no single table row starts with {start!r}"
    assert (tmp_path / "runs" / "runs.sqlite").exists()
    text = page.read_text()
    assert "old table" not in text and table in text and text.endswith(f"{END}\n\nafter the table\n")


def test_rerun_trains_nothing_new(tmp_path: Path) -> None:
    """A second run into the same store reuses every run (the lab's resume)."""
    argv = ["--smoke", "--out", str(tmp_path / "runs"), "--docs", str(tmp_path / "docs")]
    untuned.main(argv)
    untuned.main(argv)
    assert "0 runs trained by this invocation" in (tmp_path / "docs" / "untuned_table.md").read_text()


@pytest.mark.parametrize("study", list(EXPECTED), ids=lambda module: module.NAME)
def test_each_study_has_a_page_its_run_updates(study: ModuleType) -> None:
    """docs/studies/NAME.md holds the table markers, so rerunning the study rewrites its table there,
    and the page shows the study's figure and the command that makes it."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "studies" / f"{study.NAME}.md").read_text()
    assert BEGIN.format(name=study.NAME) in page and END in page
    assert f"({study.NAME}.png)" in page and f"-m studies.{study.NAME}" in page


# -- full size: marked slow --------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def trained(table: str) -> str:
    """The 'N runs trained by this invocation' of a table's provenance line."""
    match = re.search(r"(\d+) runs trained by this invocation", table)
    assert match, table[:300]
    return match[1]


def first_cells(table: str) -> list[str]:
    """The first cell of every table row (headers included), in order: the settings, not the results."""
    return [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and "---" not in line]


@pytest.mark.slow
@pytest.mark.parametrize("study", list(EXPECTED), ids=lambda module: module.NAME)
def test_full_run_trains_what_its_page_shows(study: ModuleType, tmp_path: Path) -> None:
    """The study at its real size (no --smoke), into a fresh store: it trains as many runs as the
    table on its page (docs/studies/NAME_table.md) says, and writes a table with the same rows."""
    docs = tmp_path / "docs"
    study.main(["--out", str(tmp_path / "runs"), "--docs", str(docs)])

    figure = docs / f"{study.NAME}.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (docs / f"{study.NAME}_table.md").read_text()
    page = (ROOT / "docs" / "studies" / f"{study.NAME}_table.md").read_text()
    assert "--smoke" not in table.splitlines()[0]
    assert trained(table) == trained(page)
    assert first_cells(table) == first_cells(page)
