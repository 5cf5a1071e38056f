"""The warmup benchmark (``preheat bench``): its tasks and protocol as the issue asks, its
statistics on hand-made cells, every task and peer end to end at the tiny size, a killed
run that resumes to the same numbers, and the fresh-seed reruns of ``benchmarks/``.

The full tier (hours) is marked ``slow`` and left out of the default run."""

from __future__ import annotations

import importlib.util
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from preheat.adaptive.text import parse_controller
from preheat.cli import app
from preheat.lab.bench import plan, runner
from preheat.lab.bench.analysis import Cell, Run, TaskResult, compare, load
from preheat.lab.bench.tables import discrimination, matrix, mean_text, ratio_text
from preheat.lab.bench.tasks import TASKS, BenchTask
from preheat.lab.store import Store

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"

pytest.importorskip("pytorch_warmup")
pytest.importorskip("schedulefree")
pytest.importorskip("prodigyopt")


# -- the tasks and the protocol ---------------------------------------------------------------

def test_the_tasks_span_models_optimizers_and_both_splits() -> None:
    tasks = list(TASKS.values())
    assert len(tasks) >= 8 and len({t.kind for t in tasks}) >= 4
    assert {t.base["optimizer"] for t in tasks} >= {"adamw", "sgd", "muon"}
    assert {t.split for t in tasks} == {"dev", "test", "holdout", "reserve", "fresh", "novel", "blind", "sealed", "vault", "cellar", "attic", "loft", "annex", "crypt"}
    assert any(t.base["task"] == "digits" and t.base.get("task_options", {}).get("parameterization") == "mup" for t in tasks)
    assert any(t.base.get("task_options", {}).get("loss") == "mse" for t in tasks)
    assert any(t.base.get("task_options", {}).get("norm") == "post" for t in tasks)
    assert any(t.score == "steps" and t.base["task"] == "river-valley" for t in tasks)
    for task in tasks:
        assert all(b / a == 2 for a, b in zip(task.peaks, task.peaks[1:])), task.name  # doublings
        betas = task.base.get("betas")
        if task.family == "adam":  # runs of at least 10 x 2 / (1 - beta2) updates
            assert task.steps >= 10 * 2 / (1 - betas[1]), task.name
        for size in ("tiny", "large"):
            assert task.fields(size)["steps"] != task.steps, (task.name, size)
    assert max(t.steps for t in tasks) >= 5 * 400  # a long run: 5x the others


def test_the_full_tier_runs_the_whole_grid_and_every_peer() -> None:
    task = TASKS["mlp-ce"]
    configs = plan.runs(task, plan.tier("full"))
    labels = {c.label for c in configs}
    assert {"no warmup", "linear 1%", "linear 2%", "linear 5%", "linear 10%", "linear 20%", "linear 30%",
            "linear 50%"} <= labels
    assert {"hf cosine", "untuned", "untuned exp", "radam", "schedule-free", "autowu", "gap", "gi-adam",
            "nars", "prodigy", "dadapt_adam", "dog"} <= labels
    per_cell = {(c.label, c.peak_lr) for c in configs}
    assert len(configs) == len(per_cell) * task.seeds  # every cell has every seed
    assert {c.peak_lr for c in configs if c.label == "prodigy"} == {1.0}  # no peak LR: run once
    warmups = {c.label: c.warmup for c in configs if c.label.startswith("linear")}
    assert warmups["linear 5%"] == round(0.05 * task.steps) and warmups["linear 50%"] == task.steps // 2
    sgd = {c.label for c in plan.runs(TASKS["mlp-mse-sgd"], plan.tier("full"))}
    assert "untuned" not in sgd and "gi-adam" not in sgd and "gap" in sgd  # Adam-only peers left out
    assert "sharpness" not in {c.label for c in plan.runs(TASKS["gpt-muon"], plan.tier("full"))}


def test_research_methods_run_at_the_top_rungs_and_a_tier_may_run_some_methods() -> None:
    task = TASKS["mlp-ce"]
    configs = plan.runs(task, plan.tier("full"))
    assert {c.peak_lr for c in configs if c.label == "nars"} == set(task.peaks[-2:])
    assert {c.peak_lr for c in configs if c.label == "untuned"} == set(task.peaks)
    assert {c.peak_lr for c in plan.runs(task, plan.tier("full"), (0.256,)) if c.label == "nars"} == set()
    some = plan.runs(task, plan.tier("full", methods=["untuned", "dog"]))
    assert {c.label for c in some} == {c.label for c in configs if plan.is_linear(c.label)} | {"untuned", "dog"}
    assert {c.fingerprint() for c in some} <= {c.fingerprint() for c in configs}  # the same runs: one store
    with pytest.raises(ValueError, match=r"methods=\['nope'\] are unknown; expected some of hf cosine"):
        plan.tier("full", methods=["nope"])


