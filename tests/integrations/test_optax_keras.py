"""optax and Keras adapters in use (preheat.integrations.optax/.keras): step conventions, real
optimizers, float32, serialisation, argument checks.

That both give the NumPy core's numbers for every family is tested with the families
(``tests/schedules/test_namespaces.py``). JAX runs in this process; Keras runs in subprocesses,
so ``KERAS_BACKEND=jax`` is set before Keras is first imported whatever the test order. The code
blocks of ``docs/integrations.md`` are executed as they are written.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import preheat

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
optax = pytest.importorskip("optax")

from preheat.integrations.optax import to_optax  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


def test_optax_float32_without_x64():
    schedule = preheat.warmup_cosine(10, 100)
    t = np.arange(150)
    got = np.asarray(jax.jit(to_optax(schedule, 1.0))(t))
    np.testing.assert_allclose(got, schedule(t), rtol=1e-6, atol=1e-7)


def test_optax_sgd_uses_count_zero_first():
    schedule = preheat.linear_warmup(4, start=0.25) >> preheat.linear_decay(4, end=0.5)
    tx = optax.sgd(learning_rate=to_optax(schedule, 0.1))
    params = jnp.zeros(())
    state = tx.init(params)
    step = jax.jit(lambda p, s: tx.update(jnp.ones(()), s, p))
    for k in range(12):
        updates, state = step(params, state)
        params = optax.apply_updates(params, updates)
        np.testing.assert_allclose(float(params), -0.1 * schedule(np.arange(k + 1)).sum(), rtol=1e-6)


def test_optax_adamw_and_inject_hyperparams_real_steps():
    schedule = preheat.warmup_cosine(3, 10)
    lr = to_optax(schedule, 1e-2)
    params = {"w": jnp.array([1.0, -2.0, 3.0])}

    def loss(p):
        return jnp.sum(p["w"] ** 2)

    for tx in (optax.adamw(learning_rate=lr), optax.inject_hyperparams(optax.adamw)(learning_rate=lr)):
        p, state = params, tx.init(params)

        @jax.jit
        def train(p, state, tx=tx):
            updates, state = tx.update(jax.grad(loss)(p), state, p)
            return optax.apply_updates(p, updates), state

        used = []
        for _ in range(12):
            p, state = train(p, state)
            if hasattr(state, "hyperparams"):
                used.append(float(state.hyperparams["learning_rate"]))
        assert float(loss(p)) < float(loss(params))
        assert np.isfinite(np.asarray(p["w"])).all()
    np.testing.assert_allclose(used, 1e-2 * schedule(np.arange(12)), rtol=1e-6, atol=1e-12)


def test_to_optax_rejects_bad_arguments():
    with pytest.raises(ValueError, match="peak"):
        to_optax(preheat.constant(), 0.0)
    with pytest.raises(ValueError, match="peak"):
        to_optax(preheat.constant(), float("nan"))
    with pytest.raises(ValueError, match="schedule"):
        to_optax(lambda t: 1.0, 1.0)


def test_importing_integrations_imports_no_framework():
    code = "import sys, preheat.integrations; assert not {'jax', 'keras', 'optax'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- Keras (in subprocesses) ----------------------------------------------------------------

KERAS_CHECK = textwrap.dedent(
    """
    import json, os, sys, tempfile
    os.environ["KERAS_BACKEND"] = "jax"
    floatx = sys.argv[1]
    import jax
    jax.config.update("jax_enable_x64", floatx == "float64")
    import keras
    import numpy as np
    keras.config.set_floatx(floatx)
    import preheat
    from preheat.integrations.keras import PreheatSchedule, to_keras

    # config round trip, directly and through keras's (de)serialisation
    s = preheat.warmup_cosine(10, 100)
    lr = to_keras(s, 0.5)
    config = lr.get_config()
    assert config == {"schedule": s.to_dict(), "peak": 0.5}
    json.dumps(config)
    again = PreheatSchedule.from_config(config)
    assert again.schedule == s and again.peak == 0.5
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(lr))
    assert isinstance(again, PreheatSchedule) and again.schedule == s

    # an optimizer accepts it; update 0 uses iterations == 0, i.e. peak * s(0)
    warm = preheat.linear_warmup(4, start=0.25) >> preheat.linear_decay(4, end=0.5)
    opt = keras.optimizers.SGD(learning_rate=to_keras(warm, 0.1))
    w = keras.Variable(np.zeros(()), dtype=floatx)
    for k in range(12):
        assert int(opt.iterations) == k
        np.testing.assert_allclose(float(opt.learning_rate), 0.1 * warm(k), rtol=1e-6)
        opt.apply_gradients([(keras.ops.ones((), dtype=floatx), w)])
        np.testing.assert_allclose(float(w.numpy()), -0.1 * warm(np.arange(k + 1)).sum(), rtol=1e-6)

    # gradient accumulation: Keras passes its raw counter, so real update j uses s(n*j + n - 1)
    opt = keras.optimizers.SGD(learning_rate=to_keras(warm, 0.1), gradient_accumulation_steps=2)
    w = keras.Variable(np.zeros(()), dtype=floatx)
    for _ in range(8):
        opt.apply_gradients([(keras.ops.ones((), dtype=floatx), w)])
    assert int(opt.iterations) == 4
    used = 0.1 * warm(np.array([1, 3, 5, 7]))
    np.testing.assert_allclose(float(w.numpy()), -used.sum(), rtol=1e-6)

    # fit a model with AdamW and reload it from a .keras file with the schedule in its optimizer
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=lr), loss="mse")
    model.fit(np.ones((16, 3)), np.ones((16, 1)), batch_size=4, epochs=2, verbose=0)
    assert int(model.optimizer.iterations) == 8
    path = os.path.join(tempfile.mkdtemp(), "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.optimizer._learning_rate.get_config() == config
    print("ok")
    """
)


def _need(module: str) -> None:
    """Skip unless ``module`` is installed, without importing it here (Keras picks its backend
    on first import; the subprocesses set ``KERAS_BACKEND=jax``)."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.parametrize("floatx", ["float32", "float64"])
def test_keras_round_trips_and_trains(floatx):
    _need("keras")
    result = _run(KERAS_CHECK, floatx)
    assert result.stdout.strip().endswith("ok")


# -- the documentation's examples ------------------------------------------------------------


def _doc_sections() -> dict[str, str]:
    sections = {}
    for section in DOC.read_text().split("\n## ")[1:]:
        title = section.splitlines()[0].strip()
        code = "\n".join(re.findall(r"```python\n(.*?)```", section, re.S))
        if code:
            sections[title] = code
    return sections


def test_doc_has_the_sections():
    text = DOC.read_text()
    for title in ("## optax", "## Keras 3", "## Step conventions"):
        assert title in text
    assert set(_doc_sections()) >= {"optax", "Keras 3"}


OWN = ("optax", "Keras 3", "The same learning rates in PyTorch, optax and Keras")


@pytest.mark.parametrize("title", [t for t in _doc_sections() if t in OWN])
def test_doc_examples_run(title):
    _need("keras")
    if "PyTorch" in title:
        _need("torch")
    result = _run(_doc_sections()[title])
    if "PyTorch" in title:  # the output shown in the doc is the output printed
        shown = re.findall(r"```\n(torch .*?)```", DOC.read_text(), re.S)[0]
        assert result.stdout.strip() == shown.strip()
