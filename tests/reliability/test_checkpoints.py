"""A checkpoint load validates everything first and then applies it, or changes nothing.

A catalogue of tampered or mismatched checkpoints, for a schedule-driven and a
controller-driven :class:`~preheat.torch.Scheduler` and for the controllers themselves: each is
refused with a ``ValueError`` that names the bad field, and afterwards the scheduler's state
dict, the controller's state dict and every optimizer param group (``lr``, ``initial_lr`` and
the scheduled hyperparameters with their ``initial_*``) are exactly what they were. Then a
fuzzed tamper of any field of any controller's state, and of any key of a scheduler's
checkpoint: the load is refused and changes nothing, or the run goes on within its bounds.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any, Callable

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preheat.adaptive import CONTROLLERS, Controller, NARSWarmup, SmoothnessWarmup, parse_controller
from preheat.schedules import constant, cosine_decay, linear_warmup, warmup_cosine
from preheat.torch import Scheduler

# -- what is compared before and after --------------------------------------------------------

PARAM_KEYS = ("lr", "initial_lr", "weight_decay", "initial_weight_decay", "betas", "initial_beta2", "momentum")


def plain(value: Any) -> Any:
    """``value`` with tensors as Python numbers, so two snapshots compare with ``==``."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def snapshot(scheduler: Scheduler) -> dict[str, Any]:
    """The scheduler's state dict, its controller's and every group's LR and hyperparameters."""
    groups = [{k: plain(g[k]) for k in PARAM_KEYS if k in g} for g in scheduler.optimizer.param_groups]
    controller = None if scheduler.controller is None else copy.deepcopy(scheduler.controller.state_dict())
    return {"scheduler": plain(copy.deepcopy(scheduler.state_dict())), "controller": controller,
            "groups": groups, "last_lr": plain(scheduler.get_last_lr())}


# -- the runs checkpointed --------------------------------------------------------------------


def scheduled() -> Scheduler:
    """AdamW, two groups with their own peaks and schedules, weight decay and beta2 scheduled; 4 updates."""
    params = [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))]
    optimizer = torch.optim.AdamW([{"params": params[:1]}, {"params": params[1:], "lr": 0.05}],
                                  lr=0.5, weight_decay=0.1)
    scheduler = Scheduler(optimizer, [warmup_cosine(3, 20), constant()],
                          hyperparams={"weight_decay": cosine_decay(10), "beta2": linear_warmup(5, start=0.99)})
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    return scheduler


def controlled(controller: Controller | None = None, peak: float = 0.5) -> Scheduler:
    """SGD with two groups driven by a smoothness warmup (fixed constants); 6 observed updates."""
    optimizer = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.ones(2))]},
                                 {"params": [torch.nn.Parameter(torch.ones(2))], "lr": peak / 10}],
                                lr=peak, momentum=0.9)
    controller = controller or SmoothnessWarmup(100, rho=1.0, K0=0.5, K_rho=2.0, growth=1.5)
    scheduler = Scheduler(optimizer, controller)
    for t in range(6):
        optimizer.step()
        scheduler.step(loss=3.0 / (t + 1), smoothness=2.0, sharpness=5.0)
    return scheduler


def other_controller_state() -> dict[str, Any]:
    """A NARS warmup's checkpoint (another controller) from a scheduler with peak 0.001."""
    return controlled(NARSWarmup(100, interval=3), peak=0.001).state_dict()


# -- the catalogue ----------------------------------------------------------------------------

Tamper = Callable[[dict[str, Any]], Any]


def setting(*path: Any, value: Any) -> Tamper:
    """Set ``state[path...] = value``."""
    def tamper(state: dict[str, Any]) -> dict[str, Any]:
        target = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return state
    return tamper


def dropping(*path: Any) -> Tamper:
    def tamper(state: dict[str, Any]) -> dict[str, Any]:
        target = state
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return state
    return tamper


def replacing(make: Callable[[dict[str, Any]], Any]) -> Tamper:
    return lambda state: make(state)



