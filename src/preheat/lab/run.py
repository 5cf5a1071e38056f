"""The one training loop of the lab: a task, an optimizer, a peak LR and a schedule, controller
or peer, for a number of steps. ``preheat compare``, ``sweep`` and ``diagnose`` all train here.

The loop records, for every update ``t``: the LR it used, the training loss and accuracy on its
batch, the gradient norm and the norm of the parameter change; and validation loss and
accuracy at step 0, every ``eval_every`` updates and after the last one. A run whose loss turns
NaN/inf or exceeds ``diverge_factor`` times the larger of the initial validation loss and the
first training loss stops and is marked ``diverged``.
Same config, same machine: same numbers (seeded, single-threaded or not, CPU kernels are
deterministic).

Observers watch the loop without changing it: after every update each gets the :class:`Run`
and the :class:`Update` (a controller's signals are measured and fed so, see
:class:`preheat.lab.signals.Feed`, and ``preheat diagnose`` records its curvature so). A
controller's ``prepare_needs`` are measured before update 0 (:func:`preheat.lab.signals.prepare`).

Under ``torchrun`` (an initialised process group) the model is wrapped in
``DistributedDataParallel`` and each rank trains on its share of every batch; losses and
signals are averaged over ranks, so every rank records the same run (see
:mod:`preheat.lab.distributed`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import torch

from preheat.lab import distributed, signals
from preheat.lab.config import RunConfig
from preheat.lab.optimizers import OPTIMIZERS, OptimizerEntry, build_optimizer
from preheat.lab.peers import Stepper, peer_scheduler
from preheat.lab.record import STEP_COLUMNS, RunResult
from preheat.lab.tasks import Task, make_task
from preheat.torch import Scheduler


@dataclass
class Run:
    """A run in training, as observers see it: its config and task, the (unwrapped) model, its
    trainable parameters, the optimizer and its registry entry."""

    config: RunConfig
    task: Task
    model: torch.nn.Module
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    entry: OptimizerEntry

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """The task's loss of ``batch`` (the probes' ``loss_fn``)."""
        return self.task.loss(model, batch)[0]


@dataclass
class Update:
    """Update ``step``, just made: on ``batch`` (this rank's share), at LR ``lr``, from the flat
    parameters ``before`` (``theta_t``) to ``after`` (``theta_{t+1}``), with the gradient
    ``gradient`` (``g(theta_t)``, flat, before any clipping; under ``torchrun`` the ranks' mean;
    kept only when the run has observers, ``None`` otherwise).
    ``loss`` and ``accuracy`` (NaN if the task has none) are the batch's at ``theta_t``, averaged
    over ranks; ``grad_norm`` is the norm before clipping; ``seconds`` the forward, backward and
    optimizer step."""

    step: int
    batch: Any
    lr: float
    loss: float
    accuracy: float
    grad_norm: float
    before: torch.Tensor
    after: torch.Tensor
    gradient: torch.Tensor | None
    seconds: float


class Observer(Protocol):
    """Watches a run: called after every update, before the scheduler steps."""

    def updated(self, run: Run, update: Update) -> None: ...


def train(
    config: RunConfig,
    task: Task | None = None,
    progress: Callable[[int], None] | None = None,
    observers: Sequence[Observer] = (),
) -> RunResult:
    """Run ``config`` and return its record; never raises for a training failure.

    ``task`` may be passed to reuse loaded data across runs (it must be the one ``config``
    names); ``progress(step)`` is called after every update; ``observers`` watch every update.
    """
    start = time.perf_counter()
    result = RunResult(status="finished")
    try:
        task = task or make_task(config.task, config.task_options)
        _loop(config, task, result, progress, observers)
    except Exception as err:  # a crash inside a run is recorded, not raised: the sweep goes on
        result.status, result.error = "failed", f"{type(err).__name__}: {err}"
    result.wall_time = time.perf_counter() - start
    return result


def start(config: RunConfig, task: Task, device: torch.device | None = None) -> Run:
    """``config``'s run before update 0: the global torch seed set to ``config.seed``, the model
    at its initial weights (on ``device``, default the CPU), its trainable parameters and the
    optimizer over them."""
    torch.manual_seed(config.seed)
    model = task.model(config.seed).to(device or torch.device("cpu"))
    params = [p for p in model.parameters() if p.requires_grad]
    return Run(config, task, model, params, build_optimizer(config, params, model), OPTIMIZERS[config.optimizer])


def _loop(config: RunConfig, task: Task, result: RunResult, progress: Callable[[int], None] | None,
          observers: Sequence[Observer]) -> None:
    world = distributed.current()
    distributed.check_batch(config.batch_size, world)
    device = distributed.device(config.device, world)
    run = start(config, task, device)
    model, optimizer = run.model, run.optimizer
    result.chance_accuracy = task.chance_accuracy
    scheduler, feed = _scheduler(run)
    watchers = [feed, *observers] if feed is not None else list(observers)
    averaged = optimizer if hasattr(optimizer, "train") and hasattr(optimizer, "eval") else None  # schedule-free
    trained = model if world.size == 1 else torch.nn.parallel.DistributedDataParallel(model)
    batches = task.batches(config.seed, config.batch_size)
    _evaluate(task, model, 0, result, averaged)
    limit = math.inf  # set from the first update's loss
    for step in range(config.steps):
        batch = task.shard(next(batches), world.rank, world.size)
        update = _update(run, trained, step, batch, device, keep_gradient=bool(watchers))
        for watcher in watchers:
            watcher.updated(run, update)
        scheduler.step()
        if feed is not None:
            result.decisions, result.signal_seconds = feed.controller.decisions, feed.seconds
        row = (step, update.lr, update.loss, update.accuracy, update.grad_norm,
               torch.linalg.vector_norm(update.after - update.before).item())
        for column, item in zip(STEP_COLUMNS, row):
            result.steps[column].append(item)
        if progress is not None:
            progress(step + 1)
        if step == 0:
            limit = config.diverge_factor * max(abs(update.loss), abs(result.evals["val_loss"][0]))
        if not math.isfinite(update.loss) or update.loss > limit:
            result.status = "diverged"
            return
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            _evaluate(task, model, step + 1, result, averaged)


def _scheduler(run: Run) -> tuple[Stepper, signals.Feed | None]:
    """What sets the LR (a preheat Scheduler, or a peer's), and the feed of its controller."""
    config = run.config
    if config.peer is not None:
        return peer_scheduler(config.peer, run.optimizer, config.warmup, config.steps), None
    if config.controller is None:
        return Scheduler(run.optimizer, config.resolved_schedule()), None
    controller = config.resolved_controller()
    scheduler = Scheduler(run.optimizer, controller)  # binds it: what it needs before update 0 may depend on that
    signals.prepare(run, scheduler)
    return scheduler, signals.Feed(controller, scheduler)


def _update(run: Run, trained: torch.nn.Module, step: int, batch: Any, device: torch.device,
            keep_gradient: bool) -> Update:
    """Make update ``step`` on ``batch`` (this rank's share; ``trained``: the model, DDP-wrapped
    under ``torchrun``); a copy of the gradient is kept only if ``keep_gradient``."""
    config, params, optimizer = run.config, run.params, run.optimizer
    started = time.perf_counter()
    before = signals.flat([p.detach() for p in params])
    run.model.train()
    loss, accuracy = run.task.loss(trained, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    gradient = None
    if keep_gradient:  # before clipping changes .grad
        gradient = signals.flat([torch.zeros_like(p) if p.grad is None else p.grad for p in params])
    grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip if config.grad_clip is not None else math.inf)
    optimizer.step()
    group = optimizer.param_groups[0]
    lr = group.get("scheduled_lr", group["lr"])  # the LR this update used (schedule-free's own warmup)
    after = signals.flat([p.detach() for p in params])
    value, mean_accuracy = distributed.mean(loss.item(), math.nan if accuracy is None else accuracy.item(),
                                            device=device)
    return Update(step, batch, lr, value, mean_accuracy, grad_norm.item(), before, after, gradient,
                  time.perf_counter() - started)


def _evaluate(task: Task, model: torch.nn.Module, step: int, result: RunResult,
              optimizer: torch.optim.Optimizer | None) -> None:
    """Validation metrics at ``step``; a schedule-free ``optimizer`` is switched to its
    evaluation weights meanwhile."""
    model.eval()
    if optimizer is not None:
        optimizer.eval()
    with torch.no_grad():
        metrics = task.evaluate(model)
    if optimizer is not None:
        optimizer.train()
    result.evals["step"].append(step)
    result.evals["val_loss"].append(float(metrics["val_loss"]))
    result.evals["val_accuracy"].append(float(metrics.get("val_accuracy", math.nan)))
