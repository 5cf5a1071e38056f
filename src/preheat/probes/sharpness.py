"""Sharpness: the top eigenvalue of the loss Hessian, plain or preconditioned, by Hessian-vector products.

For a loss ``L(theta) = loss_fn(model, batch)`` over the trainable parameters ``theta`` (those with
``requires_grad``, in ``model.parameters()`` order), the *sharpness* is

    lambda_max(H),    H = d^2 L / d theta^2,

the largest **algebraic** eigenvalue (not the largest in magnitude): the quantity whose edge of
stability for gradient descent with step size ``eta`` is ``2 / eta`` (Cohen et al., 2021). For
Adam the relevant quantity is the *preconditioned sharpness*

    lambda_max(P^{-1/2} H P^{-1/2})   (= lambda_max(P^{-1} H)),
    P = diag((sqrt(v_hat) + eps) * (1 - beta1^t)),   v_hat = v / (1 - beta2^t),

whose stability threshold is ``(2 + 2 beta1) / ((1 - beta1) eta)`` (38 / eta for beta1 = 0.9;
Cohen et al., 2022, "Adaptive gradient methods at the edge of stability"). See
:func:`adam_preconditioner`; the thresholds themselves are
:func:`preheat.adaptive.sharpness.stability_threshold`.

Hessian-vector products use double backward (``torch.autograd.grad`` with ``create_graph=True``),
never ``backward()``: the model's parameters, buffers and ``.grad`` are left as they were.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from preheat.probes._state import (
    LossFn,
    ModelGuard,
    as_pieces,
    check_loss_fn,
    fail,
    flat_dtype,
    flatten,
    scalar_loss,
    trainable_parameters,
    unflatten,
)
from preheat.schedules.validate import check_choice, check_int, check_real

METHODS = ("lanczos", "power")


@dataclass(frozen=True)
class SharpnessResult:
    """What :func:`sharpness` measured.

    Attributes:
        value: the estimate of the largest algebraic eigenvalue of the operator (``H``, or
            ``P^{-1/2} H P^{-1/2}`` when a preconditioner was given).
        vector: its eigenvector estimate: a flat, unit-norm, detached tensor over the trainable
            parameters, in the operator's coordinates. Pass it as ``init`` to the next call to
            warm-start it. With a preconditioner, ``P^{-1/2} vector`` is the direction in parameter
            space (the generalised eigenvector of ``H u = lambda P u``).
        iterations: iterations run (Krylov dimension for Lanczos; power iterations, over both
            phases, for power).
        hvp_count: Hessian-vector products computed.
        seconds: wall-clock time of the call, setup pass included.
        method: ``"lanczos"`` or ``"power"``.
        converged: whether the residual test (see :func:`sharpness`) passed before ``iters`` ran out.
        residual: ``||A vector - value * vector||`` for the operator ``A``, the last one computed.
    """

    value: float
    vector: Tensor
    iterations: int
    hvp_count: int
    seconds: float
    method: str
    converged: bool
    residual: float


def sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Any,
    *,
    method: str = "lanczos",
    iters: int = 20,
    tol: float = 1e-4,
    init: Tensor | None = None,
    preconditioner: Sequence[Tensor] | None = None,
    seed: int = 0,
) -> SharpnessResult:
    """The largest algebraic eigenvalue of the loss Hessian (optionally preconditioned).

    Measures ``lambda_max(A)`` for ``A = H`` or ``A = P^{-1/2} H P^{-1/2}``, where ``H`` is the
    Hessian of ``L(theta) = loss_fn(model, batch)`` with respect to the trainable parameters
    (``requires_grad``), and ``P`` is ``preconditioner`` (one positive tensor per trainable
    parameter, same shapes, in ``model.parameters()`` order; e.g. from :func:`adam_preconditioner`).

    Methods:
        ``"lanczos"``: plain Lanczos with full reorthogonalisation from the start vector ``q1``;
        after ``k`` products the tridiagonal ``T_k = Q_k^T A Q_k`` is diagonalised with
        ``numpy.linalg.eigh`` and its top Ritz pair ``(theta, y = Q_k s)`` is the estimate, with
        residual ``||A y - theta y|| = beta_k |s_k|``. It returns the largest algebraic eigenvalue
        directly and converges much faster than power iteration.

        ``"power"``: power iteration ``v <- A v / ||A v||`` with the Rayleigh quotient
        ``v^T A v`` as the estimate. Power iteration finds the eigenvalue largest in *magnitude*;
        if that one is negative (``mu < 0``), a second phase runs power iteration on the shifted
        operator ``A - mu I`` (all its eigenvalues are then >= 0, the largest being
        ``lambda_max - mu``) from the start vector again, and returns ``lambda_max``. Either way
        the result is the largest algebraic eigenvalue.

    Stopping: both methods stop as soon as the residual ``||A v - value v|| <= tol * |value|``
    (then ``value`` lies within ``tol * |value|`` of an eigenvalue of ``A``; in practice the
    error is ~ residual^2 / spectral gap, far smaller), or after ``iters`` iterations (per phase
    for power). ``tol=0`` runs all ``iters``.

    Start vector: ``init`` (a flat tensor over the trainable parameters, e.g. the previous
    result's ``vector``), or a standard normal vector drawn from ``torch.Generator`` seeded with
    ``seed``. Both methods only see eigenvectors that ``init`` has a component along: a start
    vector that is exactly an eigenvector stops at once at *its* eigenvalue. A previous call's
    vector, after parameters moved, is the intended use.

    Args:
        model: the network; its trainable parameters are the Hessian's variables.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor``, differentiable twice.
        batch: passed to ``loss_fn`` unchanged; the Hessian is that of this one batch's loss.
        method: ``"lanczos"`` (default) or ``"power"``.
        iters: the most iterations (>= 1): Krylov dimension for Lanczos (capped at the number of
            parameters), iterations per phase for power.
        tol: relative residual tolerance, >= 0.
        init: warm start (flat tensor of as many entries as trainable parameters, not all zero).
        preconditioner: ``P`` per trainable parameter (all entries positive and finite), or None.
        seed: seeds the random start vector when ``init`` is None.

    Returns:
        A :class:`SharpnessResult`.

    Cost: one forward and one backward pass with ``create_graph=True`` (the graph is kept for
    the whole call: memory of roughly two to three ordinary backward passes), then
    ``hvp_count`` Hessian-vector products, each a double-backward pass costing a small multiple
    (typically 2-4x) of one gradient evaluation. Lanczos keeps its basis: ``iterations`` flat
    vectors of the parameter count. ``hvp_count`` is at most ``iters`` (Lanczos) or
    ``2 * iters`` (power).

    Train vs eval mode: the model's mode is left alone. In training mode BatchNorm (batch
    statistics) and dropout (a random mask) make ``H`` a random matrix; within one call a single
    forward pass is differentiated, so the operator is fixed, but it changes from call to call
    (and warm starts help less). Use ``model.eval()`` for a deterministic, comparable curvature.
    Buffers (e.g. running statistics) updated by the forward pass are restored.
    """
    owner = "sharpness"
    check_loss_fn(owner, loss_fn)
    method = check_choice(owner, "method", method, METHODS)
    iters = check_int(owner, "iters", iters, minimum=1)
    tol = check_real(owner, "tol", tol, 0.0)
    seed = check_int(owner, "seed", seed, minimum=0)
    params = trainable_parameters(model, owner)
    n = sum(p.numel() for p in params)
    dtype, device = flat_dtype(params), params[0].device
    start_time = time.perf_counter()

    scale = None
    if preconditioner is not None:
        pieces = as_pieces(owner, "preconditioner", preconditioner, params)
        flat = flatten(pieces, dtype, device)
        if not bool((flat > 0).all()):
            raise fail(owner, "preconditioner", "<tensor with entries <= 0>", "positive entries")
        scale = flat.rsqrt()

    if init is None:
        generator = torch.Generator().manual_seed(seed)
        start = torch.randn(n, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)
    else:
        if not isinstance(init, Tensor):
            raise fail(owner, "init", type(init).__name__, f"a flat tensor of {n} entries")
        start = flatten(as_pieces(owner, "init", init, params), dtype, device)
        if float(start.norm()) == 0.0:
            raise fail(owner, "init", "<zero vector>", "a nonzero vector")

    with ModelGuard(model, params, restore_params=False):
        hvp = _hessian_vector_product(owner, model, loss_fn, batch, params, dtype, device)
        if scale is None:
            operator = hvp
        else:

            def operator(v: Tensor) -> Tensor:
                return hvp(v * scale) * scale

        solve = _lanczos if method == "lanczos" else _power
        value, vector, iterations, hvps, converged, residual = solve(operator, start, iters, tol)

    return SharpnessResult(
        value=value,
        vector=vector.detach(),
        iterations=iterations,
        hvp_count=hvps,
        seconds=time.perf_counter() - start_time,
        method=method,
        converged=converged,
        residual=residual,
    )


def _hessian_vector_product(
    owner: str,
    model: nn.Module,
    loss_fn: LossFn,
    batch: Any,
    params: list[Tensor],
    dtype: torch.dtype,
    device: torch.device,
) -> Callable[[Tensor], Tensor]:
    """Build ``v -> H v`` on flat vectors: one forward/backward now, one double backward per call."""
    with torch.enable_grad():
        loss = scalar_loss(owner, loss_fn(model, batch))
        if not loss.requires_grad:
            raise ValueError(
                f"{owner}: loss_fn returned a tensor that does not require grad; expected a loss "
                "computed from the model's parameters with autograd enabled"
            )
        if not math.isfinite(float(loss.detach())):
            raise ValueError(
                f"{owner}: the loss at the current parameters is {float(loss.detach())}; "
                "expected a finite loss"
            )
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    # A gradient that does not require grad is constant in theta: its rows of H are zero.
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    outputs = [grads[i] for i in live]

    def product(v: Tensor) -> Tensor:
        if not outputs:
            return torch.zeros_like(v)
        pieces = unflatten(v, params)
        with torch.enable_grad():
            result = torch.autograd.grad(
                outputs,
                params,
                grad_outputs=[pieces[i] for i in live],
                retain_graph=True,
                allow_unused=True,
            )
        return flatten(
            [torch.zeros_like(p) if r is None else r for r, p in zip(result, params)], dtype, device
        )

    return product


_Solution = tuple[float, Tensor, int, int, bool, float]


def _power(operator: Callable[[Tensor], Tensor], start: Tensor, iters: int, tol: float) -> _Solution:
    """Power iteration for the largest algebraic eigenvalue (a shifted second phase if needed)."""
    value, vector, steps, converged, residual = _power_phase(operator, start, iters, tol, 0.0)
    if value >= 0.0:
        return value, vector, steps, steps, converged, residual
    shift = value  # the dominant eigenvalue is negative: lambda_max is the top of A - shift I >= 0
    value, vector, more, converged, residual = _power_phase(operator, start, iters, tol, shift)
    return value, vector, steps + more, steps + more, converged, residual


def _power_phase(
    operator: Callable[[Tensor], Tensor], start: Tensor, iters: int, tol: float, shift: float
) -> tuple[float, Tensor, int, bool, float]:
    """Power iteration on ``A - shift I``; returns the Rayleigh quotient of ``A`` (shift added back)."""
    v = start / start.norm()
    value, residual = 0.0, math.inf
    for step in range(1, iters + 1):
        w = operator(v)
        value = float(torch.dot(v, w))
        residual = float((w - value * v).norm())
        if residual <= tol * abs(value):
            return value, v, step, True, residual
        w = w - shift * v
        norm = float(w.norm())
        if norm == 0.0:  # v is in the null space of A - shift I: an exact eigenvector
            return value, v, step, True, residual
        v = w / norm
    return value, v, iters, False, residual


def _lanczos(operator: Callable[[Tensor], Tensor], start: Tensor, iters: int, tol: float) -> _Solution:
    """Lanczos with full reorthogonalisation; the top Ritz pair of the tridiagonal (numpy eigh)."""
    n = start.numel()
    k_max = min(iters, n)
    basis = torch.empty((k_max, n), dtype=start.dtype, device=start.device)
    alphas: list[float] = []
    betas: list[float] = []
    q = start / start.norm()
    q_prev: Tensor | None = None
    eps = torch.finfo(start.dtype).eps
    ritz = np.ones(1)
    value, residual, converged, k = 0.0, math.inf, False, 0
    for j in range(k_max):
        basis[j] = q
        w = operator(q)
        alpha = float(torch.dot(q, w))
        w = w - alpha * q
        if q_prev is not None:
            w = w - betas[-1] * q_prev
        for _ in range(2):  # "twice is enough" (Kahan-Parlett) for full reorthogonalisation
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = float(w.norm())
        alphas.append(alpha)
        tridiagonal = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        values, vectors = np.linalg.eigh(tridiagonal)
        value, ritz, k = float(values[-1]), vectors[:, -1], j + 1
        residual = beta * abs(float(ritz[-1]))
        scale = max(abs(values[0]), abs(values[-1]), beta)
        if residual <= tol * abs(value) or beta <= 10 * eps * scale:
            converged = True
            break
        betas.append(beta)
        q_prev, q = q, w / beta
    coefficients = torch.as_tensor(ritz, dtype=start.dtype, device=start.device)
    vector = basis[:k].T @ coefficients
    return value, vector / vector.norm(), k, k, converged, residual


def adam_preconditioner(
    optimizer: torch.optim.Optimizer, params: Iterable[Tensor] | nn.Module | None = None
) -> list[Tensor]:
    """Adam's diagonal preconditioner ``P`` per parameter, read from the optimizer's state.

    For each parameter, with ``t = state["step"]`` (updates taken so far), ``v = state["exp_avg_sq"]``
    (``state["max_exp_avg_sq"]`` when the group has ``amsgrad=True``), ``(beta1, beta2) =
    group["betas"]`` and ``eps = group["eps"]``::

        P = (sqrt(v / (1 - beta2^t)) + eps) * (1 - beta1^t)

    so that the last Adam update was ``theta <- theta - lr * P^{-1} m`` with ``m = state["exp_avg"]``
    (PyTorch's Adam and AdamW divide ``m / (1 - beta1^t)`` by ``sqrt(v_hat) + eps``, the same
    thing). ``lambda_max(P^{-1/2} H P^{-1/2})`` is then Cohen et al.'s preconditioned sharpness
    (pass the result to :func:`sharpness` as ``preconditioner``). It describes the update the
    state has just produced; the next update's ``P`` differs by one EMA step of ``v``. Works for
    ``torch.optim.Adam``, ``AdamW`` and any optimizer keeping the same state names and group keys
    (e.g. GI-Adam); not for NAdam/RAdam/Adafactor, whose updates have another form.

    Args:
        optimizer: an Adam-like optimizer that has taken at least one step.
        params: the parameters to return ``P`` for, in order. A module means its trainable
            parameters (``requires_grad``) in ``parameters()`` order: exactly what
            :func:`sharpness` expects. None means every parameter of every param group in order.

    Returns:
        One detached tensor per parameter, shaped like it.

    Cost: elementwise over the optimizer state; no forward or backward pass.
    """
    owner = "adam_preconditioner"
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise fail(owner, "optimizer", type(optimizer).__name__, "a torch.optim.Optimizer")
    group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    if params is None:
        wanted = [p for group in optimizer.param_groups for p in group["params"]]
    elif isinstance(params, nn.Module):
        wanted = [p for p in params.parameters() if p.requires_grad]
    else:
        wanted = list(params)
    result = []
    for index, p in enumerate(wanted):
        if id(p) not in group_of:
            raise fail(
                owner,
                f"params[{index}]",
                f"<parameter of shape {tuple(p.shape)}>",
                "parameters the optimizer updates",
            )
        group = group_of[id(p)]
        state = optimizer.state.get(p, {})
        key = "max_exp_avg_sq" if group.get("amsgrad", False) else "exp_avg_sq"
        missing = [name for name in (key, "step") if name not in state]
        if missing:
            raise ValueError(
                f"{owner}: parameter #{index} (shape {tuple(p.shape)}) has no {missing} in the "
                "optimizer state; expected an Adam-like optimizer (state 'exp_avg_sq' and 'step') "
                "that has taken at least one step"
            )
        for name in ("betas", "eps"):
            if name not in group:
                raise ValueError(
                    f"{owner}: the optimizer's param group has no {name!r}; expected Adam-like "
                    "groups with 'betas' and 'eps'"
                )
        t = float(state["step"])
        if t < 1:
            raise fail(owner, "state['step']", t, "at least 1 (take an optimizer step first)")
        beta1, beta2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        v = state[key].detach()
        result.append((v / (1.0 - beta2**t)).sqrt().add(eps).mul(1.0 - beta1**t))
    return result