def test_the_grid_is_extended_only_where_its_best_is_at_the_edge() -> None:
    task = TASKS["mlp-ce"]
    more = plan.extension(task, plan.tier("full"), {0.016: 0.5, 0.032: 0.2})
    assert {(c.label, c.peak_lr) for c in more} == {("linear 70%", 0.016), ("linear 90%", 0.016)}
    assert len(more) == 2 * task.seeds


def test_bad_tiers_tasks_and_shards_are_refused() -> None:
    with pytest.raises(ValueError, match="tier='huge' is invalid; expected one of tiny, quick, full, holdout, reserve, fresh, novel, blind, sealed, vault, cellar, attic, loft, annex, crypt"):
        plan.tier("huge")
    with pytest.raises(ValueError, match="size='xl' is invalid; expected one of tiny, default, large"):
        plan.tier("full", "xl")
    with pytest.raises(ValueError, match=r"tasks=\['nope'\] are unknown"):
        plan.tasks_of(plan.tier("full"), ["nope"])
    with pytest.raises(ValueError, match="shard='3/2' is invalid"):
        runner.shard(plan.tasks_of(plan.tier("full")), "3/2")
    tasks = plan.tasks_of(plan.tier("full"))
    assert runner.shard(tasks, "1/2") + runner.shard(tasks, "2/2") != tasks
    assert sorted(t.name for t in runner.shard(tasks, "1/2") + runner.shard(tasks, "2/2")) == sorted(t.name for t in tasks)
    assert {t.split for t in plan.tasks_of(plan.tier("quick"))} == {"dev"}
    assert {t.split for t in tasks} == {"dev", "test"}  # the full tier leaves the holdout tasks out
    for split in ("holdout", "reserve", "fresh", "novel", "blind", "sealed", "vault", "cellar", "attic", "loft", "annex", "crypt"):  # a tier per later split
        assert {t.split for t in plan.tasks_of(plan.tier(split))} == {split}
    assert len(plan.tasks_of(plan.tier("tiny"))) == len(TASKS)
    with pytest.raises(ValueError, match=r"tasks=\['mlp-deep'\] are not in the full tier \(its splits: dev, test\)"):
        plan.tasks_of(plan.tier("full"), ["mlp-ce", "mlp-deep"])


# -- the statistics on hand-made cells --------------------------------------------------------

def cell(method: str, peak: float, scores: list[float], family: str = "schedule") -> Cell:
    runs = tuple(Run(seed, score, (0.0, 10.0), (1.0, score), math.isinf(score), 0.001)
                 for seed, score in enumerate(scores))
    return Cell(method, family, peak, runs, tuple(scores))


def result_of(cells: list[Cell], task: BenchTask = TASKS["mlp-ce"]) -> TaskResult:
    by_method: dict[str, dict[float, Cell]] = {}
    for c in cells:
        by_method.setdefault(c.method, {})[c.peak_lr] = c
    peaks = tuple(sorted({c.peak_lr for c in cells}))
    tuned = {}
    for peak in peaks:
        grid = [c for c in cells if c.peak_lr == peak and (c.method == "no warmup" or c.method.startswith("linear"))]
        tuned[peak] = min(grid, key=lambda c: c.mean)
    return TaskResult(task, peaks, by_method, tuned)


def test_a_comparison_pairs_seeds_and_calls_overlaps_ties() -> None:
    base = cell("linear 10%", 0.1, [1.0, 2.0, 4.0])
    # per-seed ratios 0.5, 0.5, 0.5: a win whatever the spread between seeds
    win = compare(cell("a", 0.1, [0.5, 1.0, 2.0]), base)
    assert win.outcome == "win" and win.ratio.value == pytest.approx(0.5)
    assert win.ratio.low == pytest.approx(0.5) and win.ratio.high == pytest.approx(0.5)
    # ratios 0.9, 1.1, 1.0: log mean 0.00111..., the interval straddles 1: a tie
    tie = compare(cell("b", 0.1, [0.9, 2.2, 4.0]), base)
    logs = [math.log(0.9), math.log(1.1), 0.0]
    assert tie.outcome == "tie" and tie.ratio.value == pytest.approx(math.exp(sum(logs) / 3))
    # a diverged seed loses to a baseline with none, whatever the others do
    assert compare(cell("c", 0.1, [0.1, 0.1, math.inf]), base).outcome == "loss"
    assert ratio_text(compare(cell("c", 0.1, [0.1, 0.1, math.inf]), base)) == "fail 1/3 L"
    assert ratio_text(win) == "0.5 [0.5, 0.5] W"
    ratio = tie.ratio
    assert ratio_text(tie) == f"{ratio.value:.3g} [{ratio.low:.3g}, {ratio.high:.3g}] T"
    assert ratio_text(tie, digits=5) == f"{ratio.value:.5g} [{ratio.low:.5g}, {ratio.high:.5g}] T"
    assert compare(cell("d", 0.1, [1.0]), base).outcome is None  # one paired seed: no verdict


