"""Shared plumbing of the probes: which parameters they see, flat vectors, leaving a model as found.

Every probe works on the *trainable parameters* of a model: ``[p for p in model.parameters() if
p.requires_grad]``, in that order. A flat vector over them is their concatenation, each flattened
in row-major order. Probes never leave a trace on the model: :class:`ModelGuard` puts back the
parameters (bit for bit, when a probe moves them), the buffers (BatchNorm running statistics
change on every training-mode forward) and the ``.grad`` attributes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

import torch
from torch import Tensor, nn

#: ``loss_fn(model, batch) -> scalar tensor``: the loss every probe measures.
LossFn = Callable[[nn.Module, Any], Tensor]


def fail(owner: str, name: str, value: Any, expected: str) -> ValueError:
    """The ``ValueError`` every probe raises: it names the argument, the value and what is valid."""
    return ValueError(f"{owner}: {name}={value!r} is invalid; expected {expected}")


def trainable_parameters(model: Any, owner: str) -> list[Tensor]:
    """``[p for p in model.parameters() if p.requires_grad]``; raises if there are none."""
    if not isinstance(model, nn.Module):
        raise fail(owner, "model", type(model).__name__, "a torch.nn.Module")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(
            f"{owner}: model has no parameter with requires_grad=True; expected at least one "
            "trainable parameter"
        )
    return params


def check_loss_fn(owner: str, loss_fn: Any) -> None:
    if not callable(loss_fn):
        raise fail(owner, "loss_fn", loss_fn, "a callable loss_fn(model, batch) -> scalar tensor")


def check_training(owner: str, model: Any, loss_fn: Any, batches: Any, optimizer: Any) -> None:
    """The arguments of a probe that trains: a module, a loss function, an iterable of batches
    and an optimizer."""
    if not isinstance(model, nn.Module):
        raise fail(owner, "model", type(model).__name__, "a torch.nn.Module")
    check_loss_fn(owner, loss_fn)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise fail(owner, "optimizer", type(optimizer).__name__, "a torch.optim.Optimizer")
    if not isinstance(batches, Iterable):
        raise fail(owner, "batches", type(batches).__name__, "an iterable of batches")


def scalar_loss(owner: str, loss: Any) -> Tensor:
    """Check that ``loss_fn`` returned a one-element tensor and return it as a 0-d tensor."""
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        shown = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(
            f"{owner}: loss_fn returned {shown!r}; expected a scalar (one-element) tensor"
        )
    return loss.reshape(())


def flat_dtype(params: Sequence[Tensor]) -> torch.dtype:
    """The dtype a flat vector over ``params`` uses: the promotion of all their dtypes."""
    return functools.reduce(torch.promote_types, (p.dtype for p in params))


def flatten(tensors: Sequence[Tensor], dtype: torch.dtype, device: torch.device) -> Tensor:
    """Concatenate ``tensors`` (each flattened row-major) into one vector of ``dtype``/``device``."""
    return torch.cat([t.detach().reshape(-1).to(device=device, dtype=dtype) for t in tensors])


def unflatten(vector: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
    """Split a flat vector into pieces shaped, typed and placed like ``params`` (inverse of flatten)."""
    pieces, offset = [], 0
    for p in params:
        n = p.numel()
        pieces.append(vector[offset : offset + n].view(p.shape).to(device=p.device, dtype=p.dtype))
        offset += n
    return pieces


def as_pieces(owner: str, name: str, value: Any, params: Sequence[Tensor]) -> list[Tensor]:
    """Accept a flat tensor of ``n`` entries or one tensor per parameter; return per-parameter pieces.

    Raises when the sizes or shapes do not match ``params`` or when an entry is not finite.
    """
    n = sum(p.numel() for p in params)
    expected = (
        f"a flat tensor of {n} entries or a sequence of {len(params)} tensors shaped like the "
        "trainable parameters"
    )
    if isinstance(value, Tensor):
        if value.numel() != n:
            raise fail(owner, name, f"<tensor of {value.numel()} entries>", expected)
        pieces = unflatten(value.detach().reshape(-1), params)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != len(params) or not all(
            isinstance(v, Tensor) and v.shape == p.shape for v, p in zip(value, params)
        ):
            shapes = [tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__ for v in value]
            raise fail(owner, name, f"<sequence of shapes {shapes}>", expected)
        pieces = [v.detach().to(device=p.device, dtype=p.dtype) for v, p in zip(value, params)]
    else:
        raise fail(owner, name, type(value).__name__, expected)
    if not all(bool(torch.isfinite(piece).all()) for piece in pieces):
        raise fail(owner, name, "<tensor with non-finite entries>", "finite entries only")
    return pieces


def gradient(
    owner: str, model: nn.Module, loss_fn: LossFn, batch: Any, params: Sequence[Tensor]
) -> tuple[float, list[Tensor]]:
    """One forward and one backward pass: (loss, gradient per parameter; zeros where unused).

    Uses ``torch.autograd.grad``, so no ``.grad`` attribute is touched.
    """
    with torch.enable_grad():
        loss = scalar_loss(owner, loss_fn(model, batch))
        if not loss.requires_grad:
            raise ValueError(
                f"{owner}: loss_fn returned a tensor that does not require grad; expected a loss "
                "computed from the model's parameters with autograd enabled"
            )
        grads = torch.autograd.grad(loss, list(params), allow_unused=True)
    pieces = [torch.zeros_like(p) if g is None else g.detach() for g, p in zip(grads, params)]
    return finite_value(owner, loss), pieces


def finite_value(owner: str, loss: Tensor | float) -> float:
    """The loss as a float; raises if it is not finite (a probe cannot measure from there)."""
    value = float(loss.detach()) if isinstance(loss, Tensor) else float(loss)
    if not math.isfinite(value):
        raise ValueError(
            f"{owner}: the loss at the current parameters is {value}; expected a finite loss"
        )
    return value


def forward_loss(owner: str, model: nn.Module, loss_fn: LossFn, batch: Any) -> float:
    """One forward pass without autograd; the loss as a float (may be inf or nan)."""
    with torch.no_grad():
        return float(scalar_loss(owner, loss_fn(model, batch)))


class ModelGuard:
    """Context manager that leaves ``model`` as it found it.

    On exit it puts back: the trainable parameters ``params`` (bit for bit, from a clone taken on
    entry; only when ``restore_params`` is true: probes that move the parameters), every buffer
    (from clones), and every parameter's ``.grad`` (the same tensor object, or ``None``).
    Parameters are moved and restored through ``p.data``, so autograd graphs the caller built
    before the probe stay valid afterwards.
    """

    def __init__(self, model: nn.Module, params: Sequence[Tensor], *, restore_params: bool):
        self.model = model
        self.params = list(params)
        self.restore_params = restore_params
        self.theta: list[Tensor] = []

    def __enter__(self) -> ModelGuard:
        self._grads = [(p, p.grad) for p in self.model.parameters()]
        self._buffers = [(b, b.detach().clone()) for b in self.model.buffers()]
        if self.restore_params:
            self.theta = [p.detach().clone() for p in self.params]
        return self

    def move_to(self, new: Sequence[Tensor]) -> None:
        """Set the trainable parameters to ``new`` (one tensor per parameter)."""
        for p, value in zip(self.params, new):
            p.data.copy_(value)

    def move_along(self, step: float, direction: Sequence[Tensor]) -> None:
        """Set the trainable parameters to ``theta + step * direction``."""
        for p, theta, d in zip(self.params, self.theta, direction):
            p.data.copy_(theta).add_(d, alpha=step)

    def reset(self) -> None:
        """Set the trainable parameters back to ``theta`` (bit for bit)."""
        for p, theta in zip(self.params, self.theta):
            p.data.copy_(theta)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.restore_params:
            self.reset()
        with torch.no_grad():
            for buffer, saved in self._buffers:
                buffer.copy_(saved)
        for p, grad in self._grads:
            p.grad = grad
