"""The optimizer registry: every name builds its optimizer, and says its family, whether it is
preconditioned and its stability threshold; Muon's split of the parameters, and the optimizers of
other packages trained end to end at a tiny size."""

from __future__ import annotations

import math

import pytest
import torch

from preheat.lab.config import RunConfig
from preheat.lab.optimizers import OPTIMIZERS, build_optimizer, hidden_matrices
from preheat.lab.run import train
from preheat.lab.tasks import make_task
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
    assert set(OPTIMIZERS) == set(EXPECTED) | {"schedulefree_adamw", "muon", "prodigy", "dadapt_adam", "dog"}
    with pytest.raises(ValueError, match="optimizer"):
        RunConfig(optimizer="lion")


# -- Muon and the parameter-free optimizers of other packages ----------------------------------------

TINY = {"task": "digits", "task_options": {"width": 16}, "steps": 30, "eval_every": 15}
PACKAGES = {"prodigy": "prodigyopt", "dadapt_adam": "dadaptation", "dog": "dog"}


def test_new_entries_say_family_preconditioning_and_no_threshold() -> None:
    expected = {"muon": "adam", "prodigy": "adam", "dadapt_adam": "adam", "dog": "sgd"}
    for name, family in expected.items():
        entry = OPTIMIZERS[name]
        assert (entry.family, entry.preconditioned, entry.stability) == (family, False, None)
        assert math.isnan(entry.threshold(RunConfig(optimizer=name), 0.1))


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest() -> None:
    model = make_task("digits", {"width": 16}).model(0)  # layers 64 -> 16 -> 16 -> 10
    params = list(model.parameters())
    optimizer = build_optimizer(RunConfig(optimizer="muon", peak_lr=0.01, weight_decay=0.1), params, model)
    muon, adamw = optimizer.parts
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    layers = model.layers
    assert muon.param_groups[0]["params"] == [layers[0].weight, layers[1].weight]
    assert adamw.param_groups[0]["params"] == [layers[0].bias, layers[1].bias, layers[2].weight, layers[2].bias]
    assert muon.param_groups[0]["adjust_lr_fn"] == "match_rms_adamw"
    assert optimizer.param_groups == muon.param_groups + adamw.param_groups
    assert all((g["lr"], g["weight_decay"]) == (0.01, 0.1) for g in optimizer.param_groups)


def test_muon_holds_out_embeddings_and_a_tied_or_untied_readout() -> None:
    class Tiny(torch.nn.Module):
        def __init__(self, tied: bool) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(5, 4)
            self.hidden = torch.nn.Linear(4, 4)
            self.norm = torch.nn.LayerNorm(4)
            self.head = torch.nn.Linear(4, 5, bias=False)
            if tied:
                self.head.weight = self.embedding.weight

    for tied in (True, False):
        model = Tiny(tied)
        assert hidden_matrices(list(model.parameters()), model) == [model.hidden.weight]
    model = Tiny(False)
    assert len(hidden_matrices(list(model.parameters()))) == 3  # without the model: every matrix


def test_muon_without_hidden_matrices_is_adamw_alone() -> None:
    optimizer = build_optimizer(RunConfig(optimizer="muon"), [torch.nn.Parameter(torch.zeros(3))])
    assert [type(part) for part in optimizer.parts] == [torch.optim.AdamW]


def test_muon_both_parts_follow_the_schedule_and_the_loop_records_it() -> None:
    seen = []

    class Watch:
        def updated(self, run, update) -> None:
            seen.append([g["lr"] for part in run.optimizer.parts for g in part.param_groups])

    config = RunConfig(**TINY, optimizer="muon", peak_lr=0.01, schedule="linear_warmup(10) >> cosine_decay(20)")
    result = train(config, observers=[Watch()])
    assert result.status == "finished", result.error
    expected = [0.01 * m for m in config.resolved_schedule()(range(30))]
    assert result.steps["lr"] == pytest.approx(expected, rel=1e-12, abs=1e-18)
    assert [lrs[0] for lrs in seen] == pytest.approx(expected, rel=1e-12, abs=1e-18)
    assert all(len(lrs) == 2 and lrs[0] == lrs[1] for lrs in seen)
    assert result.evals["val_loss"][-1] < result.evals["val_loss"][0]


def test_muon_state_dict_round_trips_and_keeps_the_parts_linked() -> None:
    model = make_task("digits", {"width": 16}).model(0)
    params = list(model.parameters())
    optimizer = build_optimizer(RunConfig(optimizer="muon"), params, model)
    model(torch.ones(2, 64)).sum().backward()
    optimizer.step()
    saved = optimizer.state_dict()
    assert len(saved["state"]) == len(params)  # both parts' state
    fresh = build_optimizer(RunConfig(optimizer="muon"), params, model)
    fresh.load_state_dict(saved)
    fresh.param_groups[0]["lr"] = 0.5
    assert fresh.parts[0].param_groups[0]["lr"] == 0.5
    assert fresh.parts[0].state is fresh.state and len(fresh.state) == len(params)


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_parameter_free_optimizers_train_at_multiplier_one(name: str) -> None:
    pytest.importorskip(PACKAGES[name])
    result = train(RunConfig(**TINY, optimizer=name, peak_lr=1.0, schedule="linear_warmup(5)"))
    assert result.status == "finished", result.error
    assert result.steps["lr"][:3] == pytest.approx([0.0, 0.2, 0.4])
    assert result.evals["val_loss"][-1] < result.evals["val_loss"][0]


def test_prodigy_is_safeguarded_for_the_warmup() -> None:
    pytest.importorskip("prodigyopt")
    optimizer = build_optimizer(RunConfig(optimizer="prodigy", peak_lr=1.0), [torch.nn.Parameter(torch.zeros(2))])
    assert optimizer.param_groups[0]["safeguard_warmup"] is True


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_a_missing_package_names_the_extra(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def missing(module: str, *args, **kwargs):
        if module == PACKAGES[name]:
            raise ModuleNotFoundError(f"No module named {module!r}")
        return real(module, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'preheat\[peers\]'"):
        build_optimizer(RunConfig(optimizer=name), [torch.nn.Parameter(torch.zeros(2))])
