"""Metrics and the HTML report, on a store built by hand with known curves.

The sweep below (100 steps, evaluations at 0, 25, 50, 75, 100; chance accuracy 0.1):

- ``constant()`` (A): LR 0.01 finished (finals 0.9, 1.0; seed 0 has two loss spikes), LR 0.1
  one finished and one diverged (which dipped to val loss 0.3 before diverging), LR 1.0 both
  diverged. Largest stable LR 0.01; never reaches the target.
- ``warmup_cosine({warmup}, {steps})`` (B) at warmup 10: LR 0.01 finals 0.8, LR 0.1 finals 0.4
  and 0.42 (target reached at 50 and 75), LR 1.0 finished but at chance accuracy (below chance).
  At warmup 50 (one seed): LR 0.01 0.9, LR 0.1 0.43, LR 1.0 0.44.
- ``cosine_decay({steps})`` (C): LR 0.01 one seed diverged, LR 0.1 finals 0.4 and 0.42 like B
  but reaching the target later (75 and 100).
- one more run registered but never run (pending).

Best finished val loss 0.4, so the derived target is 0.44 (the diverged run's 0.3 does not count).
Every run records the task's chance accuracy, as the training loop does; metrics read it from the
store and never build a task.
"""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import scipy.stats

from preheat.lab.config import RunConfig
from preheat.lab.figure_data import heatmap, lr_curves, representative_runs
from preheat.lab.metrics import (
    RunMetrics,
    SweepMetrics,
    count_spikes,
    derive_target,
    final_train_accuracy,
    format_ranking,
    method_metrics,
    ranking,
    run_metrics,
    sweep_metrics,
)
from preheat.lab.record import RunResult
from preheat.lab.report import write_report
from preheat.lab.store import Store, StoreError

from browser import chromium, rendered

A, B, C = "constant()", "warmup_cosine({warmup}, {steps})", "cosine_decay({steps})"
STEPS, EVAL_STEPS = 100, [0, 25, 50, 75, 100]
CHANCE = 0.1  # the digits task's


def _config(schedule: str, lr: float, seed: int = 0, warmup: int | None = None, task: str = "digits") -> RunConfig:
    return RunConfig(task=task, schedule=schedule, peak_lr=lr, seed=seed, warmup=warmup,
                     steps=STEPS, eval_every=25)


def _result(vals: list[float], status: str = "finished", train: np.ndarray | None = None,
            accuracy: np.ndarray | None = None) -> RunResult:
    """A run record: evaluations ``vals`` at 0, 25, ...; by default a straight training-loss line
    from the first to the last validation loss over the steps those evaluations cover."""
    n = STEPS if status == "finished" else 25 * (len(vals) - 1) + 10
    train = np.linspace(vals[0], vals[-1], n) if train is None else train
    if status == "diverged":
        train = np.concatenate([train[:-1], [25.0]])  # the loss that stopped it
    accuracy = np.full(n, 0.9) if accuracy is None else accuracy
    result = RunResult(status=status, wall_time=1.5, chance_accuracy=CHANCE)
    result.steps = {"step": list(range(n)), "lr": [0.1] * n, "train_loss": list(map(float, train)),
                    "train_accuracy": list(map(float, accuracy)), "grad_norm": [1.0] * n,
                    "update_norm": [0.01] * n}
    result.evals = {"step": EVAL_STEPS[: len(vals)], "val_loss": vals, "val_accuracy": [0.5] * len(vals)}
    return result


def _two_spikes() -> np.ndarray:
    loss = np.ones(STEPS)
    loss[5] = 9.0  # before step 10: not tested
    loss[30:33] = 3.0  # one spike over three steps
    loss[70] = 5.0
    return loss


def _chance_level() -> np.ndarray:
    return np.concatenate([np.full(90, 0.5), np.full(10, 0.12)])  # final accuracy 0.12 < 1.5 x 0.1


