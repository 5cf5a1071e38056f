"""Other packages' warmups in the lab: the LRs each peer gives, checked against their formulas
written out here, and the config rules for them."""

from __future__ import annotations

import math

import pytest

from preheat.lab.config import RunConfig, SweepConfig
from preheat.lab.run import train
from preheat.schedules import from_hf_name

pytest.importorskip("pytorch_warmup")
pytest.importorskip("schedulefree")

BASE = {"task": "digits", "task_options": {"width": 16}, "steps": 50, "eval_every": 25, "peak_lr": 3e-3}


def test_hf_cosine_gives_the_hugging_face_schedule() -> None:
    result = train(RunConfig(**BASE, peer="hf_cosine", warmup=10))
    assert result.status == "finished"
    expected = [3e-3 * from_hf_name("cosine", 10, 50)(t) for t in range(50)]
    assert result.steps["lr"] == pytest.approx(expected, rel=1e-12, abs=1e-18)


def test_untuned_warmup_dampens_cosine_annealing_for_two_over_one_minus_beta2_updates() -> None:
    # 1 - 0.9375 = 1/16 exactly, so pytorch_warmup's int(2 / (1 - beta2)) is 32 (it truncates)
    result = train(RunConfig(**BASE, peer="untuned_warmup", betas=(0.9, 0.9375)))
    expected = [3e-3 * min(1.0, (t + 1) / 32) * (1 + math.cos(math.pi * t / 50)) / 2 for t in range(50)]
    assert result.steps["lr"] == pytest.approx(expected, rel=1e-9)


def test_untuned_exponential_dampens_cosine_annealing_with_time_constant_one_over_one_minus_beta2() -> None:
    # pytorch_warmup's exponential warmup: 1 - exp(-(t + 1) / tau), tau = 1 / (1 - beta2) = 16
    result = train(RunConfig(**BASE, peer="untuned_exponential", betas=(0.9, 0.9375)))
    assert result.status == "finished", result.error
    expected = [3e-3 * (1 - math.exp(-(t + 1) / 16)) * (1 + math.cos(math.pi * t / 50)) / 2 for t in range(50)]
    assert result.steps["lr"] == pytest.approx(expected, rel=1e-9)
    assert result.evals["val_loss"][-1] < result.evals["val_loss"][0]


def test_schedulefree_warms_up_inside_the_optimizer_and_learns() -> None:
    result = train(RunConfig(**BASE, optimizer="schedulefree_adamw", warmup=10))
    assert result.status == "finished"
    assert result.steps["lr"] == pytest.approx([3e-3 * min(1.0, (t + 1) / 10) for t in range(50)], rel=1e-12)
    assert result.evals["val_loss"][-1] < 0.9 * result.evals["val_loss"][0]


def test_peer_names_templates_and_sweeps_keep_their_warmup() -> None:
    config = RunConfig(**BASE, peer="hf_cosine", warmup=5)
    assert (config.method, config.template) == ("hf_cosine(warmup=5)", "hf_cosine")
    runs = SweepConfig(base={**BASE, "peer": "hf_cosine"}, grid={"warmup": [0, 5]}).runs()
    assert [r.warmup for r in runs] == [0, 5]
    runs = SweepConfig(base={**BASE, "optimizer": "schedulefree_adamw"}, grid={"warmup": [0, 5]}).runs()
    assert [r.warmup for r in runs] == [0, 5]


@pytest.mark.parametrize(("fields", "words"), [
    ({"peer": "hf_cosine", "controller": "nars_warmup()"}, "peer='hf_cosine' replaces the schedule"),
    ({"peer": "hf_cosine", "schedule": "cosine_decay({steps})"}, "peer='hf_cosine' replaces the schedule"),
    ({"peer": "untuned_warmup", "optimizer": "sgd"}, "is for Adam; expected optimizer adam, adamw"),
    ({"peer": "untuned_exponential", "optimizer": "muon"}, "'untuned_exponential' is for Adam; expected optimizer"),
    ({"peer": "linear"}, "hf_cosine"),
    ({"peer": "hf_cosine", "warmup": 60}, "warmup=60 is longer than steps=50"),
])
def test_peer_configs_are_checked(fields: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        RunConfig(**{**BASE, **fields})
