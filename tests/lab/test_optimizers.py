"""The optimizer registry: every name builds its optimizer, and says its family, whether it is
preconditioned and its stability threshold."""

from __future__ import annotations

import math

import pytest
import torch

from preheat.lab.config import RunConfig
from preheat.lab.optimizers import OPTIMIZERS, build_optimizer
from preheat.optim import GIAdam, GIAdamW


def threshold(config: RunConfig, lr: float) -> float:
    return OPTIMIZERS[config.optimizer].threshold(config, lr)


def test_stability_thresholds_per_optimizer():
    lr = 0.1
    assert threshold(RunConfig(optimizer="sgd"), lr) == pytest.approx(20.0)
    assert threshold(RunConfig(optimizer="momentum", momentum=0.9), lr) == pytest.approx(38.0)
    assert threshold(RunConfig(optimizer="adamw", betas=(0.8, 0.99)), lr) == pytest.approx(3.6 / 0.02)
    assert math.isnan(threshold(RunConfig(optimizer="radam"), lr))
    assert threshold(RunConfig(optimizer="sgd"), 0.0) == math.inf


EXPECTED = {  # name: (class, family, preconditioned)
    "sgd": (torch.optim.SGD, "sgd", False),
    "momentum": (torch.optim.SGD, "sgd", False),
    "adam": (torch.optim.Adam, "adam", True),
    "adamw": (torch.optim.AdamW, "adam", True),
    "giadam": (GIAdam, "adam", True),
    "giadamw": (GIAdamW, "adam", True),
    "radam": (torch.optim.RAdam, "adam", False),  # its first updates are momentum steps
    "radamw": (torch.optim.RAdam, "adam", False),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_name_builds_its_optimizer_at_the_peak_lr(name: str) -> None:
    cls, family, preconditioned = EXPECTED[name]
    config = RunConfig(optimizer=name, peak_lr=0.25, weight_decay=0.1, momentum=0.5)
    optimizer = build_optimizer(config, [torch.nn.Parameter(torch.zeros(2))])
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (0.25, 0.1)
    entry = OPTIMIZERS[name]
    assert (entry.family, entry.preconditioned) == (family, preconditioned)
    if name.startswith("radam"):
        assert group["decoupled_weight_decay"] == (name == "radamw")
    if name == "momentum":
        assert group["momentum"] == 0.5


def test_the_registry_is_the_one_list_of_names() -> None:
    assert set(OPTIMIZERS) == set(EXPECTED) | {"schedulefree_adamw"}
    with pytest.raises(ValueError, match="optimizer"):
        RunConfig(optimizer="lion")