RUNS = [
    (_config(A, 0.01, 0), _result([2.0, 1.5, 1.2, 1.0, 0.9], train=_two_spikes())),
    (_config(A, 0.01, 1), _result([2.0, 1.6, 1.3, 1.1, 1.0])),
    (_config(A, 0.1, 0), _result([2.0, 1.0, 0.7, 0.6, 0.5])),
    (_config(A, 0.1, 1), _result([2.0, 0.3], "diverged")),
    (_config(A, 1.0, 0), _result([2.0], "diverged")),
    (_config(A, 1.0, 1), _result([2.0], "diverged")),
    (_config(B, 0.01, 0, 10), _result([2.0, 1.4, 1.0, 0.9, 0.8])),
    (_config(B, 0.01, 1, 10), _result([2.0, 1.4, 1.0, 0.9, 0.8])),
    (_config(B, 0.1, 0, 10), _result([2.0, 0.9, 0.43, 0.41, 0.4])),
    (_config(B, 0.1, 1, 10), _result([2.0, 0.9, 0.6, 0.43, 0.42])),
    (_config(B, 1.0, 0, 10), _result([2.0, 2.3, 2.3, 2.3, 2.3], accuracy=_chance_level())),
    (_config(B, 1.0, 1, 10), _result([2.0, 2.3, 2.3, 2.3, 2.3], accuracy=_chance_level())),
    (_config(B, 0.01, 0, 50), _result([2.0, 1.5, 1.2, 1.0, 0.9])),
    (_config(B, 0.1, 0, 50), _result([2.0, 1.0, 0.6, 0.5, 0.43])),
    (_config(B, 1.0, 0, 50), _result([2.0, 1.0, 0.6, 0.5, 0.44])),
    (_config(C, 0.01, 0), _result([2.0, 1.5, 1.0, 0.9, 0.8])),
    (_config(C, 0.01, 1), _result([2.0, 5.0], "diverged")),
    (_config(C, 0.1, 0), _result([2.0, 1.5, 1.0, 0.43, 0.4])),
    (_config(C, 0.1, 1), _result([2.0, 1.5, 1.0, 0.6, 0.42])),
]
PENDING = _config(C, 1.0, 0)


def _crossing(step: int, before: float, after: float, target: float) -> float:
    """Where the line from ``(step, before)`` to ``(step + 25, after)`` meets ``target``."""
    return step + (before - target) / (before - after) * 25


# Target 0.44 (1.1 x the best final 0.4): runs 8, 9 (B, warmup 10, LR 0.1) and 17, 18 (C, LR 0.1).
STEPS_TO_TARGET = [_crossing(25, 0.9, 0.43, 0.44), _crossing(50, 0.6, 0.43, 0.44),
                   _crossing(50, 1.0, 0.43, 0.44), _crossing(75, 0.6, 0.42, 0.44)]
B10_STEPS = (STEPS_TO_TARGET[0] + STEPS_TO_TARGET[1]) / 2
C_STEPS = (STEPS_TO_TARGET[2] + STEPS_TO_TARGET[3]) / 2


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = Store(tmp_path_factory.mktemp("sweep"))
    store.add([config for config, _ in RUNS] + [PENDING])
    for config, result in RUNS:
        store.save(config, result)
    yield store
    store.close()


@pytest.fixture(scope="module")
def rows(store: Store) -> list[RunMetrics]:
    return run_metrics(store)


def _row(rows: list[RunMetrics], config: RunConfig) -> RunMetrics:
    (row,) = [r for r in rows if r.id == config.fingerprint()]
    return row


# ---- definitions on plain arrays ---------------------------------------------------------


def test_count_spikes_counts_rising_edges_after_the_first_steps() -> None:
    assert count_spikes(_two_spikes()) == 2
    assert count_spikes(np.ones(50)) == 0
    assert count_spikes(np.linspace(3.0, 1.0, 50)) == 0
    assert count_spikes(_two_spikes(), factor=4.0) == 1  # only the 5.0 clears 4 x the average
    assert count_spikes([1.0] * 20 + [math.inf]) == 1  # a non-finite loss counts as a spike
    # Minibatch noise at a small loss: doubles the average but rises by less than 25% of the
    # initial loss (2.0), so it is no spike unless min_rise is 0.
    noisy = np.concatenate([[2.0], np.linspace(1.0, 0.05, 40), [0.05] * 30, [0.3, 0.05, 0.05] * 5])
    assert count_spikes(noisy) == 0 and count_spikes(noisy, min_rise=0.0) == 5
    with pytest.raises(ValueError, match="spike_factor=1.0"):
        count_spikes([1.0], factor=1.0)


