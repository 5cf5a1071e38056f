"""Probes against exact answers: quadratics, an MLP's explicit Hessian, Adam's first step."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from preheat.probes import (
    adam_preconditioner,
    catapult_search,
    critical_sharpness,
    lr_range_test,
    sharpness,
)

DTYPE = torch.float64


class Point(nn.Module):
    """The parameter is a point ``x``; the batch is the matrix ``A`` of ``L = 1/2 x^T A x``."""

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.x = nn.Parameter(x.clone().to(DTYPE))


def quadratic(model: Point, A: torch.Tensor) -> torch.Tensor:
    return 0.5 * model.x @ A @ model.x


def spd(n: int, seed: int, eigenvalues: np.ndarray | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """A random symmetric matrix (SPD unless ``eigenvalues`` says otherwise) and its eigenvectors."""
    rng = np.random.default_rng(seed)
    if eigenvalues is None:
        eigenvalues = rng.uniform(0.1, 10.0, n)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    matrix = q @ np.diag(eigenvalues) @ q.T
    matrix = 0.5 * (matrix + matrix.T)
    return torch.tensor(matrix, dtype=DTYPE), q[:, np.argsort(eigenvalues)]


def mlp(seed: int = 0, batchnorm: bool = False) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """A 4-6-2 tanh MLP (44 parameters; 56 with BatchNorm) in float64, and a fixed batch."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(4, 6)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(6))
    layers += [nn.Tanh(), nn.Linear(6, 2)]
    model = nn.Sequential(*layers).to(DTYPE)
    generator = torch.Generator().manual_seed(seed + 100)
    x = torch.randn(16, 4, generator=generator, dtype=DTYPE)
    y = torch.randn(16, 2, generator=generator, dtype=DTYPE)
    return model, (x, y)


def mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def explicit_hessian(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> np.ndarray:
    """The Hessian of ``mse`` over the flattened trainable parameters, by autograd.functional."""
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    params = [p.detach() for p in model.parameters() if p.requires_grad]
    flat = torch.cat([p.reshape(-1) for p in params])

    def loss_of(vector: torch.Tensor) -> torch.Tensor:
        pieces, offset = {}, 0
        for name, p in zip(names, params):
            pieces[name] = vector[offset : offset + p.numel()].view(p.shape)
            offset += p.numel()
        x, y = batch
        return ((torch.func.functional_call(model, pieces, (x,)) - y) ** 2).mean()

    return torch.autograd.functional.hessian(loss_of, flat).numpy()


def relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


# -- sharpness -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["lanczos", "power"])
@pytest.mark.parametrize("seed", range(4))
def test_sharpness_of_random_spd_quadratic(method: str, seed: int) -> None:
    A, _ = spd(12, seed)
    model = Point(torch.randn(12, generator=torch.Generator().manual_seed(seed), dtype=DTYPE))
    tol = 1e-9 if method == "lanczos" else 1e-6  # power converges slowly when lambda_2 ~ lambda_1
    result = sharpness(model, quadratic, A, method=method, iters=20000, tol=tol)
    exact = np.linalg.eigvalsh(A.numpy())[-1]
    assert result.converged
    assert relative(result.value, exact) < 1e-4
    assert result.hvp_count >= result.iterations >= 1
    assert result.vector.shape == (12,)
    assert math.isclose(float(result.vector.norm()), 1.0, rel_tol=1e-9)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_sharpness_is_largest_algebraic_not_largest_magnitude(method: str) -> None:
    A, _ = spd(6, 7, eigenvalues=np.array([-8.0, -3.0, -0.5, 1.0, 2.0, 3.0]))
    model = Point(torch.ones(6))
    result = sharpness(model, quadratic, A, method=method, iters=5000, tol=1e-10)
    assert relative(result.value, 3.0) < 1e-4


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_sharpness_of_mlp_matches_explicit_hessian(method: str) -> None:
    model, batch = mlp()
    exact = np.linalg.eigvalsh(explicit_hessian(model, batch))[-1]
    iters = 44 if method == "lanczos" else 20000
    result = sharpness(model, mse, batch, method=method, iters=iters, tol=1e-9)
    assert relative(result.value, exact) < 1e-4


def test_lanczos_default_budget_is_accurate_on_mlp() -> None:
    model, batch = mlp(seed=3)
    exact = np.linalg.eigvalsh(explicit_hessian(model, batch))[-1]
    result = sharpness(model, mse, batch)  # iters=20, tol=1e-4
    assert result.hvp_count <= 20
    assert relative(result.value, exact) < 1e-4


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_warm_start_reduces_iterations(method: str) -> None:
    model, batch = mlp(seed=1)
    iters = 200 if method == "lanczos" else 20000
    before = sharpness(model, mse, batch, method=method, iters=iters, tol=1e-6)
    with torch.no_grad():  # a small training-like move of the parameters
        for p in model.parameters():
            p.add_(1e-3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(5), dtype=DTYPE))
    cold = sharpness(model, mse, batch, method=method, iters=iters, tol=1e-6, seed=1)
    warm = sharpness(model, mse, batch, method=method, iters=iters, tol=1e-6, init=before.vector)
    assert cold.converged and warm.converged
    assert warm.iterations < cold.iterations
    assert relative(warm.value, cold.value) < 1e-6
    again = sharpness(model, mse, batch, method=method, iters=iters, tol=1e-6, init=warm.vector)
    assert again.iterations <= 2


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_preconditioned_sharpness_matches_explicit(method: str) -> None:
    model, batch = mlp(seed=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.9, 0.99), eps=1e-6)
    for _ in range(5):
        optimizer.zero_grad()
        mse(model, batch).backward()
        optimizer.step()
    P = adam_preconditioner(optimizer, model)
    # P exactly as documented, from the raw state
    for p, precond in zip(model.parameters(), P):
        state = optimizer.state[p]
        t = float(state["step"])
        expected = (torch.sqrt(state["exp_avg_sq"] / (1 - 0.99**t)) + 1e-6) * (1 - 0.9**t)
        torch.testing.assert_close(precond, expected, rtol=1e-12, atol=0.0)
    d = torch.cat([p.reshape(-1) for p in P]).numpy()
    hessian = explicit_hessian(model, batch)
    exact = np.linalg.eigvalsh(hessian / np.sqrt(np.outer(d, d)))[-1]
    iters = 44 if method == "lanczos" else 50000
    result = sharpness(model, mse, batch, method=method, iters=iters, tol=1e-9, preconditioner=P)
    assert relative(result.value, exact) < 1e-4
    # and it is the top eigenvalue of P^{-1} H too
    assert relative(result.value, float(np.max(np.linalg.eigvals(hessian / d[:, None]).real))) < 1e-4


