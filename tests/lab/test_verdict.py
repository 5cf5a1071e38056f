"""The verdict: a winner only beyond the seed noise, ties named, one seed never a winner, the
tuned baseline found, and next steps that follow from the sweep."""

from __future__ import annotations

import math

import numpy as np
import pytest

from preheat.lab.compare import WARMUP_TEMPLATE
from preheat.lab.config import RunConfig
from preheat.lab.metrics import RunMetrics, SweepMetrics, ranking, within_noise
from preheat.lab.stats import half_width
from preheat.lab.verdict import verdict


def run(label: str, loss: float, seed: int, peak_lr: float = 0.01, warmup: int | None = None,
        status: str = "finished", **fields: object) -> RunMetrics:
    """A done run of the method ``label`` whose final val loss is ``loss``."""
    if warmup is not None:
        fields = {"schedule": WARMUP_TEMPLATE, "warmup": warmup, **fields}
    config = RunConfig(task="digits", label=label, peak_lr=peak_lr, seed=seed, steps=100, **fields)
    final = math.inf if status == "diverged" else loss
    return RunMetrics(id=config.fingerprint(), method=label, config=config, status=status, wall_time=1.0,
                      final_val_loss=final, best_val_loss=loss, target=None, steps_to_target=None,
                      final_train_accuracy=0.9, below_chance=False, spikes=0)


def sweep(runs: list[RunMetrics]) -> SweepMetrics:
    return SweepMetrics(runs=tuple(runs), ranking=tuple(ranking(runs)))


def seeds(label: str, losses: list[float], **fields: object) -> list[RunMetrics]:
    return [run(label, loss, seed, **fields) for seed, loss in enumerate(losses)]


def test_the_interval_is_student_t() -> None:
    """Two seeds 1 and 3: mean 2, std sqrt(2), t(0.975, 1) = 12.7062 (a table value)."""
    assert half_width(np.array([1.0, 3.0])) == pytest.approx(12.7062 * math.sqrt(2) / math.sqrt(2), rel=1e-4)
    # three seeds: t(0.975, 2) = 4.3027
    assert half_width(np.array([1.0, 2.0, 3.0])) == pytest.approx(4.3027 * 1.0 / math.sqrt(3), rel=1e-4)
    assert math.isnan(half_width(np.array([1.0])))
    assert math.isnan(half_width(np.array([1.0, math.inf])))


def test_overlapping_intervals_are_within_noise_and_no_winner_is_named() -> None:
    runs = seeds("a", [0.50, 0.52, 0.54]) + seeds("b", [0.51, 0.53, 0.55]) + seeds("c", [0.90, 0.91, 0.92])
    judged = verdict(sweep(runs))
    assert judged.best.method == "a" and [row.method for row in judged.tied] == ["b"]
    assert within_noise(judged.best, judged.tied[0]) is True
    assert judged.headline.startswith("Within noise: a and b")
    assert "Use " not in judged.headline and "c" not in judged.headline.split("Lowest")[0]
    assert any("more seeds (now 3)" in line for line in judged.lines())


def test_a_long_tie_is_shortened() -> None:
    runs = [r for k in range(7) for r in seeds(f"m{k}", [0.50 + 0.001 * k, 0.52, 0.54])]
    judged = verdict(sweep(runs))
    assert len(judged.tied) == 6
    assert judged.headline.startswith("Within noise: m0 and m1, m2, m3, m4 and 2 more (95% intervals over 3+ seeds")


def test_separated_intervals_name_a_winner() -> None:
    runs = seeds("a", [0.50, 0.51, 0.52]) + seeds("b", [0.70, 0.71, 0.72])
    judged = verdict(sweep(runs))
    assert judged.tied == ()
    assert judged.headline.startswith("Use a at peak LR 0.01 (final val loss 0.51 ± 0.025")
    assert "no other method is within noise" in judged.headline


def test_one_seed_is_never_a_winner() -> None:
    judged = verdict(sweep([run("a", 0.5, 0), run("b", 0.9, 0)]))
    assert judged.seeds == 1 and judged.tied == ()
    assert "from one seed" in judged.headline and "not yet a winner" in judged.headline
    assert judged.next_steps()[0].startswith("run 3 or more seeds")