def test_final_train_accuracy_is_the_mean_of_the_last_tenth() -> None:
    assert final_train_accuracy(_chance_level()) == pytest.approx(0.12)
    assert final_train_accuracy([0.0] * 10 + [0.5, math.nan]) == pytest.approx(0.5)  # last 2 of 12
    assert math.isnan(final_train_accuracy([]))
    assert math.isnan(final_train_accuracy([math.nan] * 5))


def test_derived_target_generalises_factor_times_best() -> None:
    assert derive_target(0.4, 1.1) == pytest.approx(0.44)
    assert derive_target(0.0, 1.1) == 0.0
    assert derive_target(-2.0, 1.1) == pytest.approx(-1.8)  # above the best, as for positive losses
    assert derive_target(None, 1.1) is None


# ---- per run -----------------------------------------------------------------------------


def test_run_metrics_on_the_hand_made_sweep(rows: list[RunMetrics]) -> None:
    assert len(rows) == len(RUNS) + 1
    assert all(r.target == pytest.approx(0.44) for r in rows)  # 1.1 x 0.4; not the diverged 0.3

    spiky = _row(rows, RUNS[0][0])
    assert (spiky.spikes, spiky.final_val_loss, spiky.best_val_loss) == (2, 0.9, 0.9)
    assert spiky.steps_to_target is None and not spiky.diverged and spiky.below_chance is False
    # The loss that stopped a diverged run is a spike too, once past step 10 (runs 3 and 16).
    spikes = [_row(rows, c).spikes for c, _ in RUNS]
    assert spikes == [2, 0, 0, 1] + [0] * 12 + [1, 0, 0]

    diverged = _row(rows, RUNS[3][0])
    assert diverged.diverged and diverged.status == "diverged"
    assert diverged.final_val_loss == math.inf and diverged.best_val_loss == 0.3
    assert diverged.steps_to_target == pytest.approx(_crossing(0, 2.0, 0.3, 0.44))  # before diverging

    assert [_row(rows, RUNS[i][0]).steps_to_target for i in (8, 9, 17, 18)] == pytest.approx(STEPS_TO_TARGET)

    below = _row(rows, RUNS[10][0])
    assert below.below_chance is True and below.status == "finished"
    assert below.final_train_accuracy == pytest.approx(0.12)

    pending = _row(rows, PENDING)
    assert pending.status == "pending" and math.isnan(pending.final_val_loss)
    assert pending.below_chance is None and pending.steps_to_target is None
    assert _row(rows, RUNS[2][0]).wall_time == 1.5
    assert [r.method for r in rows] == [c.method for c, _ in RUNS] + [PENDING.method]


def test_run_metrics_with_a_given_target_and_unknown_chance(tmp_path: Path) -> None:
    store = Store(tmp_path)
    config = _config(A, 0.01, task="no_such_module_xyz:task")
    store.add([config])
    result = _result([2.0, 1.5, 1.2, 1.0, 0.9], accuracy=_chance_level())
    store.save(config, dataclasses.replace(result, chance_accuracy=None))
    (row,) = run_metrics(store, target=1.25)
    assert row.target == 1.25 and row.steps_to_target == pytest.approx(_crossing(25, 1.5, 1.2, 1.25))
    assert row.below_chance is None  # the store has no chance accuracy for it, and no task is built
    # A chance accuracy given for the task stands in for the one the store lacks.
    (row,) = run_metrics(store, target=1.25, chance={"no_such_module_xyz:task": 0.1})
    assert row.below_chance is True
    with pytest.raises(ValueError, match="target_factor=0.9"):
        run_metrics(store, target_factor=0.9)
    with pytest.raises(ValueError, match="target=nan"):
        run_metrics(store, target=math.nan)
    store.close()


# ---- per schedule and ranking ------------------------------------------------------------


NAME_A, NAME_B10, NAME_B50, NAME_C = (RUNS[i][0].method for i in (0, 6, 12, 15))


