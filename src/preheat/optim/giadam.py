r"""GI-Adam: Adam whose second moment starts at the squared first gradient, not at zero.

Kalra & Barkeshli (2024), "Why Warmup the Learning Rate? Underlying Mechanisms and
Improvements" (arXiv:2406.09405), find that Adam's large initial preconditioned sharpness makes
it sensitive to large learning rates early in training, and suggest an initialisation of Adam's
variance "which provides benefits similar to warmup": ``v_0 = g_0^2``. This module
implements that change, with a scale ``a`` on it (``init_scale``), as :class:`GIAdam` (L2 weight
decay, like ``torch.optim.Adam``) and :class:`GIAdamW` (decoupled weight decay, like
``torch.optim.AdamW``).

The update, per parameter and elementwise. ``t = 1, 2, ...`` counts the updates this parameter
has received (``state["step"]`` holds ``t`` after update ``t``), ``eta`` is the group's ``lr``
at that update, ``lambda`` its ``weight_decay``::

    g_t     = grad of the loss at theta_{t-1}         (GIAdam adds lambda * theta_{t-1})
    m_0     = 0
    v_0     = a * g_1^2                               (g_1: the first gradient seen, "g_0" in the paper)
    m_t     = beta1 * m_{t-1} + (1 - beta1) * g_t
    v_t     = beta2 * v_{t-1} + (1 - beta2) * g_t^2
    mhat_t  = m_t / (1 - beta1^t)
    vhat_t  = v_t / (1 - beta2^t)     if bias_correction2 else  v_t
    theta_t = theta_{t-1} - eta * mhat_t / (sqrt(vhat_t) + eps)
              (GIAdamW first multiplies theta_{t-1} by 1 - eta * lambda)

With ``a = 0`` and ``bias_correction2=True`` this is exactly Adam / AdamW.

**What update 1 does.** ``v_0`` is built from the gradient of update 1 itself, so
``mhat_1 = g_1`` and ``v_1 = (a * beta2 + 1 - beta2) * g_1^2``. Ignoring ``eps``:

- ``bias_correction2=True``: ``theta_1 - theta_0 = -eta * sqrt((1 - beta2) / (a*beta2 + 1 - beta2))
  * sign(g_1)``; for ``a = 1`` that is ``-eta * sqrt(1 - beta2) * sign(g_1)``, about
  ``0.032 * eta`` per coordinate at ``beta2 = 0.999`` (Adam's first update is ``eta * sign(g_1)``).
- ``bias_correction2=False``: ``theta_1 - theta_0 = -eta / sqrt(a*beta2 + 1 - beta2) * sign(g_1)``;
  for ``a = 1`` that is Adam's own first update.

**Why the second-moment bias correction is kept by default.** Adam divides ``v_t`` by
``1 - beta2^t`` because ``v_0 = 0`` biases ``v_t`` towards zero. With ``v_0 = a g^2`` and
gradients of steady size ``g^2 = s``, ``v_t = s (a beta2^t + 1 - beta2^t)``; dividing by
``1 - beta2^t`` then makes ``vhat_t = s / (1 - beta2^t)`` for ``a = 1``, so every update is
scaled by ``sqrt(1 - beta2^t)``: an implicit warmup ``eta_t = eta * sqrt(1 - beta2^t)`` (half
of ``eta`` after about ``0.29 / (1 - beta2)`` updates, 90% after about ``1.7 / (1 - beta2)``).
That warmup is the natural reading of the "benefits similar to warmup" in the abstract; without the
correction, ``a = 1`` gives ``vhat_t = s`` from the start, Adam's first update and Adam's
steady-state step, i.e. no warmup at all. The paper describes GI-Adam as a change to the
initialisation of Adam's variance only, so the rest of Adam, bias correction included, stays.
The paper's full text could not be consulted when this was written (only its abstract and a
third-party summary), so this default rests on that reasoning; set ``bias_correction2=False`` for
the variant that uses the initialised ``v_t`` as is (then ``a > 1`` is what shrinks early steps).

The v0 initialisation happens at the first update in which a parameter has a gradient, so a
parameter that first receives a gradient late still starts from its own gradient. Parameters
whose ``grad`` is ``None`` are skipped (no state, no step count, no weight decay). Sparse
gradients and complex parameters are not supported and raise ``RuntimeError``.

State per parameter: ``step`` (a float32 scalar tensor, as in torch's Adam), ``exp_avg``
(``m_t``) and ``exp_avg_sq`` (``v_t``); all tensors, so ``state_dict()`` saves with
``torch.save`` and loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["GIAdam", "GIAdamW"]


class GIAdam(Optimizer):
    """Adam with the second moment initialised at ``init_scale * g^2`` (the module docstring has
    the update), and L2 weight decay added to the gradient as in ``torch.optim.Adam``.

    Args:
        params: parameters or parameter groups, as for any ``torch.optim.Optimizer``.
        lr: the learning rate ``eta`` (a float or a one-element tensor), at least 0.
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.
        eps: added to ``sqrt(vhat_t)`` in the denominator, at least 0.
        weight_decay: ``lambda``, at least 0; L2 (``g_t += lambda * theta``) here, decoupled in
            :class:`GIAdamW`.
        init_scale: ``a`` in ``v_0 = a * g_1^2``, at least 0. The paper recommends ``a >= 1``;
            ``1`` is its GI-Adam; ``0`` is plain Adam.
        bias_correction2: divide ``v_t`` by ``1 - beta2^t`` (default ``True``, which turns the
            initialisation into an implicit warmup ``eta * sqrt(1 - beta2^t)``; see the module
            docstring for why).
    """

    _decoupled_weight_decay = False

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        init_scale: float = 1.0,
        bias_correction2: bool = True,
    ) -> None:
        _check_hyperparameters(lr, betas, eps, weight_decay, init_scale, bias_correction2)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            init_scale=init_scale,
            bias_correction2=bias_correction2,
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Validate a group's hyperparameters (it may override the defaults), then add it as
        ``Optimizer.add_param_group`` does."""
        group = {**self.defaults, **param_group}
        _check_hyperparameters(
            group["lr"], group["betas"], group["eps"], group["weight_decay"],
            group["init_scale"], group["bias_correction2"],
        )
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Apply one update to every parameter that has a gradient; return ``closure()``'s loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr = float(group["lr"])
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, group, lr, beta1, beta2)
        return loss

    def _update(self, param: Tensor, group: dict[str, Any], lr: float, beta1: float, beta2: float) -> None:
        grad = param.grad
        name = type(self).__name__
        if grad.is_sparse:
            raise RuntimeError(f"{name} does not support sparse gradients; use a dense gradient")
        if torch.is_complex(param):
            raise RuntimeError(f"{name} does not support complex parameters; view them as real pairs")

        weight_decay = group["weight_decay"]
        if weight_decay != 0:
            if self._decoupled_weight_decay:
                param.mul_(1 - lr * weight_decay)
            else:
                grad = grad.add(param, alpha=weight_decay)

        state = self.state[param]
        if len(state) == 0:  # first update of this parameter: m_0 = 0, v_0 = a * g_1^2
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            if group["init_scale"] != 0:
                state["exp_avg_sq"].addcmul_(grad, grad, value=group["init_scale"])
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]

        state["step"] += 1
        t = state["step"].item()
        exp_avg.lerp_(grad, 1 - beta1)  # m_t = beta1 m_{t-1} + (1 - beta1) g_t
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)  # v_t

        step_size = lr / (1 - beta1**t)  # eta / (1 - beta1^t): mhat_t's correction
        if group["bias_correction2"]:
            denom = (exp_avg_sq.sqrt() / (1 - beta2**t) ** 0.5).add_(group["eps"])
        else:
            denom = exp_avg_sq.sqrt().add_(group["eps"])
        param.addcdiv_(exp_avg, denom, value=-step_size)