def test_the_tuned_baseline_stability_and_discrimination() -> None:
    cells = [cell("no warmup", 0.1, [1.0, 1.1, 0.9]), cell("linear 10%", 0.1, [1.0, 1.0, 1.0]),
             cell("no warmup", 0.2, [math.inf, 3.0, 3.0]), cell("linear 10%", 0.2, [0.8, 0.9, 0.85]),
             cell("linear 50%", 0.2, [0.9, 0.95, 0.9]),
             cell("x", 0.1, [1.0, 1.0, 1.0], "adaptive"), cell("x", 0.2, [math.inf] * 3, "adaptive")]
    result = result_of(cells)
    assert result.tuned[0.2].method == "linear 10%" and result.best_tuned.peak_lr == 0.2
    assert result.aggressive_peak() == 0.2
    assert result.largest_stable("x") == 0.1 and result.largest_stable("no warmup") == 0.1
    assert result.methods == ["x"]
    table = discrimination([result])
    assert "| mlp-ce | dev | 0.2 | linear 10%: 0.85 ± 0.12 | fail 1/3 | fail 1/3 L | yes |" in table
    assert mean_text(cells[1]) == "1 ± 0" and mean_text(cells[2]) == "fail 1/3"
    rows = matrix([result]).splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == ["| x"]  # the methods, not the grid
    chosen = matrix([result], ["linear 50%", "x"]).splitlines()[2:]
    # linear 50% at 0.2 against the tuned linear 10%: ratios 1.125, 1.056, 1.059; the mean log
    # 0.076 with a t(2) half-width of 0.089 straddles 0: a tie, the task's only dev cell of it
    assert chosen[0] == "| linear 50% | 0/1/0 | 0/1/0 |" and chosen[1].startswith("| x |")  # dev only
    held = result_of(cells, TASKS["cnn-mse-sgd"])
    header, _, row = matrix([result, held], ["linear 50%"]).splitlines()[:3]
    assert header.endswith("| dev W/T/L | holdout W/T/L | holdout median ratio |")
    assert row == "| linear 50% | 0/1/0 | 0/1/0 | 0/1/0 | 0/1/0 | 1.08 |"  # exp(0.076)


def test_a_run_that_ends_at_the_constant_prediction_is_stuck_and_fails(tmp_path: Path) -> None:
    """The post-LN transformer's collapse: no divergence, a final loss at the loss of predicting
    the common characters (3.44 nats): a failed seed, not a poor score."""
    from preheat.lab.record import RunResult
    task = TASKS["post-ln"]
    configs = {(c.label, c.seed): c for c in plan.runs(task, plan.tier("full"), (0.004,))
               if c.label in ("no warmup", "linear 50%")}
    finals = {"linear 50%": [2.44, 2.48, 2.46], "no warmup": [2.6, 3.438, 3.41]}  # 3.41 > 0.99 x 3.438
    store = Store(tmp_path)
    store.add(configs.values())
    for (label, seed), config in configs.items():
        store.save(config, RunResult("finished", evals={"step": [0, 400], "val_loss": [4.2, finals[label][seed]],
                                                        "val_accuracy": [0.0, 0.3]}, wall_time=1.0))
    store.close()
    result = load(task, tmp_path)
    stuck = result.cells["no warmup"][0.004]
    assert [run.stuck for run in stuck.runs] == [False, True, True] and stuck.failed == 2
    assert mean_text(stuck) == "fail 2/3" and ratio_text(result.compare(stuck)) == "fail 2/3 L"
    assert result.aggressive_peak() == 0.004 and result.largest_stable("no warmup") is None
    assert result.largest_stable("linear 50%") == 0.004