def test_method_metrics(rows: list[RunMetrics]) -> None:
    groups = {(g.method, g.warmup): g for g in method_metrics(rows)}
    assert set(groups) == {(NAME_A, None), (NAME_B10, 10), (NAME_B50, 50), (NAME_C, None)}

    a = groups[NAME_A, None]
    assert [c.peak_lr for c in a.cells] == [0.01, 0.1, 1.0]
    assert [c.mean_final_val_loss for c in a.cells] == [pytest.approx(0.95), math.inf, math.inf]
    assert (a.best_peak_lr, a.largest_stable_lr, a.good_lrs) == (0.01, 0.01, (0.01,))
    assert (a.diverged, a.runs) == (3, 6)

    b10 = groups[NAME_B10, 10]
    assert b10.best_peak_lr == 0.1 and b10.best.mean_final_val_loss == pytest.approx(0.41)
    assert b10.best.std_final_val_loss == pytest.approx(0.02 / math.sqrt(2))
    assert b10.best.mean_steps_to_target == pytest.approx(B10_STEPS) and b10.best.reached == 2
    assert b10.largest_stable_lr == 0.1  # LR 1.0 finished but below chance accuracy
    assert b10.cells[2].below_chance == 2 and not b10.cells[2].stable

    b50 = groups[NAME_B50, 50]
    assert b50.largest_stable_lr == 1.0
    assert b50.good_lr_range == (0.1, 1.0)  # 0.44 <= 1.05 x 0.43
    assert math.isnan(b50.best.std_final_val_loss)  # one seed

    c = groups[NAME_C, None]  # stable at 0.1 but not at the smaller 0.01: no largest stable LR
    assert c.largest_stable_lr is None and c.best_peak_lr == 0.1
    assert c.runs == 4  # the pending run is not counted


def test_ranking_order_and_columns(rows: list[RunMetrics]) -> None:
    table = ranking(rows)
    # B (warmup 10) and C tie on loss; B reaches the target first.
    assert [r.method for r in table] == [NAME_B10, NAME_C, NAME_B50, NAME_A]
    b, c, b50, a = table
    assert [r.rank for r in table] == [1, 2, 3, 4]
    assert (b.warmup, b.best_peak_lr, b50.best_peak_lr) == (10, 0.1, 0.1)
    assert b.final_val_loss_mean == c.final_val_loss_mean == pytest.approx(0.41)
    assert (b.steps_to_target, c.steps_to_target) == pytest.approx((B10_STEPS, C_STEPS)) and a.steps_to_target is None
    assert [(r.diverged, r.runs) for r in table] == [(0, 6), (1, 4), (0, 3), (3, 6)]
    assert [r.largest_stable_lr for r in table] == [0.1, None, 1.0, 0.01]
    assert b.title == NAME_B10  # the name shows its warmup already

    headers, cells, numeric = format_ranking(table)
    assert headers[4] == "final val loss (mean ± 95% CI, 1-2 seeds)"
    assert headers[-1] == "good LR range"  # every run took 15 ms / step: a constant column, left out
    assert len(headers) == len(cells[0]) == 9 and numeric == {0, 2, 3, 4, 5, 6, 7, 8}
    half = scipy.stats.t.ppf(0.975, 1) * 0.02 / math.sqrt(2) / math.sqrt(2)  # two seeds 0.40, 0.42
    assert cells[0][:7] == ["1", NAME_B10, "10", "0.1", f"0.41 ± {half:.2g}", f"{B10_STEPS:.0f}", "0 / 6"]
    assert cells[2][4] == "0.43" and cells[2][8] == "0.1 – 1"  # one seed: no ± ; the good range
    assert cells[3][4].startswith("0.95 ± ") and cells[3][5] == "—" and cells[3][7] == "0.01"
    assert cells[1][7] == "—"


def test_the_narrow_ranking_drops_constant_columns_and_fits_80_columns(rows: list[RunMetrics]) -> None:
    """A column that is the same in every row is left out; the narrow table keeps what the
    terminal shows; the CLI prints it at 80 columns without cutting a cell."""
    from rich.console import Console

    from preheat.cli.lab import ranking_table

    table = ranking(rows)
    headers, cells, _ = format_ranking(table, narrow=True)
    assert headers[:2] == ["#", "method"] and "good LR range" not in headers and "warmup" not in headers
    same = [dataclasses.replace(row, ms_per_step=1.0) for row in table]
    assert "ms / step" not in format_ranking(same)[0]
    console = Console(width=80, record=True)
    console.print(ranking_table(table))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for row in cells:
        for cell in row[2:]:  # every number whole, on one line
            assert cell in text, cell
    assert "…" not in text


