"""GI-Adam: equal to Adam/AdamW at init_scale=0, the paper's small first step at init_scale=1,
state round-trips, validation, and its place in the lab."""

from __future__ import annotations

import io
import math
import re

import pytest
import torch

from preheat.optim import GIAdam, GIAdamW

BETAS = (0.9, 0.999)


def _mlp(dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)
    ).to(dtype)


def _batch(step: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(8, 5, generator=generator, dtype=dtype)
    y = torch.randn(8, 3, generator=generator, dtype=dtype)
    return x, y


def _train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, dtype: torch.dtype) -> None:
    x, y = _batch(step, dtype)
    optimizer.zero_grad(set_to_none=True)
    torch.nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("ours", "theirs"), [(GIAdam, torch.optim.Adam), (GIAdamW, torch.optim.AdamW)], ids=["adam", "adamw"]
)
def test_init_scale_zero_is_torch_adam_step_for_step(ours, theirs, dtype):
    model_a, model_b = _mlp(dtype), _mlp(dtype)
    kwargs = dict(lr=1e-2, betas=BETAS, eps=1e-8, weight_decay=0.05)
    opt_a = ours(model_a.parameters(), init_scale=0.0, bias_correction2=True, **kwargs)
    opt_b = theirs(model_b.parameters(), foreach=False, **kwargs)
    for step in range(50):
        _train_step(model_a, opt_a, step, dtype)
        _train_step(model_b, opt_b, step, dtype)
        for p, q in zip(model_a.parameters(), model_b.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=0)
    for p, q in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(p, q)  # same operations in the same order: bit for bit
        state_a, state_b = opt_a.state[p], opt_b.state[q]
        assert torch.equal(state_a["exp_avg"], state_b["exp_avg"])
        assert torch.equal(state_a["exp_avg_sq"], state_b["exp_avg_sq"])
        assert state_a["step"].item() == state_b["step"].item() == 50


def _first_update_by_hand(theta, g, lr, beta1, beta2, eps, a, corrected):
    """Update 1 written out: m_0 = 0, v_0 = a g^2, then one Adam step (float64 arithmetic)."""
    m1 = (1 - beta1) * g
    v1 = beta2 * (a * g * g) + (1 - beta2) * g * g
    mhat = m1 / (1 - beta1)
    vhat = v1 / (1 - beta2) if corrected else v1
    return theta - lr * mhat / (torch.sqrt(vhat) + eps)


@pytest.mark.parametrize("corrected", [True, False])
@pytest.mark.parametrize("a", [1.0, 4.0])
def test_first_update_matches_the_formula(a, corrected):
    torch.manual_seed(3)
    theta0 = torch.randn(20, dtype=torch.float64)
    g = torch.randn(20, dtype=torch.float64)
    lr, eps = 0.1, 1e-8
    param = torch.nn.Parameter(theta0.clone())
    optimizer = GIAdam([param], lr=lr, betas=BETAS, eps=eps, init_scale=a, bias_correction2=corrected)
    param.grad = g.clone()
    optimizer.step()
    expected = _first_update_by_hand(theta0, g, lr, *BETAS, eps, a, corrected)
    torch.testing.assert_close(param.detach(), expected, rtol=1e-12, atol=1e-15)
    # the closed form of the docstring: |update| = lr * sqrt(c) with c the v-factor ratio (eps aside)
    factor = (1 - BETAS[1]) / (a * BETAS[1] + 1 - BETAS[1]) if corrected else 1 / (a * BETAS[1] + 1 - BETAS[1])
    torch.testing.assert_close((param.detach() - theta0).abs(), torch.full_like(g, lr * math.sqrt(factor)),
                               rtol=1e-4, atol=0)


def test_second_update_matches_the_formula():
    beta1, beta2 = BETAS
    lr, eps, a = 0.05, 1e-8, 2.0
    g1 = torch.tensor([0.3, -2.0, 1e-3], dtype=torch.float64)
    g2 = torch.tensor([-0.1, 0.5, 4.0], dtype=torch.float64)
    param = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    optimizer = GIAdam([param], lr=lr, betas=BETAS, eps=eps, init_scale=a)
    for g in (g1, g2):
        param.grad = g.clone()
        optimizer.step()
    m = (1 - beta1) * g1
    v = beta2 * a * g1**2 + (1 - beta2) * g1**2
    theta = -lr * (m / (1 - beta1)) / (torch.sqrt(v / (1 - beta2)) + eps)
    m = beta1 * m + (1 - beta1) * g2
    v = beta2 * v + (1 - beta2) * g2**2
    theta = theta - lr * (m / (1 - beta1**2)) / (torch.sqrt(v / (1 - beta2**2)) + eps)
    torch.testing.assert_close(param.detach(), theta, rtol=1e-12, atol=1e-15)


def _first_update_norm(optimizer_class, **kwargs) -> float:
    model = _mlp(torch.float32)
    before = [p.detach().clone() for p in model.parameters()]
    _train_step(model, optimizer_class(model.parameters(), lr=1e-2, **kwargs), 0, torch.float32)
    return math.sqrt(sum(((p.detach() - b) ** 2).sum().item() for p, b in zip(model.parameters(), before)))


def test_first_update_is_much_smaller_than_adams():
    """The paper's point: Adam's first update is lr * sign(g) (norm lr * sqrt(#params)); GI-Adam's
    is sqrt(1 - beta2) of that, a warmup-like start."""
    adam = _first_update_norm(torch.optim.Adam)
    gi = _first_update_norm(GIAdam, init_scale=1.0)
    count = sum(p.numel() for p in _mlp(torch.float32).parameters())
    assert adam == pytest.approx(1e-2 * math.sqrt(count), rel=1e-3)
    assert gi == pytest.approx(adam * math.sqrt(1 - BETAS[1]), rel=1e-3)
    assert gi < adam / 10