class GIAdamW(GIAdam):
    """GI-Adam with decoupled weight decay, as in ``torch.optim.AdamW``: before each update
    ``theta <- theta * (1 - lr * weight_decay)``, and the gradient is left alone.

    Arguments as for :class:`GIAdam`; ``weight_decay`` defaults to ``1e-2`` like AdamW's.
    """

    _decoupled_weight_decay = True

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        init_scale: float = 1.0,
        bias_correction2: bool = True,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, init_scale, bias_correction2)


def _check_hyperparameters(
    lr: Any, betas: Any, eps: Any, weight_decay: Any, init_scale: Any, bias_correction2: Any
) -> None:
    """Raise ``ValueError`` naming the first bad argument, its value and what would be valid."""
    if isinstance(lr, Tensor):
        if lr.numel() != 1:
            raise ValueError(f"lr={lr!r} is invalid; expected a float or a one-element tensor")
        lr_value = float(lr)
    else:
        lr_value = lr
    _check_number("lr", lr_value, "a finite number >= 0")
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"betas={betas!r} is invalid; expected two numbers in [0, 1)")
    for index, beta in enumerate(betas):
        _check_number(f"betas[{index}]", beta, "a number in [0, 1)", upper=1.0)
    _check_number("eps", eps, "a finite number >= 0")
    _check_number("weight_decay", weight_decay, "a finite number >= 0")
    _check_number("init_scale", init_scale, "a finite number >= 0 (1 is the paper's GI-Adam, 0 is Adam)")
    if not isinstance(bias_correction2, bool):
        raise ValueError(f"bias_correction2={bias_correction2!r} is invalid; expected True or False")


def _check_number(name: str, value: Any, valid: str, upper: float = math.inf) -> None:
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value < upper
    )
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid; expected {valid}")