def test_the_tuned_baseline_is_the_best_linear_warmup() -> None:
    runs = (seeds("no warmup", [0.60, 0.61, 0.62], warmup=0) + seeds("linear 5%", [0.55, 0.56, 0.57], warmup=5)
            + seeds("linear 20%", [0.58, 0.59, 0.60], warmup=20) + seeds("x", [0.40, 0.41, 0.42]))
    judged = verdict(sweep(runs))
    assert judged.best.method == "x"
    assert judged.baseline.method == "linear 5%" and judged.baseline_warmups == (5, 20)
    lines = judged.lines()
    assert lines[1].startswith("Tuned baseline (linear warmup, best of 2 lengths): linear 5%")
    assert lines[1].endswith("worse than the best beyond noise.")
    assert any("shortest tried" in step for step in judged.next_steps())  # 5 is the shortest length


def test_auto_warmup_is_set_against_the_best() -> None:
    linear = seeds("linear 5%", [0.50, 0.51, 0.52], warmup=5)
    tied = verdict(sweep(linear + seeds("auto", [0.505, 0.515, 0.525], controller="auto_warmup()")))
    assert tied.auto.method == "auto"
    assert "auto_warmup (no warmup length to choose): 0.515 ± 0.025, rank 2; within noise of the best, " \
           "linear 5%." in tied.lines()
    worse = verdict(sweep(linear + seeds("mine", [0.70, 0.71, 0.72], controller="auto_warmup(ramp=0.3)")))
    assert any(line.endswith("rank 2; worse beyond noise than the best, linear 5%.") for line in worse.lines())
    best = verdict(sweep(linear + seeds("auto", [0.30, 0.31, 0.32], controller="auto_warmup()")))
    assert "auto_warmup, with no warmup length to choose, has the lowest loss here." in best.lines()
    assert verdict(sweep(linear)).auto is None and not any("auto_warmup" in line for line in verdict(sweep(linear)).lines())


def test_the_best_peak_lr_at_the_edge_asks_for_a_wider_range() -> None:
    runs = (seeds("a", [0.9, 0.91], peak_lr=0.01) + seeds("a", [0.5, 0.51], peak_lr=0.1)
            + seeds("b", [0.8, 0.81], peak_lr=0.01) + seeds("b", [0.7, 0.71], peak_lr=0.1))
    steps = verdict(sweep(runs)).next_steps()
    assert any("the best peak LR is the largest tried (0.1)" in step for step in steps)


def test_diverged_runs_are_named_and_never_win() -> None:
    runs = (seeds("a", [0.3, 0.3]) + [run("b", 0.1, 0, status="diverged"), run("b", 0.1, 1)])
    judged = verdict(sweep(runs))
    assert judged.best.method == "a"
    assert judged.diverged == ((0.01, ("b",)),)
    assert "runs of 1 method(s) diverged: b" in " ".join(judged.lines())


def test_nothing_finished_says_so() -> None:
    judged = verdict(sweep([run("a", 1.0, 0, status="diverged")]))
    assert judged.best is None
    assert judged.headline.startswith("No method has a final loss")
    assert judged.next_steps() == []


def test_a_method_is_described_by_its_note_or_its_config() -> None:
    from preheat.lab.methods import describe

    plain = RunConfig(task="digits", peak_lr=0.1, schedule="warmup_cosine(5, 50)", steps=50)
    assert describe(plain).family == "schedule" and describe(plain).note == "warmup_cosine(5, 50)"
    flat = plain.model_copy(update={"schedule": "cosine_decay(50)"})
    assert describe(flat).family == "no warmup"  # multiplier 1 at update 0
    noted = RunConfig(task="digits", peak_lr=0.1, schedule="constant()", steps=50, note="the peak from the start")
    assert describe(noted).note == "the peak from the start"
    gone = RunConfig.model_construct(**{**plain.model_dump(), "schedule": "gone_schedule()"})
    assert describe(gone).family == "schedule"  # a stored schedule this version cannot parse
    with pytest.raises(ValueError, match="note=.*one line of at most 300"):
        RunConfig(task="digits", peak_lr=0.1, schedule="constant()", steps=50, note="two\nlines")


@pytest.mark.parametrize("optimizer", ["schedulefree_adamw", "prodigy", "dadapt_adam", "dog"])
def test_tuning_free_optimizers_of_other_packages_are_peers(optimizer: str) -> None:
    from preheat.lab.methods import describe

    config = RunConfig(task="digits", peak_lr=1.0, schedule="cosine_decay(50)", steps=50, optimizer=optimizer)
    assert describe(config).family == "peer"
