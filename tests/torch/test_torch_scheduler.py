"""preheat.torch.Scheduler: the step convention, per-group schedules, tensors, hyperparameters,
errors, and the state dict."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys

import pytest
import torch

from preheat.schedules import (
    Schedule,
    constant,
    cosine_decay,
    from_hf_name,
    linear_decay,
    linear_warmup,
    warmup_cosine,
    warmup_linear,
)
from preheat.torch import Scheduler

W, T, PEAK = 2, 10, 10.0
# Hugging Face's documented numbers (truncated to 2 decimals) for warmup 2, total 10, peak 10.
HF_LINEAR = [0, 5, 10, 8.75, 7.5, 6.25, 5.0, 3.75, 2.5, 1.25]
HF_COSINE = [0, 5, 10, 9.61, 8.53, 6.91, 5.0, 3.08, 1.46, 0.38]


def linear_formula(t: int) -> float:
    return PEAK * (t / W if t < W else max(0.0, (T - t) / (T - W)))


def cosine_formula(t: int) -> float:
    return PEAK * (t / W if t < W else 0.5 * (1.0 + math.cos(math.pi * min(t - W, T - W) / (T - W))))


def sgd(*lrs: float, **kwargs: float) -> torch.optim.SGD:
    groups = [{"params": [torch.nn.Parameter(torch.ones(2))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, **kwargs)


def train_lrs(optimizer: torch.optim.Optimizer, scheduler: Scheduler, steps: int) -> list[list[float]]:
    """Each group's LR read before every update of a plain loop (optimizer.step, scheduler.step)."""
    seen = []
    for _ in range(steps):
        seen.append([group["lr"] for group in optimizer.param_groups])
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = torch.ones_like(p)
        optimizer.step()
        scheduler.step()
    return seen


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("schedule", "formula", "listed"),
    [
        (from_hf_name("linear", W, T), linear_formula, HF_LINEAR),
        (warmup_linear(W, T), linear_formula, HF_LINEAR),
        (from_hf_name("cosine", W, T), cosine_formula, HF_COSINE),
        (warmup_cosine(W, T), cosine_formula, HF_COSINE),
    ],
    ids=["hf-linear", "warmup_linear", "hf-cosine", "warmup_cosine"],
)
def test_hugging_face_numbers(schedule: Schedule, formula, listed: list[float]) -> None:
    optimizer = sgd(PEAK)
    seen = [lrs[0] for lrs in train_lrs(optimizer, Scheduler(optimizer, schedule), T + 5)]
    assert seen[:T] == pytest.approx([formula(t) for t in range(T)], rel=1e-12, abs=1e-12)
    assert seen[:T] == pytest.approx(listed, abs=0.01)
    # After the schedule's last step (update T) the final value holds.
    assert seen[T:] == [seen[T]] * 5 and seen[T] == pytest.approx(0.0, abs=1e-12)


def test_step_convention_and_get_last_lr() -> None:
    schedule = warmup_cosine(3, 8, start=0.1, end=0.2)
    optimizer = sgd(0.5)
    scheduler = Scheduler(optimizer, schedule)
    assert scheduler.last_epoch == 0
    assert optimizer.param_groups[0]["lr"] == 0.5 * schedule(0) == 0.05
    for k in range(1, 12):
        optimizer.step()
        scheduler.step()
        assert scheduler.last_epoch == k
        assert optimizer.param_groups[0]["lr"] == 0.5 * schedule(k)
        assert scheduler.get_last_lr() == [0.5 * schedule(k)] == scheduler.get_lr()
    assert optimizer.param_groups[0]["initial_lr"] == 0.5
    assert scheduler.base_lrs == [0.5]


def test_per_group_schedules() -> None:
    schedules = [warmup_linear(2, 6), constant(value=0.5), cosine_decay(4)]
    optimizer = sgd(1.0, 0.1, 0.01)
    seen = train_lrs(optimizer, Scheduler(optimizer, schedules), 8)
    peaks = [1.0, 0.1, 0.01]
    assert seen == [[p * s(k) for p, s in zip(peaks, schedules)] for k in range(8)]


def test_one_schedule_is_shared_by_all_groups() -> None:
    optimizer = sgd(1.0, 2.0)
    scheduler = Scheduler(optimizer, linear_warmup(4))
    assert train_lrs(optimizer, scheduler, 5) == [[k / 4, 2 * k / 4] for k in range(5)]