# (id, "schedule" or "controller" scheduler, tamper, words the error names)
SCHEDULER_CASES: list[tuple[str, str, Tamper, str]] = [
    ("base_lrs NaN", "schedule", setting("base_lrs", 0, value=math.nan), r"base_lrs\[0\]=nan"),
    ("base_lrs inf", "schedule", setting("base_lrs", 1, value=math.inf), r"base_lrs\[1\]=inf"),
    ("base_lrs negative", "schedule", setting("base_lrs", 0, value=-1.0), r"base_lrs\[0\]=-1.0"),
    ("base_lrs str", "schedule", setting("base_lrs", 0, value="0.1"), r"base_lrs\[0\]='0.1'"),
    ("base_lrs bool", "schedule", setting("base_lrs", 0, value=True), r"base_lrs\[0\]=True"),
    ("base_lrs NaN tensor", "schedule", setting("base_lrs", 0, value=torch.tensor(math.nan)), r"base_lrs\[0\]"),
    ("base_lrs not a list", "schedule", setting("base_lrs", value=0.1), r"base_lrs=0.1"),
    ("base_lrs one per group too many", "schedule", setting("base_lrs", value=[0.1, 0.1, 0.1]),
     r"base_lrs has 3 entries; expected 2"),
    ("last_epoch str", "schedule", setting("last_epoch", value="abc"), r"last_epoch='abc'"),
    ("last_epoch negative", "schedule", setting("last_epoch", value=-3), r"last_epoch=-3"),
    ("last_epoch float", "schedule", setting("last_epoch", value=2.5), r"last_epoch=2.5"),
    ("last_epoch whole float", "schedule", setting("last_epoch", value=2.0), r"last_epoch=2.0"),
    ("last_epoch bool", "schedule", setting("last_epoch", value=True), r"last_epoch=True"),
    ("last_epoch beyond int64", "schedule", setting("last_epoch", value=2**70), r"last_epoch=\d+"),
    ("_step_count None", "schedule", setting("_step_count", value=None), r"_step_count=None"),
    ("missing base_lrs", "schedule", dropping("base_lrs"), r"lacks \['base_lrs'\]"),
    ("missing schedules and controller", "schedule", lambda s: {k: v for k, v in s.items()
                                                                 if k not in ("schedules", "controller")},
     r"lacks \['schedules', 'controller'\]"),
    ("an unknown key", "schedule", setting("__class__", value="os.system"), r"unknown keys \['__class__'\]"),
    ("not a mapping", "schedule", lambda s: list(s.items()), r"state_dict=\["),
    ("schedules of fewer groups", "schedule", lambda s: {**s, "schedules": s["schedules"][:1]},
     r"schedules has 1 entries; expected 2"),
    ("schedule of an unknown type", "schedule", setting("schedules", 0, value={"type": "os.system", "cmd": "rm"}),
     r"schedules\[0\].*type='os.system'"),
    ("schedule with a bad field", "schedule", setting("schedules", 0, "warmup", value=-5), r"schedules\[0\].*warmup"),
    ("schedule not a dict", "schedule", setting("schedules", 1, value="constant()"), r"schedules\[1\]"),
    ("hyperparams schedule refused", "schedule", setting("hyperparams", "weight_decay", 0, value={"type": "nope"}),
     r"hyperparams\['weight_decay'\]\[0\]"),
    ("hyperparams of fewer groups", "schedule",
     lambda s: setting("hyperparams", "beta2", value=s["hyperparams"]["beta2"][:1])(s),
     r"hyperparams\['beta2'\] has 1 entries"),
    ("hyperparams unknown name", "schedule",
     lambda s: {**s, "hyperparams": {**s["hyperparams"], "lr_decay": s["hyperparams"]["beta2"]},
                "initial_values": {**s["initial_values"], "lr_decay": [0.1, 0.1]}}, r"hyperparams name 'lr_decay'"),
    ("initial_values names differ", "schedule", dropping("initial_values", "beta2"), r"initial_values names"),
    ("initial weight_decay NaN", "schedule", setting("initial_values", "weight_decay", 0, value=math.nan),
     r"initial_values\['weight_decay'\]\[0\]=nan"),
    ("initial beta2 above 1", "schedule", setting("initial_values", "beta2", 1, value=1.5),
     r"initial_values\['beta2'\]\[1\]=1.5"),
    ("initial weight_decay negative", "schedule", setting("initial_values", "weight_decay", 1, value=-0.1),
     r"initial_values\['weight_decay'\]\[1\]=-0.1"),
    ("a controller's checkpoint", "schedule", lambda s: {**s, "controller": other_controller_state()["controller"]},
     r"made with a controller"),
    ("a schedule's checkpoint", "controller", setting("controller", value=None), r"made with a schedule"),
    ("another controller's state", "controller",
     lambda s: {**s, "controller": other_controller_state()["controller"]},
     r"controller: smoothness_warmup.load_state_dict: the state is of 'nars_warmup'"),
    ("another controller's whole checkpoint", "controller", lambda s: other_controller_state(),
     r"controller: .*'nars_warmup'"),
    ("controller current NaN", "controller", setting("controller", "state", "current", value=math.nan),
     r"current=nan"),
    ("controller current above 1", "controller", setting("controller", "state", "current", value=5),
     r"current=5"),
    ("controller observed negative", "controller", setting("controller", "state", "observed", value=-1),
     r"observed=-1"),
    ("controller handover after observed", "controller", setting("controller", "state", "handover", value=50),
     r"handover=50"),
    ("controller with an extra field", "controller", setting("controller", "state", "evil", value=1),
     r"unknown fields \[.evil.\]"),
    ("controller without a field", "controller", dropping("controller", "state", "ema"), r"lacks \['ema'\]"),
    ("controller peak_lr not base_lrs[0]", "controller", setting("controller", "state", "peak_lr", value=0.001),
     r"peak_lr=0.001"),
    ("controller decision multiplier NaN", "controller",
     setting("controller", "state", "decisions", 0, "multiplier", value=math.nan), r"decisions\[0\].multiplier=nan"),
    ("schedules beside a controller", "controller", lambda s: {**s, "schedules": [constant().to_dict()] * 2},
     r"schedules=.*expected \[\]"),
    ("controller-driven base_lrs NaN", "controller", setting("base_lrs", 0, value=math.nan), r"base_lrs\[0\]=nan"),
    ("controller-driven last_epoch str", "controller", setting("last_epoch", value="abc"), r"last_epoch='abc'"),
    ("controller-driven base_lrs of one group", "controller", lambda s: {**s, "base_lrs": s["base_lrs"][:1]},
     r"base_lrs has 1 entries"),
]