def test_ranking_of_one_method_over_several_warmups(rows: list[RunMetrics]) -> None:
    """A label shared by a warmup sweep: its row is the best warmup's; runs count every warmup."""
    labelled = [dataclasses.replace(r, method="B", config=r.config.model_copy(update={"label": "B"}))
                if r.config.template == B else r for r in rows]
    table = ranking(labelled)
    assert [r.method for r in table] == ["B", NAME_C, NAME_A]
    assert (table[0].warmup, table[0].largest_stable_lr, table[0].runs) == (10, 0.1, 9)
    assert table[0].warmups == (10, 50)
    assert table[0].title == "B (warmup=10)"  # a label does not show the warmup: the title does


def test_ranking_validates_tolerance(rows: list[RunMetrics]) -> None:
    with pytest.raises(ValueError, match="tolerance=-0.1"):
        ranking(rows, tolerance=-0.1)


# ---- report ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report(store: Store) -> Path:
    return write_report(store, sweep_metrics(store), title="Hand-made sweep")


def test_report_is_self_contained(report: Path, store: Store) -> None:
    assert report == store.directory / "report.html"
    page = report.read_text(encoding="utf-8")
    images = re.findall(r"<img\b[^>]*>", page)
    assert len(images) == 5  # final loss by method, LR curves, training and validation loss, stability
    for image in images:
        assert re.search(r'src="data:image/png;base64,[A-Za-z0-9+/=]+"', image)
        assert re.search(r'alt="[^"]{10,}"', image)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", page)
    assert "<link" not in page and "@import" not in page
    assert report.stat().st_size < 2_000_000

    assert '<table id="ranking">' in page and "Hand-made sweep" in page
    ranking_table = page.split('<table id="ranking">')[1].split("</table>")[0]
    assert ranking_table.index("warmup_cosine") < ranking_table.index("cosine_decay") < ranking_table.index("constant()")
    assert "preheat sweep CONFIG" in page and f"preheat report {store.directory}" in page
    assert page.count("<details>") == len(RUNS) + 2  # the runs, folded; one config per run, pending included
    assert '"peak_lr": 0.01' in page and "torch" in page  # configs and versions


def test_report_default_and_explicit_path(store: Store, tmp_path: Path) -> None:
    path = write_report(store, sweep_metrics(store, target=1.0), path=tmp_path / "sub" / "r.html")
    assert path == tmp_path / "sub" / "r.html" and "Target val loss 1." in path.read_text()


def test_report_of_an_empty_store(tmp_path: Path) -> None:
    store = Store(tmp_path)
    page = write_report(store, sweep_metrics(store)).read_text()
    assert "no runs" in page and "<img" not in page
    store.close()


@pytest.mark.parametrize("width", [1400, 800])
def test_report_renders_in_a_browser(report: Path, tmp_path: Path, width: int) -> None:
    """Every figure decodes and fits the window, and the page never scrolls sideways: at a
    desktop width and at a laptop's half screen (wide tables scroll inside their own box)."""
    seen = rendered(report, tmp_path, width)
    assert seen.loaded == seen.images == seen.inside == 5
    assert seen.scroll_width <= seen.width == width

    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,2400", report.as_uri(), profile=tmp_path / "p2")
    assert shot.exists() and shot.stat().st_size > 10_000
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (2400, 1200) and pixels[..., :3].std() > 0.05  # not a blank page


def test_ranking_reports_the_time_per_update(rows: list[RunMetrics]) -> None:
    table = {row.method: row for row in ranking(rows)}
    for method, row in table.items():
        finished = [r for r in rows if r.method == method and r.status == "finished" and r.wall_time]
        expected = np.mean([1000 * r.wall_time / r.config.steps for r in finished]) if finished else math.nan
        assert row.ms_per_step == pytest.approx(expected, nan_ok=True)


# ---- what the figures show, and reading only the store -----------------------------------


