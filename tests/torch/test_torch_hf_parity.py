"""``Scheduler(opt, from_hf_name(...))`` gives the LRs of Hugging Face's own ``get_scheduler``."""

from __future__ import annotations

import pytest
import torch

from preheat.schedules import HF_NAMES, from_hf_name
from preheat.torch import Scheduler

transformers = pytest.importorskip("transformers")

W, T, PEAK = 3, 17, 0.5

# Per name: scheduler_specific_kwargs for Hugging Face; from_hf_name gets the same plus peak=
# where HF reads an absolute LR from the optimizer.
CASES = {
    "linear": [{}],
    "cosine": [{}, {"num_cycles": 0.3}],
    "cosine_with_restarts": [{}, {"num_cycles": 3}],
    "polynomial": [{}, {"lr_end": 1e-3, "power": 2.0}],
    "constant": [{}],
    "constant_with_warmup": [{}],
    "inverse_sqrt": [{}, {"timescale": 7}],
    "cosine_with_min_lr": [{"min_lr_rate": 0.1}, {"min_lr": 0.05, "num_cycles": 0.7}],
    "warmup_stable_decay": [
        {"num_decay_steps": 5, "min_lr_ratio": 0.1, "warmup_type": warmup, "decay_type": decay}
        for warmup in ("linear", "cosine")
        for decay in ("linear", "cosine", "1-sqrt")
    ],
}
NEEDS_PEAK = {"polynomial", "cosine_with_min_lr"}


def hf_and_preheat_lrs(name: str, kwargs: dict, steps: int) -> tuple[list[float], list[float]]:
    def optimizer() -> torch.optim.Optimizer:
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=PEAK)

    hf_opt, opt = optimizer(), optimizer()
    hf = transformers.get_scheduler(name, hf_opt, W, T, scheduler_specific_kwargs=dict(kwargs))
    peak = {"peak": PEAK} if name in NEEDS_PEAK else {}
    ours = Scheduler(opt, from_hf_name(name, W, T, **kwargs, **peak))
    hf_lrs, lrs = [], []
    for _ in range(steps):
        hf_lrs.append(hf_opt.param_groups[0]["lr"])
        lrs.append(opt.param_groups[0]["lr"])
        hf_opt.step()
        opt.step()
        hf.step()
        ours.step()
    return hf_lrs, lrs


def test_every_hf_name_has_a_case() -> None:
    assert set(CASES) == set(HF_NAMES)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [(name, kwargs) for name in HF_NAMES for kwargs in CASES[name]],
    ids=[f"{name}-{i}" for name in HF_NAMES for i in range(len(CASES[name]))],
)
def test_matches_hugging_face_get_scheduler(name: str, kwargs: dict) -> None:
    hf_lrs, lrs = hf_and_preheat_lrs(name, kwargs, T + 1)  # steps 0..T
    assert lrs == pytest.approx(hf_lrs, rel=1e-12, abs=1e-15)


def test_wsd_num_cycles_matches_hugging_face_at_the_last_step() -> None:
    kwargs = {"num_decay_steps": 5, "min_lr_ratio": 0.1, "num_cycles": 1.0}
    hf_lrs, lrs = hf_and_preheat_lrs("warmup_stable_decay", kwargs, T + 1)
    assert lrs == pytest.approx(hf_lrs, rel=1e-12, abs=1e-15)