@pytest.mark.parametrize(("case", "kind", "tamper", "words"), SCHEDULER_CASES, ids=[c[0] for c in SCHEDULER_CASES])
def test_a_tampered_scheduler_checkpoint_is_refused_and_changes_nothing(
        case: str, kind: str, tamper: Tamper, words: str) -> None:
    make = scheduled if kind == "schedule" else controlled
    checkpoint = tamper(copy.deepcopy(make().state_dict()))
    scheduler = make()
    scheduler.optimizer.param_groups[0]["lr"] = 0.123  # what the optimizer holds stays too
    before = snapshot(scheduler)
    with pytest.raises(ValueError, match=words):
        scheduler.load_state_dict(checkpoint)
    assert snapshot(scheduler) == before


def test_the_untampered_checkpoints_load() -> None:
    for make in (scheduled, controlled):
        original = make()
        resumed = make()
        resumed.load_state_dict(json.loads(json.dumps(original.state_dict())))
        assert snapshot(resumed) == snapshot(original)


# -- controllers on their own -----------------------------------------------------------------

def smoothness_fitted() -> Controller:
    controller = SmoothnessWarmup(100, min_pairs=3, refit_every=1)
    for t in range(8):
        controller.observe(loss=3.0 / (t + 1), smoothness=1.0 + 4.0 / (t + 1))
    assert controller.fit is not None
    return controller


def run(expression: str, steps: int = 8) -> Callable[[], Controller]:
    def make() -> Controller:
        controller = parse_controller(expression, total=100)
        controller.bind(0.1)
        for t in range(steps):
            controller.observe(loss=3.0 / (t + 1) + (0.5 if t == 3 else 0.0), grad_norm=1.0, sharpness=4.0)
        return controller
    return make


CATAPULT = run("catapult_warmup(steps=20, initial=0.1, persistent=True, patience=2)")
NARS = run("nars_warmup(interval=3)")
SHARPNESS = run("sharpness_warmup(every=1)")

