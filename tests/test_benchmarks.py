"""The peer benchmark end to end at a smoke scale: every method runs, the linear grid collapses to
its best length per peak LR, and the summary compares each method with that tuned warmup.

At its full size (marked ``slow``, left out of the default run; run it with
``.venv/bin/python -m pytest -m slow``) every run of every task finishes."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("pytorch_warmup")
pytest.importorskip("schedulefree")

ROOT = Path(__file__).parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("warmup_bench", ROOT / "benchmarks" / "warmup_bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["warmup_bench"] = module
    spec.loader.exec_module(module)
    return module


def test_warmup_bench_smoke(tmp_path: Path) -> None:
    bench = load_bench()
    out = tmp_path / "bench.md"
    bench.main(["--tasks", "river-valley", "--steps", "20", "--seeds", "1", "--workers", "1",
                "--out", str(tmp_path / "runs"), "--markdown", str(out)])
    text = out.read_text()
    methods = [label for label, _ in bench.menu(20, bench.WARMUP_GRID) if not label.startswith("linear ")]
    for method in methods + ["no warmup", bench.TUNED]:
        assert text.count(f"| {method}") == 2 + (method != bench.TUNED), method  # 2 peak LRs + summary
    assert "### Summary" in text and "wall time" in text
    assert "(1.1 x the tuned linear warmup's final loss)" in text


def test_the_tuned_row_is_the_best_length_per_peak() -> None:
    bench = load_bench()
    rows = []
    for peak, losses in ((0.1, {"linear 0%": 3.0, "linear 5%": 1.0, "linear 10%": 2.0}),
                         (1.0, {"linear 0%": math.inf, "linear 5%": 4.0, "linear 10%": 0.5})):
        for name, loss in losses.items():
            rows.append(SimpleNamespace(method=name, config=SimpleNamespace(peak_lr=peak), final_val_loss=loss,
                                        steps_to_target=None, diverged=math.isinf(loss), wall_time=1.0))
    cells = bench.summarise(rows)
    tuned = {c["peak_lr"]: c for c in cells if c["method"] == bench.TUNED}
    assert tuned[0.1]["mean"] == 1.0 and tuned[0.1]["note"] == "best of the grid: 5%"
    assert tuned[1.0]["mean"] == 0.5 and tuned[1.0]["note"] == "best of the grid: 10%"
    no_warmup = {c["peak_lr"]: c for c in cells if c["method"] == "no warmup"}
    assert no_warmup[0.1]["mean"] == 3.0 and no_warmup[1.0]["diverged"] == 1
    table = bench.summary({"t": cells})
    assert "| method | t 0.1 | t 1 | median | diverged runs |" in table
    assert "| no warmup | 3x | diverged | diverged | 1 |" in table  # 3.0 / 1.0; inf / 0.5


def test_a_ratio_within_two_standard_errors_is_marked_a_tie() -> None:
    bench = load_bench()
    def cell(method: str, mean: float, std: float) -> dict:
        return {"method": method, "peak_lr": 0.1, "mean": mean, "std": std, "seeds": 3, "diverged": 0}
    # 2 * sqrt(0.3^2/3 + 0.3^2/3) = 0.49: 1.4 vs 1.0 is a tie, 1.6 vs 1.0 is not
    table = bench.summary({"t": [cell(bench.TUNED, 1.0, 0.3), cell("a", 1.4, 0.3), cell("b", 1.6, 0.3)]})
    assert "| a | 1.4x ≈ | 1.4x | 0 |" in table and "| b | 1.6x | 1.6x | 0 |" in table


@pytest.mark.slow
def test_warmup_bench_full(tmp_path: Path) -> None:
    """The benchmark at its real size (every task, 3 seeds, the 6-point warmup grid), as
    docs/results.md runs it: every run finishes or diverges (none fails), and every table is there."""
    from preheat.lab.store import Store

    bench = load_bench()
    out = tmp_path / "bench.md"
    bench.main(["--workers", "2", "--out", str(tmp_path / "runs"), "--markdown", str(out)])
    text = out.read_text()
    for name, task in bench.TASKS.items():
        assert f"{name} ({task.steps} updates, 3 seeds)" in text, name
        runs = Store(tmp_path / "runs" / "full" / name, read_only=True).runs()
        assert len(runs) == 2 * len(bench.menu(task.steps, bench.WARMUP_GRID)) * 3, name
        assert {run.status for run in runs} <= {"finished", "diverged"}, name
    methods = [label for label, _ in bench.menu(400, bench.WARMUP_GRID) if not label.startswith("linear ")]
    for method in methods + ["no warmup", bench.TUNED]:
        # 2 peak LRs in each of the 3 task tables, and a summary row (the tuned warmup is its basis)
        assert text.count(f"| {method}") == 6 + (method != bench.TUNED), method
    assert "### Summary" in text and "wall time" in text
