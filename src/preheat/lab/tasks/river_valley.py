"""``river-valley``: a synthetic loss whose curvature grows with the loss, so warmup matters.

The parameters are ``theta = (u, v)`` with ``u`` a scalar (the river coordinate) and ``v`` in
``R^d`` (the valley walls). With ``h(u) = sqrt(1 + u^2) - 1`` (a pseudo-Huber river bed: slope
close to 1 far out, a unit-curvature bowl near ``u = 0``) and ``c = curvature``::

    f(u, v) = h(u) + (1 + c h(u)) ||v||^2 / 2

- ``f >= 0 = f*``, attained exactly at ``theta* = 0`` (``h(0) = 0``, ``v = 0``).
- The walls have curvature ``1 + c h(u)``: steep far up the river (where the loss is large), 1 at
  the bottom. Gradient descent along the walls is stable only for ``lr < 2 / (1 + c h(u))``, so
  a learning rate that is fine at the end (up to 2) blows up at the start; a warmup lets ``u``
  slide down the river first.
- Smoothness (Liu et al. 2025, "(rho, K0, K_rho)-smooth": ``||Hess f|| <= K0 + K_rho (f - f*)^rho``):
  ``||Hess f(theta)|| <= (1 + sqrt(c f))^2 <= 2 + 2 c f``, i.e. ``rho = 1, K0 = 2, K_rho = 2 c``.
  On the river bottom (``v = 0``) ``||Hess f|| = 1 + c f`` exactly, so ``rho = 1`` is the smallest
  exponent that works and ``K_rho >= c``. Derivation in ``docs/tasks.md``.

Training: full-batch gradient descent when ``noise = 0``. When ``noise > 0`` a batch of size ``B``
is a Gaussian vector ``xi ~ N(0, noise^2 / B * I)`` (the mean of ``B`` examples, each of std
``noise`` per coordinate) and the training loss is ``f(theta) + xi . theta``, whose gradient is
``grad f(theta) + xi``. Evaluation: ``val_loss = f(theta) - f* = f(theta)`` (the gap; ``f* = 0``).
No accuracy.

Start: ``u0 = start`` and ``v0 = wall * z / ||z||`` with ``z ~ N(0, I_d)`` drawn from a
``torch.Generator`` seeded with ``2 * seed`` (batches use ``2 * seed + 1``). Parameters are float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Iterator

import torch

from preheat.lab.tasks.base import Task
from preheat.schedules.validate import check_int, check_real

#: The infimum of ``f`` (attained at ``theta = 0``); ``val_loss`` is ``f - F_STAR``.
F_STAR = 0.0


def river(u: torch.Tensor) -> torch.Tensor:
    """The river bed ``h(u) = sqrt(1 + u^2) - 1``, computed as ``u^2 / (sqrt(1 + u^2) + 1)``.

    The second form has no cancellation near ``u = 0``. ``0 <= h``, ``|h'| < 1``, ``0 < h'' <= 1``.
    """
    return u * u / (torch.sqrt(1.0 + u * u) + 1.0)


def river_valley_loss(theta: torch.Tensor, curvature: float) -> torch.Tensor:
    """``f(u, v) = h(u) + (1 + c h(u)) ||v||^2 / 2`` for ``theta = (u, v)`` (last axis)."""
    u, v = theta[..., 0], theta[..., 1:]
    h = river(u)
    return h + (1.0 + curvature * h) * (v * v).sum(-1) / 2.0


class RiverValleyModel(torch.nn.Module):
    """Holds ``theta = (u, v)`` as one parameter vector; ``forward()`` returns ``f(theta)``."""

    def __init__(self, theta: torch.Tensor, curvature: float) -> None:
        super().__init__()
        self.theta = torch.nn.Parameter(theta)
        self.curvature = curvature

    def forward(self) -> torch.Tensor:
        return river_valley_loss(self.theta, self.curvature)


@dataclass
class RiverValley(Task):
    """The river valley ``f(u, v) = h(u) + (1 + c h(u)) ||v||^2 / 2``; see the module docstring.

    Args:
        dim: ``d``, the number of wall coordinates (the model has ``d + 1`` parameters).
        curvature: ``c >= 0``; the walls' curvature is ``1 + c h(u)``.
        start: ``u0``, where the run starts on the river (``h(4) ~ 3.12``).
        wall: ``||v0||``, how far up the walls the run starts.
        noise: per-example gradient noise std per coordinate (0: full-batch gradient descent).

    With the defaults ``f(theta0) ~ 19.2`` and the walls' curvature at the start is ``~32.2``:
    constant-LR gradient descent is stable up to ``lr ~ 0.06`` there, but up to 2 at the bottom.
    """

    dim: int = 10
    curvature: float = 10.0
    start: float = 4.0
    wall: float = 1.0
    noise: float = 0.0

    name: ClassVar[str] = "river-valley"
    chance_accuracy: ClassVar[float | None] = None

    def __post_init__(self) -> None:
        owner = "RiverValley"
        self.dim = check_int(owner, "dim", self.dim, minimum=1)
        self.curvature = check_real(owner, "curvature", self.curvature, 0.0)
        self.start = check_real(owner, "start", self.start)
        self.wall = check_real(owner, "wall", self.wall, 0.0)
        self.noise = check_real(owner, "noise", self.noise, 0.0)

    # -- the Task contract -------------------------------------------------------------------

    def model(self, seed: int) -> RiverValleyModel:
        """``theta0 = (start, wall * z / ||z||)``, ``z ~ N(0, I_d)`` from a generator seeded ``2 * seed``."""
        generator = torch.Generator().manual_seed(2 * seed)
        z = torch.randn(self.dim, generator=generator, dtype=torch.float64)
        v0 = self.wall * z / torch.linalg.vector_norm(z)
        theta = torch.cat([torch.tensor([self.start], dtype=torch.float64), v0])
        return RiverValleyModel(theta, self.curvature)

    def batches(self, seed: int, batch_size: int) -> Iterator[torch.Tensor]:
        """Endless noise vectors ``xi ~ N(0, noise^2 / batch_size * I)`` (zeros when ``noise = 0``)."""
        generator = torch.Generator().manual_seed(2 * seed + 1)
        scale = self.noise / math.sqrt(batch_size)
        while True:
            yield scale * torch.randn(self.dim + 1, generator=generator, dtype=torch.float64)

    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, None]:
        """``(f(theta) + xi . theta, None)``: its gradient is ``grad f(theta) + xi``."""
        theta = next(model.parameters())
        return model() + torch.dot(batch.to(theta.device), theta), None

    def shard(self, batch: torch.Tensor, rank: int, size: int) -> torch.Tensor:
        """Every rank gets the whole noise vector: it already is the batch's mean noise, so the
        ranks' averaged gradient equals the one-process gradient."""
        return batch

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """``{"val_loss": f(theta) - f*}`` (``f* = 0``, so this is ``f(theta)``)."""
        with torch.no_grad():
            return {"val_loss": model().item() - F_STAR}

    # -- analysis ----------------------------------------------------------------------------

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        """``f(theta)`` for ``theta`` of shape ``(..., dim + 1)``."""
        return river_valley_loss(theta, self.curvature)

    def smoothness_constants(self) -> tuple[float, float, float]:
        """``(rho, K0, K_rho) = (1, 2, 2c)``: ``||Hess f|| <= K0 + K_rho (f - f*)^rho`` everywhere."""
        return 1.0, 2.0, 2.0 * self.curvature

    def hessian_bound(self, gap: float | torch.Tensor) -> float | torch.Tensor:
        """The sharper bound ``(1 + sqrt(c (f - f*)))^2`` on ``||Hess f||`` at a point with that gap."""
        root = gap ** 0.5 * self.curvature ** 0.5
        return (1.0 + root) ** 2

    def hessian_norm(self, theta: torch.Tensor) -> torch.Tensor:
        """The exact spectral norm of ``Hess f(theta)``, in closed form.

        With ``a = h''(u) (1 + c ||v||^2 / 2)``, ``g = 1 + c h(u)`` and ``b = c |h'(u)| ||v||``, the
        Hessian is ``[[a, h' c v^T], [h' c v, g I]]``: eigenvalue ``g`` on the ``d - 1`` directions
        orthogonal to ``v`` and the two eigenvalues of ``[[a, b], [b, g]]``. As ``a, g >= 0`` the
        largest in absolute value is ``(a + g) / 2 + sqrt(((a - g) / 2)^2 + b^2)``.
        """
        theta = torch.as_tensor(theta, dtype=torch.float64)
        u, v = theta[..., 0], theta[..., 1:]
        root = torch.sqrt(1.0 + u * u)
        slope, bend = u / root, root ** -3  # h'(u), h''(u)
        norm_v = torch.linalg.vector_norm(v, dim=-1)
        a = bend * (1.0 + self.curvature * norm_v**2 / 2.0)
        g = 1.0 + self.curvature * river(u)
        b = self.curvature * slope.abs() * norm_v
        return (a + g) / 2.0 + torch.sqrt(((a - g) / 2.0) ** 2 + b * b)

    def stable_lr(self, u: float) -> float:
        """``2 / (1 + c h(u))``: the largest LR for which gradient descent does not blow up the walls at ``u``."""
        h = float(river(torch.tensor(float(u), dtype=torch.float64)))
        return 2.0 / (1.0 + self.curvature * h)