def test_tensor_lr_is_updated_in_place() -> None:
    lr = torch.tensor(0.01)
    betas = (torch.tensor(0.9), torch.tensor(0.999))
    beta2 = betas[1]
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([param], lr=lr, betas=betas, foreach=False)
    schedule = warmup_linear(2, 6)
    scheduler = Scheduler(optimizer, schedule, hyperparams={"beta2": linear_decay(6, end=0.9)})
    for k in range(8):
        group = optimizer.param_groups[0]
        assert group["lr"] is lr and group["betas"][1] is beta2 and group["betas"][0] is betas[0]
        assert lr.item() == pytest.approx(0.01 * schedule(k), rel=1e-6, abs=1e-9)
        assert beta2.item() == pytest.approx(0.999 * (1 - 0.1 * min(k, 6) / 6), rel=1e-6)
        last = scheduler.get_last_lr()[0]
        assert isinstance(last, torch.Tensor) and last is not lr and torch.equal(last, lr)
        param.grad = torch.ones(3)
        optimizer.step()
        scheduler.step()
    # The peak was copied, not aliased: it is still the LR the optimizer was built with.
    assert optimizer.param_groups[0]["initial_lr"].item() == pytest.approx(0.01)
    assert optimizer.param_groups[0]["initial_lr"] is not lr


def test_hyperparams_weight_decay_and_beta2() -> None:
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([param], lr=1e-3, weight_decay=0.1, betas=(0.9, 0.999))
    wd_schedule, beta2_schedule = cosine_decay(5, end=0.1), linear_warmup(4, start=0.95)
    scheduler = Scheduler(
        optimizer, constant(), hyperparams={"weight_decay": wd_schedule, "beta2": beta2_schedule}
    )
    group = optimizer.param_groups[0]
    assert (group["initial_weight_decay"], group["initial_beta2"]) == (0.1, 0.999)
    for k in range(8):
        assert group["weight_decay"] == 0.1 * wd_schedule(k)
        assert group["betas"] == (0.9, 0.999 * beta2_schedule(k))
        assert isinstance(group["betas"], tuple)
        param.grad = torch.ones(3)
        optimizer.step()
        scheduler.step()
        group = optimizer.param_groups[0]
    assert scheduler.initial_values == {"weight_decay": [0.1], "beta2": [0.999]}


def test_hyperparams_momentum_per_group() -> None:
    optimizer = sgd(0.1, 0.2, momentum=0.9)
    momentum = [linear_decay(4, end=0.5), constant()]
    scheduler = Scheduler(optimizer, constant(), hyperparams={"momentum": momentum})
    for k in range(6):
        assert [g["momentum"] for g in optimizer.param_groups] == [0.9 * momentum[0](k), 0.9]
        optimizer.step()
        scheduler.step()


def test_epoch_argument_is_refused() -> None:
    optimizer = sgd(0.1)
    scheduler = Scheduler(optimizer, constant())
    optimizer.step()
    with pytest.raises(ValueError, match=r"epoch=3 is not supported"):
        scheduler.step(3)


BAD_ARGUMENTS = [
    ({"schedule": [constant()]}, r"schedule=\[constant\(\)\] is invalid; expected a preheat Schedule or a list of 2"),
    ({"schedule": [constant()] * 3}, r"schedule=.* list of 2 Schedules, one per param group"),
    ({"schedule": lambda t: 1.0}, r"schedule=<function .* is invalid; expected a preheat Schedule"),
    ({"schedule": "warmup_cosine(2, 10)"}, r"schedule='warmup_cosine\(2, 10\)' is invalid"),
    ({"hyperparams": {"gamma": constant()}}, r"'gamma' is unknown; expected one of weight_decay, momentum, beta1, beta2"),
    ({"hyperparams": {"lr": constant()}}, r"'lr' is unknown; .* scheduled by `schedule`"),
    (
        {"hyperparams": {"beta2": constant()}},
        r"'beta2' is invalid for SGD: param_groups\[0\] has no 'betas'; expected one of weight_decay, momentum",
    ),
    ({"hyperparams": {"momentum": [constant()]}}, r"hyperparams\['momentum'\]=\[constant\(\)\] is invalid; .* list of 2"),
    ({"hyperparams": [("momentum", constant())]}, r"hyperparams=\[.*\] is invalid; expected a mapping"),
    ({"last_epoch": -2}, r"last_epoch=-2 is invalid; expected an integer >= -1"),
    ({"last_epoch": 3}, r"last_epoch=3 resumes a run, but param_groups\[0\] has no 'initial_lr'"),
]


@pytest.mark.parametrize(("kwargs", "match"), BAD_ARGUMENTS)
def test_bad_arguments_raise(kwargs: dict, match: str) -> None:
    optimizer = sgd(0.1, 0.2, momentum=0.9)
    kwargs = {"schedule": constant(), **kwargs}
    with pytest.raises(ValueError, match=match):
        Scheduler(optimizer, kwargs.pop("schedule"), **kwargs)


def test_bad_optimizer_raises() -> None:
    with pytest.raises(ValueError, match=r"optimizer='adam' is invalid; expected a torch.optim.Optimizer"):
        Scheduler("adam", constant())  # type: ignore[arg-type]


def test_group_added_after_construction_raises() -> None:
    optimizer = sgd(0.1)
    scheduler = Scheduler(optimizer, constant())
    optimizer.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))], "lr": 0.2})
    optimizer.step()
    with pytest.raises(ValueError, match=r"has 2 param groups, but the scheduler was built for 1"):
        scheduler.step()


