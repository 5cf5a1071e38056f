"""``Scheduler.prepare``: a controller's measurements before update 0, made by the scheduler.

The catapult LR is checked against ``catapult_search`` called directly, and the ramp it sets
against the rule written out here: 5 % of the run with SGD where the peak is below twice it,
40 % otherwise; update 0 then gets ``peak / W``.
"""

from __future__ import annotations

import pytest
import torch

import preheat
from preheat.adaptive import CatapultWarmup
from preheat.probes import catapult_search
from preheat.torch import Scheduler
from preheat.torch import prepare as before_training

TOTAL = 400


def problem(seed: int = 0) -> tuple[torch.nn.Module, object, tuple[torch.Tensor, torch.Tensor]]:
    """A linear regression: model, ``loss_fn(model, batch)`` and one batch."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(8, 1)
    x = torch.randn(64, 8)
    batch = (x, x @ torch.randn(8, 1) + 0.1 * torch.randn(64, 1))

    def loss_fn(net: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.mse_loss(net(data[0]), data[1])
    return model, loss_fn, batch


def eta_c(model: torch.nn.Module, loss_fn, batch, peak: float, kind: str = "sgd") -> float:
    return catapult_search(model, loss_fn, batch, eta0=peak * 1e-3, target_lr=peak, kind=kind).lr


@pytest.mark.parametrize("times, ramp", [(0.5, 0.05), (1.9, 0.05), (10.0, 0.4)])
def test_with_sgd_the_catapult_lr_sets_auto_warmups_ramp_and_update_0s_lr(times: float, ramp: float) -> None:
    model, loss_fn, batch = problem()
    uncapped = eta_c(model, loss_fn, batch, 100.0)
    peak = times * uncapped
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=peak, momentum=0.9)
    scheduler = Scheduler(optimizer, preheat.auto_warmup(total=TOTAL))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(peak / (0.4 * TOTAL))  # unprepared: 40 %
    found = scheduler.prepare(model, loss_fn, batch)
    assert found == {"catapult_lr": eta_c(model, loss_fn, batch, peak)}  # capped at the peak below it
    assert found["catapult_lr"] == (peak if times < 1 else pytest.approx(uncapped, rel=1e-2))
    assert scheduler.controller.ramp == ramp
    assert optimizer.param_groups[0]["lr"] == pytest.approx(peak / round(ramp * TOTAL))
    assert scheduler.get_last_lr() == [optimizer.param_groups[0]["lr"]]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the probe moved nothing


def test_the_prepared_scheduler_resumes_with_its_ramp() -> None:
    model, loss_fn, batch = problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5 * eta_c(model, loss_fn, batch, 100.0))
    scheduler = Scheduler(optimizer, preheat.auto_warmup(total=TOTAL))
    scheduler.prepare(model, loss_fn, batch)
    for _ in range(5):
        optimizer.step()
        scheduler.step(loss=1.0, grad_norm=1.0)
    fresh = Scheduler(torch.optim.SGD(model.parameters(), lr=optimizer.param_groups[0]["initial_lr"]),
                      preheat.auto_warmup(total=TOTAL))
    fresh.load_state_dict(scheduler.state_dict())
    assert fresh.controller.ramp == 0.05 and fresh.get_last_lr() == scheduler.get_last_lr()


def test_a_controller_that_needs_nothing_runs_nothing() -> None:
    def never(net, data):
        raise AssertionError("nothing is measured for the Adam family")
    model, _, batch = problem()
    scheduler = Scheduler(torch.optim.AdamW(model.parameters(), lr=1e-2), preheat.auto_warmup(total=TOTAL))
    assert scheduler.prepare(model, never, batch) == {}
    assert scheduler.controller.ramp == 0.4


def test_adams_first_step_is_the_default_for_adam() -> None:
    model, loss_fn, batch = problem()
    peak = 10.0
    scheduler = Scheduler(torch.optim.Adam(model.parameters(), lr=peak), CatapultWarmup(total=TOTAL, steps=40))
    found = scheduler.prepare(model, loss_fn, batch)
    assert found == {"catapult_lr": eta_c(model, loss_fn, batch, peak, kind="adam")}
    assert found != {"catapult_lr": eta_c(model, loss_fn, batch, peak, kind="sgd")}
    assert scheduler.get_last_lr() == [pytest.approx(found["catapult_lr"])]  # the catapult warmup starts there


def test_misuse_is_refused_by_name_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    model, loss_fn, batch = problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="Scheduler.prepare: this scheduler drives a schedule"):
        Scheduler(optimizer, preheat.linear_warmup(10)).prepare(model, loss_fn, batch)
    scheduler = Scheduler(optimizer, preheat.auto_warmup(total=TOTAL))
    with pytest.raises(ValueError, match=r"Scheduler.prepare: kind='rmsprop' is invalid; expected one of 'sgd', 'adam'"):
        scheduler.prepare(model, loss_fn, batch, kind="rmsprop")
    monkeypatch.setattr(type(scheduler.controller), "prepare_needs", ("catapult_lr", "initial_norm"))
    with pytest.raises(ValueError, match=r"needs \['initial_norm'\] before training; what is measured before "
                                         "update 0: catapult_lr"):
        scheduler.prepare(model, loss_fn, batch)
    assert scheduler.controller.state.catapult_lr is None and optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / 160)
    monkeypatch.undo()
    optimizer.step()
    scheduler.step(loss=1.0)
    with pytest.raises(ValueError, match=r"Scheduler.prepare: called after 1 step\(s\)"):
        scheduler.prepare(model, loss_fn, batch)


def test_a_new_measurement_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    model, loss_fn, batch = problem()
    seen = []
    monkeypatch.setitem(before_training.BEFORE_TRAINING, "catapult_lr",
                        lambda before: seen.append(before) or 0.5 * before.peak_lr)
    scheduler = Scheduler(torch.optim.SGD(model.parameters(), lr=0.2), preheat.auto_warmup(total=TOTAL))
    assert scheduler.prepare(model, loss_fn, batch) == {"catapult_lr": 0.1}
    assert [(b.model, b.batch, b.peak_lr, b.kind) for b in seen] == [(model, batch, 0.2, "sgd")]
    assert scheduler.controller.ramp == 0.4  # 0.2 / 0.1 = 2: not below twice the catapult LR
