"""Diagnose a run: its sharpness against the edge of stability, its local smoothness against the loss gap.

:func:`diagnose` trains one run (a :class:`~preheat.lab.config.RunConfig` with a schedule) and
measures, on the batch of update ``t`` (``theta_t`` the parameters update ``t`` starts from,
``eta_t`` its LR, ``L_t`` its training loss):

- **at every update**, the *local smoothness* along the step (Liu et al. 2025)::

      S_t = ||g(theta_{t+1}) - g(theta_t)|| / ||theta_{t+1} - theta_t||

  with both gradients of the loss of update ``t``'s batch (so minibatch noise does not enter
  it; one extra forward and backward pass), and the *loss gap* ``L_t - L*`` (``L* = f_star``,
  default 0). ``S_t`` is NaN when the update did not move the parameters (``eta_t = 0``).
- **every** ``every`` **updates** (``t = 0, every, 2 every, ...``), the *sharpness*
  ``lambda_max(H_t)``, the top eigenvalue of the Hessian of that batch's loss at ``theta_t``
  (:func:`preheat.probes.sharpness`, Lanczos, warm-started from the previous eigenvector), and for
  Adam-type optimizers (``adam``, ``adamw``, ``giadam``, ``giadamw``) also the *preconditioned
  sharpness* ``lambda_max(P_t^{-1} H_t)`` with ``P_t`` the preconditioner update ``t`` applied
  (:func:`preheat.probes.adam_preconditioner`, read from the optimizer state right after update
  ``t``; the Hessian is still taken at ``theta_t``).

Each measured curvature has a *stability threshold*, the curvature at which the update would
diverge on a quadratic (Cohen et al. 2021, 2022):

- ``sgd``: ``2 / eta``; ``momentum`` (heavy ball, ``beta = momentum``): ``(2 + 2 beta) / eta``;
- Adam-type, for the preconditioned sharpness: ``(2 + 2 beta1) / ((1 - beta1) eta)``;
- ``radam``, ``radamw``: none (its update is not ``P^{-1} m``); only the plain sharpness is measured.

Training sharpens until the sharpness meets the threshold and then hovers there (the *edge of
stability*); a warmup keeps ``eta_t`` small while the threshold is below the early sharpness.

After training, :func:`~preheat.adaptive.smoothness.fit_smoothness_law` fits the
``(rho, K0, K_rho)`` law ``S = K0 + K_rho (L - L*)^rho`` to the ``(gap, S)`` pairs (a quantile
regression in log-log at level ``envelope``, default 0.9: an upper envelope).

Nothing here prints; :mod:`preheat.lab.diagnose_figures` draws the figures and writes them with
the JSON of the arrays.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

from preheat.adaptive.smoothness import fit_smoothness_law
from preheat.lab.config import RunConfig
from preheat.lab.optimizers import OPTIMIZERS, build_optimizer
from preheat.lab.tasks import Task, make_task
from preheat.probes import adam_preconditioner, sharpness
from preheat.torch import Scheduler



@dataclass
class Diagnosis:
    """What :func:`diagnose` measured.

    Per update ``t`` (arrays of length ``updates``, the updates actually run): ``step`` (``t``),
    ``lr`` (``eta_t``), ``loss`` (``L_t``, on update ``t``'s batch at ``theta_t``), ``gap``
    (``L_t - L*``), ``smoothness`` (``S_t``, NaN when the update did not move) and
    ``threshold`` (the stability threshold at ``eta_t``; see :func:`stability_threshold`).

    Per measurement (arrays of length ``measurements``): ``measured_step`` (``t``),
    ``sharpness`` (``lambda_max(H_t)``) and, for Adam-type optimizers, ``preconditioned``
    (``lambda_max(P_t^{-1} H_t)``, else ``None``).

    ``fit`` is ``(rho, K0, K_rho)`` from :func:`fit_smoothness_law` (``None`` when the gaps span
    less than a factor 1.5 or fewer than 3 pairs are usable); ``task_constants`` the task's own
    ``(rho, K0, K_rho)`` when it has ``smoothness_constants()`` (the river valley).
    ``threshold_applies_to`` is ``"sharpness"``, ``"preconditioned"`` or ``None`` (RAdam).

    ``status`` is ``finished`` or ``diverged`` (the training loss turned NaN/inf or exceeded
    ``config.diverge_factor`` times the first one; the diverging update is not recorded).
    Timings in seconds: ``seconds_total`` (the whole call, building the model and optimizer
    and fitting included), ``seconds_training`` (the updates proper: forward, backward,
    optimizer step), ``seconds_sharpness`` (all sharpness measurements), ``seconds_smoothness``
    (the extra gradients); ``update_seconds`` and ``measurement_seconds`` hold each update's
    and each measurement's time; ``hvp_count`` counts Hessian-vector products.
    """

    config: RunConfig
    every: int
    f_star: float
    envelope: float
    status: str
    step: np.ndarray
    lr: np.ndarray
    loss: np.ndarray
    gap: np.ndarray
    smoothness: np.ndarray
    threshold: np.ndarray
    measured_step: np.ndarray
    sharpness: np.ndarray
    preconditioned: np.ndarray | None
    threshold_rule: str | None
    threshold_applies_to: str | None
    fit: tuple[float, float, float] | None
    task_constants: tuple[float, float, float] | None
    seconds_total: float
    seconds_training: float
    seconds_sharpness: float
    seconds_smoothness: float
    update_seconds: np.ndarray
    measurement_seconds: np.ndarray
    hvp_count: int

    @property
    def updates(self) -> int:
        """Updates run (``config.steps`` unless the run diverged)."""
        return int(self.step.size)

    @property
    def measurements(self) -> int:
        """Sharpness measurements made (each: the plain one, and the preconditioned one for Adam)."""
        return int(self.measured_step.size)

    @property
    def seconds_per_measurement(self) -> float:
        """The median time of one sharpness measurement (both series for Adam); NaN if none.

        The median, not the mean: the first call of anything in torch pays one-off costs.
        """
        return float(np.median(self.measurement_seconds)) if self.measurements else math.nan

    @property
    def seconds_per_update(self) -> float:
        """The median time of one training update (forward, backward, step; no measurement); NaN if none."""
        return float(np.median(self.update_seconds)) if self.updates else math.nan

    def law(self, gap: np.ndarray | float) -> np.ndarray | float:
        """The fitted law ``K0 + K_rho gap^rho`` (NaN without a fit)."""
        if self.fit is None:
            return np.full_like(np.asarray(gap, dtype=np.float64), np.nan)
        rho, k0, k_rho = self.fit
        return k0 + k_rho * np.power(np.asarray(gap, dtype=np.float64), rho)

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON types; NaN and infinities become ``None``."""

        def column(values: np.ndarray | None) -> list[float | None] | None:
            if values is None:
                return None
            return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]

        def triple(values: tuple[float, float, float] | None) -> dict[str, float] | None:
            return None if values is None else dict(zip(("rho", "K0", "K_rho"), values))

        return {
            "config": self.config.model_dump(mode="json"),
            "every": self.every,
            "f_star": self.f_star,
            "envelope": self.envelope,
            "status": self.status,
            "fit": triple(self.fit),
            "task_constants": triple(self.task_constants),
            "threshold_rule": self.threshold_rule,
            "threshold_applies_to": self.threshold_applies_to,
            "seconds": {
                "total": self.seconds_total,
                "training": self.seconds_training,
                "sharpness": self.seconds_sharpness,
                "smoothness": self.seconds_smoothness,
                "per_measurement": self.seconds_per_measurement,
                "per_update": self.seconds_per_update,
            },
            "hvp_count": self.hvp_count,
            "updates": {
                "step": [int(s) for s in self.step],
                "lr": column(self.lr),
                "loss": column(self.loss),
                "gap": column(self.gap),
                "smoothness": column(self.smoothness),
                "threshold": column(self.threshold),
            },
            "measurements": {
                "step": [int(s) for s in self.measured_step],
                "sharpness": column(self.sharpness),
                "preconditioned_sharpness": column(self.preconditioned),
            },
        }


