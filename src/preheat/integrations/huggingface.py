"""preheat in the Hugging Face ``Trainer``: an optimizer and scheduler pair, and a controller's loss.

- :func:`optimizers_for_trainer` builds ``(optimizer, scheduler)`` for ``Trainer(optimizers=...)``
  from a preheat schedule, a controller, or an HF scheduler name (``"cosine"``, ...), with HF's
  argument names and HF's warmup rounding.
- :class:`PreheatTrainer` (a ``Trainer``) feeds every optimizer step's training loss and
  gradient norm to a controller before the scheduler steps, and adds the controller's decision
  to every log entry (``lr_multiplier``, ``controller_action``). It does this through
  :class:`PreheatCallback`, which it adds itself.

**Why a Trainer subclass.** The ``Trainer`` shows callbacks the loss only at logging steps
(``on_log``), and that comes *after* ``lr_scheduler.step()``: too late for a controller, whose
decision for update ``t + 1`` needs update ``t``'s loss before the scheduler steps. The subclass
overrides ``training_step`` (HF's documented extension point) and hands each micro-batch's loss,
as the Trainer itself accumulates it for logging, to the callback; the callback sums the
micro-batches of one optimizer step and calls ``scheduler.observe(loss=...)`` in
``on_optimizer_step``, i.e. after ``optimizer.step()`` and before ``lr_scheduler.step()``. The
loss is exactly the one HF logs, with gradient accumulation and ``num_items_in_batch`` scaling
included. The gradient norm is the one HF logs too (``grad_norm``: before clipping, of the whole
accumulated gradient, across ranks): the Trainer computes it once per update in
``_get_grad_norm`` (transformers 5 and later), which the subclass extends to pass the value on,
at no extra cost. The Trainers of transformers 4 compute it inline, where no subclass can read
it: there the controller gets the loss alone (``auto_warmup``'s gradient rule is then off). The
trade-off: you must train with :class:`PreheatTrainer` (or mix :class:`PreheatTrainerMixin` into
your own ``Trainer`` subclass).

With a plain ``Trainer``, :class:`PreheatCallback` falls back to a forward hook on the model
that reads ``outputs["loss"]`` of training-mode forward passes (averaged over the micro-batches
of a step). That needs a model that returns its loss (HF models do when given ``labels``) and
misses a loss computed outside the model (``compute_loss_func``, an overridden
``compute_loss``); prefer :class:`PreheatTrainer`.

**Before update 0.** A controller that measures something before training (``auto_warmup``
with SGD: the catapult LR, which sets its ramp's length) gets it under :class:`PreheatTrainer`:
its first ``training_step`` of a run, before any update, calls :meth:`Scheduler.prepare
<preheat.torch.Scheduler.prepare>` on that micro-batch, with the Trainer's ``compute_loss`` on
the unwrapped model. A plain ``Trainer`` with a :class:`PreheatCallback` measures nothing (with
SGD, ``auto_warmup``'s ramp is then 40 %, and its first decision says so). A resumed run is
prepared already (the scheduler's state holds what was measured).

Resuming (``trainer.train(resume_from_checkpoint=...)``) needs nothing more: the Trainer saves
and restores the scheduler's ``state_dict()``, which holds the step and the controller.

transformers is optional: ``pip install 'preheat[huggingface]'``. It is imported when a
function or class of this module is used, not when the module is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from preheat import auto_warmup
from preheat.schedules import Schedule, from_hf_name
from preheat.torch import Scheduler

_EXTRA = "pip install 'preheat[huggingface]'"

#: Optimizers :func:`optimizers_for_trainer` builds by name.
OPTIMIZERS = {"adamw": "AdamW", "adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}
AUTO = "auto"  # the name of preheat.auto_warmup among HF's scheduler names


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"preheat.integrations.huggingface needs transformers: {_EXTRA}"
        ) from err
    return transformers


def warmup_steps(num_training_steps: int | None, num_warmup_steps: float | None = None,
                 warmup_ratio: float | None = None) -> int:
    """The warmup length in updates, rounded as HF's ``TrainingArguments.get_warmup_steps``.

    ``num_warmup_steps >= 1`` is a count (``int()`` of it); ``0 < num_warmup_steps < 1`` is a
    fraction of the run, as HF 5's ``warmup_steps``; ``warmup_ratio`` (HF 4's argument) is the
    same fraction. A fraction gives ``ceil(fraction * num_training_steps)``. Neither given: 0.

    Raises:
        ValueError: both given, a negative value, a ratio of 1 or more, or a fraction without
            ``num_training_steps``.
    """
    if num_warmup_steps is not None and warmup_ratio is not None:
        raise ValueError(
            f"optimizers_for_trainer: num_warmup_steps={num_warmup_steps!r} and warmup_ratio="
            f"{warmup_ratio!r} both given; expected at most one"
        )
    fraction = None
    if warmup_ratio is not None:
        if not (isinstance(warmup_ratio, (int, float)) and 0 <= warmup_ratio < 1):
            raise ValueError(
                f"optimizers_for_trainer: warmup_ratio={warmup_ratio!r} is invalid; expected a number in [0, 1)"
            )
        fraction = float(warmup_ratio)
    elif num_warmup_steps is not None:
        if isinstance(num_warmup_steps, bool) or not isinstance(num_warmup_steps, (int, float)) or not (
            num_warmup_steps >= 0 and math.isfinite(num_warmup_steps)
        ):
            raise ValueError(
                f"optimizers_for_trainer: num_warmup_steps={num_warmup_steps!r} is invalid; expected "
                "an integer >= 0, or a fraction of the run in (0, 1)"
            )
        if num_warmup_steps >= 1 or num_warmup_steps == 0:
            return int(num_warmup_steps)
        fraction = float(num_warmup_steps)
    if fraction is None:
        return 0
    if num_training_steps is None:
        raise ValueError(
            f"optimizers_for_trainer: a warmup fraction ({fraction}) needs num_training_steps; "
            "expected num_training_steps (e.g. TrainingArguments.max_steps)"
        )
    return math.ceil(num_training_steps * fraction)


def optimizers_for_trainer(
    model_or_params: torch.nn.Module | Iterable[Any],
    schedule_or_controller: Schedule | Any | str,
    *,
    lr: float,
    num_training_steps: int | None = None,
    num_warmup_steps: float | None = None,
    warmup_ratio: float | None = None,
    optimizer: str | type[torch.optim.Optimizer] = "adamw",
    scheduler_specific_kwargs: Mapping[str, Any] | None = None,
    **optimizer_kwargs: Any,
) -> tuple[torch.optim.Optimizer, Scheduler]:
    """``(optimizer, scheduler)`` for ``transformers.Trainer(optimizers=...)``.

    ``lr`` is the peak LR; update ``t`` uses ``lr * schedule(t)`` (``t`` counts optimizer updates,
    as HF's ``global_step`` does). ``schedule_or_controller`` is a preheat schedule, a controller
    (:mod:`preheat.adaptive`; train with :class:`PreheatTrainer` so it gets the loss), or an HF
    scheduler name (``"linear"``, ``"cosine"``, ...; see :func:`preheat.from_hf_name`), which
    takes ``num_training_steps``, the warmup and ``scheduler_specific_kwargs`` as HF's
    ``get_scheduler`` does. The warmup (for a name only) is ``num_warmup_steps`` or
    ``warmup_ratio``, rounded as :func:`warmup_steps` says (HF's rounding). ``"auto"`` is
    :func:`preheat.auto_warmup` over ``num_training_steps`` (no warmup length: train with
    :class:`PreheatTrainer`). A preheat schedule's durations in a percentage of the run
    (``linear_warmup("5%")``) resolve against ``num_training_steps``.

    ``optimizer`` is ``"adamw"`` (default), ``"adam"``, ``"sgd"``, ``"rmsprop"`` or an optimizer
    class; ``optimizer_kwargs`` go to it. A module's trainable parameters are optimized (one
    group; pass param groups yourself for more).

    Raises:
        ValueError: naming the bad argument.
    """
    if isinstance(model_or_params, torch.nn.Module):
        params: Any = [p for p in model_or_params.parameters() if p.requires_grad]
    else:
        params = list(model_or_params)
    if isinstance(optimizer, str):
        if optimizer.lower() not in OPTIMIZERS:
            raise ValueError(
                f"optimizers_for_trainer: optimizer={optimizer!r} is unknown; expected one of "
                f"{sorted(OPTIMIZERS)} or a torch.optim.Optimizer class"
            )
        optimizer_cls = getattr(torch.optim, OPTIMIZERS[optimizer.lower()])
    elif isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        optimizer_cls = optimizer
    else:
        raise ValueError(
            f"optimizers_for_trainer: optimizer={optimizer!r} is invalid; expected a name "
            f"({', '.join(sorted(OPTIMIZERS))}) or a torch.optim.Optimizer class"
        )
    if isinstance(schedule_or_controller, str) and schedule_or_controller != AUTO:
        warmup = warmup_steps(num_training_steps, num_warmup_steps, warmup_ratio)
        schedule = from_hf_name(schedule_or_controller, warmup, num_training_steps,
                                **dict(scheduler_specific_kwargs or {}))
    else:
        given = {k: v for k, v in (("num_warmup_steps", num_warmup_steps), ("warmup_ratio", warmup_ratio),
                                   ("scheduler_specific_kwargs", scheduler_specific_kwargs)) if v is not None}
        if given:
            raise ValueError(
                f"optimizers_for_trainer: {sorted(given)} given with {schedule_or_controller!r}; "
                "expected them only with an HF scheduler name (a schedule holds its own warmup, "
                "'auto' needs none)"
            )
        if schedule_or_controller == AUTO and num_training_steps is None:
            raise ValueError("optimizers_for_trainer: num_training_steps=None is invalid with 'auto'; "
                             "expected the run's number of updates (auto_warmup decays to its end)")
        schedule = auto_warmup(num_training_steps) if schedule_or_controller == AUTO else schedule_or_controller
    opt = optimizer_cls(params, lr=lr, **optimizer_kwargs)
    return opt, Scheduler(opt, schedule, total=num_training_steps)


def _callback_base() -> type:
    return _transformers().TrainerCallback


class _LossFeeder:
    """What :class:`PreheatCallback` does, free of transformers so the module imports without it."""

    def __init__(self, scheduler: Scheduler | None = None) -> None:
        self.scheduler = scheduler
        self.fed_by_trainer = False  # set by PreheatTrainer: losses come from training_step
        self.unprepared = False  # set when training begins: the controller measures before update 0
        self._losses: list[float] = []
        self._grad_norm: float | None = None
        self._hook: Any = None

    # -- the loss ---------------------------------------------------------------------------

    def add_loss(self, loss: float | torch.Tensor) -> None:
        """One micro-batch's loss, as ``Trainer.training_step`` returns it (already divided by
        the accumulation steps where HF divides it), so a step's micro-batches sum to its loss."""
        self._losses.append(float(loss.detach().float().item() if isinstance(loss, torch.Tensor) else loss))

    def add_grad_norm(self, norm: float | torch.Tensor | None) -> None:
        """The update's gradient norm before clipping, as the Trainer computes it (``None``:
        none this update)."""
        self._grad_norm = None if norm is None else float(
            norm.detach().float().item() if isinstance(norm, torch.Tensor) else norm)

    def _forward_hook(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if not module.training:
            return
        loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
        if loss is None and isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor) \
                and output[0].dim() == 0:
            loss = output[0]
        if isinstance(loss, torch.Tensor):
            self._losses.append(float(loss.detach().float().mean().item()))

    # -- the callback events ----------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.scheduler is None:
            scheduler = kwargs.get("lr_scheduler")
            if not isinstance(scheduler, Scheduler):
                raise ValueError(
                    f"PreheatCallback: the trainer's lr_scheduler is {type(scheduler).__name__}; expected "
                    "a preheat.Scheduler (pass optimizers=optimizers_for_trainer(...) to the Trainer)"
                )
            self.scheduler = scheduler
        self._losses = []
        self.unprepared = self.controller is not None and self.scheduler.last_epoch == 0 and \
            not self.controller.observed and bool(self.controller.prepare_needs)
        if self.controller is not None and not self.fed_by_trainer and self._hook is None:
            model = kwargs.get("model")
            if model is not None:
                self._hook = model.register_forward_hook(self._forward_hook)

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.controller is None:
            self._losses, self._grad_norm = [], None
            return
        if self._losses:
            loss = sum(self._losses) if self.fed_by_trainer else sum(self._losses) / len(self._losses)
            grad = {} if self._grad_norm is None else {"grad_norm": self._grad_norm}
            self.scheduler.observe(loss=loss, **grad)
        self._losses, self._grad_norm = [], None

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    # -- what is logged ---------------------------------------------------------------------

    @property
    def controller(self) -> Any:
        return None if self.scheduler is None else self.scheduler.controller

    def log_entries(self) -> dict[str, Any]:
        """``lr_multiplier`` (the next update's) and ``controller_action`` (the latest decision's),
        or nothing without a controller."""
        controller = self.controller
        if controller is None:
            return {}
        entries: dict[str, Any] = {"lr_multiplier": float(controller.multiplier())}
        if controller.decisions:
            entries["controller_action"] = controller.decisions[-1].action
        return entries


