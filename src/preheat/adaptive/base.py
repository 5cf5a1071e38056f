"""The controller: a closed-loop warmup that turns training signals into the next multiplier.

Where a schedule is a pure function of the step, a controller watches the run. After each
update it is shown that update's signals (the loss, the gradient norm, and whatever else it
asked for in ``needs``), decides the multiplier of the peak LR for the next update, and logs the
decision with its evidence. When its warmup ends it hands over to a pure schedule for the rest
of the run. Controllers are plain Python (no torch): the PyTorch ``Scheduler`` drives them.

The contract, in four small pieces:

- :class:`Bounds`: what every controller shares, given as the keywords ``after``, ``floor``,
  ``max_step`` and ``backoff`` of any controller and kept as one object;
- :class:`Proposal`: what :meth:`Controller.decide` returns;
- :class:`ControllerState`: the whole mutable state, one dataclass written and read whole (a
  controller's own state is a subclass of it, its :attr:`Controller.State`);
- ``needs`` (signals after each update) and ``prepare_needs`` (measurements before update 0,
  given to :meth:`Controller.prepare`): what the training loop must measure for it.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Mapping, TypedDict

import numpy as np

from preheat.schedules import Schedule, parse
from preheat.schedules.validate import check_int, check_real, shorten

if typing.TYPE_CHECKING:
    from typing import Unpack

AFTER_BLOCK = 256  # updates of ``after`` evaluated at once (a schedule's value is the same in an array)


@dataclass(frozen=True)
class Bounds:
    """Where a controller may take the LR, the same rules for every controller.

    - ``after``: the schedule expression that runs from the handover on, ``{steps}`` replaced
      by the updates left (default ``constant()``: hold the peak);
    - ``floor``: the lowest multiplier, in ``[0, 1]`` (every multiplier during warmup lies in
      ``[floor, 1]``; the ``after`` schedule is not clipped);
    - ``max_step``: the largest change of the multiplier per update during warmup (absolute,
      either direction), in ``(0, 1]``;
    - ``backoff``: the factor a NaN or infinite signal cuts the multiplier by, in ``(0, 1)``.

    Raises:
        ValueError: naming the argument, its value and what is valid.
    """

    after: str = "constant()"
    floor: float = 0.0
    max_step: float = 1.0
    backoff: float = 0.5

    def __post_init__(self) -> None:
        owner = "bounds"
        if not isinstance(self.after, str):
            raise ValueError(f"{owner}: after={self.after!r} is invalid; expected a schedule expression")
        self.handover_schedule(1)  # a bad expression fails here, not at the handover
        object.__setattr__(self, "floor", check_real(owner, "floor", self.floor, 0.0, 1.0))
        object.__setattr__(self, "max_step", check_real(owner, "max_step", self.max_step, 0.0, 1.0, low_open=True))
        object.__setattr__(self, "backoff", check_real(owner, "backoff", self.backoff, 0.0, 1.0,
                                                       low_open=True, high_open=True))

    def clip(self, value: float) -> float:
        """``value`` within ``[floor, 1]``."""
        return min(1.0, max(self.floor, value))

    def move(self, current: float, proposal: float) -> float:
        """From ``current`` towards ``proposal`` by at most ``max_step``, within ``[floor, 1]``."""
        return self.clip(current + max(-self.max_step, min(self.max_step, proposal - current)))

    def handover_schedule(self, remaining: int) -> Schedule:
        """``after`` with ``{steps}`` = ``remaining``."""
        try:
            return parse(self.after.format(steps=remaining))
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"bounds: after={self.after!r} is invalid; expected a schedule expression, "
                             f"optionally with {{steps}} (the steps left), that builds for {{steps}}={remaining}: "
                             f"{err}") from None


class BoundsKeywords(TypedDict, total=False):
    """The keywords of :class:`Bounds`, which every controller takes."""

    after: str
    floor: float
    max_step: float
    backoff: float


@dataclass(frozen=True)
class Proposal:
    """What :meth:`Controller.decide` returns for the next update.

    ``multiplier`` is proposed (the base then applies :class:`Bounds`); ``action`` is ``raise``,
    ``hold`` or ``lower``; ``reason`` says why in words and ``evidence`` holds the numbers behind
    it; ``done`` ends the warmup (the handover). ``origin``, with ``done``, dates the handover
    back to an earlier update: ``after`` then runs from that update (a controller that followed
    the decay itself for a while, watching, hands over without a jump); ``multiplier`` is then the
    scale of ``after`` (with :attr:`Controller.scale_after`).
    """

    multiplier: float
    action: str
    reason: str
    evidence: dict[str, float] = field(default_factory=dict)
    done: bool = False
    origin: int | None = None


#: A rule on one field of a controller's state: ``check(value, controller, state)`` returns
#: ``None`` when the (type-checked) value is valid, else what would be valid, in words.
Rule = Callable[[Any, "Controller", Any], "str | None"]


def rule(check: Rule) -> dict[str, Any]:
    """Field metadata for a state dataclass: ``check`` runs on the field when a state is loaded,
    after the type checks (see :class:`ControllerState`)."""
    return {"preheat_rule": check}


def within(low: float = -math.inf, high: float = math.inf, *, low_open: bool = False,
           high_open: bool = False) -> dict[str, Any]:
    """Field metadata: every number in the field (list items, tuple parts and dict values too)
    lies between ``low`` and ``high`` (``None`` passes)."""
    interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open or high == math.inf else ']'}"

    def check(value: Any, controller: Controller, state: Any) -> str | None:
        for number in _numbers(value):
            if (number <= low if low_open else number < low) or (number >= high if high_open else number > high):
                return f"{'numbers' if isinstance(value, (list, tuple, Mapping)) else 'a number'} in {interval}"
        return None

    return rule(check)


def any_float() -> dict[str, Any]:
    """Field metadata: the field's floats may be NaN or infinite (a log, never decided on)."""
    return {"preheat_nonfinite": True}


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        yield float(value)