def test_adam_preconditioner_amsgrad_and_errors() -> None:
    model, batch = mlp()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, amsgrad=True)
    with pytest.raises(ValueError, match="at least one step"):
        adam_preconditioner(optimizer)
    for _ in range(3):
        optimizer.zero_grad()
        mse(model, batch).backward()
        optimizer.step()
    first = next(model.parameters())
    state = optimizer.state[first]
    expected = (torch.sqrt(state["max_exp_avg_sq"] / (1 - 0.999**3)) + 1e-8) * (1 - 0.9**3)
    torch.testing.assert_close(adam_preconditioner(optimizer)[0], expected)
    with pytest.raises(ValueError, match="params"):
        adam_preconditioner(optimizer, [nn.Parameter(torch.zeros(3))])
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="exp_avg_sq"):
        adam_preconditioner(sgd)


# -- leaving the model as found --------------------------------------------------------------


def test_probes_leave_parameters_grads_and_buffers_unchanged() -> None:
    model, batch = mlp(batchnorm=True)
    model.train()  # BatchNorm updates its running statistics on every forward pass
    params = list(model.parameters())
    for index, p in enumerate(params[:-1]):  # the last parameter keeps grad None
        p.grad = torch.full_like(p, float(index))
    grads = [p.grad for p in params]
    grad_values = [None if g is None else g.clone() for g in grads]
    values = [p.detach().clone() for p in params]
    buffers = [b.clone() for b in model.buffers()]

    sharpness(model, mse, batch, iters=5)
    sharpness(model, mse, batch, method="power", iters=5)
    critical_sharpness(model, mse, batch, "-grad")
    catapult_search(model, mse, batch, eta0=1e-3, target_lr=10.0, kind="adam")
    catapult_search(model, mse, batch, eta0=1e-3, target_lr=10.0)

    for p, value, grad, grad_value in zip(params, values, grads, grad_values):
        assert torch.equal(p, value)
        assert p.grad is grad
        if grad is not None:
            assert torch.equal(p.grad, grad_value)
    for b, saved in zip(model.buffers(), buffers):
        assert torch.equal(b, saved)