def threshold_rule(config: RunConfig) -> tuple[str | None, str | None]:
    """``(formula, series)``: the threshold's formula as text and the series it bounds
    (``"preconditioned"`` for Adam-type optimizers, else ``"sharpness"``; ``None`` without one)."""
    entry = OPTIMIZERS[config.optimizer]
    rule = entry.threshold_rule(config)
    if rule is None:
        return None, None
    return rule, "preconditioned" if entry.preconditioned else "sharpness"


def diagnose(
    config: RunConfig,
    every: int,
    *,
    task: Task | None = None,
    f_star: float = 0.0,
    envelope: float = 0.9,
    progress: Callable[[int], None] | None = None,
) -> Diagnosis:
    """Train ``config`` and measure its sharpness every ``every`` updates and its local smoothness at each.

    See the module docstring for what is measured where. The run is seeded like
    :func:`preheat.lab.run.train` (``torch.manual_seed(config.seed)``, the task's model and
    batches from ``config.seed``) and uses its optimizer (:func:`~preheat.lab.run.build_optimizer`)
    and :class:`~preheat.torch.Scheduler` with ``config``'s schedule, so its training is the
    same; validation is not run.

    Args:
        config: the run; it must use a schedule (``controller`` unset).
        every: measure the sharpness at updates ``0, every, 2 every, ...`` (1 <= every <= steps).
        task: the task ``config`` names, already built (to reuse loaded data); built if ``None``.
        f_star: ``L*``, the infimum of the training loss, for the gap ``L_t - L*``; default 0.
        envelope: the quantile level of the law's fit, in (0, 1); default 0.9 (upper envelope).
        progress: called with the number of completed updates after each one.

    Returns:
        A :class:`Diagnosis`.

    Raises:
        ValueError: naming the argument, its value and what is valid.

    Cost: each update costs one extra gradient (the smoothness); each measurement one
    forward/backward with ``create_graph`` plus up to 20 Hessian-vector products (each a few
    gradients), twice for Adam-type optimizers.
    """
    owner = "diagnose"
    if not isinstance(config, RunConfig):
        raise ValueError(f"{owner}: config={config!r} is invalid; expected a preheat.lab.config.RunConfig")
    if config.controller is not None:
        raise ValueError(f"{owner}: config.controller={config.controller!r} is invalid; expected None "
                         "(diagnose runs a schedule; put the warmup in config.schedule)")
    if isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= config.steps:
        raise ValueError(f"{owner}: every={every!r} is invalid; expected an integer in 1..steps={config.steps}")
    if not isinstance(f_star, (int, float)) or not math.isfinite(f_star):
        raise ValueError(f"{owner}: f_star={f_star!r} is invalid; expected a finite number")
    if not isinstance(envelope, (int, float)) or not 0.0 < envelope < 1.0:
        raise ValueError(f"{owner}: envelope={envelope!r} is invalid; expected a number in (0, 1)")
    started = time.perf_counter()
    task = task if task is not None else make_task(config.task, config.task_options)
    run = _Recorder(config, task, every, progress)
    run.train()
    values = {name: np.asarray(column, dtype=np.float64) for name, column in run.columns.items()}
    gap = values["loss"] - float(f_star)
    fit = fit_smoothness_law(values["smoothness"], gap, envelope=envelope)
    known = getattr(task, "smoothness_constants", None)  # the river valley's (rho, K0, K_rho)
    task_constants = None
    if callable(known):
        rho, k0, k_rho = known()
        task_constants = (float(rho), float(k0), float(k_rho))
    rule, applies_to = threshold_rule(config)
    seconds_total = time.perf_counter() - started
    return Diagnosis(
        config=config,
        every=every,
        f_star=float(f_star),
        envelope=float(envelope),
        status=run.status,
        step=np.arange(values["lr"].size),
        lr=values["lr"],
        loss=values["loss"],
        gap=gap,
        smoothness=values["smoothness"],
        threshold=np.array([OPTIMIZERS[config.optimizer].threshold(config, lr) for lr in values["lr"]],
                           dtype=np.float64),
        measured_step=np.asarray(run.measured_step, dtype=np.int64),
        sharpness=np.asarray(run.sharpness, dtype=np.float64),
        preconditioned=np.asarray(run.preconditioned, dtype=np.float64) if run.adam else None,
        threshold_rule=rule,
        threshold_applies_to=applies_to,
        fit=fit,
        task_constants=task_constants,
        seconds_total=seconds_total,
        seconds_training=float(sum(run.update_seconds)),
        seconds_sharpness=float(sum(run.measurement_seconds)),
        seconds_smoothness=run.seconds_smoothness,
        update_seconds=np.asarray(run.update_seconds, dtype=np.float64),
        measurement_seconds=np.asarray(run.measurement_seconds, dtype=np.float64),
        hvp_count=run.hvp_count,
    )