# (id, the controller, tamper of its state_dict, words the error names)
CONTROLLER_CASES: list[tuple[str, Callable[[], Controller], Tamper, str]] = [
    ("current NaN", NARS, setting("state", "current", value=math.nan), r"current=nan"),
    ("current 5", CATAPULT, setting("state", "current", value=5), r"current=5"),
    ("current below the floor", run("nars_warmup(interval=3, floor=0.005)"), setting("state", "current", value=0.001),
     r"current=0.001.*\[0.005, 1.0\]"),
    ("observed -1", SHARPNESS, setting("state", "observed", value=-1), r"observed=-1"),
    ("observed 'x'", CATAPULT, setting("state", "observed", value="x"), r"observed='x'"),
    ("observed a float", NARS, setting("state", "observed", value=8.0), r"observed=8.0"),
    ("handover after observed", CATAPULT, setting("state", "handover", value=9), r"handover=9"),
    ("no handover at total", NARS, setting("state", "observed", value=100), r"handover=None"),
    ("peak_lr 0", SHARPNESS, setting("state", "peak_lr", value=0.0), r"peak_lr=0.0"),
    ("peak_lr negative", NARS, setting("state", "peak_lr", value=-0.1), r"peak_lr=-0.1"),
    ("the state of another controller", CATAPULT, replacing(lambda s: NARS().state_dict()), r"'nars_warmup'"),
    ("another name", SHARPNESS, setting("name", value="smoothness_warmup"), r"'smoothness_warmup'"),
    ("an extra field", NARS, setting("state", "evil", value=[1]), r"unknown fields \[.evil.\]"),
    ("a missing field", CATAPULT, dropping("state", "raises"), r"lacks \['raises'\]"),
    ("an extra top-level key", SHARPNESS, setting("extra", value=1), r"keys \['extra', 'name', 'state'\]"),
    ("the state not a mapping", NARS, setting("state", value=[1, 2]), r"the state=\[1, 2\]"),
    ("a decision's step 0", CATAPULT, setting("state", "decisions", 0, "step", value=0), r"decisions\[0\].step=0"),
    ("a decision's evidence a str", NARS, setting("state", "decisions", 1, "evidence", "loss", value="x"),
     r"decisions\[1\].evidence\['loss'\]='x'"),
    ("a count a bool", CATAPULT, setting("state", "raises", value=True), r"raises=True"),
    ("a bool an int", CATAPULT, setting("state", "reported", value=1), r"reported=1"),
    ("catapult initial 0", CATAPULT, setting("state", "initial", value=0.0), r"initial=0.0"),
    ("catapult ema inf", CATAPULT, setting("state", "ema", value=math.inf), r"ema=inf"),
    ("nars belief of another horizon", NARS, setting("state", "gain", "horizon", value=2.0), r"gain=.*horizon=1.0"),
    ("nars negative evidence", NARS, setting("state", "instability", "positive", value=-1.0),
     r"instability.*positive=-1.0"),
    ("nars loss EMA without its reference", NARS, setting("state", "loss_ref", value=None), r"loss_ema="),
    ("nars previous of three", NARS, setting("state", "previous", value=[0.1, 0.2, 0.3]), r"previous=\[0.1, 0.2, 0.3\]"),
    ("nars a loss NaN", NARS, setting("state", "losses", value=[1.0, math.nan]), r"losses\[1\]=nan"),
    ("sharpness 0", SHARPNESS, setting("state", "sharpness", value=0.0), r"sharpness=0.0"),
    ("sharpness ceiling 2", SHARPNESS, setting("state", "ceiling", value=2.0), r"ceiling=2.0"),
    ("smoothness pair of three", smoothness_fitted, setting("state", "pairs", 0, value=[1.0, 2.0, 3.0]),
     r"pairs\[0\]=\[1.0, 2.0, 3.0\]"),
    ("smoothness pair negative", smoothness_fitted, setting("state", "pairs", 1, value=[1.0, -2.0]),
     r"pairs=.*numbers in \(0.0, inf\)"),
    ("smoothness fit of two", smoothness_fitted, setting("state", "fit", value=[1.0, 2.0]), r"fit=\[1.0, 2.0\]"),
    ("smoothness fit NaN", smoothness_fitted, setting("state", "fit", 0, value=math.nan), r"fit\[0\]=nan"),
]