def _make_callback_class() -> type:
    base = _callback_base()

    class PreheatCallback(_LossFeeder, base):  # type: ignore[misc, valid-type]
        """Feed each optimizer step's training loss (and, under :class:`PreheatTrainer`, its
        gradient norm) to the preheat controller driving the Trainer's scheduler (in
        ``on_optimizer_step``, before ``lr_scheduler.step()``), and put its decision in every log
        entry.

        Args:
            scheduler: the preheat :class:`~preheat.torch.Scheduler`; default: the Trainer's
                ``lr_scheduler``, taken when training begins.

        Used by :class:`PreheatTrainer`, which adds it and supplies the exact loss and gradient
        norm. Added to a plain ``Trainer`` it reads the loss from the model's outputs with a
        forward hook (no gradient norm), and
        adds its entries to ``on_log``'s ``logs`` (seen by the callbacks after it, e.g. the
        reporters, but not by ``state.log_history``, which the Trainer writes first).
        """

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            if logs is not None and not self.fed_by_trainer:
                logs.update(self.log_entries())

    return PreheatCallback


def _make_mixin_class() -> type:
    class PreheatTrainerMixin:
        """Mix into a ``transformers.Trainer`` subclass: its controller gets every step's loss
        and gradient norm.

        Adds a :class:`PreheatCallback` (or uses one given in ``callbacks``), hands it each
        ``training_step`` loss and each update's gradient norm before clipping (what the
        Trainer's ``_get_grad_norm`` returns, in transformers 5 and later; with older ones, none),
        and adds ``lr_multiplier`` and ``controller_action`` to every log entry (so they reach
        ``state.log_history`` and every reporter). Before the first update of a run it prepares
        a controller that measures something then, on the first micro-batch
        (:meth:`Scheduler.prepare <preheat.torch.Scheduler.prepare>`, with ``compute_loss``).
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            callback_cls = _get("PreheatCallback")
            found = [c for c in self.callback_handler.callbacks if isinstance(c, callback_cls)]
            if found:
                self.preheat_callback = found[0]
            else:
                self.preheat_callback = callback_cls()
                self.add_callback(self.preheat_callback)
            self.preheat_callback.fed_by_trainer = True

        def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> torch.Tensor:
            feeder = self.preheat_callback
            if feeder.unprepared:  # the run's first micro-batch, before any update
                feeder.unprepared = False
                feeder.scheduler.prepare(self.model, self.compute_loss, self._prepare_inputs(inputs))
            loss = super().training_step(model, inputs, num_items_in_batch)
            self.preheat_callback.add_loss(loss)
            return loss

        def _get_grad_norm(self, *args: Any, **kwargs: Any) -> Any:
            norm = super()._get_grad_norm(*args, **kwargs)  # type: ignore[misc]
            self.preheat_callback.add_grad_norm(norm)
            return norm

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            logs.update(self.preheat_callback.log_entries())
            super().log(logs, start_time)

    return PreheatTrainerMixin


_CLASSES: dict[str, type] = {}


def _get(name: str) -> type:
    if name not in _CLASSES:
        if name == "PreheatCallback":
            _CLASSES[name] = _make_callback_class()
        elif name == "PreheatTrainerMixin":
            _CLASSES[name] = _make_mixin_class()
        else:
            mixin = _get("PreheatTrainerMixin")
            _CLASSES[name] = type("PreheatTrainer", (mixin, _transformers().Trainer), {
                "__doc__": "A ``transformers.Trainer`` whose preheat controller gets every step's "
                           "loss; see :class:`PreheatTrainerMixin`.",
                "__module__": __name__,
            })
        _CLASSES[name].__module__ = __name__
        _CLASSES[name].__qualname__ = name
    return _CLASSES[name]


def __getattr__(name: str) -> Any:
    """``PreheatCallback``, ``PreheatTrainerMixin`` and ``PreheatTrainer`` are built on first
    access, so importing this module does not import transformers."""
    if name in ("PreheatCallback", "PreheatTrainerMixin", "PreheatTrainer"):
        return _get(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["OPTIMIZERS", "PreheatCallback", "PreheatTrainer", "PreheatTrainerMixin",
           "optimizers_for_trainer", "warmup_steps"]