def test_implicit_warmup_with_constant_gradient():
    """With a constant gradient and a=1, the update at step t is lr * sqrt(1 - beta2^t)."""
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = GIAdam([param], lr=1.0, betas=BETAS, eps=0.0, init_scale=1.0)
    for t in range(1, 301):
        before = param.detach().clone()
        param.grad = torch.ones(1, dtype=torch.float64)
        optimizer.step()
        assert (before - param.detach()).item() == pytest.approx(math.sqrt(1 - BETAS[1] ** t), rel=1e-9)


def test_tensor_lr_gives_the_same_steps_as_float_lr():
    model_a, model_b = _mlp(torch.float32), _mlp(torch.float32)
    opt_a = GIAdamW(model_a.parameters(), lr=torch.tensor(0.01, dtype=torch.float64))
    opt_b = GIAdamW(model_b.parameters(), lr=0.01)
    for step in range(5):
        _train_step(model_a, opt_a, step, torch.float32)
        _train_step(model_b, opt_b, step, torch.float32)
    for p, q in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("optimizer_class", [GIAdam, GIAdamW])
def test_state_dict_round_trip_mid_run(optimizer_class):
    kwargs = dict(lr=1e-2, weight_decay=0.1, init_scale=2.0)
    model = _mlp(torch.float32)
    optimizer = optimizer_class(model.parameters(), **kwargs)
    for step in range(10):
        _train_step(model, optimizer, step, torch.float32)

    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed_model = _mlp(torch.float32, seed=99)
    resumed_model.load_state_dict(saved["model"])
    resumed = optimizer_class(resumed_model.parameters(), lr=1.0, init_scale=0.0)  # overwritten by load
    resumed.load_state_dict(saved["optimizer"])
    assert resumed.param_groups[0]["init_scale"] == 2.0

    for step in range(10, 15):
        _train_step(model, optimizer, step, torch.float32)
        _train_step(resumed_model, resumed, step, torch.float32)
        for p, q in zip(model.parameters(), resumed_model.parameters()):
            assert torch.equal(p, q)
    for p, q in zip(model.parameters(), resumed_model.parameters()):
        assert optimizer.state[p]["step"].item() == resumed.state[q]["step"].item() == 15


def test_parameters_without_grad_are_skipped_and_initialised_late():
    used = torch.nn.Parameter(torch.ones(3))
    unused = torch.nn.Parameter(torch.ones(3))
    optimizer = GIAdamW([used, unused], lr=0.1, weight_decay=0.5)
    for _ in range(3):
        used.grad = torch.full((3,), 2.0)
        optimizer.step()
    assert torch.equal(unused.detach(), torch.ones(3))  # no update, no weight decay
    assert unused not in optimizer.state
    assert optimizer.state[used]["step"].item() == 3

    unused.grad = torch.full((3,), -5.0)  # its first gradient arrives late: v_0 from it, t = 1
    optimizer.step()
    assert optimizer.state[unused]["step"].item() == 1
    beta2 = BETAS[1]
    torch.testing.assert_close(optimizer.state[unused]["exp_avg_sq"], torch.full((3,), 25.0 * (beta2 + 1 - beta2)))


def test_sparse_gradients_are_rejected():
    embedding = torch.nn.Embedding(10, 4, sparse=True)
    optimizer = GIAdam(embedding.parameters())
    embedding(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse gradients"):
        optimizer.step()


def test_closure_loss_is_returned():
    param = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = GIAdam([param])

    def closure():
        optimizer.zero_grad()
        loss = (param**2).sum()
        loss.backward()
        return loss

    assert optimizer.step(closure).item() == 1.0


BAD_ARGUMENTS = [
    ("lr", -1e-3),
    ("lr", float("nan")),
    ("lr", float("inf")),
    ("lr", torch.tensor([1e-3, 1e-3])),
    ("betas", (0.9,)),
    ("betas[0]", (1.0, 0.999)),
    ("betas[1]", (0.9, -0.1)),
    ("betas[1]", (0.9, float("nan"))),
    ("eps", -1e-8),
    ("weight_decay", -0.1),
    ("weight_decay", float("inf")),
    ("init_scale", -1.0),
    ("init_scale", float("nan")),
    ("init_scale", "1"),
    ("bias_correction2", 1),
]


@pytest.mark.parametrize("optimizer_class", [GIAdam, GIAdamW])
@pytest.mark.parametrize(("name", "value"), BAD_ARGUMENTS, ids=[f"{n}={v!r}" for n, v in BAD_ARGUMENTS])
def test_bad_arguments_raise_naming_argument_value_and_range(optimizer_class, name, value):
    argument = name.split("[")[0]
    with pytest.raises(ValueError, match="^" + re.escape(name) + "=.* is invalid; expected"):
        optimizer_class([torch.nn.Parameter(torch.zeros(1))], **{argument: value})


def test_bad_group_override_raises_and_adds_nothing():
    optimizer = GIAdam([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match="init_scale=-2"):
        optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "init_scale": -2.0})
    assert len(optimizer.param_groups) == 1


def test_lab_trains_with_giadam():
    from preheat.lab.config import RunConfig
    from preheat.lab.optimizers import build_optimizer
    from preheat.lab.run import train

    config = RunConfig(task="digits", optimizer="giadam", steps=30, peak_lr=1e-3)
    assert isinstance(build_optimizer(config, [torch.nn.Parameter(torch.zeros(1))]), GIAdam)
    result = train(config)
    assert result.status == "finished", result.error
    assert len(result.steps["step"]) == 30
    assert all(math.isfinite(loss) for loss in result.steps["train_loss"])