def test_the_held_out_tuned_warmup_is_chosen_without_the_seed_it_is_scored_on() -> None:
    spec = importlib.util.spec_from_file_location("held_out_tuning", BENCHMARKS / "held_out_tuning.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    steady, lucky = cell("linear 5%", 0.1, [1.0, 1.0, 1.0]), cell("linear 20%", 0.1, [0.5, 1.2, 1.2])
    result = result_of([steady, lucky])
    assert result.tuned[0.1] is lucky  # chosen for seed 0's luck: mean 0.97
    # seed 0 is scored with the length best on seeds 1 and 2 (5 %), the others with 20 %
    assert module.held_out(result, 0.1).scores == (1.0, 1.2, 1.2)


def _benchmark(name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``benchmarks/NAME.py`` as a module (its sibling scripts importable, as when it runs)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module(name)


def test_rules_off_is_the_ramp_alone_whatever_the_signals(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_seeds = _benchmark("fresh_seeds", monkeypatch)
    off, total = parse_controller(fresh_seeds.RULES_OFF, 100), 100
    off.bind(1.0)
    seen = [off.multiplier()]
    for t in range(total - 1):  # loss and gradient spikes, a loss that climbs: nothing may fire
        off.observe(loss=100.0 if t % 7 == 0 else 1.0 + t, grad_norm=1e6 if t % 5 == 0 else 1.0)
        seen.append(off.multiplier())
    ramp = 40  # the default 40 % of 100 updates
    assert seen[:ramp] == pytest.approx([(t + 1) / ramp for t in range(ramp)])
    assert all(d.action != "lower" for d in off.decisions)
    assert seen[ramp:] == pytest.approx([0.5 * (1 + math.cos(math.pi * (t - ramp + 1) / (total - ramp + 1)))
                                         for t in range(ramp, total)])


def test_a_variant_against_auto_gives_the_ratio_on_the_seeds_both_finished_where_one_failed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_seeds = _benchmark("fresh_seeds", monkeypatch)
    auto = cell("auto", 0.1, [1.0, 2.0, math.inf, 4.0])
    variant = cell("auto v", 0.1, [0.5, 1.0, math.inf, 2.0])  # half of auto's wherever both finished
    text = fresh_seeds.versus(compare(variant, auto))
    assert text.startswith("fail 1/4 W; on the 3 seeds both finished 0.5 [0.5, 0.5]"), text
    assert fresh_seeds.versus(compare(cell("auto v", 0.1, [0.5, 1.0, 1.5, 2.0]), cell("auto", 0.1, [1.0, 2.0, 3.0, 4.0]))) \
        == "0.5 [0.5, 0.5] W"  # no failed seed: the benchmark's ratio text alone


def test_a_fresh_seed_rerun_runs_three_ways_on_new_seeds_and_reads_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_seeds = _benchmark("fresh_seeds", monkeypatch)
    task = plan.tasks_of(plan.tier("tiny"), ["mlp-mse-sgd"])[0]
    peak = task.peaks[-1]
    done = fresh_seeds.rerun("tiny", "mlp-mse-sgd", peak, seeds=2, tuned="linear 50%", out=str(tmp_path), workers=1)
    assert done.seeds == range(2, 4)  # after the tiny tier's seeds 0 and 1
    stored = {(run.config.label, run.config.seed) for run in Store(tmp_path, read_only=True).runs()}
    assert stored == {(label, seed) for label in ("linear 50%", *fresh_seeds.LABELS) for seed in (2, 3)}
    assert all(done.comparison(label).outcome is not None for label in fresh_seeds.LABELS)
    assert done.lines()[0].startswith(f"mlp-mse-sgd at {peak:g}, seeds 2-3, against the tuned linear 50%")
    again = fresh_seeds.rerun("tiny", "mlp-mse-sgd", peak, seeds=2, tuned="linear 50%", out=str(tmp_path), workers=1)
    assert again.lines() == done.lines()
    with pytest.raises(SystemExit, match="'linear 7%' is not a length of the grid"):
        fresh_seeds.rerun("tiny", "mlp-mse-sgd", peak, seeds=2, tuned="linear 7%", out=str(tmp_path), workers=1)
    # a peer runs as the benchmark runs it, beside the three ways (read back, not run again)
    peered = fresh_seeds.rerun("tiny", "mlp-mse-sgd", peak, seeds=2, tuned="linear 50%", peers=("autowu",),
                               out=str(tmp_path), workers=1)
    assert peered.labels == (*fresh_seeds.LABELS, "autowu") and peered.lines()[1:3] == done.lines()[1:3]
    assert peered.result.cells["autowu"][peak].seeds == (2, 3)
    # a variant: its own label and runs beside the others, its ratio to auto on its line
    varied = fresh_seeds.rerun("tiny", "mlp-mse-sgd", peak, seeds=2, tuned="linear 50%", variant="r20",
                               controller="auto_warmup(ramp=0.2)", out=str(tmp_path), workers=1)
    assert varied.labels == (*fresh_seeds.LABELS, "auto r20") and varied.lines()[1:3] == done.lines()[1:3]
    assert varied.result.cells["auto r20"][peak].seeds == (2, 3)
    assert "; vs auto " in varied.lines()[3] and varied.comparison("auto r20", "auto").outcome is not None
    stored = {run.config.label: run.config.controller for run in Store(tmp_path, read_only=True).runs()}
    assert stored["auto r20"] == "auto_warmup(ramp=0.2)"
    with pytest.raises(SystemExit, match=r"--controller='auto_warmup\(ramp=2\)': .*ramp"):
        fresh_seeds.rerun("tiny", "mlp-mse-sgd", peak, tuned="linear 50%", variant="bad",
                          controller="auto_warmup(ramp=2)", out=str(tmp_path))
    # the rule as edited: only beside auto's stored runs, never computing auto with it
    edited = fresh_seeds.rerun("tiny", "mlp-mse-sgd", peak, seeds=2, tuned="linear 50%", variant="same",
                               out=str(tmp_path), workers=1)
    assert edited.comparison("auto same", "auto").ratio.value == pytest.approx(1.0)  # the rule unedited
    with pytest.raises(SystemExit, match=r"--variant='same' runs the rule in auto.py as edited, and .* holds "
                                         r"no auto run of seeds 2-3"):
        fresh_seeds.rerun("tiny", "mlp-mse-sgd", peak, seeds=2, tuned="linear 50%", variant="same",
                          out=str(tmp_path / "new"), workers=1)
    assert not (tmp_path / "new").exists()
    with pytest.raises(SystemExit, match="needs --variant"):
        fresh_seeds.rerun("tiny", "mlp-mse-sgd", peak, tuned="linear 50%", controller="auto_warmup()",
                          out=str(tmp_path))
    with pytest.raises(SystemExit, match="prodigy takes no peak LR"):
        fresh_seeds.rerun("tiny", "mlp-mse-sgd", peak, tuned="linear 50%", peers=("prodigy",), out=str(tmp_path))
    with pytest.raises(SystemExit, match="'autowu,nope': nope is no benchmark method"):
        fresh_seeds.peers_of("autowu,nope")


def test_the_catapult_study_reads_each_cell_s_tuned_length_and_probes_at_init(monkeypatch: pytest.MonkeyPatch) -> None:
    study = _benchmark("catapult_vs_tuned", monkeypatch)
    snippet = """##### mlp-ce (dev)

| peak LR | tuned warmup | tuned score | no warmup | no warmup / tuned |
|---|---|---|---|---|
| 0.016 | no warmup | 0.2 ± 0.01 | 0.2 ± 0.01 | 1 [1, 1] T |
| 0.128 | linear 50% | 0.1 ± 0.02 | fail 5/5 | fail 5/5 L |
| 0.64 | no warmup | fail 5/5 | fail 5/5 | fail 5/5 T |

| method | 0.016 | 0.128 |
|---|---|---|
| auto | 1 [1, 1] T | 0.5 [0.4, 0.6] W |

##### cnn (test)

| 0.008 | linear 5% | 0.3 ± 0.01 | 0.3 ± 0.01 | 1 [1, 1] T |
"""
    assert study.tuned_lengths(snippet) == {("mlp-ce", 0.016): 0.0, ("mlp-ce", 0.128): 0.5, ("cnn", 0.008): 0.05}
    assert {name for name, _ in study.tuned_lengths(study.RESULTS.read_text())} == set(TASKS)  # every table read
    task = TASKS["mlp-mse-sgd"]
    found = study.eta_c(task, 0)
    assert task.peaks[0] * 1e-3 < found < task.peaks[-1] * study.SEARCH_RANGE and study.eta_c(task, 0) == found


def test_the_sgd_probe_study_reads_sgd_cells_only_its_variant_a_short_ramp_another_as_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = _benchmark("sgd_probe_ramp", monkeypatch)
    for name in ("mlp-ce-0.128", "notes", "nope-0.1"):  # an Adam task's cell, no cell, no task: never opened
        (tmp_path / name).mkdir()
    assert study.cells(tmp_path) == []
    short = parse_controller(study.CONTROLLER, 400)
    short.bind(0.1, sgd=True)
    assert short.multiplier() == pytest.approx(1 / 20)  # update 0 of a 5 % ramp of 400 updates
    configs = plan.runs(TASKS["mlp-mse-sgd"], plan.tier("full"), (0.04,))
    run = study.lab_run(configs[0])
    assert isinstance(run.optimizer, torch.optim.SGD) and run.entry.family == "sgd"
    auto = next(config for config in configs if config.label == "auto")
    assert 0 < study.catapult_lr(auto) <= 0.04  # as the lab measures it before update 0, capped at the peak
    # another variant's runs are read as stored, and only they
    fresh_seeds = _benchmark("fresh_seeds", monkeypatch)
    task = plan.tasks_of(plan.tier("tiny"), ["mlp-mse-sgd"])[0]
    fresh_seeds.rerun("tiny", task.name, task.peaks[-1], seeds=2, tuned="linear 50%", variant="r20",
                      controller="auto_warmup(ramp=0.2)", out=str(tmp_path / "cell"), workers=1)
    read = study.stored(task, tmp_path / "cell", "r20")
    assert set(read.cells) == {"auto r20"} and read.cells["auto r20"][task.peaks[-1]].seeds == (2, 3)


def test_the_headroom_study_reads_each_aggressive_cell_and_who_won_it(monkeypatch: pytest.MonkeyPatch) -> None:
    study = _benchmark("aggressive_headroom", monkeypatch)
    snippet = """| task | split | aggressive peak | tuned | no warmup | no warmup / tuned | discriminates |
|---|---|---|---|---|---|---|
| mlp-ce | dev | 0.128 | linear 50%: 0.1 ± 0.02 | fail 5/5 | fail 5/5 L | yes |

##### mlp-ce (dev)

| peak LR | tuned warmup | tuned score | no warmup | no warmup / tuned |
|---|---|---|---|---|
| 0.016 | no warmup | 0.05 ± 0.01 | 0.05 ± 0.01 | 1 [1, 1] T |
| 0.128 | linear 50% | 0.1 ± 0.02 | fail 5/5 | fail 5/5 L |

Tuned baseline's best over (peak, warmup): no warmup at 0.016, 0.05 ± 0.01.

Each method over the tuned baseline at the same peak LR (lower is better):

| method | 0.016 | 0.128 | best / tuned best | stable to | steps | ms/upd |
|---|---|---|---|---|---|---|
| auto | 1 [1, 1] T | 0.5 [0.4, 0.6] W | 1 [1, 1] T | 0.128 | 1 | 2 |
| autowu | 0.5 [0.4, 0.6] W | 1.1 [0.9, 1.3] T | 1 [1, 1] T | 0.128 | 1 | 2 |
| gap | 1 [1, 1] T | fail 2/5 L | 1 [1, 1] T | 0.016 | 1 | 2 |

| optimizer | score | / tuned best | ms/upd |
|---|---|---|---|
| prodigy | 0.05 ± 0.01 | 1 [0.9, 1.1] W | 3 |
"""
    [cell] = study.parse(snippet)
    assert (cell["task"], cell["split"], cell["peak"]) == ("mlp-ce", "dev", 0.128)
    assert cell["tuned"][0.128] / cell["best"] == pytest.approx(2.0)  # the headroom
    assert cell["letters"] == {"auto": "W", "autowu": "T", "gap": "L"}  # at 0.128 only, not the learned steps
    parsed = study.parse(study.RESULTS.read_text())
    assert {c["task"] for c in parsed} == set(TASKS) and all("auto" in c["letters"] for c in parsed)


def test_the_aggressive_cells_are_each_tier_s_tasks_peaks_and_lengths(monkeypatch: pytest.MonkeyPatch) -> None:
    cells = _benchmark("aggressive_fresh", monkeypatch).CELLS
    assert len(cells) == len({task for _, task, _, _ in cells}) == len([t for t in TASKS.values() if t.split != "dev"])
    for tier, name, peak, tuned in cells:
        settings = plan.tier(tier)
        [task] = plan.tasks_of(settings, [name])
        assert task.split != "dev", name
        assert peak in task.peaks, name
        assert tuned in {plan.linear_label(f) for f in (*settings.grid, *plan.EXTENSION)}, name
    # each is a row of the "discriminates" tables of docs/results.md: its aggressive peak and tuned length
    text = (Path(__file__).parents[1] / "docs" / "results.md").read_text()
    rows = re.findall(r"^\| (\S+) \| (\w+) \| ([0-9.]+) \| ((?:linear \d+%|no warmup)): [^|]*\| [^|]*\| [^|]*\| "
                      r"(?:yes|no) \|$", text, flags=re.M)
    assert {(name, float(peak), tuned) for name, split, peak, tuned in rows if split != "dev"} == {
        (name, peak, tuned) for _, name, peak, tuned in cells}


def test_the_kept_cells_are_unique_and_of_the_named_families(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _benchmark("aggressive_fresh", monkeypatch)
    kept = module._kept([*module.CELLS, *module.LOSSES, module.CELLS[4]], "sgd,muon")
    assert [(task, peak) for _, task, peak, _ in kept] == [
        ("gpt-muon", 0.128), ("cnn-mse-sgd", 0.8), ("mlp-muon", 0.032), ("mlp-deep-sgd", 0.64),
        ("mlp-mup-sgd", 0.32), ("cnn-sgd", 1.6), ("cnn-sgd-wide", 0.8), ("mlp-sgd-small-batch", 0.32),
        ("mlp-wide-sgd", 0.04), ("cnn-sgd-small-batch", 0.4), ("mlp-narrow-deep-sgd", 0.32),
        ("gpt-muon-ctx32", 0.128), ("mlp-mup-deep-sgd", 0.64), ("gpt-muon-deep", 0.128), ("post-ln-muon", 0.128),
        ("mlp-muon-mse", 0.032), ("mlp-mse-sgd", 0.04), ("cnn-mse-sgd", 0.1), ("gpt-muon", 0.016)]
    assert len(module._kept([*module.CELLS, *module.CELLS], None)) == 42
    with pytest.raises(SystemExit, match="--families='adam,lion': expected some of adam, sgd, muon"):
        module._kept(list(module.CELLS), "adam,lion")


def test_the_fresh_seed_figure_draws_a_cell_whose_tuned_length_failed_everywhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _benchmark("aggressive_fresh", monkeypatch)
    fresh_seeds = _benchmark("fresh_seeds", monkeypatch)
    cells = [cell("linear 10%", 0.1, [math.inf] * 3), cell("auto", 0.1, [0.5, 0.6, 0.7]),
             cell("rules off", 0.1, [0.5, math.inf, 0.7])]
    done = fresh_seeds.Rerun(TASKS["mlp-ce"], 0.1, "linear 10%", range(3), fresh_seeds.LABELS, result_of(cells))
    assert done.comparison("auto").ratio is None and done.comparison("auto").outcome == "win"
    path = module.figure([done], fresh_seeds.LABELS, tmp_path / "fig.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- end to end -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny tier of every task, through the command line."""
    out = tmp_path_factory.mktemp("bench")
    result = CliRunner().invoke(app, ["bench", "--tier", "tiny", "--out", str(out / "runs"), "--quiet",
                                      "--markdown", str(out / "results.md"), "--figures", str(out / "figures")])
    assert result.exit_code == 0, result.output
    return out


def test_every_task_and_peer_runs_at_the_tiny_size(tiny: Path) -> None:
    text = (tiny / "results.md").read_text()
    for task in TASKS.values():
        configs = plan.runs(task, plan.tier("tiny"))
        stored = Store(tiny / "runs" / "tiny" / task.name, read_only=True).runs()
        assert {c.fingerprint() for c in configs} <= {run.id for run in stored}, task.name
        assert {run.status for run in stored} <= {"finished", "diverged"}, task.name
        assert f"### {task.name} ({task.split})" in text and f"--tasks {task.name}`" in text
        assert (tiny / "figures" / f"bench-{task.name}.png").stat().st_size > 10_000
        result = load(task, tiny / "runs" / "tiny" / task.name)
        for method in result.methods:
            assert f"| {method} |" in text, (task.name, method)
    assert "## Does each task discriminate?" in text and "| dev W/T/L | test W/T/L |" in text


def test_every_cell_of_a_tier_is_its_stored_grid_s_ladder_and_tuned_length(
        tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    every_cell = _benchmark("aggressive_fresh", monkeypatch).every_cell
    cells = every_cell("tiny", str(tiny / "runs"))
    for task in plan.tasks_of(plan.tier("tiny")):
        grid = load(task, tiny / "runs" / "tiny" / task.name)
        assert [(peak, tuned) for _, name, peak, tuned in cells if name == task.name] == \
            [(peak, grid.tuned[peak].method) for peak in grid.peaks], task.name
    with pytest.raises(SystemExit, match="run preheat bench --tier tiny --grid-only first"):
        every_cell("tiny", str(tmp_path))


def test_a_rerun_computes_nothing_and_gives_the_same_tables(tiny: Path) -> None:
    before = (tiny / "results.md").read_text()
    result = CliRunner().invoke(app, ["bench", "--tier", "tiny", "--out", str(tiny / "runs"), "--quiet",
                                      "--markdown", str(tiny / "again.md")])
    assert result.exit_code == 0, result.output
    assert "runs to do" in result.output and all(line.startswith("0 of") for line in result.output.splitlines()
                                                 if "runs to do" in line)
    strip = lambda text: [line for line in text.splitlines() if line and not line.startswith(("Machine:", "![", "`"))]  # noqa: E731
    assert strip((tiny / "again.md").read_text()) == strip(before)


def test_a_killed_run_resumes_to_the_same_numbers(tmp_path: Path) -> None:
    task = "mlp-mse-sgd"
    command = [sys.executable, "-m", "preheat.cli", "bench", "--tier", "tiny", "--tasks", task, "--quiet",
               "--out", str(tmp_path / "killed"), "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    store = tmp_path / "killed" / "tiny" / task
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (store / "runs.sqlite").exists() and len([r for r in Store(store, read_only=True).runs()
                                                     if r.status in ("finished", "diverged")]) >= 4:
            break
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = [r for r in Store(store, read_only=True).runs() if r.status in ("finished", "diverged")]
    assert 0 < len(done) < len(plan.runs(TASKS[task], plan.tier("tiny")))  # killed part-way
    for out in ("killed", "whole"):  # resume the killed run; run it whole elsewhere
        result = CliRunner().invoke(app, ["bench", "--tier", "tiny", "--tasks", task, "--quiet",
                                          "--out", str(tmp_path / out), "--workers", "2"])
        assert result.exit_code == 0, result.output
    resumed, reference = load(TASKS[task], store), load(TASKS[task], tmp_path / "whole" / "tiny" / task)
    assert {m: {p: c.scores for p, c in cells.items()} for m, cells in resumed.cells.items()} == \
           {m: {p: c.scores for p, c in cells.items()} for m, cells in reference.cells.items()}


def test_bench_methods_runs_those_and_the_grid_and_refuses_unknown_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "--tier", "tiny", "--tasks", "river-valley", "--quiet",
                                      "--methods", "auto", "--out", str(tmp_path), "--workers", "1"])
    assert result.exit_code == 0, result.output
    labels = {run.config.label for run in Store(tmp_path / "tiny" / "river-valley", read_only=True).runs()}
    assert labels == {"no warmup", "linear 50%", "auto"}
    result = CliRunner().invoke(app, ["bench", "--tier", "tiny", "--methods", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "methods=['nope'] are unknown; expected some of" in " ".join(result.output.split())
    grid = tmp_path / "grid"
    result = CliRunner().invoke(app, ["bench", "--tier", "tiny", "--tasks", "river-valley", "--quiet",
                                      "--grid-only", "--out", str(grid), "--workers", "1"])
    assert result.exit_code == 0, result.output
    labels = {run.config.label for run in Store(grid / "tiny" / "river-valley", read_only=True).runs()}
    assert labels == {"no warmup", "linear 50%"}
    result = CliRunner().invoke(app, ["bench", "--tier", "tiny", "--grid-only", "--methods", "auto", "--out", str(grid)])
    assert result.exit_code == 2 and "--grid-only runs no method; drop --methods auto" in " ".join(result.output.split())


@pytest.mark.slow
def test_the_full_tier(tmp_path: Path) -> None:
    """The full tier as docs/results.md runs it: every run finishes or diverges (none fails)."""
    result = CliRunner().invoke(app, ["bench", "--tier", "full", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    for task in plan.tasks_of(plan.tier("full")):
        stored = Store(tmp_path / "full" / task.name, read_only=True).runs()
        assert {run.status for run in stored} <= {"finished", "diverged"}, task.name


def test_the_docs_task_table_is_the_code_s() -> None:
    """docs/results.md's table of tasks says what TASKS runs: split, updates, seeds, ladder ends."""
    text = (Path(__file__).parents[1] / "docs" / "results.md").read_text()
    table = text[text.index("| task | split | model |"):].split("\n\n")[0].splitlines()
    for task in TASKS.values():
        row = next(line for line in table if line.startswith(f"| {task.name} | "))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == task.split and int(cells[4]) == task.steps and int(cells[5]) == task.seeds, row
        assert cells[6] == f"{task.peaks[0]:g} - {task.peaks[-1]:g}", row
        assert (cells[7] == "final val loss") == (task.score == "loss"), row


def test_the_ladder_grows_where_the_tuned_best_is_at_its_edge() -> None:
    from preheat.lab.bench.runner import _next_rung

    def ladder(best_peak: float) -> TaskResult:
        return result_of([cell("linear 10%", peak, [0.5, 0.6] if peak == best_peak else [1.0, 1.1])
                          for peak in (0.1, 0.2, 0.4)])
    assert _next_rung(ladder(0.4)) == 0.8 and _next_rung(ladder(0.1)) == 0.05
    assert _next_rung(ladder(0.2)) is None
    # a best at the edge that only ties the rung next to it: the curve is flat there, no rung added
    flat = result_of([cell("linear 10%", peak, {0.1: [1.0, 1.1], 0.2: [1.05, 1.06], 0.4: [2.0, 2.1]}[peak])
                      for peak in (0.1, 0.2, 0.4)])
    assert flat.best_tuned.peak_lr == 0.1 and _next_rung(flat) is None
    # no warmup behind the tuned baseline at the bottom rung: the ladder does not yet start where
    # warmup makes no difference, so it grows down (a tie there does not)
    behind = ladder(0.2)
    behind.cells["no warmup"] = {0.1: cell("no warmup", 0.1, [1.5, 1.7, 1.6])}
    assert _next_rung(behind) == 0.05
    behind.cells["no warmup"] = {0.1: cell("no warmup", 0.1, [1.0, 1.1, 1.05])}
    assert _next_rung(behind) is None
    assert plan.tier("full").more_rungs == 2 and plan.tier("quick").more_rungs == 0
    assert {c.peak_lr for c in plan.runs(TASKS["mlp-ce"], plan.tier("full"), (0.256,))} == {0.256}


def test_runs_of_another_plan_never_mix_into_a_cell() -> None:
    from preheat.lab.bench.analysis import _cell

    runs = [Run(0, 1.0, (0.0,), (1.0,), False, 0.0), Run(0, 2.0, (0.0,), (2.0,), False, 0.0)]
    with pytest.raises(ValueError, match="two runs of one seed"):
        _cell(TASKS["mlp-ce"], "no warmup", "no warmup", 0.1, runs)


def test_the_large_size_on_a_gpu_has_its_own_store() -> None:
    settings = plan.tier("full", "large", "cuda")
    configs = plan.runs(TASKS["gpt-pre-ln"], settings)
    assert {c.device for c in configs} == {"cuda"} and {c.task_options["size"] for c in configs} == {"small"}
    assert {c.steps for c in configs} == {TASKS["gpt-pre-ln"].sizes["large"]["steps"]}
    # every transformer's context at the large size is its preset's or its own, never the default's 16
    from preheat.lab.tasks.shakespeare import SIZES as PRESETS
    contexts = {name: task.fields("large")["task_options"]["block_size"] for name, task in TASKS.items()
                if task.base.get("task") == "shakespeare-char"}
    assert contexts["gpt-pre-ln"] == PRESETS["small"]["block_size"] and contexts["gpt-ctx32"] == 64
    assert min(contexts.values()) >= 64
    assert runner.store_of("runs", settings, TASKS["gpt-pre-ln"]) == Path("runs/full-large/gpt-pre-ln")
    assert runner.store_of("runs", plan.tier("full"), TASKS["gpt-pre-ln"]) == Path("runs/full/gpt-pre-ln")


def test_the_bench_help_names_every_tier_in_the_order_plan_runs_them() -> None:
    from preheat.cli.bench import TIER_HELP

    positions = [TIER_HELP.index(name) for name in plan.TIERS]
    assert positions == sorted(positions) and TIER_HELP.endswith(f"or {plan.TIERS[-1]} (those splits' tasks).")