def _multiplier(value: float, controller: Controller, state: Any) -> str | None:
    floor = controller.bounds.floor
    return None if floor <= value <= 1.0 else f"a multiplier in [floor, 1] = [{floor}, 1.0]"


def _handover(value: int | None, controller: Controller, state: Any) -> str | None:
    last = min(state.observed, controller.total)
    if value is None:
        return None if state.observed < controller.total else (
            f"an integer in [1, {last}]: observed={state.observed} reached total={controller.total}")
    return None if 1 <= value <= last else f"None or an integer in [1, min(observed, total)] = [1, {last}]"


@dataclass
class Decision:
    """One decision: after update ``step - 1`` the controller set ``multiplier`` for update ``step``.

    ``action`` is ``raise``, ``hold``, ``lower``, ``backoff`` (a NaN/inf signal), or ``handover``
    (the warmup ended; the ``after`` schedule runs from here); ``reason`` says why in words and
    ``evidence`` holds the numbers behind it.
    """

    step: int = field(metadata=within(1))
    multiplier: float = field(metadata=within(0.0, 1.0))
    action: str
    reason: str
    evidence: dict[str, float] = field(default_factory=dict, metadata=any_float())


@dataclass
class ControllerState:
    """Everything about a controller that changes as it runs; a subclass adds its own fields.

    ``observed``: updates observed so far (``t``); ``current``: the multiplier for update ``t``
    during warmup; ``handover``: the update from which ``after`` runs (``None`` during warmup);
    ``peak_lr``: the peak LR the scheduler bound; ``decisions``: one per observed update.

    **Checked when loaded.** :meth:`Controller.load_state_dict` checks every field before it
    changes anything: first by its type hint (``bool``; ``int``: a count, an integer >= 0;
    ``float``: a finite number, ints accepted; ``str``; ``X | None``; ``list[X]``;
    ``tuple[X, Y]``: exactly that many items; ``dict[str, X]``; a nested dataclass, checked the
    same way), then by the rule in the field's metadata, if any: :func:`within` (a range for
    every number in the field), :func:`rule` (any check, which may read the controller and the
    other fields), :func:`any_float` (NaN and inf allowed). So a subclass declares a field's
    range where it declares the field, e.g. ``rate: float = field(default=0.5,
    metadata=within(0.0, 1.0))``.
    """

    observed: int = 0
    current: float = field(default=0.0, metadata=rule(_multiplier))
    handover: int | None = field(default=None, metadata=rule(_handover))
    peak_lr: float = field(default=1.0, metadata=within(0.0, low_open=True))
    decisions: list[Decision] = field(default_factory=list)


