"""One training run: a task, an optimizer, a peak LR and a schedule, for a number of steps.

The loop records, for every update ``t``: the LR it used, the training loss and accuracy on its
batch, the gradient norm and the norm of the parameter change; and validation loss and
accuracy at step 0, every ``eval_every`` updates and after the last one. A run whose loss turns
NaN/inf or exceeds ``diverge_factor`` times the larger of the initial validation loss and the
first training loss stops and is marked ``diverged``.
Same config, same machine: same numbers (seeded, single-threaded or not, CPU kernels are
deterministic).

Under ``torchrun`` (an initialised process group) the model is wrapped in
``DistributedDataParallel`` and each rank trains on its share of every batch; losses and
signals are averaged over ranks, so every rank records the same run (see
:mod:`preheat.lab.distributed`).
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch

from preheat.lab import distributed
from preheat.lab.config import RunConfig
from preheat.lab.optimizers import OPTIMIZERS, build_optimizer
from preheat.lab.peers import peer_scheduler
from preheat.lab.record import EVAL_COLUMNS, STEP_COLUMNS, RunResult
from preheat.lab.signals import ADAM_LIKE, Signals
from preheat.lab.tasks import Task, make_task
from preheat.probes import CatapultResult, catapult_search
from preheat.torch import Scheduler

def train(
    config: RunConfig,
    task: Task | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """Run ``config`` and return its record; never raises for a training failure.

    ``task`` may be passed to reuse loaded data across runs (it must be the one ``config``
    names); ``progress(step)`` is called after every update.
    """
    start = time.perf_counter()
    result = RunResult(status="finished")
    try:
        task = task or make_task(config.task, config.task_options)
        _loop(config, task, result, progress)
    except Exception as err:  # a crash inside a run is recorded, not raised: the sweep goes on
        result.status, result.error = "failed", f"{type(err).__name__}: {err}"
    result.wall_time = time.perf_counter() - start
    return result


def _loop(config: RunConfig, task: Task, result: RunResult, progress: Callable[[int], None] | None) -> None:
    world = distributed.current()
    distributed.check_batch(config.batch_size, world)
    device = distributed.device(config.device, world)
    torch.manual_seed(config.seed)
    model = task.model(config.seed).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(config, params)
    controller = config.resolved_controller() if config.controller is not None else None
    if controller is not None and getattr(controller, "initial", 0.0) is None:  # catapult_warmup
        catapult = distributed.broadcast(_catapult(config, task, model))
        controller.set_initial(catapult.lr / config.peak_lr)
    if config.peer is not None:
        scheduler = peer_scheduler(config.peer, optimizer, config.warmup, config.steps)
    else:
        scheduler = Scheduler(optimizer, controller if controller is not None else config.resolved_schedule())
    modes = hasattr(optimizer, "train") and hasattr(optimizer, "eval")  # schedule-free: y for grads, x to evaluate
    signals = None if controller is None else Signals(
        controller.needs, task, model, optimizer, adam=config.optimizer in ADAM_LIKE)
    trained = model if world.size == 1 else torch.nn.parallel.DistributedDataParallel(model)
    batches = task.batches(config.seed, config.batch_size)
    _evaluate(task, model, 0, result, optimizer if modes else None)
    limit = math.inf  # set from the first update's loss
    for step in range(config.steps):
        before = torch.cat([p.detach().reshape(-1) for p in params]).clone()
        model.train()
        batch = task.shard(next(batches), world.rank, world.size)
        loss, accuracy = task.loss(trained, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = config.grad_clip if config.grad_clip is not None else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        optimizer.step()
        group = optimizer.param_groups[0]
        lr = group.get("scheduled_lr", group["lr"])  # the LR this update used (schedule-free's own warmup)
        after = torch.cat([p.detach().reshape(-1) for p in params])
        value, accuracy = distributed.mean(loss.item(), math.nan if accuracy is None else accuracy.item(),
                                           device=device)
        if controller is None:
            scheduler.step()
        else:
            extra = signals.measure(step, batch, params, after - before)
            scheduler.step(loss=value, grad_norm=grad_norm.item(), **extra)
            result.decisions, result.signal_seconds = controller.decisions, signals.seconds
        row = (step, lr, value, accuracy, grad_norm.item(), torch.linalg.vector_norm(after - before).item())
        for column, item in zip(STEP_COLUMNS, row):
            result.steps[column].append(item)
        if progress is not None:
            progress(step + 1)
        if step == 0:
            limit = config.diverge_factor * max(abs(value), abs(result.evals["val_loss"][0]))
        if not math.isfinite(value) or value > limit:
            result.status = "diverged"
            return
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            _evaluate(task, model, step + 1, result, optimizer if modes else None)


def _catapult(config: RunConfig, task: Task, model: torch.nn.Module) -> CatapultResult:
    """Kalra & Barkeshli's initial LR: one-step losses on a batch the run does not train on."""
    batch = next(task.batches(config.seed + 1_000_003, config.batch_size))
    return catapult_search(model, lambda m, b: task.loss(m, b)[0], batch, eta0=config.peak_lr * 1e-3,
                           target_lr=config.peak_lr, kind="adam" if config.optimizer in ADAM_LIKE else "sgd")


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