def test_probe_graph_built_before_stays_valid() -> None:
    model, batch = mlp()
    loss = mse(model, batch)  # graph built before the probes move parameters
    critical_sharpness(model, mse, batch, "-grad")
    catapult_search(model, mse, batch, eta0=1e-2, target_lr=1.0)
    loss.backward()  # would raise if the probes had bumped the parameters' version counters


# -- critical sharpness ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_critical_sharpness_is_curvature_along_gradient(seed: int) -> None:
    A, _ = spd(8, seed)
    model = Point(torch.randn(8, generator=torch.Generator().manual_seed(seed), dtype=DTYPE))
    g = A @ model.x.detach()
    exact = float(g @ A @ g / (g @ g))
    result = critical_sharpness(model, quadratic, A, "-grad", tol=1e-4)
    assert result.status == "bracketed"
    assert relative(result.value, exact) < 1e-4
    assert result.lr_low < 2.0 / exact <= result.lr_high
    # the same with the direction given explicitly (flat, or per parameter), from a warm guess
    flat = critical_sharpness(model, quadratic, A, -g, tol=1e-4, lr_init=1.0 / exact)
    assert relative(flat.value, exact) < 1e-4
    assert flat.evaluations < result.evaluations
    pieces = critical_sharpness(model, quadratic, A, [-g], tol=1e-4)
    assert pieces.value == result.value


def test_critical_sharpness_along_top_eigenvector_is_top_eigenvalue() -> None:
    A, vectors = spd(8, 11)
    model = Point(torch.tensor(3.0 * vectors[:, -1]))
    result = critical_sharpness(model, quadratic, A, "-grad")
    assert relative(result.value, np.linalg.eigvalsh(A.numpy())[-1]) < 1e-3


def test_critical_sharpness_unbracketed_and_errors() -> None:
    A = torch.eye(2, dtype=DTYPE)
    model = Point(torch.tensor([1.0, 0.0]))
    ascent = critical_sharpness(model, quadratic, A, torch.tensor([1.0, 0.0]))
    assert ascent.status == "below_lr_min"
    flat = critical_sharpness(model, quadratic, A, torch.tensor([0.0, 1.0]), lr_max=1e-3)
    assert flat.status == "below_lr_min"  # orthogonal: any step raises 1/2 s^2
    far = critical_sharpness(model, quadratic, A, "-grad", lr_max=1.0)
    assert far.status == "above_lr_max" and far.lr <= 1.0
    with pytest.raises(ValueError, match="direction"):
        critical_sharpness(model, quadratic, A, "grad")
    with pytest.raises(ValueError, match="direction"):
        critical_sharpness(model, quadratic, A, torch.zeros(3))
    with pytest.raises(ValueError, match="lr_max"):
        critical_sharpness(model, quadratic, A, "-grad", lr_min=1.0, lr_max=0.5)


# -- catapult search -------------------------------------------------------------------------


@pytest.mark.parametrize("delta", [None, 0.0, 0.5])
def test_catapult_sgd_finds_threshold_of_top_eigendirection(delta: float | None) -> None:
    A, vectors = spd(10, 3)
    lam = float(np.linalg.eigvalsh(A.numpy())[-1])
    model = Point(torch.tensor(2.0 * vectors[:, -1]))
    result = catapult_search(model, quadratic, A, eta0=1e-3 / lam, target_lr=100.0 / lam, delta=delta)
    d = 0.1 if delta is None else delta
    threshold_lr = (1.0 + math.sqrt(1.0 + d)) / lam  # (1 - eta lam)^2 > 1 + delta
    assert result.status == "bracketed"
    assert result.delta == d
    assert threshold_lr * (1 - 1e-9) <= result.lr <= threshold_lr * (1 + 1.0 / 1000)
    assert result.lr_low < threshold_lr
    L0 = result.L0
    assert result.threshold == pytest.approx(L0 * (1 + d))
    for lr, loss in result.evidence:  # every one-step loss is (1 - lr lam)^2 L0
        assert loss == pytest.approx((1 - lr * lam) ** 2 * L0, rel=1e-8)
    # eta0 * 2**k for k = 0..K (the first above the threshold), then bisection_steps=10 midpoints
    doublings = math.ceil(math.log2(threshold_lr / (1e-3 / lam)))
    assert len(result.evidence) == doublings + 1 + 10