class Controller(ABC):
    """Base of every adaptive warmup. Subclasses implement :meth:`start` and :meth:`decide`.

    Contract, with ``t`` the number of updates observed so far (:attr:`observed`):

    - :meth:`multiplier` is the multiplier for update ``t``: before any observation it is
      ``start()``, update 0's value.
    - :meth:`observe` takes update ``t``'s signals and advances to ``t + 1``. A NaN or infinite
      signal never reaches the LR: the multiplier is cut by ``backoff`` and the decision says
      which signal was bad. Without signals (none given) the controller holds.
    - During warmup every multiplier lies in ``[floor, 1]`` (1 is the peak LR) and changes by at
      most ``max_step`` (absolute) per update in either direction (:class:`Bounds`), whatever
      the signals: any float, however large or small, gives such a multiplier and a decision.
    - The warmup ends when :meth:`decide` says so (``Proposal.done``), or at update ``total`` at
      the latest; from the handover step ``h`` the multiplier is ``after(t - h)``, where ``after``
      is the schedule expression with ``{steps}`` replaced by ``total - h``. After that the
      controller ignores signals.
    - ``peak_lr`` (set by the scheduler with :meth:`bind`) lets a controller reason in absolute
      learning rates; multipliers are ``lr / peak_lr``.
    - A controller that needs measurements before update 0 names them in ``prepare_needs``;
      the training loop measures them and calls :meth:`prepare` once, before update 0.
    - :meth:`state_dict` is plain data, the whole :attr:`state`; :meth:`load_state_dict` on a
      controller built with the same arguments restores every future decision exactly, however
      the state was reached (``prepare`` included).

    Args:
        total: the latest update at which the warmup hands over (>= 1).
        after, floor, max_step, backoff: the :class:`Bounds`, kept as :attr:`bounds`; ``after``
            must build for the updates left at the first and the last possible handover
            (``{steps}`` = ``total - 1`` and 0), so a handover never fails on it.

    A subclass sets its own arguments before calling ``super().__init__`` (``start`` may read
    them) and keeps what changes in ``self.state``, an instance of its ``State``.
    """

    name: ClassVar[str] = "controller"
    #: The class of :attr:`state`: :class:`ControllerState` or a subclass with the controller's own fields.
    State: ClassVar[type[ControllerState]] = ControllerState
    #: Extra signals a controller needs after each update and how often: name -> every how many
    #: updates (an instance may set its own, e.g. only when it fits constants online).
    needs: dict[str, int] = {}
    #: Measurements a controller needs before update 0 (passed to :meth:`prepare`).
    prepare_needs: tuple[str, ...] = ()
    #: Whether ``after`` starts from the warmup's last multiplier instead of the peak: from the
    #: handover ``h`` on, update ``t`` gets ``current * after(t - h)`` (a warmup that settled
    #: below the peak keeps its level and decays from there; ``current`` no longer changes
    #: after the handover, so it is part of the state and resume stays exact).
    scale_after: ClassVar[bool] = False

    def __init__(self, total: int, **bounds: Unpack[BoundsKeywords]) -> None:
        self.total = check_int(self.name, "total", total, minimum=1)
        try:
            self.bounds = Bounds(**bounds)
            for left in sorted({0, self.total - 1}):  # a handover at total, and at update 1
                self.bounds.handover_schedule(left)
        except TypeError as err:
            raise ValueError(f"{self.name}: {err}; expected the keywords after, floor, max_step, backoff") from None
        except ValueError as err:
            raise ValueError(str(err).replace("bounds:", f"{self.name}:", 1)) from None
        # (after's origin, the schedule built for it, first step of a block, its values there)
        self._after: tuple[int, Schedule, int, np.ndarray] | None = None
        self.state = self.State()
        self.state.current = self.bounds.clip(self.start())

    # -- what subclasses provide ------------------------------------------------------------

    @abstractmethod
    def start(self) -> float:
        """The multiplier for update 0."""

    @abstractmethod
    def decide(self, signals: Mapping[str, float]) -> Proposal:
        """Given update :attr:`observed`'s finite signals, the proposal for the next update.
        Called during warmup only."""

    def prepare(self, **measurements: float) -> None:
        """Take the measurements named in ``prepare_needs``, before update 0 (the default needs none)."""
        if measurements:
            raise ValueError(f"{self.name}.prepare: {sorted(measurements)} given; expected none")

    # -- read-only views of the state --------------------------------------------------------

    @property
    def observed(self) -> int:
        """Updates observed so far: the multiplier is for update ``observed``."""
        return self.state.observed

    @property
    def current(self) -> float:
        """The warmup's multiplier for the next update."""
        return self.state.current

    @property
    def handover_step(self) -> int | None:
        """The update from which ``after`` runs, or ``None`` during warmup."""
        return self.state.handover

    @property
    def peak_lr(self) -> float:
        """The peak LR (multiplier 1), as bound by the scheduler; 1 before."""
        return self.state.peak_lr

    @property
    def decisions(self) -> list[Decision]:
        """Every decision so far, one per observed update."""
        return self.state.decisions

    # -- the loop ---------------------------------------------------------------------------

    def bind(self, peak_lr: float, *, sgd: bool = False) -> None:
        """Tell the controller the peak LR (multiplier 1) and whether the optimizer is SGD (a
        step proportional to the gradient, with or without momentum: ``sgd``; the Adam family,
        Muon and the rest: not); before the first update this also recomputes update 0's
        multiplier, which may depend on them. A controller that does not depend on the
        optimizer ignores ``sgd``."""
        self.state.peak_lr = check_real(self.name, "peak_lr", peak_lr, 0.0, low_open=True)
        if self.state.observed == 0:
            self.state.current = self.bounds.clip(self.start())

    def multiplier(self) -> float:
        """The multiplier for update :attr:`observed`."""
        state = self.state
        if state.handover is None:
            return state.current
        value = self.after_value(state.handover, state.observed)
        return state.current * value if self.scale_after else value

    def after_value(self, origin: int, step: int) -> float:
        """``after``'s value at update ``step >= origin`` when it runs from update ``origin``
        (built with ``{steps}`` = ``total - origin``): ``after(step - origin)``."""
        t, cache = step - origin, self._after
        if cache is None or cache[0] != origin:
            cache = (origin, self.bounds.handover_schedule(self.total - origin), 0, np.empty(0))
        if not 0 <= t - cache[2] < cache[3].size:  # a block of values at once: a lookup per update
            cache = (*cache[:2], t, np.asarray(cache[1](np.arange(t, t + AFTER_BLOCK)), dtype=float))
        self._after = cache
        return float(cache[3][t - cache[2]])

    def observe(self, **signals: float) -> float:
        """Take update :attr:`observed`'s signals, decide, advance; return the next multiplier.

        Raises:
            ValueError: a signal is not a number (:meth:`signal_values`).
        """
        state = self.state
        if state.handover is not None:
            state.observed += 1
            return self.multiplier()
        values = self.signal_values(signals)
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            proposal = Proposal(state.current * self.bounds.backoff, "backoff", f"non-finite signal(s) {bad}")
            state.current = self.bounds.clip(proposal.multiplier)
        else:
            proposal = self.decide(values) if values else Proposal(state.current, "hold", "no signals")
            state.current = self.bounds.move(state.current, proposal.multiplier)
        state.observed += 1
        action, reason = proposal.action, proposal.reason
        if proposal.done or state.observed >= self.total:
            dated = proposal.done and proposal.origin is not None
            if dated:  # the proposal is after's scale, not the next multiplier: no max_step applies
                state.current = self.bounds.clip(proposal.multiplier)
            state.handover = proposal.origin if dated else state.observed
            action, reason = "handover", (reason if proposal.done else f"{reason}; reached total={self.total}")
        state.decisions.append(Decision(state.observed, self.multiplier(), action, reason, dict(proposal.evidence)))
        return self.multiplier()

    def signal_values(self, signals: Mapping[str, Any]) -> dict[str, float]:
        """``signals`` as floats: any real number (a NumPy scalar, a one-element tensor, an int
        too large for a float becomes ``+-inf``), NaN and inf included, which :meth:`observe`
        backs off.

        Raises:
            ValueError: a signal is not a number (a string, ``None``, a list, ...), naming it.
        """
        values = {}
        for name, value in signals.items():
            try:
                if isinstance(value, (str, bytes)):
                    raise TypeError(type(value).__name__)
                values[name] = float(value)
            except OverflowError:  # an int beyond the float range
                values[name] = math.inf if value > 0 else -math.inf
            except (TypeError, ValueError):
                raise ValueError(f"{self.name}: signal {name}={shorten(value)} is invalid; expected a "
                                 "number (NaN and inf are accepted and backed off)") from None
        return values

    def state_dict(self) -> dict[str, Any]:
        """Plain data: ``{"name": ..., "state": <every field of :attr:`state`>}``."""
        return {"name": self.name, "state": dataclasses.asdict(self.state)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output of a controller built with the same arguments.

        The whole state is rebuilt and checked first (:meth:`rebuild_state`) and then put in
        place: a state that does not fit raises ``ValueError`` and leaves the controller as it
        was.
        """
        self.state = self.rebuild_state(state)
        self._after = None

    def rebuild_state(self, state: Mapping[str, Any]) -> ControllerState:
        """The :attr:`State` that :meth:`load_state_dict` would put in place, changing nothing.

        ``state`` must be ``{"name": <this controller's name>, "state": {...}}`` with exactly
        the fields of :attr:`State`, each of the right type and within its rule (see
        :class:`ControllerState`); a handover's ``after`` schedule must build.

        Raises:
            ValueError: naming the field, its value and what is valid.
        """
        owner = f"{self.name}.load_state_dict"
        if not isinstance(state, Mapping) or state.get("name") != self.name:
            found = state.get("name") if isinstance(state, Mapping) else state
            raise ValueError(f"{owner}: the state is of {shorten(found)}; expected the state of a {self.name}")
        if set(state) != {"name", "state"}:
            raise ValueError(f"{owner}: the state has the keys {sorted(map(str, state))}; expected "
                             "['name', 'state'] (Controller.state_dict() output)")
        try:
            rebuilt = _rebuild(self.State, state["state"], "")
            _check_rules(rebuilt, self, rebuilt, "")
            if rebuilt.handover is not None:
                try:
                    self.bounds.handover_schedule(self.total - rebuilt.handover)
                except ValueError as err:
                    raise _invalid("handover", rebuilt.handover, f"a step at which after builds: {err}") from None
        except ValueError as err:
            raise ValueError(f"{owner}: the state does not fit a {self.name}: {err}") from None
        return rebuilt


def _invalid(path: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"{path or 'the state'}={shorten(value)} is invalid; expected {expected}")


def _rebuild(cls: type, data: Any, path: str) -> Any:
    """An instance of the dataclass ``cls`` from :func:`dataclasses.asdict` output (JSON-safe:
    lists for tuples), every field checked by its type hint (see :class:`ControllerState`)."""
    if not isinstance(data, Mapping):
        raise _invalid(path, data, f"a mapping of the fields of {cls.__name__}")
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    missing = [name for name in names if name not in data]
    unknown = sorted(str(key) for key in data if key not in names)
    if missing or unknown:
        found = [f"lacks {missing}"] * bool(missing) + [f"has unknown fields {unknown}"] * bool(unknown)
        raise ValueError(f"{path or 'the state'} {' and '.join(found)}; expected the fields of "
                         f"{cls.__name__}: {names}")
    values = {f.name: _value(hints[f.name], data[f.name], f"{path}.{f.name}" if path else f.name,
                             f.metadata.get("preheat_nonfinite", False))
              for f in fields}
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:  # a nested dataclass's own checks (__post_init__)
        raise ValueError(f"{path or cls.__name__}: {err}") from None


def _value(hint: Any, value: Any, path: str, nonfinite: bool) -> Any:
    """``value`` as the type ``hint``, or ``ValueError`` naming ``path``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        if len(options) != 1:
            return value  # a union this check does not read
        hint = options[0]
        args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _rebuild(hint, value, path)  # type: ignore[arg-type]
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _invalid(path, value, "a list")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _invalid(path, value, f"a list of {len(args)} items")
            return tuple(_value(a, v, f"{path}[{i}]", nonfinite) for i, (a, v) in enumerate(zip(args, value)))
        items = [_value(args[0] if args else Any, v, f"{path}[{i}]", nonfinite) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        key_hint, value_hint = args or (Any, Any)
        if not isinstance(value, Mapping):
            raise _invalid(path, value, "a mapping")
        return {_value(key_hint, k, f"{path} key", nonfinite): _value(value_hint, v, f"{path}[{k!r}]", nonfinite)
                for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _invalid(path, value, "True or False")
    if hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0:
            return int(value)
        raise _invalid(path, value, "an integer >= 0")
    if hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int beyond the float range
                number = math.inf
            if nonfinite or math.isfinite(number):
                return number
        raise _invalid(path, value, "a number" if nonfinite else "a finite number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise _invalid(path, value, "a string")
    return value  # Any, or a type this check does not read


def _check_rules(obj: Any, controller: Controller, state: Any, path: str) -> None:
    """Run the :func:`rule` of every field of the dataclass ``obj``, and of the dataclasses in it."""
    for f in dataclasses.fields(obj):
        value, where = getattr(obj, f.name), f"{path}.{f.name}" if path else f.name
        check = f.metadata.get("preheat_rule")
        expected = None if check is None else check(value, controller, state)
        if expected is not None:
            raise _invalid(where, value, expected)
        items = value if isinstance(value, (list, tuple)) else [value]
        for i, item in enumerate(items):
            if dataclasses.is_dataclass(item) and not isinstance(item, type):
                _check_rules(item, controller, state, f"{where}[{i}]" if item is not value else where)
