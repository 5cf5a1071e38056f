"""Every family's one formula gives the core's numbers through the optax and Keras adapters.

A family writes its formula once, ``_at(t, xp)``; ``schedule(t)`` evaluates it over NumPy,
``to_optax`` over ``jax.numpy`` and ``to_keras`` over ``keras.ops``. The test below runs over
every class the library registers (``Schedule.registry``), with the instances of
``test_families.CASES`` and the compositions here, so a new family is covered by its case alone.

JAX runs in this process, with x64 switched on around each test; Keras runs in one subprocess
per floatx, where ``KERAS_BACKEND=jax`` is set before Keras is first imported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable

import numpy as np
import pytest

import preheat
from preheat.schedules import Schedule

from .test_families import CASES

#: More instances and the compositions (Join, Product), each family's own come from CASES.
MORE = [
    preheat.linear_warmup(100, start=0.1),
    preheat.cosine_warmup(50, start=0.05),
    preheat.polynomial_warmup(40, 2.0),
    preheat.exponential_warmup(tau=30.0),
    preheat.exponential_warmup(beta2=0.99, steps=300),
    preheat.untuned_linear_warmup(0.99),
    preheat.radam_warmup(0.99),
    preheat.radam_warmup(0.9, steps=50),
    preheat.constant(10, 0.5),
    preheat.linear_decay(100, end=0.1),
    preheat.linear_decay(0, end=0.3),
    preheat.cosine_decay(300),
    preheat.cosine_decay(300, end=0.1, cycles=1.5),
    preheat.cosine_restarts(300, cycles=3),
    preheat.polynomial_decay(200, power=2.0, end=0.01),
    preheat.exponential_decay(rate=0.99),
    preheat.exponential_decay(half_life=50, steps=400),
    preheat.step_decay(every=30, gamma=0.5),
    preheat.step_decay(milestones=(10, 50, 90)),
    preheat.inverse_sqrt(100.0),
    preheat.one_minus_sqrt_decay(100, end=0.1),
    # compositions
    preheat.warmup_cosine(10, 100),
    preheat.wsd(10, 100),
    preheat.exponential_warmup(beta2=0.999) * preheat.cosine_decay(1000),
    preheat.join([preheat.linear_warmup(20), preheat.constant(), preheat.cosine_decay(50)], [10, 40]),
    preheat.radam_warmup(0.95) * (preheat.linear_warmup(5) >> preheat.step_decay(milestones=(20, 60))),
]

EXAMPLES: dict[str, list[Schedule]] = {}
for _schedule in [case[1] for case in CASES] + MORE:
    EXAMPLES.setdefault(_schedule.name, []).append(_schedule)

#: The library's families (a family a test defines is not one of them). ``unresolved`` is not a
#: family: a call waiting for the run's size, it has no values (tests/schedules/test_units.py).
FAMILIES = sorted(name for name, cls in Schedule.registry.items()
                  if cls.__module__.startswith("preheat.") and name != "unresolved")

#: Families whose formula takes a cosine, which Keras 3.15 computes in float32 even for float64.
COSINE = {"cosine_warmup", "cosine_decay", "cosine_restarts"}

PEAK = 0.37


def names(schedule: Schedule) -> set[str]:
    """The family names of ``schedule`` and of every schedule inside it."""
    inner = getattr(schedule, "schedules", ()) + getattr(schedule, "factors", ())
    return {schedule.name}.union(*(names(part) for part in inner))


def rtol64(schedule: Schedule) -> float:
    """1e-12; 1e-9 with RAdam's rectification, which cancels just after its onset (rho > 5), so
    a last-bit difference in ``beta2 ** k`` between XLA and NumPy grows to ~1e-11 there."""
    return 1e-9 if "radam_warmup" in names(schedule) else 1e-12


def steps(schedule: Schedule) -> np.ndarray:
    """Every step to 2099 (past every example's length), then a few far after its length (1500
    for one that never ends). One shape for all, so eager Keras compiles each operation once."""
    n = schedule.length if schedule.length is not None else 1500
    assert n < 2050, "a longer example needs more steps here"
    return np.concatenate([np.arange(0, 2100), [n + 1000, 10**6, 2**31 - 1]]).astype(np.int64)


def close(got: np.ndarray, want: np.ndarray, rtol: float, atol: float = 1e-15) -> None:
    # atol covers values that are exactly 0 in the core and a rounding error (~1e-16) away in XLA
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def check_optax(schedule: Schedule) -> None:
    """``to_optax`` under ``jax.jit`` with x64 gives the core's numbers (``rtol64``): on an
    array of steps, and one int32 count at a time as optax passes it."""
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    from preheat.integrations.optax import to_optax

    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        fn = jax.jit(to_optax(schedule, PEAK))
        t = steps(schedule)
        got = np.asarray(fn(jnp.asarray(t)))
        assert got.dtype == np.float64
        close(got, PEAK * schedule(t), rtol64(schedule))
        for step in [0, 1, 2, 9, 10, 11, int(t[-4]), int(t[-1])]:
            close(np.asarray(fn(jnp.int32(step))), np.asarray(PEAK * schedule(step)), rtol64(schedule))
    finally:
        jax.config.update("jax_enable_x64", before)


KERAS_VALUES = textwrap.dedent(
    """
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "jax"
    floatx = sys.argv[1]
    import jax
    jax.config.update("jax_enable_x64", floatx == "float64")
    import keras
    import numpy as np
    keras.config.set_floatx(floatx)
    import preheat
    from preheat.integrations.keras import to_keras

    job = json.loads(sys.stdin.read())
    exec(job["prelude"])  # defines a family outside the library, if any
    values = [np.asarray(to_keras(preheat.from_dict(s), job["peak"])(np.asarray(t))).tolist()
              for s, t in job["runs"]]
    cosine = str(keras.ops.cos(keras.ops.ones((), dtype=floatx)).dtype)
    print(json.dumps({"values": values, "cosine_dtype": cosine}))
    """
)


def keras_values(floatx: str, schedules: list[Schedule], prelude: str = "") -> tuple[list[np.ndarray], str]:
    """``to_keras(s, PEAK)`` at ``steps(s)`` for each schedule, in a fresh process with ``floatx``
    (after running ``prelude`` there), and the dtype Keras's cos returns in that floatx."""
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed")
    job = {"prelude": prelude, "peak": PEAK, "runs": [(s.to_dict(), steps(s).tolist()) for s in schedules]}
    result = subprocess.run(
        [sys.executable, "-c", KERAS_VALUES, floatx],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": "jax"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    return [np.asarray(v) for v in out["values"]], out["cosine_dtype"]


def check_keras(floatx: str, schedule: Schedule, got: np.ndarray, cosine_dtype: str) -> None:
    """Keras's values in float64 agree as optax's (``rtol64``), except where its cos computes in
    float32 (then 1e-6, float32's precision); in float32 at 1e-6 (2e-4 for RAdam's rectification
    near its onset, where it cancels and float32 keeps ~4 digits).

    float32 is checked on ``MORE`` only: on some of the cases' steps a float32 rounding lands a
    ``cosine_restarts`` restart on the wrong side of the jump (``cosine_restarts(25, cycles=2.5)``
    at step 10: compiled float32 gives ``2.5 * (10 / 25) = 0.99999994``, so ``end``, not 1).
    """
    family = names(schedule)
    if floatx == "float64" and not (family & COSINE and cosine_dtype == "float32"):
        rtol, atol = rtol64(schedule), 1e-15
    else:
        rtol, atol = (2e-4 if floatx == "float32" and "radam_warmup" in family else 1e-6), 1e-7
    close(got, PEAK * schedule(steps(schedule)), rtol, atol)


@pytest.fixture(scope="module")
def keras_runs() -> Callable[[str], tuple[dict[Schedule, np.ndarray], str]]:
    """Keras's values of every example in ``floatx``, one subprocess per floatx (run on first use)."""
    cache: dict[str, tuple[dict[Schedule, np.ndarray], str]] = {}

    def run(floatx: str) -> tuple[dict[Schedule, np.ndarray], str]:
        if floatx not in cache:
            examples = MORE if floatx == "float32" else [s for name in FAMILIES for s in EXAMPLES.get(name, ())]
            values, cosine_dtype = keras_values(floatx, examples)
            cache[floatx] = dict(zip(examples, values)), cosine_dtype
        return cache[floatx]

    return run


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_gives_the_core_numbers_in_optax_and_keras(name, keras_runs):
    examples = EXAMPLES.get(name)
    assert examples, f"{name} has no instance to test; add a case for it to test_families.CASES"
    for schedule in examples:
        check_optax(schedule)
    for floatx in ("float64", "float32"):
        values, cosine_dtype = keras_runs(floatx)
        for schedule in examples:
            if schedule in values:  # float32: MORE only (see check_keras)
                check_keras(floatx, schedule, values[schedule], cosine_dtype)