def test_catapult_sgd_halves_when_eta0_too_large_and_caps_at_target() -> None:
    A, vectors = spd(10, 4)
    lam = float(np.linalg.eigvalsh(A.numpy())[-1])
    model = Point(torch.tensor(vectors[:, -1]))
    threshold_lr = (1.0 + math.sqrt(1.1)) / lam
    high = catapult_search(model, quadratic, A, eta0=5 * threshold_lr, target_lr=20 * threshold_lr)
    assert high.status == "bracketed"
    assert threshold_lr * (1 - 1e-9) <= high.lr <= threshold_lr * (1 + 1.0 / 1000)
    capped = catapult_search(model, quadratic, A, eta0=1e-3, target_lr=0.5 * threshold_lr)
    assert capped.status == "capped" and capped.lr == 0.5 * threshold_lr
    assert capped.evidence[-1][0] == 0.5 * threshold_lr
    assert all(loss <= capped.threshold for _, loss in capped.evidence)


def test_catapult_adam_simulates_the_first_adam_step() -> None:
    lam, c, eps = 4.0, 1.5, 1e-8
    A = torch.diag(torch.tensor([lam, 2.0, 1.0], dtype=DTYPE))
    model = Point(torch.tensor([c, 0.0, 0.0]))
    result = catapult_search(model, quadratic, A, eta0=1e-4, target_lr=100.0, kind="adam")
    g = lam * c
    ratio = g / (g + eps)  # the first Adam step moves x by lr * g / (|g| + eps)
    threshold_lr = c * (1.0 + math.sqrt(1.01)) / ratio
    assert result.delta == 0.01 and result.kind == "adam"
    assert threshold_lr * (1 - 1e-9) <= result.lr <= threshold_lr * (1 + 1.0 / 1000)

    def real_adam(params: list[torch.Tensor], grads: list[torch.Tensor], lr: float) -> list[torch.Tensor]:
        copies = [p.clone().requires_grad_(True) for p in params]
        optimizer = torch.optim.Adam(copies, lr=lr, eps=eps)
        for p, grad in zip(copies, grads):
            p.grad = grad.clone()
        optimizer.step()
        return [p.detach() for p in copies]

    A = torch.tensor([[3.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 1.0]], dtype=DTYPE)
    model = Point(torch.tensor([1.0, -2.0, 0.5]))
    built_in = catapult_search(model, quadratic, A, eta0=1e-4, target_lr=100.0, kind="adam")
    custom = catapult_search(model, quadratic, A, eta0=1e-4, target_lr=100.0, kind="adam", update=real_adam)
    assert custom.kind == "custom"
    assert [lr for lr, _ in custom.evidence] == [lr for lr, _ in built_in.evidence]
    np.testing.assert_allclose(
        [loss for _, loss in custom.evidence], [loss for _, loss in built_in.evidence], rtol=1e-12
    )


def test_catapult_errors() -> None:
    A = torch.eye(2, dtype=DTYPE)
    model = Point(torch.ones(2))
    with pytest.raises(ValueError, match="kind"):
        catapult_search(model, quadratic, A, eta0=1e-3, target_lr=1.0, kind="rmsprop")
    with pytest.raises(ValueError, match="eta0"):
        catapult_search(model, quadratic, A, eta0=2.0, target_lr=1.0)
    with pytest.raises(ValueError, match="update"):
        catapult_search(model, quadratic, A, eta0=1e-3, target_lr=1.0, update=lambda p, g, lr: [p[0], p[0]])
    with pytest.raises(ValueError, match="positive loss"):
        catapult_search(Point(torch.zeros(2)), quadratic, A, eta0=1e-3, target_lr=1.0)


# -- LR range test ---------------------------------------------------------------------------