def test_last_epoch_continues_after_that_step() -> None:
    schedule = warmup_linear(4, 10)
    optimizer = sgd(1.0)
    Scheduler(optimizer, schedule)  # stores initial_lr in the group
    optimizer.param_groups[0]["lr"] = 123.0  # whatever the optimizer holds is ignored
    scheduler = Scheduler(optimizer, schedule, last_epoch=3)
    assert scheduler.last_epoch == 4 and optimizer.param_groups[0]["lr"] == schedule(4)


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _scheduled_adamw(schedule: Schedule, lr: float = 1e-2) -> tuple[torch.optim.AdamW, Scheduler]:
    params = [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))]
    optimizer = torch.optim.AdamW(
        [{"params": params[:1]}, {"params": params[1:], "lr": lr / 10, "weight_decay": 0.0}],
        lr=lr,
        weight_decay=0.1,
    )
    scheduler = Scheduler(
        optimizer,
        [schedule, constant()],
        hyperparams={"weight_decay": cosine_decay(6), "beta2": linear_warmup(5, start=0.99)},
    )
    return optimizer, scheduler


def test_state_dict_is_plain_data_and_round_trips() -> None:
    optimizer, scheduler = _scheduled_adamw(warmup_cosine(3, 12))
    train_lrs(optimizer, scheduler, 4)
    state = scheduler.state_dict()
    assert not any(callable(leaf) for leaf in _leaves(state))
    assert json.loads(json.dumps(state)) == state
    assert state["last_epoch"] == 4 and state["base_lrs"] == [1e-2, 1e-3]
    assert state["schedules"][0] == warmup_cosine(3, 12).to_dict()
    assert state["initial_values"] == {"weight_decay": [0.1, 0.0], "beta2": [0.999, 0.999]}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True) == state


@pytest.mark.parametrize("through_json", [False, True])
def test_load_state_dict_mid_run_restores_the_sequence(through_json: bool) -> None:
    schedule = warmup_cosine(3, 12, start=0.1)
    optimizer, scheduler = _scheduled_adamw(schedule)
    train_lrs(optimizer, scheduler, 5)
    state = scheduler.state_dict()
    if through_json:
        state = json.loads(json.dumps(state))
    expected_groups = [dict(g, params=None) for g in optimizer.param_groups]
    expected = train_lrs(optimizer, scheduler, 10)

    # A fresh optimizer built with other LRs and a scheduler with another schedule and no
    # hyperparams: the checkpoint's schedules, peaks and initial values win.
    fresh = torch.optim.AdamW(
        [{"params": [torch.nn.Parameter(torch.ones(2))]} for _ in range(2)], lr=5.0, weight_decay=0.5
    )
    resumed = Scheduler(fresh, linear_decay(3))
    resumed.load_state_dict(state)
    for group, want in zip(fresh.param_groups, expected_groups):
        for key in ("lr", "weight_decay", "betas", "initial_lr", "initial_weight_decay", "initial_beta2"):
            assert group[key] == want[key], key
    assert resumed.last_epoch == 5 and resumed.get_last_lr() == expected[0]
    assert train_lrs(fresh, resumed, 10) == expected
    assert resumed.state_dict() == scheduler.state_dict()


def test_load_state_dict_rejects_a_mismatch() -> None:
    optimizer, scheduler = _scheduled_adamw(constant())
    state = scheduler.state_dict()
    other = sgd(0.1)
    with pytest.raises(ValueError, match=r"state_dict schedules has 2 entries; expected 1, one per param group"):
        Scheduler(other, constant()).load_state_dict(state)
    with pytest.raises(ValueError, match=r"state_dict lacks \['_step_count'\]"):
        scheduler.load_state_dict({k: v for k, v in state.items() if k != "_step_count"})
    with pytest.raises(ValueError, match=r"'beta2' is invalid for SGD"):
        Scheduler(sgd(0.1, 0.1), constant()).load_state_dict(state)


def test_importing_schedules_does_not_import_torch() -> None:
    code = "import sys, preheat, preheat.schedules; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lrs_are_exact_across_evaluation_blocks_and_after_a_resume() -> None:
    # The scheduler evaluates schedules in blocks of steps; every LR must still be exactly
    # peak * schedule(step), including across block edges and after load_state_dict mid-block.
    from preheat.schedules import wsd
    from preheat.torch.scheduler import BLOCK

    schedule = wsd(37, 3 * BLOCK + 11, shape="1-sqrt", end=0.05)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.3)
    scheduler = Scheduler(optimizer, schedule)
    seen = []
    for _ in range(3 * BLOCK + 20):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == [0.3 * schedule(k) for k in range(len(seen))]

    middle = BLOCK + 5
    fresh_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.3)
    resumed = Scheduler(fresh_optimizer, schedule)
    resumed.load_state_dict({**scheduler.state_dict(), "last_epoch": middle, "_step_count": middle + 1})
    assert fresh_optimizer.param_groups[0]["lr"] == seen[middle]
