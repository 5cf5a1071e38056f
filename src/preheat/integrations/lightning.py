"""preheat in Lightning: a callback that gives a controller each step's loss and logs its decisions.

The scheduler itself needs no adapter: return a :class:`preheat.Scheduler` from
``configure_optimizers`` with ``"interval": "step"``::

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=3e-4)              # the peak LR
        total = self.trainer.estimated_stepping_batches                        # optimizer updates
        schedule = preheat.linear_warmup("5%") >> preheat.cosine_decay("95%")
        scheduler = preheat.Scheduler(optimizer, schedule, total=total)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

With a controller (:mod:`preheat.adaptive`) in place of the schedule, add
:class:`PreheatLightningCallback` to the ``Trainer``'s callbacks so the controller sees the loss.

**Ordering (verified on Lightning 2.6).** In ``_TrainingEpochLoop.advance`` Lightning runs the
optimizer step (training_step, backward, ``optimizer.step()``), then
``update_lr_schedulers("step")`` (our ``scheduler.step()``), and only *then* the
``on_train_batch_end`` hooks. Observing the loss in ``on_train_batch_end`` would therefore be one
step late: the scheduler would already have stepped without a signal (the controller holds). The
callback instead collects the loss in ``on_before_backward`` (each micro-batch's loss as Lightning
back-propagates it, divided by ``accumulate_grad_batches``, so the micro-batches of one step sum
to its mean loss) and calls ``scheduler.observe(loss=..., grad_norm=...)`` in
``on_before_optimizer_step``, once per optimizer update and before ``scheduler.step()``; the
gradient norm is that of the module's gradients there, before Lightning clips them (left out
when it is not finite, as in the steps a mixed-precision scaler skips). ``on_train_batch_end``, which runs after the
scheduler stepped, logs the decision. Manual optimization is not covered (Lightning does not step
schedulers there; call ``scheduler.step(loss=...)`` yourself).

**Before update 0.** A controller that measures something before training (``auto_warmup``
with SGD: the catapult LR, which sets its ramp's length) gets it when the callback is given
``loss_fn(pl_module, batch) -> loss``: in ``on_train_batch_start`` of the first batch (moved to
the device already), before any update, the callback calls :meth:`Scheduler.prepare
<preheat.torch.Scheduler.prepare>` on that batch. Without ``loss_fn`` nothing is measured (with
SGD, ``auto_warmup``'s ramp is then 40 %, and its first decision says so). A resumed run is
prepared already (the scheduler's state holds what was measured).

Resuming with ``trainer.fit(ckpt_path=...)`` needs nothing more: Lightning checkpoints the
scheduler's ``state_dict()``, which holds the step and the controller.

lightning is optional: ``pip install 'preheat[lightning]'``; it is imported when the callback
class is first used, not when this module is.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from preheat.torch import Scheduler

_EXTRA = "pip install 'preheat[lightning]'"

#: Numeric codes of decision actions, logged as ``preheat/action`` (loggers take numbers only);
#: an action not listed logs -1.
ACTION_CODES = {"hold": 0, "raise": 1, "lower": 2, "backoff": 3, "handover": 4}


def _callback_base() -> type:
    try:
        from lightning.pytorch import Callback
    except ImportError:
        try:
            from pytorch_lightning import Callback
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(f"preheat.integrations.lightning needs lightning: {_EXTRA}") from err
    return Callback


def _make_callback_class() -> type:
    class PreheatLightningCallback(_callback_base()):  # type: ignore[misc]
        """Feed each optimizer update's training loss to a controller-driven preheat Scheduler,
        and log its decisions with ``pl_module.log``.

        Args:
            scheduler: the preheat :class:`~preheat.torch.Scheduler`; default: the first one
                with a controller among the trainer's LR schedulers, found when training starts.
            log: log ``preheat/lr_multiplier`` (the next update's multiplier) and
                ``preheat/action`` (the latest decision's action, coded as in
                :data:`ACTION_CODES`) every step (default True).
            loss_fn: ``loss_fn(pl_module, batch) -> scalar tensor``, the training loss of a
                batch as the callback's first batch arrives (on the device), for what the
                controller measures before update 0 (:meth:`Scheduler.prepare
                <preheat.torch.Scheduler.prepare>`); default None: nothing is measured.

        The controller's full decisions (reason, evidence) stay in
        ``scheduler.controller.decisions``. See the module docstring for the hook order.
        """

        def __init__(self, scheduler: Scheduler | None = None, log: bool = True,
                     loss_fn: Callable[[Any, Any], torch.Tensor] | None = None) -> None:
            super().__init__()
            if loss_fn is not None and not callable(loss_fn):
                raise ValueError(f"PreheatLightningCallback: loss_fn={loss_fn!r} is invalid; expected None or "
                                 "a callable loss_fn(pl_module, batch) -> loss")
            self.scheduler = scheduler
            self.log = log
            self.loss_fn = loss_fn
            self._loss = 0.0
            self._count = 0

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            if self.scheduler is None:
                found = [c.scheduler for c in trainer.lr_scheduler_configs
                         if isinstance(c.scheduler, Scheduler) and c.scheduler.controller is not None]
                if not found:
                    raise ValueError(
                        "PreheatLightningCallback: no preheat.Scheduler driven by a controller among "
                        "the trainer's LR schedulers; expected configure_optimizers to return one "
                        "with interval='step', or pass scheduler="
                    )
                self.scheduler = found[0]
            self._loss, self._count = 0.0, 0

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            scheduler = self.scheduler
            if (self.loss_fn is not None and batch_idx == 0 and scheduler is not None  # the first micro-batch
                    and scheduler.controller is not None and scheduler.last_epoch == 0
                    and not scheduler.controller.observed):
                scheduler.prepare(pl_module, self.loss_fn, batch)

        def on_before_backward(self, trainer: Any, pl_module: Any, loss: Any) -> None:
            self._loss += float(loss.detach().float().item())
            self._count += 1

        def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
            if self.scheduler is not None and self.scheduler.controller is not None and self._count:
                grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
                norm = torch.nn.utils.get_total_norm(grads).item() if grads else math.nan
                self.scheduler.observe(loss=self._loss, **({"grad_norm": norm} if math.isfinite(norm) else {}))
            self._loss, self._count = 0.0, 0

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                               batch_idx: int) -> None:
            controller = None if self.scheduler is None else self.scheduler.controller
            if not self.log or controller is None:
                return
            pl_module.log("preheat/lr_multiplier", float(controller.multiplier()), on_step=True, on_epoch=False)
            if controller.decisions:
                code = ACTION_CODES.get(controller.decisions[-1].action, -1)
                pl_module.log("preheat/action", float(code), on_step=True, on_epoch=False)

    PreheatLightningCallback.__module__ = __name__
    return PreheatLightningCallback


_CLASS: list[type] = []


def __getattr__(name: str) -> Any:
    """``PreheatLightningCallback`` is built on first access, so importing this module does not
    import lightning."""
    if name == "PreheatLightningCallback":
        if not _CLASS:
            _CLASS.append(_make_callback_class())
        return _CLASS[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ACTION_CODES", "PreheatLightningCallback"]
