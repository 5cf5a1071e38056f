"""``advise``: the probes read into a peak LR, a stable range and a warmup, within a budget, with
the model and optimizer left as they were."""

from __future__ import annotations

import json
import math

import pytest
import torch

import preheat
from preheat.probes import advise
from preheat.probes.advise import MIN_RANGE_UPDATES, SGD_SHARE, WARMUP_FRACTION


def regression(seed: int = 0, scale: float = 1.0):
    """A linear least-squares problem: model, loss_fn and an endless list of batches."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 8, generator=g) * scale
    y = x @ torch.randn(8, 1, generator=g) + 0.1 * torch.randn(256, 1, generator=g)
    torch.manual_seed(seed)
    model = torch.nn.Linear(8, 1)

    def loss_fn(m, batch):
        return torch.nn.functional.mse_loss(m(batch[0]), batch[1])

    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]
    return model, loss_fn, batches


def test_advice_is_a_peak_inside_its_stable_range_and_a_schedule_for_the_run():
    model, loss_fn, batches = regression()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    advice = advise(model, loss_fn, batches, optimizer, total=2000, budget=100)
    low, high = advice.stable_range
    assert low is not None and low <= advice.peak_lr
    assert high is None or advice.peak_lr < high
    assert advice.critical_lr is not None and advice.catapult.status == "bracketed"
    resolved = preheat.parse(advice.schedule).resolve(total=2000)
    warmup = round(WARMUP_FRACTION * 2000)
    assert resolved(warmup) == 1.0 and resolved(warmup - 1) < 1.0 and resolved(1999) > 0.0
    high_share = advice.peak_lr / high  # SGD: half the top of the stable range
    assert high_share == pytest.approx(SGD_SHARE)
    assert advice.cost <= 100 and len(advice.range_test.lrs) <= 100


def test_adam_takes_the_valley_and_every_advice_warms_up_over_20_percent():
    model, loss_fn, batches = regression()
    advice = advise(model, loss_fn, batches, torch.optim.AdamW(model.parameters(), lr=1e-3), total=2000,
                    budget=100)
    assert advice.peak_lr == advice.range_test.suggestions["valley"]
    assert advice.schedule == "linear_warmup('20%') >> cosine_decay('80%')"
    assert advice.catapult.kind == "adam"


def test_the_model_and_the_optimizer_are_left_as_they_were():
    model, loss_fn, batches = regression()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    before = [p.detach().clone() for p in model.parameters()]
    state = optimizer.state_dict()
    advise(model, loss_fn, batches, optimizer, total=1000, budget=40)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert optimizer.param_groups[0]["lr"] == 3e-4 and optimizer.state_dict()["state"] == state["state"]


def test_a_budget_too_small_for_a_range_test_is_raised_and_said():
    model, loss_fn, batches = regression()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    advice = advise(model, loss_fn, batches, optimizer, total=500)  # 2 % of 500: 10 updates
    assert advice.budget == 10
    assert len(advice.range_test.lrs) <= MIN_RANGE_UPDATES
    assert any(f"fewer than {MIN_RANGE_UPDATES}" in line and f"it ran {MIN_RANGE_UPDATES}" in line
               for line in advice.evidence)


def test_the_default_budget_is_two_percent_of_the_run():
    model, loss_fn, batches = regression()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    advice = advise(model, loss_fn, batches, optimizer, total=5000)
    assert advice.budget == 100 and advice.cost <= 100


def test_a_time_limit_stops_the_range_test():
    model, loss_fn, batches = regression()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"\(1 updates, stopped: batches_exhausted\)"):
        advise(model, loss_fn, batches, optimizer, total=10**6, budget=5000, time_limit=1e-9)


def test_an_optimizer_of_another_kind_gets_no_catapult_search_and_says_so():
    model, loss_fn, batches = regression()
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.1)
    advice = advise(model, loss_fn, batches, optimizer, total=3000, budget=60)
    assert advice.catapult is None and advice.critical_lr is None
    assert "No catapult search: the optimizer (Adagrad)" in advice.evidence[0]
    percent = round(100 * WARMUP_FRACTION)
    assert advice.schedule == f"linear_warmup('{percent}%') >> cosine_decay('{100 - percent}%')"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"total": 0}, "total=0 is invalid"),
    ({"total": 100, "budget": "lots"}, "budget='lots' is invalid"),
    ({"total": 100, "budget": 0}, "budget=0 is invalid"),
    ({"total": 100, "time_limit": -1}, "time_limit=-1 is invalid"),
])
def test_bad_arguments_are_named(kwargs, message):
    model, loss_fn, batches = regression()
    with pytest.raises(ValueError, match=message):
        advise(model, loss_fn, batches, torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)


def test_a_loss_that_never_falls_has_no_advice():
    model, _, batches = regression()

    def flat(m, batch):
        return (m(batch[0]) * 0).sum() + 1.0

    with pytest.raises(ValueError, match="the range test's loss never fell"):
        advise(model, flat, batches, torch.optim.SGD(model.parameters(), lr=0.1), total=1000, budget=40)


def test_the_record_and_the_figure(tmp_path):
    model, loss_fn, batches = regression()
    advice = advise(model, loss_fn, batches, torch.optim.SGD(model.parameters(), lr=0.1), total=1000, budget=40)
    record, figure = advice.save(tmp_path / "advice")
    data = json.loads(record.read_text())
    assert data["peak_lr"] == advice.peak_lr and data["schedule"] == advice.schedule
    assert len(data["range_test"]["lrs"]) == len(advice.range_test.lrs)
    assert data["catapult"]["lr"] == advice.critical_lr
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"lr={advice.peak_lr:.3g}" in advice.huggingface() and advice.schedule in advice.huggingface()
    assert '"interval": "step"' in advice.lightning()
    assert math.isfinite(advice.seconds)


def test_the_curvature_is_the_hessians_top_eigenvalue_against_sgds_threshold():
    model, loss_fn, batches = regression()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    advice = advise(model, loss_fn, batches, optimizer, total=5000)  # 100 updates: room for it
    value, coefficient, kind = advice.curvature
    x = torch.cat([batches[0][0], torch.ones(32, 1)], dim=1).double()  # the weights and the bias
    exact = float(torch.linalg.eigvalsh(2 * x.T @ x / 32)[-1])  # Hessian of the mean squared error
    assert value == pytest.approx(exact, rel=1e-3)
    assert (coefficient, kind) == (pytest.approx(3.8), "sgd")
    assert any("Curvature at init: sharpness" in line for line in advice.evidence)


def test_no_room_in_the_budget_means_no_curvature_and_it_says_so():
    model, loss_fn, batches = regression()
    advice = advise(model, loss_fn, batches, torch.optim.AdamW(model.parameters(), lr=1e-3), total=1000)
    assert advice.curvature is None
    assert any("No curvature measurement" in line for line in advice.evidence)
