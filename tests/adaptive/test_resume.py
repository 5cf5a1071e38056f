"""Resume is exact for every controller however it was built: a checkpoint taken mid-warmup and
loaded into a controller built from the same expression in a fresh process gives the same
multipliers and decisions as the run that went on. The catapult warmup is built as the lab builds
it (``initial`` left to :meth:`prepare`), which could not be resumed before (``'increment'``)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from preheat.adaptive import parse_controller

TOTAL = 300
CHECKPOINT = 40
AFTER = "cosine_decay({steps})"
EXPRESSIONS = [  # (expression, what the loop measures before update 0)
    ("catapult_warmup(steps=30)", {"catapult_lr": 0.02}),
    ("catapult_warmup(steps=30, persistent=True, patience=3)", {"catapult_lr": 0.02}),
    ("catapult_warmup(steps=30, initial=0.3)", {}),
    ("nars_warmup(interval=5)", {}),
    ("sharpness_warmup(every=3, optimizer='adam')", {}),
    ("smoothness_warmup(min_pairs=5, refit_every=3)", {}),
    ("smoothness_warmup(rho=1.0, K0=0.5, K_rho=2.0, growth=1.2)", {}),
]


def signals(t: int) -> dict[str, float]:
    """A falling, wobbling loss with a spike, a grad norm, and curvature signals (every update)."""
    loss = 3.0 * math.exp(-t / 60) + 0.1 * math.sin(t) + (4.0 if t in (20, 21) else 0.0)
    return {"loss": loss, "grad_norm": 1.0 + 0.3 * math.cos(t), "smoothness": 2.0 + loss,
            "sharpness": 50.0 + 10.0 * math.sin(t / 7)}


def build(expression: str, prepared: dict[str, float]):
    controller = parse_controller(expression, total=TOTAL, after=AFTER)
    controller.bind(0.1)
    controller.prepare(**prepared)
    return controller


RESUME = """
import json, sys
from preheat.adaptive import parse_controller
expression, total, after, state, start, signals = json.loads(sys.stdin.read())
controller = parse_controller(expression, total=total, after=after)
controller.bind(0.1)
controller.load_state_dict(state)
out = [controller.observe(**s) for s in signals]
print(json.dumps({"multipliers": out, "decisions": [d.__dict__ for d in controller.decisions]}))
"""


@pytest.mark.parametrize(("expression", "prepared"), EXPRESSIONS, ids=[e for e, _ in EXPRESSIONS])
def test_a_checkpoint_resumes_exactly_in_a_fresh_process(expression: str, prepared: dict[str, float]) -> None:
    controller = build(expression, prepared)
    for t in range(CHECKPOINT):
        controller.observe(**signals(t))
    state = json.loads(json.dumps(controller.state_dict()))  # plain data, as a checkpoint holds it
    rest = [signals(t) for t in range(CHECKPOINT, 120)]
    expected = [controller.observe(**s) for s in rest]
    payload = json.dumps([expression, TOTAL, AFTER, state, CHECKPOINT, rest])
    done = subprocess.run([sys.executable, "-c", RESUME], input=payload, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = json.loads(done.stdout)
    assert resumed["multipliers"] == expected  # exact, not approximately
    assert resumed["decisions"] == [d.__dict__ for d in controller.decisions]


def test_a_state_that_does_not_fit_changes_nothing() -> None:
    controller = build("catapult_warmup(steps=30)", {"catapult_lr": 0.02})
    controller.observe(**signals(0))
    before = json.dumps(controller.state_dict())
    broken = json.loads(before)
    del broken["state"]["raises"]
    with pytest.raises(ValueError, match="does not fit"):
        controller.load_state_dict(broken)
    with pytest.raises(ValueError, match="catapult_warmup"):
        controller.load_state_dict(build("nars_warmup()", {}).state_dict())
    assert json.dumps(controller.state_dict()) == before


def test_prepare_sets_the_catapult_start_and_is_refused_once_training_began() -> None:
    controller = parse_controller("catapult_warmup(steps=10)", total=50)
    assert controller.prepare_needs == ("catapult_lr",) and controller.multiplier() == 0.0
    controller.bind(0.1)
    controller.prepare(catapult_lr=0.025)
    assert controller.multiplier() == pytest.approx(0.25) and controller.saved_steps == 2
    controller.observe(loss=1.0)
    with pytest.raises(ValueError, match="before update 0"):
        controller.prepare(catapult_lr=0.025)
    given = parse_controller("catapult_warmup(steps=10, initial=0.5)", total=50)
    assert given.prepare_needs == ()
    with pytest.raises(ValueError, match="catapult_lr"):
        given.prepare(catapult_lr=0.01)