def test_heatmap_cells_over_warmup_and_peak_lr(rows: list[RunMetrics]) -> None:
    data = heatmap(rows)
    assert data.peak_lrs == (0.01, 0.1, 1.0)
    swept, fixed = data.panels
    assert (swept.title, swept.rows, swept.swept) == (B, ("10", "50"), True)
    assert swept.mean[0] == pytest.approx([0.8, 0.41, 2.3])  # below chance at 1.0, but finished
    assert swept.runs[1].tolist() == [1, 1, 1] and swept.diverged.sum() == 0
    assert fixed.rows == (NAME_A, NAME_C) and not fixed.swept
    assert fixed.mean[0, :2] == pytest.approx([0.95, 0.5]) and math.isnan(fixed.mean[0, 2])
    assert fixed.diverged[0].tolist() == [0, 1, 2] and fixed.runs[0].tolist() == [2, 2, 2]
    assert fixed.runs[1].tolist() == [2, 2, 0]  # C's pending run at 1.0 is no cell


def test_the_lr_figure_draws_the_lr_each_run_recorded(tmp_path: Path) -> None:
    """A peer, a schedule-free run and a schedule whose expression no longer parses: each is
    drawn from the LR the store holds, and the report is written without parsing a config."""
    configs = [RunConfig(task="digits", peer="hf_cosine", warmup=10, steps=STEPS, eval_every=25, peak_lr=0.1),
               RunConfig(task="digits", optimizer="schedulefree_adamw", warmup=5, steps=STEPS, eval_every=25,
                         peak_lr=0.2),
               _config(A, 0.1)]
    store = Store(tmp_path)
    store.add(configs)
    for k, config in enumerate(configs):
        result = _result([2.0, 1.5, 1.0, 0.9, 0.8 + 0.01 * k])
        result.steps["lr"] = list(np.linspace(0.0, config.peak_lr, STEPS) ** (k + 1))
        store.save(config, result)
    with store.db:  # a schedule this preheat does not know (any more)
        store.db.execute("""UPDATE runs SET config = replace(config, '"schedule":"constant()"',
                                                             '"schedule":"gone_schedule()"')""")
    metrics = sweep_metrics(store)
    done = list(metrics.runs)
    representatives = representative_runs(done, metrics.ranking)
    for curve, run in zip(lr_curves(store, metrics.ranking, representatives), representatives):
        assert np.array_equal(curve.y, store.steps(run.id)["lr"] / run.config.peak_lr)
    assert "gone_schedule()" in write_report(store, metrics).read_text()
    store.close()


def test_a_store_from_before_schema_versions_is_refused_unchanged(tmp_path: Path) -> None:
    store = Store(tmp_path)
    config = RUNS[10][0]
    store.add([config])
    store.save(config, RUNS[10][1])
    with store.db:  # what a store written before schema versions looked like
        store.db.execute("ALTER TABLE runs DROP COLUMN chance_accuracy")
        store.db.execute("ALTER TABLE runs RENAME COLUMN method TO name")
        store.db.execute("PRAGMA application_id = 0")
        store.db.execute("PRAGMA user_version = 0")
    store.close()
    before = store.path.read_bytes()
    for read_only in (True, False):
        with pytest.raises(StoreError, match="before stores had a schema version"):
            Store(tmp_path, read_only=read_only)
    assert store.path.read_bytes() == before


def test_reading_a_store_and_writing_its_report_imports_no_torch(store: Store, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from preheat.lab.metrics import sweep_metrics\n"
        "from preheat.lab.report import write_report\n"
        "from preheat.lab.store import Store\n"
        f"store = Store({str(store.directory)!r})\n"
        "metrics = sweep_metrics(store)\n"
        f"write_report(store, metrics, path={str(tmp_path / 'report.html')!r})\n"
        "assert len(metrics.runs) == 20 and len(metrics.ranking) == 4\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))\n"
        "print('no torch')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "no torch", done.stderr
    seen = rendered(tmp_path / "report.html", tmp_path)
    assert seen.loaded == seen.images == 5


def test_sweep_metrics_are_the_runs_and_their_ranking(store: Store, rows: list[RunMetrics]) -> None:
    metrics = sweep_metrics(store)
    assert isinstance(metrics, SweepMetrics) and metrics.runs == tuple(rows)
    assert metrics.ranking == tuple(ranking(rows)) and metrics.target == pytest.approx(0.44)