class _Recorder:
    """The training loop of one diagnosed run, and what it measured (see :func:`diagnose`)."""

    def __init__(self, config: RunConfig, task: Task, every: int,
                 progress: Callable[[int], None] | None) -> None:
        self.config, self.task, self.every, self.progress = config, task, every, progress
        self.adam = OPTIMIZERS[config.optimizer].preconditioned
        self.status = "finished"
        self.columns: dict[str, list[float]] = {"lr": [], "loss": [], "smoothness": []}
        self.measured_step: list[int] = []
        self.sharpness: list[float] = []
        self.preconditioned: list[float] = []
        self.seconds_smoothness = 0.0
        self.update_seconds: list[float] = []
        self.measurement_seconds: list[float] = []
        self.hvp_count = 0
        self._vectors: dict[str, torch.Tensor | None] = {"plain": None, "preconditioned": None}

    def loss_fn(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        return self.task.loss(model, batch)[0]

    def train(self) -> None:
        config = self.config
        torch.manual_seed(config.seed)
        model = self.task.model(config.seed)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = build_optimizer(config, params)
        scheduler = Scheduler(optimizer, config.resolved_schedule())
        batches = self.task.batches(config.seed, config.batch_size)
        max_norm = config.grad_clip if config.grad_clip is not None else math.inf
        limit = math.inf
        for step in range(config.steps):
            started = time.perf_counter()
            lr = float(optimizer.param_groups[0]["lr"])
            model.train()
            batch = next(batches)
            loss, _ = self.task.loss(model, batch)
            value = loss.item()
            if step == 0:
                limit = config.diverge_factor * abs(value)
            if not math.isfinite(value) or value > limit:
                self.status = "diverged"
                return
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            before = _flat([p.detach() for p in params]).clone()
            gradient = _flat([torch.zeros_like(p) if p.grad is None else p.grad for p in params]).clone()
            torch.nn.utils.clip_grad_norm_(params, max_norm)
            optimizer.step()
            scheduler.step()
            self.update_seconds.append(time.perf_counter() - started)
            self.columns["lr"].append(lr)
            self.columns["loss"].append(value)
            self.columns["smoothness"].append(self._smoothness(model, params, batch, before, gradient))
            if step % self.every == 0:
                self._sharpness(step, model, params, optimizer, batch, before)
            if self.progress is not None:
                self.progress(step + 1)

    def _smoothness(self, model: torch.nn.Module, params: list[torch.Tensor], batch: Any,
                    before: torch.Tensor, gradient: torch.Tensor) -> float:
        """``||g(theta_{t+1}) - g(theta_t)|| / ||theta_{t+1} - theta_t||`` on ``batch``; NaN if nothing moved."""
        started = time.perf_counter()
        moved = torch.linalg.vector_norm(_flat([p.detach() for p in params]) - before).item()
        result = math.nan
        if moved > 0:
            fresh = torch.autograd.grad(self.loss_fn(model, batch), params, allow_unused=True)
            fresh_flat = _flat([torch.zeros_like(p) if g is None else g for g, p in zip(fresh, params)])
            result = torch.linalg.vector_norm(fresh_flat - gradient).item() / moved
        self.seconds_smoothness += time.perf_counter() - started
        return result

    def _sharpness(self, step: int, model: torch.nn.Module, params: list[torch.Tensor],
                   optimizer: torch.optim.Optimizer, batch: Any, before: torch.Tensor) -> None:
        """Measure ``lambda_max(H_t)`` (and ``lambda_max(P_t^{-1} H_t)``) at ``theta_t = before``."""
        started = time.perf_counter()
        preconditioner = adam_preconditioner(optimizer, model) if self.adam else None
        with _parameters_at(params, before):
            plain = sharpness(model, self.loss_fn, batch, init=self._vectors["plain"])
            self._vectors["plain"] = plain.vector
            self.sharpness.append(plain.value)
            self.hvp_count += plain.hvp_count
            if preconditioner is not None:
                scaled = sharpness(model, self.loss_fn, batch, init=self._vectors["preconditioned"],
                                   preconditioner=preconditioner)
                self._vectors["preconditioned"] = scaled.vector
                self.preconditioned.append(scaled.value)
                self.hvp_count += scaled.hvp_count
        self.measured_step.append(step)
        self.measurement_seconds.append(time.perf_counter() - started)


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


@contextmanager
def _parameters_at(params: list[torch.Tensor], flat: torch.Tensor) -> Iterator[None]:
    """Set ``params`` to the flat vector ``flat`` inside the block; put their values back after."""
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        offset = 0
        for p in params:
            p.copy_(flat[offset: offset + p.numel()].view_as(p))
            offset += p.numel()
    try:
        yield
    finally:
        with torch.no_grad():
            for p, value in zip(params, saved):
                p.copy_(value)