@pytest.mark.parametrize(("case", "make", "tamper", "words"), CONTROLLER_CASES, ids=[c[0] for c in CONTROLLER_CASES])
def test_a_tampered_controller_state_is_refused_and_changes_nothing(
        case: str, make: Callable[[], Controller], tamper: Tamper, words: str) -> None:
    controller = make()
    checkpoint = tamper(json.loads(json.dumps(controller.state_dict())))
    before = copy.deepcopy(controller.state_dict())
    with pytest.raises(ValueError, match=words):
        controller.load_state_dict(checkpoint)
    assert controller.state_dict() == before


def test_the_catalogues_are_large_enough() -> None:
    assert len(SCHEDULER_CASES) >= 25 and len(CONTROLLER_CASES) >= 25
    assert {kind for _, kind, _, _ in SCHEDULER_CASES} == {"schedule", "controller"}


# -- any tamper: refused, or the controller runs on within its bounds --------------------------

BUILT: dict[str, Callable[[], Controller]] = {
    "catapult": CATAPULT, "catapult-linear": run("catapult_warmup(steps=20)"), "nars": NARS,
    "sharpness": SHARPNESS, "smoothness-fitted": smoothness_fitted,
    "smoothness-given": run("smoothness_warmup(rho=1.0, K0=0.5, K_rho=2.0)"),
    "autowu": run("autowu_warmup(interval=2, min_points=4)", steps=12), "gap": run("gap_warmup()"),
    "auto": run("auto_warmup()", steps=12),
}
assert {type(make()) for make in BUILT.values()} == set(CONTROLLERS)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a state dict a tamper can write (the first two items of a list)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value[:2]):
            found += paths(item, prefix + (i,))
    return found


junk = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 200), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, 5e-324, 0.0, 1.0, 0.5, "x", [], {}]), st.lists(st.floats(-2.0, 2.0), max_size=4),
    st.lists(st.lists(st.floats(0.0, 5.0), max_size=3), max_size=3),
    st.dictionaries(st.sampled_from(["positive", "negative", "horizon", "loss"]), st.floats(-1.0, 3.0), max_size=3),
)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("kind", BUILT)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_tampered_field_is_refused_or_runs_within_bounds(kind: str, data: st.DataObject) -> None:
    controller = BUILT[kind]()
    checkpoint = json.loads(json.dumps(controller.state_dict()))
    path = data.draw(st.sampled_from(paths(checkpoint["state"])), label="path")
    value = data.draw(junk, label="value")
    setting("state", *path, value=value)(checkpoint)
    fresh = BUILT[kind]()
    before = copy.deepcopy(fresh.state_dict())
    try:
        fresh.load_state_dict(checkpoint)
    except ValueError:
        assert fresh.state_dict() == before
        return
    floor = fresh.bounds.floor
    for t in range(25):  # a loaded state never crashes the run
        warming = fresh.handover_step is None
        value = fresh.observe(loss=1.0 / (t + 1), grad_norm=1.0, smoothness=2.0, sharpness=3.0)
        assert isinstance(value, float) and not math.isnan(value)
        if warming:
            assert floor <= value <= 1.0


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("kind", ["schedule", "controller"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_tampered_scheduler_key_is_refused_or_resumes(kind: str, data: st.DataObject) -> None:
    make = scheduled if kind == "schedule" else controlled
    checkpoint = json.loads(json.dumps(make().state_dict()))
    path = data.draw(st.sampled_from(paths(checkpoint)), label="path")
    setting(*path, value=data.draw(junk, label="value"))(checkpoint)
    scheduler = make()
    before = snapshot(scheduler)
    try:
        scheduler.load_state_dict(checkpoint)
    except ValueError:
        assert snapshot(scheduler) == before
        return
    for _ in range(5):
        scheduler.optimizer.step()
        scheduler.step(**({"loss": 1.0, "smoothness": 2.0} if scheduler.controller else {}))
        assert all(math.isfinite(float(lr)) and lr >= 0 for lr in scheduler.get_last_lr())
