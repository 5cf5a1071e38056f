"""Diagnose a run: its sharpness against the edge of stability, its local smoothness against the loss gap.

:func:`diagnose` trains one run (a :class:`~preheat.lab.config.RunConfig` with a schedule) in
the lab's one loop (:func:`preheat.lab.run.train`: the same updates, divergence rule and
validation as a sweep's run of that config) and, as its observer, measures on the batch of
update ``t`` (``theta_t`` the parameters update ``t`` starts from,
``eta_t`` its LR, ``L_t`` its training loss):

- **at every update**, the *local smoothness* along the step (Liu et al. 2025)::

      S_t = ||g(theta_{t+1}) - g(theta_t)|| / ||theta_{t+1} - theta_t||

  with both gradients of the loss of update ``t``'s batch (so minibatch noise does not enter
  it; one extra forward and backward pass; :func:`preheat.lab.signals.smoothness`, the
  measurement a controller gets), and the *loss gap* ``L_t - L*`` (``L* = f_star``,
  default 0). ``S_t`` is NaN when the update did not move the parameters (``eta_t = 0``).
- **every** ``every`` **updates** (``t = 0, every, 2 every, ...``), the *sharpness*
  ``lambda_max(H_t)``, the top eigenvalue of the Hessian of that batch's loss at ``theta_t``
  (:func:`preheat.probes.sharpness`, Lanczos, warm-started from the previous eigenvector), and for
  preconditioned optimizers (``adam``, ``adamw``, ``giadam``, ``giadamw``: see
  :mod:`preheat.lab.optimizers`) also the *preconditioned sharpness* ``lambda_max(P_t^{-1} H_t)`` with ``P_t`` the preconditioner update ``t`` applied
  (:func:`preheat.probes.adam_preconditioner`, read from the optimizer state right after update
  ``t``; the Hessian is still taken at ``theta_t``).

Each measured curvature has a *stability threshold*, the curvature at which the update would
diverge on a quadratic (Cohen et al. 2021, 2022; the optimizer registry's
:meth:`~preheat.lab.optimizers.OptimizerEntry.threshold`):

- ``sgd``: ``2 / eta``; ``momentum`` (heavy ball, ``beta = momentum``): ``(2 + 2 beta) / eta``;
- Adam-type, for the preconditioned sharpness: ``(2 + 2 beta1) / ((1 - beta1) eta)``;
- ``radam``, ``radamw``, ``schedulefree_adamw``: none (their update is not ``P^{-1} m``); only
  the plain sharpness is measured.

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
from preheat.lab import signals
from preheat.lab.config import RunConfig
from preheat.lab.optimizers import OPTIMIZERS
from preheat.lab.run import Run, Update, train
from preheat.lab.tasks import Task



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

    ``status`` is ``finished`` or ``diverged`` (the run's rule, ``config.diverge_factor``: the
    diverging update is the last one recorded). ``val_step`` and ``val_loss`` are the run's
    validations (at step 0, every ``config.eval_every`` updates and after the last).
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
    val_step: np.ndarray
    val_loss: np.ndarray

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
            "validation": {"step": [int(s) for s in self.val_step], "val_loss": column(self.val_loss)},
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

    See the module docstring for what is measured where. The run is trained by
    :func:`preheat.lab.run.train` with the measurements as its observer, so its training
    numbers (LRs, losses, validation, divergence) are those of a lab run of ``config``.

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
        RuntimeError: the run failed (its error is in the message).

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
    entry = OPTIMIZERS[config.optimizer]
    recorder = _Recorder(every, entry.preconditioned)
    record = train(config, task, progress, observers=[recorder])
    if record.status == "failed":
        raise RuntimeError(f"{owner}: the run failed: {record.error}")
    lr = np.asarray(record.steps["lr"], dtype=np.float64)
    loss = np.asarray(record.steps["train_loss"], dtype=np.float64)
    gap = loss - float(f_star)
    smoothness = np.asarray(recorder.smoothness, dtype=np.float64)
    task = recorder.task
    known = getattr(task, "smoothness_constants", None)  # the river valley's (rho, K0, K_rho)
    task_constants = None
    if callable(known):
        rho, k0, k_rho = known()
        task_constants = (float(rho), float(k0), float(k_rho))
    rule, applies_to = threshold_rule(config)
    return Diagnosis(
        config=config,
        every=every,
        f_star=float(f_star),
        envelope=float(envelope),
        status=record.status,
        step=np.arange(lr.size),
        lr=lr,
        loss=loss,
        gap=gap,
        smoothness=smoothness,
        threshold=np.array([entry.threshold(config, value) for value in lr], dtype=np.float64),
        measured_step=np.asarray(recorder.measured_step, dtype=np.int64),
        sharpness=np.asarray(recorder.sharpness, dtype=np.float64),
        preconditioned=np.asarray(recorder.preconditioned, dtype=np.float64) if entry.preconditioned else None,
        threshold_rule=rule,
        threshold_applies_to=applies_to,
        fit=fit_smoothness_law(smoothness, gap, envelope=envelope),
        task_constants=task_constants,
        seconds_total=time.perf_counter() - started,
        seconds_training=float(sum(recorder.update_seconds)),
        seconds_sharpness=float(sum(recorder.measurement_seconds)),
        seconds_smoothness=recorder.seconds_smoothness,
        update_seconds=np.asarray(recorder.update_seconds, dtype=np.float64),
        measurement_seconds=np.asarray(recorder.measurement_seconds, dtype=np.float64),
        hvp_count=recorder.hvp_count,
        val_step=np.asarray(record.evals["step"], dtype=np.int64),
        val_loss=np.asarray(record.evals["val_loss"], dtype=np.float64),
    )


class _Recorder:
    """diagnose's observer of the run: the smoothness after every update, the sharpness (and
    the preconditioned one) at ``theta_t`` every ``every`` updates, and what each cost."""

    def __init__(self, every: int, preconditioned: bool) -> None:
        self.every, self.with_preconditioned = every, preconditioned
        self.task: Task | None = None
        self.smoothness: list[float] = []
        self.measured_step: list[int] = []
        self.sharpness: list[float] = []
        self.preconditioned: list[float] = []
        self.seconds_smoothness = 0.0
        self.update_seconds: list[float] = []
        self.measurement_seconds: list[float] = []
        self.hvp_count = 0
        self._vectors: dict[bool, torch.Tensor | None] = {False: None, True: None}

    def updated(self, run: Run, update: Update) -> None:
        self.task = run.task
        self.update_seconds.append(update.seconds)
        started = time.perf_counter()
        self.smoothness.append(signals.smoothness(run, update))
        self.seconds_smoothness += time.perf_counter() - started
        if update.step % self.every == 0 and math.isfinite(update.loss):
            self._sharpness(run, update)

    def _sharpness(self, run: Run, update: Update) -> None:
        """Measure ``lambda_max(H_t)`` (and ``lambda_max(P_t^{-1} H_t)``) at ``theta_t = update.before``."""
        started = time.perf_counter()
        with _parameters_at(run.params, update.before):
            for preconditioned in (False, True)[: 1 + self.with_preconditioned]:
                result = signals.top_eigenvalue(run, update.batch, self._vectors[preconditioned], preconditioned)
                self._vectors[preconditioned] = result.vector
                (self.preconditioned if preconditioned else self.sharpness).append(result.value)
                self.hvp_count += result.hvp_count
        self.measured_step.append(update.step)
        self.measurement_seconds.append(time.perf_counter() - started)


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
