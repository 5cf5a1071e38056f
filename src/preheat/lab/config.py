"""Run and sweep configurations: validated pydantic models, loadable from TOML or YAML.

A run is task + optimizer + peak LR + schedule + steps + batch size + seed. A schedule is any
preheat expression; it may name ``{steps}`` and ``{warmup}``, filled from the run's fields, so one
template serves a grid over warmup lengths (``"warmup_cosine({warmup}, {steps})"``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import string
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from preheat.lab.catalog import BUILTIN
from preheat.lab.optimizers import OPTIMIZERS, OptimizerName
from preheat.schedules import Schedule, parse

if TYPE_CHECKING:
    from preheat.adaptive import Controller

PLACEHOLDERS = ("steps", "warmup")
STORED = "stored"  # the validation context of a config read back from a store


class RunConfig(BaseModel):
    """One training run. Every field has one meaning in the loop (``preheat.lab.run.train``).

    The LR of update ``t`` is ``peak_lr`` times the multiplier of exactly one of:

    - ``schedule``: a preheat expression (``None``: ``constant()``, the peak throughout);
      ``{steps}`` and ``{warmup}`` in it are replaced by those fields;
    - ``controller``: a :mod:`preheat.adaptive` expression such as ``"nars_warmup()"``, which
      hands over to ``after`` (a schedule expression, ``{steps}`` the updates left at the
      handover; default: the controller's own, ``constant()`` for most and cosine decay for
      ``auto_warmup``). ``schedule`` is then unset, and ``after`` is only for
      controllers;
    - ``peer`` (``hf_cosine``, ``untuned_warmup`` or ``untuned_exponential``, see
      :mod:`preheat.lab.peers`): another package's warmup and decay; ``schedule`` and
      ``controller`` are then unset.

    - ``warmup``: the method's warmup length in updates, where it takes one: ``{warmup}`` in
      ``schedule``, ``hf_cosine``'s warmup, or schedule-free AdamW's ``warmup_steps``.
    - ``optimizer``: a name of the optimizer registry (:mod:`preheat.lab.optimizers`);
      ``schedulefree_adamw`` is evaluated at its averaged weights (``eval()``).
    - ``eval_every``: validation at step 0, every ``eval_every`` updates and after the last one.
    - ``device``: ``cpu``, ``cuda`` or ``cuda:N``. Under ``torchrun``, ``cuda`` is each rank's
      ``LOCAL_RANK`` GPU (see :mod:`preheat.lab.distributed`).
    - ``diverge_factor``: the run stops as diverged when the training loss is NaN/inf or above
      ``diverge_factor`` times the larger of the initial validation loss and the first
      training loss.
    - ``label``: the method's name in a comparison (see :attr:`method`); ``note``: one line
      saying what the method is, shown beside it in the ranking's legend and the report
      (default: made from the config, see :func:`preheat.lab.methods.describe`).

    Expressions are checked when a config is made; :meth:`from_stored` reads one back from a
    store without parsing them again (so a store whose expressions no longer parse still reads).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = "digits"
    task_options: dict[str, Any] = Field(default_factory=dict)
    optimizer: OptimizerName = "adamw"
    peak_lr: float = Field(1e-3, gt=0, allow_inf_nan=False)
    schedule: str | None = None
    controller: str | None = None
    after: str | None = None
    peer: Literal["hf_cosine", "untuned_warmup", "untuned_exponential"] | None = None
    warmup: int | None = Field(None, ge=0)
    steps: int = Field(200, ge=1)
    batch_size: int = Field(32, ge=1)
    seed: int = Field(0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(None, gt=0)
    eval_every: int = Field(50, ge=1)
    diverge_factor: float = Field(10.0, gt=1)
    device: str = "cpu"
    label: str | None = None
    note: str | None = None

    @field_validator("note")
    @classmethod
    def _note_one_line(cls, note: str | None) -> str | None:
        if note is not None and ("\n" in note or "\r" in note or len(note) > 300):
            raise ValueError(f"note={note[:40]!r}... is not one line of at most 300 characters; "
                             "write what the method is in one short line")
        return note

    @field_validator("task")
    @classmethod
    def _task_named(cls, task: str) -> str:
        if task not in BUILTIN and ":" not in task:
            raise ValueError(f"task={task!r} is unknown; expected one of {', '.join(BUILTIN)} or "
                             "'package.module:function' returning a preheat.lab.tasks.Task")
        return task

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas={betas!r} is invalid; expected two numbers in [0, 1)")
        return betas

    @field_validator("device")
    @classmethod
    def _device_known(cls, device: str) -> str:
        if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
            raise ValueError(f"device={device!r} is invalid; expected cpu, cuda or cuda:N")
        return device

    @model_validator(mode="after")
    def _one_method(self, info: ValidationInfo) -> RunConfig:
        if self.warmup is not None and self.warmup > self.steps:
            raise ValueError(f"warmup={self.warmup} is longer than steps={self.steps}")
        if self.peer is not None and (self.controller is not None or self.schedule is not None):
            raise ValueError(f"peer={self.peer!r} replaces the schedule; expected no controller and no "
                             f"schedule, not controller={self.controller!r}, schedule={self.schedule!r}")
        if self.peer in ("untuned_warmup", "untuned_exponential") and not OPTIMIZERS[self.optimizer].preconditioned:
            adam = ", ".join(name for name, entry in OPTIMIZERS.items() if entry.preconditioned)
            raise ValueError(f"peer={self.peer!r} is for Adam; expected optimizer {adam}, "
                             f"not {self.optimizer!r}")
        if self.controller is not None and self.schedule is not None:
            raise ValueError(f"schedule={self.schedule!r} is for runs without a controller; give the "
                             f"controller {self.controller!r} its after-handover schedule as after=...")
        if self.controller is None and self.after is not None:
            raise ValueError(f"after={self.after!r} is the schedule after a controller's handover; "
                             "expected a controller, or the expression as schedule=...")
        names = {field for _, field, _, _ in string.Formatter().parse(self.schedule or "") if field}
        unknown = names - set(PLACEHOLDERS)
        if unknown:
            raise ValueError(
                f"schedule={self.schedule!r} names {sorted(unknown)}; expected only "
                "{steps} and {warmup} as placeholders"
            )
        if "warmup" in names and self.warmup is None:
            raise ValueError(f"schedule={self.schedule!r} uses {{warmup}}; expected warmup=<steps>")
        if not (info.context or {}).get(STORED):
            check_expressions(self)
        return self

    @classmethod
    def from_stored(cls, text: str) -> RunConfig:
        """A config read back from a store's JSON: fields checked, expressions not parsed.

        A config stored before ``after`` existed held a controller's after-handover schedule in
        ``schedule``, and ``"constant()"`` there for a peer: both read as they are meant now. A
        config stored while ``after`` defaulted to ``"constant()"`` holds that value: it reads as
        the default (None), which every controller of that time resolves to ``constant()``.
        """
        data = json.loads(text)
        if isinstance(data, dict) and "after" not in data and (data.get("controller") or data.get("peer")):
            schedule = data.pop("schedule", None)
            if data.get("controller") and schedule is not None:
                data["after"] = schedule
        if isinstance(data, dict) and data.get("after") == "constant()":
            data["after"] = None
        return cls.model_validate(data, context={STORED: True})

    @property
    def schedule_text(self) -> str:
        """The schedule expression with ``{steps}`` and ``{warmup}`` filled in (``constant()``
        when unset)."""
        return (self.schedule or "constant()").format(steps=self.steps, warmup=self.warmup)

    def resolved_schedule(self) -> Schedule:
        """The schedule this run uses (a run with a controller or a peer uses none), its durations
        in units resolved: ``"5%"`` of ``steps``, ``"500sp"`` at ``batch_size`` samples an update."""
        return parse(self.schedule_text).resolve(total=self.steps, samples_per_update=self.batch_size)

    def resolved_controller(self) -> Controller:
        """A fresh controller for this run (``controller`` must be set)."""
        from preheat.adaptive.text import parse_controller

        if self.controller is None:
            raise ValueError("resolved_controller: this run has no controller")
        return parse_controller(self.controller, total=self.steps, after=self.after)

    @property
    def method(self) -> str:
        """What a comparison groups runs by (across peak LRs and seeds): ``label`` if given,
        else the peer (with its warmup), else the controller expression, else the schedule with
        ``{steps}`` and ``{warmup}`` filled in."""
        peer = self.peer if self.peer is None or self.warmup is None else f"{self.peer}(warmup={self.warmup})"
        return self.label or peer or self.controller or self.schedule_text

    @property
    def template(self) -> str:
        """What a sweep over ``warmup`` varies within: the peer, else the controller, else the
        schedule with ``{warmup}`` unfilled."""
        return self.peer or self.controller or self.schedule or "constant()"

    def fingerprint(self) -> str:
        """A stable 16-hex-digit hash of the fields that differ from their defaults (the run's id
        in a store; a new field with a default leaves every fingerprint as it was)."""
        fields = self.model_dump(mode="json", exclude_defaults=True)
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_expressions(config: RunConfig) -> None:
    """Parse ``config``'s schedule, or build its controller once (with its ``after``), so a bad
    expression fails when the config is made, with :class:`preheat.ParseError`'s position and
    hint; the run builds its own later."""
    if config.controller is not None:
        config.resolved_controller()
    else:
        config.resolved_schedule()


class SweepConfig(BaseModel):
    """A grid over run fields: every combination of the ``grid`` lists, on top of ``base``.

    ``grid`` maps a :class:`RunConfig` field to the values to try, e.g. ``{"peak_lr": [1e-3,
    1e-2], "warmup": [0, 50], "seed": [0, 1]}``. A run that does not use ``warmup`` (its
    schedule has no ``{warmup}``, and it is neither ``peer = "hf_cosine"`` nor schedule-free) is
    not multiplied by the warmup values (it has ``warmup=None``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "sweep"
    base: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fields_exist(self) -> SweepConfig:
        for where, keys in (("base", self.base), ("grid", self.grid)):
            unknown = set(keys) - set(RunConfig.model_fields)
            if unknown:
                raise ValueError(
                    f"{where} has unknown run field(s) {sorted(unknown)}; expected any of "
                    f"{', '.join(RunConfig.model_fields)}"
                )
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"grid[{key!r}] is empty; expected at least one value")
        return self

    def runs(self) -> list[RunConfig]:
        """Every run of the grid, in grid order, without duplicates; each validated."""
        keys = list(self.grid)
        seen: dict[str, RunConfig] = {}
        for values in itertools.product(*(self.grid[k] for k in keys)):
            fields = {**self.base, **dict(zip(keys, values))}
            schedule = fields.get("schedule")
            if not ((isinstance(schedule, str) and "{warmup}" in schedule)
                    or fields.get("peer") == "hf_cosine" or fields.get("optimizer") == "schedulefree_adamw"):
                fields["warmup"] = None
            run = RunConfig(**fields)
            seen.setdefault(run.fingerprint(), run)
        return list(seen.values())


#: The most values (after YAML aliases are expanded) a config may hold: a sweep file is small,
#: and a YAML "billion laughs" of aliases must not expand without bound.
MAX_VALUES = 100_000


def parse_yaml(text: str, where: str) -> Any:
    """``text`` as YAML data (safe: no tags that build objects), at most :data:`MAX_VALUES`
    values once aliases are expanded; ``ValueError`` naming ``where`` otherwise."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = str(err).replace("\n", " ")
        raise ValueError(f"{where} is not valid YAML ({problem}); expected a YAML value") from None
    _bounded(data, where)
    return data


def _bounded(data: Any, where: str) -> None:
    """Count the values of ``data`` as a tree (shared parts counted each time), stopping at
    :data:`MAX_VALUES`."""
    count, stack = 0, [data]
    while stack:
        value = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise ValueError(f"{where} expands to more than {MAX_VALUES:,} values (YAML aliases?); "
                             "expected a sweep file of plain values")
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def load_config(path: str | Path, *, trust_tasks: bool = False) -> SweepConfig:
    """Read a sweep (or a single run: a file without ``base``/``grid`` tables) from TOML or YAML.

    A file is data: one that names a task other than the built-ins (``package.module:function``,
    which would import and run that code) is refused unless ``trust_tasks`` (the command line's
    ``--trust-tasks``). Raises ``ValueError`` naming the file for anything it cannot read.
    """
    path = Path(path)
    where = f"config {str(path)!r}"
    if path.suffix not in (".toml", ".yaml", ".yml"):
        raise ValueError(f"{where} has an unknown extension; expected .toml, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{where} is not UTF-8 text; expected a TOML or YAML sweep file") from None
    if path.suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{where} is not valid TOML: {err}") from None
    else:
        data = parse_yaml(text, where)
        data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError(f"{where} is a {type(data).__name__}, not a table; expected run fields, or "
                         "name, base and grid")
    if not {"base", "grid", "name"} & set(data):
        data = {"name": path.stem, "base": data}
    spec = SweepConfig(**data)
    if not trust_tasks:
        named = {task for task in (spec.base.get("task"), *spec.grid.get("task", []))
                 if isinstance(task, str) and ":" in task}  # a module:function; other names are checked as runs
        if named:
            raise ValueError(f"{where} names the task(s) {sorted(map(str, named))}, which would import and run "
                             f"code; expected a built-in task ({', '.join(BUILTIN)}), or --trust-tasks "
                             "(trust_tasks=True) if you trust this file")
    return spec