def test_lr_range_test_on_quadratic() -> None:
    A, _ = spd(10, 0, eigenvalues=np.linspace(1.0, 10.0, 10))
    model = Point(torch.randn(10, generator=torch.Generator().manual_seed(0), dtype=DTYPE))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = lr_range_test(model, quadratic, [A], optimizer, start_lr=1e-7, end_lr=10.0, steps=100)
    assert result.stop_reason == "diverged" and len(result.lrs) < 100  # blew up past 2 / 10
    assert result.smoothed[-1] > 4 * result.smoothed.min()
    suggestions = result.suggestions
    assert set(suggestions) == {"valley", "steepest", "min_over_10"}
    assert 1e-3 <= suggestions["steepest"] <= 2.0 / 10.0
    assert 1e-3 <= suggestions["valley"] <= 2.0 / 10.0
    assert suggestions["min_over_10"] == pytest.approx(result.lrs[np.argmin(result.smoothed)] / 10)
    np.testing.assert_allclose(result.lrs, 1e-7 * 1e8 ** (np.arange(len(result.lrs)) / 99))
    # the smoothed loss is the bias-corrected EMA of the losses
    average = 0.0
    for i, loss in enumerate(result.losses):
        average = 0.95 * average + 0.05 * loss
        assert result.smoothed[i] == pytest.approx(average / (1 - 0.95 ** (i + 1)))


def test_lr_range_test_restores_model_and_optimizer() -> None:
    model, batch = mlp(batchnorm=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        mse(model, batch).backward()
        optimizer.step()
    grads = [p.grad for p in model.parameters()]
    model_state = copy.deepcopy(model.state_dict())
    optimizer_state = copy.deepcopy(optimizer.state_dict())
    result = lr_range_test(model, mse, iter([batch] * 30), optimizer, steps=50)
    assert result.stop_reason in ("batches_exhausted", "diverged")
    assert len(result.lrs) <= 30
    for name, value in model.state_dict().items():
        assert torch.equal(value, model_state[name]), name
    restored = optimizer.state_dict()
    assert restored["param_groups"] == optimizer_state["param_groups"]
    for key, state in optimizer_state["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(restored["state"][key][name]), torch.as_tensor(value))
    assert all(p.grad is grad for p, grad in zip(model.parameters(), grads))


def test_lr_range_test_stops_on_blow_up_or_non_finite_loss_and_validates() -> None:
    A = torch.eye(3, dtype=DTYPE)
    model = Point(torch.ones(3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    blow_up = lr_range_test(model, quadratic, [A], optimizer, start_lr=2.5, end_lr=1e3, steps=200)
    assert blow_up.stop_reason == "diverged" and len(blow_up.lrs) < 10

    def overflowing(model: Point, A: torch.Tensor) -> torch.Tensor:
        loss = quadratic(model, A)
        return loss if loss < 1e6 else loss * float("nan")

    result = lr_range_test(
        model, overflowing, [A], optimizer, start_lr=2.5, end_lr=1e3, steps=200, diverge_factor=1e12
    )
    assert result.stop_reason == "non_finite"
    assert math.isnan(result.losses[-1]) and math.isnan(result.smoothed[-1])
    # the loss only rose: no descent to read a steepest point or a valley from
    assert result.suggestions["steepest"] is None and result.suggestions["valley"] is None
    assert result.suggestions["min_over_10"] == 0.25
    assert torch.equal(model.x.detach(), torch.ones(3, dtype=DTYPE))
    with pytest.raises(ValueError, match="end_lr"):
        lr_range_test(model, quadratic, [A], optimizer, start_lr=1.0, end_lr=0.5)
    with pytest.raises(ValueError, match="batches"):
        lr_range_test(model, quadratic, [], optimizer)
    with pytest.raises(ValueError, match="smooth"):
        lr_range_test(model, quadratic, [A], optimizer, smooth=0.0)


# -- argument errors -------------------------------------------------------------------------


def test_sharpness_errors_name_argument_value_and_valid() -> None:
    model, batch = mlp()
    with pytest.raises(ValueError, match=r"method='qr' is invalid; expected one of 'lanczos', 'power'"):
        sharpness(model, mse, batch, method="qr")
    with pytest.raises(ValueError, match="iters"):
        sharpness(model, mse, batch, iters=0)
    with pytest.raises(ValueError, match="init"):
        sharpness(model, mse, batch, init=torch.ones(3))
    with pytest.raises(ValueError, match="preconditioner"):
        sharpness(model, mse, batch, preconditioner=[-torch.ones_like(p) for p in model.parameters()])
    with pytest.raises(ValueError, match="scalar"):
        sharpness(model, lambda m, b: m(b[0]), batch)
    with torch.no_grad():
        loss = mse(model, batch)
    with pytest.raises(ValueError, match="does not require grad"):
        sharpness(model, lambda m, b: loss, batch)
