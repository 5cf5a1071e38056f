"""The PyTorch ``Scheduler``: a closed-form ``LRScheduler`` driven by preheat schedules.

Each step sets every scheduled value from scratch, ``initial value * schedule(step)``; nothing is
chained from what the optimizer holds, so resuming needs only the step count.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from torch import Tensor, nn
from torch.optim import SGD, Adam, AdamW, Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.hooks import RemovableHandle

from preheat.schedules import Schedule, from_dict
from preheat.schedules.units import RunSize
from preheat.probes import LossFn
from preheat.probes.catapult import KINDS
from preheat.torch.checks import (
    MICRO_BATCH_EVIDENCE,
    cadence_findings,
    optimizer_findings,
    schedule_findings,
    train_mode_findings,
    warn,
)
from preheat.schedules.validate import check_choice, shorten
from preheat.torch.prepare import Before, measure

#: Hyperparameters ``hyperparams`` may schedule: name -> (param group key, tuple index or None).
HYPERPARAMS: dict[str, tuple[str, int | None]] = {
    "weight_decay": ("weight_decay", None),
    "momentum": ("momentum", None),
    "beta1": ("betas", 0),
    "beta2": ("betas", 1),
}

#: The range of each hyperparameter's initial value: (low, high, whether high is excluded).
HYPER_RANGES: dict[str, tuple[float, float, bool]] = {
    "weight_decay": (0.0, math.inf, False),
    "momentum": (0.0, 1.0, False),
    "beta1": (0.0, 1.0, True),
    "beta2": (0.0, 1.0, True),
}

BLOCK = 256  # steps of each schedule evaluated at once
#: The largest step a checkpoint may hold (a block of steps after it still fits in int64).
MAX_STEP = int(np.iinfo(np.int64).max) - BLOCK

_STATE_KEYS = ("last_epoch", "_step_count", "base_lrs", "schedules", "hyperparams", "initial_values", "controller")


def is_sgd(optimizer: Optimizer) -> bool:
    """Whether ``optimizer`` is SGD (``torch.optim.SGD`` or a subclass), what a controller is
    told by :meth:`~preheat.adaptive.base.Controller.bind`: its step is the gradient (with
    momentum) times the LR, not a step whose size the LR sets (the Adam family, Muon)."""
    return isinstance(optimizer, SGD)


class Scheduler(LRScheduler):
    """Set each param group's LR to ``peak * schedule(step)``, and optionally other hyperparameters.

    ``step`` is the number of completed optimizer updates, i.e. of ``scheduler.step()`` calls,
    made after each ``optimizer.step()``. Right after construction every group holds
    ``peak * schedule(0)``, the LR of update 0; after ``k`` calls of :meth:`step` it holds
    ``peak * schedule(k)``. After a schedule's last step the value at that step holds (it never
    climbs back). ``peak`` is the group's ``lr`` when the scheduler is built, kept as torch does in
    ``group["initial_lr"]`` and in :attr:`base_lrs`.

    Args:
        optimizer: the optimizer whose param groups are driven.
        schedule: one :class:`~preheat.schedules.Schedule` for every group, a list with one
            per group, or a controller (:mod:`preheat.adaptive`) whose multiplier drives every
            group; feed it each update's signals with ``step(loss=...)`` or :meth:`observe`. The
            controller is bound to the first group's peak and told whether ``optimizer`` is a
            ``torch.optim.SGD`` (:meth:`~preheat.adaptive.base.Controller.bind`); what it
            measures before training, :meth:`prepare` gives it before the first update.
        hyperparams: other hyperparameters to schedule the same way, ``initial * schedule(step)``,
            by name: ``weight_decay``, ``momentum`` (SGD, RMSprop), ``beta1`` and ``beta2`` (the
            components of Adam's ``betas``, written back as a tuple). Each name takes one schedule
            or a list with one per group. The initial value of ``name`` is the group's value when
            the scheduler is built, kept in ``group["initial_<name>"]`` (e.g.
            ``initial_weight_decay``, ``initial_beta2``) and in :attr:`initial_values`.
        total, updates_per_epoch, samples_per_update, tokens_per_update: the run's size, which
            resolves durations written in units (``linear_warmup("5%")``, ``"2ep"``, ``"500ksp"``,
            ``"2Btok"``; see :meth:`Schedule.resolve <preheat.schedules.Schedule.resolve>`) once,
            here. Count updates, not micro-batches: with gradient accumulation an update holds
            every micro-batch's samples. Not needed by schedules written in updates; ``total``
            also lets the scheduler check the schedule against the run (below).
        last_epoch: torch's resume argument: ``-1`` (default) starts at step 0. ``k >= 0``
            continues after step ``k`` (the groups then get step ``k + 1`` at once) from the
            ``initial_*`` values already in the groups. Prefer :meth:`load_state_dict`.

    Tensor values in the groups (``lr``, ``weight_decay``, a ``betas`` component) are updated in
    place with ``fill_``; plain numbers are replaced. As with every torch scheduler, a group's
    ``initial_*`` entry is kept if already present (a second scheduler, or an optimizer state
    loaded before the scheduler was built, keeps the original peak).

    :meth:`state_dict` holds plain data only: the step, the peaks and initial values, and every
    schedule as its ``to_dict()``. :meth:`load_state_dict` restores them, so **the checkpoint's
    schedules and initial values replace those given to the constructor**: resuming reproduces
    the checkpointed run exactly.

    **Checks.** The scheduler warns (:class:`~preheat.schedules.checks.WarmupMistake`, once each)
    on the warmup mistakes of :mod:`preheat.torch.checks`: when built, a warmup as long as
    ``total`` or a decay that ends before it, and Prodigy with a warmup and no
    ``safeguard_warmup``; while training, :meth:`step` called once per several optimizer updates
    (Lightning's ``interval="epoch"``) or more often than the optimizer (per micro-batch); in
    :meth:`state_dict`, a schedule-free optimizer in train mode. The optimizer's updates are
    counted with a step hook from construction (or :meth:`load_state_dict`) on, until a warning
    or :data:`~preheat.torch.checks.MICRO_BATCH_EVIDENCE` calls settle the cadence; then the
    hook is removed and a step costs nothing more.

    Raises:
        ValueError: naming the argument, the bad value and what is valid.
    """

    # torch's constructor makes the first step() call before _watch_cadence starts counting
    _calls = _updates = 0
    _update_hook: RemovableHandle | None = None

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: Schedule | Sequence[Schedule] | Any,
        *,
        hyperparams: Mapping[str, Schedule | Sequence[Schedule]] | None = None,
        total: int | None = None,
        updates_per_epoch: int | None = None,
        samples_per_update: int | None = None,
        tokens_per_update: int | None = None,
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise ValueError(
                f"Scheduler: optimizer={optimizer!r} is invalid; expected a torch.optim.Optimizer"
            )
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, int) or not -1 <= last_epoch <= MAX_STEP:
            raise ValueError(
                f"Scheduler: last_epoch={shorten(last_epoch)} is invalid; expected an integer >= -1 "
                f"and <= 2**63 - {BLOCK + 1}"
            )
        if hyperparams is None:
            hyperparams = {}
        if not isinstance(hyperparams, Mapping):
            raise ValueError(
                f"Scheduler: hyperparams={hyperparams!r} is invalid; expected a mapping from a name "
                f"({', '.join(HYPERPARAMS)}) to a schedule or a list of them"
            )
        _check_names(hyperparams, optimizer)
        groups = optimizer.param_groups
        self.controller = schedule if _is_controller(schedule) else None
        size = _run_size(total, updates_per_epoch, samples_per_update, tokens_per_update)
        self.schedules: list[Schedule] = (
            [] if self.controller else _per_group("schedule", schedule, len(groups), size)
        )
        if self.controller is not None:
            self.controller.bind(float(groups[0].get("initial_lr", groups[0]["lr"])), sgd=is_sgd(optimizer))
        self.hyperparams: dict[str, list[Schedule]] = {
            name: _per_group(f"hyperparams[{name!r}]", value, len(groups), size)
            for name, value in hyperparams.items()
        }
        if last_epoch == -1:
            for name in self.hyperparams:
                for group in groups:
                    group.setdefault(f"initial_{name}", _copy(_read(group, name)))
        else:
            _check_resumable(optimizer, ["lr", *self.hyperparams], last_epoch)
        self.initial_values: dict[str, list[float | Tensor]] = {
            name: [_copy(group[f"initial_{name}"]) for group in groups] for name in self.hyperparams
        }
        self._index()
        super().__init__(optimizer, last_epoch)
        self._watch_cadence()
        if total is not None:
            for unique in self._unique:
                warn(schedule_findings(unique, total))
        first = self.controller.multiplier() if self.controller is not None else min(
            (s(0) for s in self.schedules), default=1.0)
        warn(optimizer_findings(optimizer, warms_up=first < 1.0))

    def step(self, epoch: int | None = None, **signals: float) -> None:
        """Advance one step (call it after ``optimizer.step()``) and write the new values.

        After ``k`` calls the groups hold ``peak * schedule(k)`` (and ``initial * schedule(k)``
        for each scheduled hyperparameter). ``epoch`` (deprecated in torch) is refused: the step
        is the count of calls; to jump to a step use :meth:`load_state_dict`.

        With a controller, ``signals`` (``loss=...``, ``grad_norm=...``, ...) are the update's
        evidence, passed to :meth:`observe` first; if the update was not observed (no signals
        here nor an :meth:`observe` call) the controller holds its multiplier.
        """
        if epoch is not None:
            raise ValueError(
                f"Scheduler.step: epoch={epoch!r} is not supported; expected step() with no "
                "argument (the step is the number of calls); use load_state_dict to resume at a step"
            )
        if self.controller is None and signals:
            raise ValueError(f"Scheduler.step: signals {sorted(signals)} given, but the scheduler "
                             "drives a schedule; expected signals only with a controller")
        if self.controller is not None and self.controller.observed == self.last_epoch:
            self.observe(**signals)
        if self._step_count == 1:
            _warn_on_call_order(self.optimizer)
        self._step_count += 1
        self.last_epoch += 1
        self._apply()
        self._calls += 1
        if self._update_hook is not None:
            found = cadence_findings(self._calls, self._updates)
            warn(found)
            if found or self._calls >= MICRO_BATCH_EVIDENCE:
                self._update_hook.remove()
                self._update_hook = None

    def observe(self, **signals: float) -> None:
        """Give the controller the signals of the update just made (before :meth:`step`).

        Under ``torch.distributed`` the signals are averaged over all ranks first, so every rank
        takes the same decision. A NaN or inf signal on any rank reaches every rank as NaN: the
        controller backs off everywhere.

        Raises:
            ValueError: a signal is not a number (the controller's ``signal_values`` names it).
        """
        if self.controller is None:
            raise ValueError("Scheduler.observe: this scheduler drives a schedule; expected a controller")
        convert = getattr(self.controller, "signal_values", None)
        values = convert(signals) if convert is not None else {k: float(v) for k, v in signals.items()}
        self.controller.observe(**_all_reduce(values))

    def prepare(self, model: nn.Module, loss_fn: LossFn, batch: Any, *, kind: str | None = None) -> dict[str, float]:
        """Before update 0, measure what the controller names in ``prepare_needs`` and give it to
        the controller; the groups then get update 0's LR again, as the prepared controller sets it.

        The measurements (:mod:`preheat.torch.prepare`) run on ``model`` at its initial weights
        with ``loss_fn(model, batch) -> scalar tensor`` on ``batch``, and leave the parameters,
        buffers and gradients as they were. ``auto_warmup`` needs one with SGD only: the catapult
        LR, which sets its ramp's length (a few forward passes and one backward). Under
        ``torch.distributed`` each measurement is averaged over the ranks, so every rank prepares
        the same. Call it after building the scheduler and before the first ``optimizer.step()``;
        for the same network in every pass, leave out dropout (``model.eval()`` where the model
        has no batch statistics).

        Args:
            model: the network, at the weights it starts training from.
            loss_fn: ``loss_fn(model, batch) -> scalar tensor``, a positive loss.
            batch: one batch, as ``loss_fn`` takes it.
            kind: the optimizer's first step as the catapult search simulates it, ``"sgd"`` or
                ``"adam"``; default ``"adam"`` for ``torch.optim.Adam`` and ``AdamW``, else ``"sgd"``.

        Returns:
            The measurements given to the controller, by name: ``{}`` where it needs none (nothing
            is run then).

        Raises:
            ValueError: the scheduler drives a schedule, it stepped or the controller observed an
                update already, ``kind`` is not ``"sgd"`` or ``"adam"``, or the controller needs a
                measurement that is not measured (nothing changes then).
        """
        owner = "Scheduler.prepare"
        if self.controller is None:
            raise ValueError(f"{owner}: this scheduler drives a schedule; expected a controller")
        if self.last_epoch != 0 or self.controller.observed:
            raise ValueError(f"{owner}: called after {self.last_epoch} step(s); expected it before update 0's "
                             "scheduler.step()")
        kind = ("adam" if isinstance(self.optimizer, (Adam, AdamW)) else "sgd") if kind is None else check_choice(
            owner, "kind", kind, KINDS)
        names = self.controller.prepare_needs
        if not names:
            return {}
        found = _all_reduce(measure(names, Before(model, loss_fn, batch, float(self.base_lrs[0]), kind)))
        self.controller.prepare(**found)
        self._apply()
        return found

    def get_lr(self) -> list[float | Tensor]:
        """Each group's LR at the current step ``last_epoch``: ``peak * schedule(last_epoch)``."""
        return [base * m for base, m in zip(self.base_lrs, self._multipliers(self._values(self.last_epoch)))]

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state as plain data (no callables), for ``torch.save`` or JSON.

        Keys: ``last_epoch`` (the step), ``_step_count``, ``base_lrs`` (the peaks),
        ``schedules`` (one ``to_dict()`` per group), ``hyperparams`` (name -> one ``to_dict()``
        per group), ``initial_values`` (name -> one initial value per group) and ``controller``
        (its ``state_dict()``, or None). Peaks and initial values are floats, or tensors where
        the groups hold tensors.
        """
        warn(train_mode_findings(self.optimizer))
        return {
            "last_epoch": self.last_epoch,
            "_step_count": self._step_count,
            "base_lrs": list(self.base_lrs),
            "schedules": [s.to_dict() for s in self.schedules],
            "hyperparams": {
                name: [s.to_dict() for s in ss] for name, ss in self.hyperparams.items()
            },
            "initial_values": {name: list(values) for name, values in self.initial_values.items()},
            "controller": None if self.controller is None else self.controller.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` and write the values for its step into the groups at once.

        The checkpoint's schedules, peaks and initial values replace the ones this scheduler was
        built with (resume reproduces the checkpointed run); the groups' ``initial_*`` entries
        are set to match. The optimizer's param groups must correspond to the checkpoint's.

        Everything is checked before anything changes: the keys (exactly those of
        :meth:`state_dict`), ``last_epoch`` and ``_step_count`` (integers, not bools, in
        ``[0, MAX_STEP]``), one peak per group (a finite number >= 0, or a one-element float
        tensor), one schedule per group rebuilt with ``from_dict`` (none with a controller),
        each scheduled hyperparameter's name, schedules and initial values (finite, in the
        hyperparameter's range), and the controller's state (rebuilt without being put in place,
        its ``peak_lr`` the first group's peak). A checkpoint that does not fit raises
        ``ValueError`` naming the key and leaves the scheduler, its controller and every param
        group exactly as they were.
        """
        loaded = self._checked(state_dict)
        if self.controller is not None:
            self.controller.load_state_dict(state_dict["controller"])  # checked above: cannot fail
        self.schedules = loaded.schedules
        self.hyperparams = loaded.hyperparams
        self.base_lrs = loaded.base_lrs
        self.initial_values = loaded.initial_values
        for i, group in enumerate(self.optimizer.param_groups):
            group["initial_lr"] = _copy(self.base_lrs[i])
            for name, values in self.initial_values.items():
                group[f"initial_{name}"] = _copy(values[i])
        self.last_epoch = loaded.last_epoch
        self._step_count = loaded.step_count
        self._index()
        self._apply()
        self._watch_cadence()  # from the resume on

    def _checked(self, state_dict: Any) -> _Loaded:
        """Everything :meth:`load_state_dict` puts in place, checked, copied, and nothing changed."""
        owner = "Scheduler.load_state_dict"
        if not isinstance(state_dict, Mapping):
            raise ValueError(f"{owner}: state_dict={shorten(state_dict)} is invalid; expected the output of "
                             "Scheduler.state_dict()")
        missing = [key for key in _STATE_KEYS if key not in state_dict]
        if missing:
            raise ValueError(
                f"{owner}: state_dict lacks {missing}; expected the output of "
                f"Scheduler.state_dict() with keys {list(_STATE_KEYS)}"
            )
        unknown = sorted(str(key) for key in state_dict if key not in _STATE_KEYS)
        if unknown:
            raise ValueError(f"{owner}: state_dict has unknown keys {unknown}; expected the output of "
                             f"Scheduler.state_dict() with keys {list(_STATE_KEYS)}")
        count = len(self.optimizer.param_groups)
        last_epoch = _step(owner, "last_epoch", state_dict["last_epoch"])
        step_count = _step(owner, "_step_count", state_dict["_step_count"])
        if (self.controller is None) != (state_dict["controller"] is None):
            raise ValueError(
                f"{owner}: the checkpoint was made with "
                f"{'a schedule' if state_dict['controller'] is None else 'a controller'}; expected a "
                "scheduler built the same way (state_dict controller)"
            )
        if self.controller is None:
            raw = _per_group_list(owner, "schedules", state_dict["schedules"], count)
            schedules = [_schedule(owner, f"schedules[{i}]", d) for i, d in enumerate(raw)]
        elif not isinstance(state_dict["schedules"], (list, tuple)) or len(state_dict["schedules"]):
            raise ValueError(f"{owner}: state_dict schedules={shorten(state_dict['schedules'])} is invalid; "
                             "expected [] (a controller sets the LR)")
        else:
            schedules = []
        base_lrs = [_number(owner, f"base_lrs[{i}]", v, "a peak LR")
                    for i, v in enumerate(_per_group_list(owner, "base_lrs", state_dict["base_lrs"], count))]
        hyperparams, initial_values = self._checked_hyperparams(state_dict, count)
        if self.controller is not None:
            rebuild = getattr(self.controller, "rebuild_state", None)
            try:
                rebuilt = None if rebuild is None else rebuild(state_dict["controller"])
            except ValueError as err:
                raise ValueError(f"{owner}: state_dict controller: {err}") from None
            peak = float(base_lrs[0])
            if rebuilt is not None and rebuilt.peak_lr != peak:
                raise ValueError(f"{owner}: state_dict controller peak_lr={rebuilt.peak_lr!r} is invalid; "
                                 f"expected base_lrs[0] = {peak!r}, the peak the controller was bound to")
        return _Loaded(last_epoch, step_count, base_lrs, schedules, hyperparams, initial_values)

    def _checked_hyperparams(self, state_dict: Mapping[str, Any],
                             count: int) -> tuple[dict[str, list[Schedule]], dict[str, list[float | Tensor]]]:
        """``hyperparams`` and ``initial_values`` of a checkpoint, checked (see :meth:`load_state_dict`)."""
        owner = "Scheduler.load_state_dict"
        given, initial = state_dict["hyperparams"], state_dict["initial_values"]
        for key, value in (("hyperparams", given), ("initial_values", initial)):
            if not isinstance(value, Mapping):
                raise ValueError(f"{owner}: state_dict {key}={shorten(value)} is invalid; expected a mapping "
                                 f"from a name ({', '.join(HYPERPARAMS)}) to one entry per param group")
        if set(given) != set(initial):
            raise ValueError(f"{owner}: state_dict hyperparams names {sorted(map(str, given))} and "
                             f"initial_values names {sorted(map(str, initial))} differ; expected the same names")
        _check_names(given, self.optimizer)
        hyperparams = {
            name: [_schedule(owner, f"hyperparams[{name!r}][{i}]", d)
                   for i, d in enumerate(_per_group_list(owner, f"hyperparams[{name!r}]", ds, count))]
            for name, ds in given.items()
        }
        initial_values = {
            name: [_number(owner, f"initial_values[{name!r}][{i}]", v, f"an initial {name}", HYPER_RANGES[name])
                   for i, v in enumerate(_per_group_list(owner, f"initial_values[{name!r}]", initial[name], count))]
            for name in given
        }
        return hyperparams, initial_values

    def _watch_cadence(self) -> None:
        """Count the optimizer's updates (a step hook) against :meth:`step` calls made from now on,
        to warn once if they drift apart (see :func:`~preheat.torch.checks.cadence_findings`)."""
        if self._update_hook is not None:
            self._update_hook.remove()
        self._calls = self._updates = 0
        me = weakref.ref(self)

        def count(*_: Any) -> None:
            scheduler = me()
            if scheduler is not None:
                scheduler._updates += 1

        self._update_hook = self.optimizer.register_step_post_hook(count)

    def _index(self) -> None:
        """Evaluate each distinct schedule once per step: map every use to a slot in ``_unique``."""
        self._unique: list[Schedule] = []
        self._block_start = -1  # no block of values yet (see _values)
        self._lr_slots = [self._slot(s) for s in self.schedules]
        self._hyper_slots = {name: [self._slot(s) for s in ss] for name, ss in self.hyperparams.items()}

    def _slot(self, schedule: Schedule) -> int:
        if schedule not in self._unique:
            self._unique.append(schedule)
        return self._unique.index(schedule)

    def _multipliers(self, values: list[float]) -> list[float]:
        """Each group's LR multiplier: its schedule's value, or the controller's decision."""
        if self.controller is not None:
            return [self.controller.multiplier()] * len(self.base_lrs)
        return [values[k] for k in self._lr_slots]

    def _values(self, step: int) -> list[float]:
        """Each distinct schedule at ``step``, from a block of ``BLOCK`` steps evaluated at once.

        A schedule gives the same value for a step in an array as alone, so the block changes
        no number; it makes the per-step cost an array lookup.
        """
        offset = step - self._block_start
        if not self._unique:
            return []
        if self._block_start < 0 or not 0 <= offset < BLOCK:
            steps = np.arange(step, step + BLOCK)
            self._block = [s(steps) for s in self._unique]
            self._block_start, offset = step, 0
        return [float(values[offset]) for values in self._block]

    def _apply(self) -> None:
        """Write the values for step ``last_epoch`` into the groups and ``_last_lr``."""
        groups = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise ValueError(
                f"Scheduler: the optimizer has {len(groups)} param groups, but the scheduler was "
                f"built for {len(self.base_lrs)}; expected no groups added after the scheduler"
            )
        values = self._values(self.last_epoch)
        lrs = [base * m for base, m in zip(self.base_lrs, self._multipliers(values))]
        for group, lr in zip(groups, lrs):
            _assign(group, "lr", lr)
        for name, slots in self._hyper_slots.items():
            for group, initial, k in zip(groups, self.initial_values[name], slots):
                _write(group, name, initial * values[k])
        self._last_lr = lrs


class _Loaded(NamedTuple):
    """What :meth:`Scheduler.load_state_dict` puts in place, checked and copied."""

    last_epoch: int
    step_count: int
    base_lrs: list[float | Tensor]
    schedules: list[Schedule]
    hyperparams: dict[str, list[Schedule]]
    initial_values: dict[str, list[float | Tensor]]


def _step(owner: str, key: str, value: Any) -> int:
    """A checkpoint's step count: an integer (not a bool, not a float) in ``[0, MAX_STEP]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= MAX_STEP:
        raise ValueError(f"{owner}: state_dict {key}={shorten(value)} is invalid; expected an integer in "
                         f"[0, 2**63 - {BLOCK + 1}]")
    return int(value)


def _per_group_list(owner: str, key: str, value: Any, count: int) -> list[Any]:
    """``value`` as a list with one entry per param group."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{owner}: state_dict {key}={shorten(value)} is invalid; expected a list with "
                         f"{count} entries, one per param group")
    if len(value) != count:
        raise ValueError(
            f"{owner}: state_dict {key} has {len(value)} entries; "
            f"expected {count}, one per param group of this optimizer"
        )
    return list(value)


def _number(owner: str, key: str, value: Any, what: str,
            limits: tuple[float, float, bool] = (0.0, math.inf, False)) -> float | Tensor:
    """A peak or initial value: a finite number in ``limits`` (a float, or a copy of a
    one-element float tensor)."""
    low, high, high_open = limits
    interval = f"[{low}, {high}{')' if high_open or high == math.inf else ']'}"
    if isinstance(value, Tensor) and value.is_floating_point() and value.numel() == 1:
        number = float(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    else:
        number = math.nan
    if not math.isfinite(number) or not (low <= number < high if high_open else low <= number <= high):
        raise ValueError(f"{owner}: state_dict {key}={shorten(value)} is invalid; expected {what}, a finite "
                         f"number in {interval} (or a one-element float tensor)")
    return _copy(value) if isinstance(value, Tensor) else number


def _schedule(owner: str, key: str, data: Any) -> Schedule:
    """A schedule rebuilt with ``from_dict``, its errors prefixed with ``key``."""
    try:
        return from_dict(data)
    except ValueError as err:
        raise ValueError(f"{owner}: state_dict {key}: {err}") from None


def _is_controller(value: Any) -> bool:
    """A preheat controller (``preheat.adaptive``), recognised by its methods, so this module
    needs no import of it."""
    return all(callable(getattr(value, name, None)) for name in ("observe", "multiplier", "bind", "state_dict"))


def _all_reduce(signals: Mapping[str, float]) -> dict[str, float]:
    """The signals (floats) averaged over all ranks when ``torch.distributed`` is initialised, else
    as given (reduced on the current GPU under NCCL, which reduces CUDA tensors only)."""
    import torch
    import torch.distributed as dist

    values = dict(signals)
    if not values or not (dist.is_available() and dist.is_initialized()):
        return values
    keys = sorted(values)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return dict(zip(keys, (tensor / dist.get_world_size()).tolist()))


def _run_size(*sizes: int | None) -> dict[str, int | None]:
    """The run's size (``total`` and the per-update counts) as :meth:`Schedule.resolve`'s keyword
    arguments, checked, its errors named for the Scheduler."""
    try:
        return dataclasses.asdict(RunSize(*sizes))
    except ValueError as err:
        raise ValueError(f"Scheduler: {str(err).removeprefix('resolve: ')}") from None


def _per_group(what: str, value: Any, count: int, size: Mapping[str, int | None]) -> list[Schedule]:
    """``value`` as one schedule per param group (a single schedule is shared by all), each with
    its durations in units resolved against ``size``."""
    if isinstance(value, Schedule):
        value = [value] * count
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == count
        and all(isinstance(s, Schedule) for s in value)
    ):
        try:
            return [s.resolve(**size) for s in value]
        except ValueError as err:
            raise ValueError(f"Scheduler: {what}: {err}") from None
    raise ValueError(
        f"Scheduler: {what}={value!r} is invalid; expected a preheat Schedule or a list of "
        f"{count} Schedules, one per param group"
    )


def _check_names(hyperparams: Mapping[str, Any], optimizer: Optimizer) -> None:
    """Every name is known and present in every param group."""
    for name in hyperparams:
        if name not in HYPERPARAMS:
            raise ValueError(
                f"Scheduler: hyperparams name {name!r} is unknown; expected one of "
                f"{', '.join(HYPERPARAMS)} (the LR itself is scheduled by `schedule`)"
            )
        key, _ = HYPERPARAMS[name]
        for i, group in enumerate(optimizer.param_groups):
            if key not in group:
                usable = [n for n, (k, _) in HYPERPARAMS.items() if k in group]
                raise ValueError(
                    f"Scheduler: hyperparams name {name!r} is invalid for "
                    f"{type(optimizer).__name__}: param_groups[{i}] has no {key!r}; expected one "
                    f"of {', '.join(usable) or '(none for this optimizer)'}"
                )


def _check_resumable(optimizer: Optimizer, names: list[str], last_epoch: int) -> None:
    """With ``last_epoch >= 0`` every group must already hold its ``initial_*`` values."""
    for i, group in enumerate(optimizer.param_groups):
        for name in names:
            if f"initial_{name}" not in group:
                raise ValueError(
                    f"Scheduler: last_epoch={last_epoch} resumes a run, but param_groups[{i}] has "
                    f"no 'initial_{name}'; expected last_epoch=-1 (then resume with load_state_dict) "
                    "or an optimizer whose groups hold the initial values"
                )


def _warn_on_call_order(optimizer: Optimizer) -> None:
    """torch's check that the first ``step()`` comes after the first ``optimizer.step()``."""
    if not hasattr(optimizer.step, "_wrapped_by_lr_sched"):
        warnings.warn(
            "optimizer.step() was replaced after the scheduler was built, so the call order "
            "cannot be checked; call optimizer.step() before scheduler.step()",
            UserWarning,
            stacklevel=3,
        )
    elif not getattr(optimizer, "_opt_called", False):
        warnings.warn(
            "scheduler.step() was called before optimizer.step(); call it after, or update 0's "
            "value (schedule(0)) is skipped",
            UserWarning,
            stacklevel=3,
        )


def _copy(value: Any) -> Any:
    return value.clone() if isinstance(value, Tensor) else value


def _read(group: dict[str, Any], name: str) -> Any:
    key, index = HYPERPARAMS[name]
    return group[key] if index is None else group[key][index]


def _assign(group: dict[str, Any], key: str, value: Any) -> None:
    """Set ``group[key]``: in place if it holds a tensor, else replace it."""
    current = group[key]
    if isinstance(current, Tensor):
        current.fill_(value.squeeze() if isinstance(value, Tensor) else value)
    else:
        group[key] = value


def _write(group: dict[str, Any], name: str, value: Any) -> None:
    """Set hyperparameter ``name``; a ``betas`` component is filled in place or the tuple rebuilt."""
    key, index = HYPERPARAMS[name]
    if index is None:
        _assign(group, key, value)
        return
    pair = group[key]
    if isinstance(pair[index], Tensor):
        pair[index].fill_(value.squeeze() if isinstance(value, Tensor) else value)
    else:
        group[key] = tuple(value if i == index else v for i, v in enumerate(pair))
