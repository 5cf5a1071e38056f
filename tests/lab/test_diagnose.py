"""``preheat diagnose`` and ``preheat.lab.diagnose``: sharpness, local smoothness, the law fit, figures.

On the river valley (full-batch gradient descent) everything has a closed form or an
independent replay: the sharpness is the task's exact ``hessian_norm`` at the iterates, the
local smoothness is recomputed from a hand-written gradient-descent replay, and the task's own
``(rho, K0, K_rho)`` bound must hold for every measured pair.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from preheat.cli import app
from preheat.lab.config import RunConfig
from preheat.lab.diagnose import Diagnosis, diagnose
from preheat.lab.diagnose_figures import write
from preheat.lab.tasks import make_task

ANSI = re.compile(r"\x1b\[[0-9;]*m")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVERY = 5
RIVER = RunConfig(task="river-valley", optimizer="sgd", peak_lr=0.02, schedule="linear_warmup(10)",
                  steps=60, batch_size=1)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and much faster when other processes share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def river() -> tuple[Diagnosis, list[torch.Tensor]]:
    """The river-valley diagnosis, and the iterates ``theta_0 .. theta_60`` replayed by hand.

    The replay is plain gradient descent, ``theta_{t+1} = theta_t - eta_t grad f(theta_t)``,
    with the LRs the diagnosis recorded (which are checked against the schedule separately).
    """
    torch.set_num_threads(1)
    task = make_task("river-valley")
    result = diagnose(RIVER, EVERY, task=task)
    theta = task.model(RIVER.seed).theta.detach().clone()
    iterates = [theta]
    for lr in result.lr:
        point = iterates[-1].clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(task.value(point), point)
        iterates.append(iterates[-1] - float(lr) * gradient)
    return result, iterates


def run_cli(*args: str):
    result = CliRunner().invoke(app, ["diagnose", *args], env={"COLUMNS": "120", "NO_COLOR": "1"})
    return result, ANSI.sub("", result.output)


# -- the library ----------------------------------------------------------------------------


def test_river_valley_sharpness_is_the_exact_hessian_norm(river):
    result, iterates = river
    task = make_task("river-valley")
    assert result.status == "finished" and result.updates == RIVER.steps
    assert result.measured_step.tolist() == list(range(0, RIVER.steps, EVERY))
    exact = np.array([task.hessian_norm(iterates[t]).item() for t in result.measured_step])
    np.testing.assert_allclose(result.sharpness, exact, rtol=1e-3)
    assert result.preconditioned is None  # plain gradient descent


def test_lr_loss_and_threshold_follow_the_run(river):
    result, iterates = river
    task = make_task("river-valley")
    expected_lr = RIVER.peak_lr * np.minimum(np.arange(RIVER.steps) / 10, 1.0)  # linear_warmup(10)
    np.testing.assert_allclose(result.lr, expected_lr, rtol=1e-12, atol=1e-15)
    losses = np.array([task.value(theta).item() for theta in iterates[:-1]])
    np.testing.assert_allclose(result.loss, losses, rtol=1e-9)
    np.testing.assert_allclose(result.gap, losses)  # f* = 0
    assert result.threshold[0] == math.inf  # eta_0 = 0
    np.testing.assert_allclose(result.threshold[1:], 2.0 / expected_lr[1:])
    assert result.threshold_rule == "2 / eta" and result.threshold_applies_to == "sharpness"


def test_local_smoothness_matches_a_hand_replay(river):
    result, iterates = river
    task = make_task("river-valley")

    def grad(theta: torch.Tensor) -> torch.Tensor:
        point = theta.clone().requires_grad_(True)
        return torch.autograd.grad(task.value(point), point)[0]

    assert math.isnan(result.smoothness[0])  # update 0 has eta = 0: nothing moved
    expected = [float(torch.linalg.vector_norm(grad(b) - grad(a)) / torch.linalg.vector_norm(b - a))
                for a, b in zip(iterates[1:-1], iterates[2:])]
    np.testing.assert_allclose(result.smoothness[1:], expected, rtol=1e-6)


def test_smoothness_fit_is_finite_and_the_task_bound_holds(river):
    result, _ = river
    assert result.fit is not None
    rho, k0, k_rho = result.fit
    assert all(math.isfinite(v) for v in result.fit) and rho > 0 and k0 >= 0 and k_rho >= 0
    assert result.task_constants == (1.0, 2.0, 20.0)
    rho, k0, k_rho = result.task_constants
    measured = np.isfinite(result.smoothness)
    assert measured.sum() == RIVER.steps - 1
    bound = k0 + k_rho * result.gap[measured] ** rho
    assert (result.smoothness[measured] <= bound).all()


@pytest.mark.parametrize("config", [
    RunConfig(task="digits", optimizer="adam", peak_lr=3e-2, steps=12, batch_size=16, eval_every=5,
              schedule="linear_warmup(4) >> cosine_decay({steps})"),
    RunConfig(task="river-valley", optimizer="momentum", peak_lr=0.3, steps=15, batch_size=1, eval_every=4,
              grad_clip=1.0),
], ids=["digits-adam", "river-valley-clipped"])
def test_diagnose_trains_exactly_the_lab_run_of_its_config(config):
    from preheat.lab.run import train

    record = train(config)
    result = diagnose(config, 5)
    assert result.status == record.status == "finished"
    assert result.loss.tolist() == record.steps["train_loss"]  # identical, not approximately
    assert result.lr.tolist() == record.steps["lr"]
    assert result.val_step.tolist() == record.evals["step"]
    assert result.val_loss.tolist() == record.evals["val_loss"]


def test_timings_are_counted(river):
    result, _ = river
    assert result.seconds_sharpness > 0 and result.seconds_smoothness > 0 and result.seconds_training > 0
    assert result.seconds_total >= result.seconds_sharpness + result.seconds_smoothness
    assert result.measurement_seconds.shape == (12,) and result.update_seconds.shape == (60,)
    assert result.seconds_sharpness == pytest.approx(result.measurement_seconds.sum())
    assert result.seconds_training == pytest.approx(result.update_seconds.sum())
    assert result.seconds_per_measurement == pytest.approx(np.median(result.measurement_seconds))
    assert result.hvp_count >= result.measurements


def test_digits_adam_measures_both_sharpness_series():
    config = RunConfig(task="digits", task_options={"width": 16}, optimizer="adam", peak_lr=3e-3,
                       steps=12, batch_size=32)
    result = diagnose(config, 4)
    assert result.measured_step.tolist() == [0, 4, 8]
    assert result.preconditioned is not None and result.preconditioned.shape == result.sharpness.shape
    assert np.isfinite(result.sharpness).all() and np.isfinite(result.preconditioned).all()
    # Adam's preconditioner starts tiny (sqrt(v) ~ |g|), so P^{-1} H starts far above H.
    assert result.preconditioned[0] > 10 * result.sharpness[0]
    assert result.threshold_applies_to == "preconditioned"
    np.testing.assert_allclose(result.threshold, 38.0 / 3e-3)  # (2 + 2 * 0.9) / (0.1 * eta)
    assert np.isfinite(result.smoothness).all() and (result.smoothness > 0).all()


def test_radam_has_no_threshold_and_still_draws(tmp_path):
    config = RunConfig(task="river-valley", optimizer="radam", peak_lr=0.01, steps=6, batch_size=1)
    result = diagnose(config, 2)
    assert result.preconditioned is None and result.threshold_rule is None
    assert np.isnan(result.threshold).all() and result.sharpness.shape == (3,)
    paths = write(result, tmp_path)
    assert paths["sharpness.png"].read_bytes()[:8] == PNG_MAGIC


def test_a_diverging_run_stops_and_still_writes(tmp_path):
    config = RunConfig(task="river-valley", optimizer="sgd", peak_lr=0.3, steps=40, batch_size=1)
    result = diagnose(config, 5)  # 0.3 > 2 / 32: the walls blow up without warmup
    assert result.status == "diverged" and 0 < result.updates < 40
    paths = write(result, tmp_path)
    assert all(path.exists() for path in paths.values())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"every": 0}, "every=0 is invalid; expected an integer in 1..steps=60"),
        ({"every": 61}, "every=61 is invalid"),
        ({"every": 5, "f_star": math.nan}, "f_star=nan is invalid"),
        ({"every": 5, "envelope": 1.0}, "envelope=1.0 is invalid; expected a number in (0, 1)"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        diagnose(RIVER, **kwargs)


def test_a_controller_is_refused():
    config = RunConfig(task="river-valley", optimizer="sgd", peak_lr=0.1, steps=20,
                       controller="smoothness_warmup()")
    with pytest.raises(ValueError, match="controller"):
        diagnose(config, 5)


# -- the command ----------------------------------------------------------------------------


def test_cli_writes_figures_and_json(tmp_path):
    out = tmp_path / "diag"
    result, text = run_cli("--task", "river-valley", "--optimizer", "sgd", "--peak-lr", "0.02",
                           "--schedule", "linear_warmup(10)", "--steps", "60", "--every", "5",
                           "--out", str(out))
    assert result.exit_code == 0, text
    for name in ("fitted rho", "fitted K0", "fitted K_rho", "sharpness at t=0 / t=55",
                 "threshold at t=0 / t=55", "inf / 100", "cost of one sharpness measurement"):
        assert name in text
    for name in ("sharpness.png", "smoothness.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    data = json.loads((out / "diagnosis.json").read_text())
    assert data["config"]["task"] == "river-valley" and data["every"] == 5
    assert len(data["updates"]["smoothness"]) == 60 and data["updates"]["smoothness"][0] is None
    assert data["measurements"]["step"] == list(range(0, 60, 5))
    assert data["measurements"]["preconditioned_sharpness"] is None
    assert set(data["fit"]) == {"rho", "K0", "K_rho"}
    assert data["task_constants"] == {"rho": 1.0, "K0": 2.0, "K_rho": 20.0}


def test_cli_digits_adam_quiet(tmp_path):
    result, text = run_cli("--task", "digits", "--task-option", "width=16", "--optimizer", "adam",
                           "--steps", "6", "--every", "3", "--quiet", "--out", str(tmp_path))
    assert result.exit_code == 0, text
    assert "preconditioned at t=0 / t=3" in text
    data = json.loads((tmp_path / "diagnosis.json").read_text())
    assert data["config"]["task_options"]["width"] == 16
    assert data["config"]["batch_size"] == 32 and data["config"]["betas"] == [0.9, 0.99]  # compare's setting
    assert len(data["measurements"]["preconditioned_sharpness"]) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "nope"], "task='nope' is unknown"),
        (["--task", "river-valley", "--every", "0"], "expected an integer >= 1"),
        (["--task", "river-valley", "--steps", "10", "--every", "20"], "--every=20 is invalid"),
        (["--task", "river-valley", "--peak-lr", "-1"], "--peak-lr=-1.0 is invalid"),
        (["--task", "river-valley", "--optimizer", "lion"], "--optimizer='lion' is invalid"),
        (["--task", "river-valley", "--task-option", "width"], "--task-option 'width' is invalid"),
        (["--task", "river-valley", "--task-option", "width=3"], "bad task_options"),
        (["--task", "river-valley", "--task-option", "dim=[1"], "expected a YAML value"),
        (["--task", "river-valley", "--schedule", "linear_warmup("], "--schedule='linear_warmup(' is invalid"),
        (["--task", "river-valley", "--schedule", "cosine_decay({foo})"], "names ['foo']"),
        (["--task", "river-valley", "--seed", "-1"], "--seed=-1 is invalid"),
        (["--optimizer", "sgd"], "Missing option '--task'"),
    ],
)
def test_bad_options_exit_2_with_a_message(args, message, tmp_path):
    result, text = run_cli(*args, "--out", str(tmp_path / "never"))
    assert result.exit_code == 2, text
    assert message in text
    assert "Traceback" not in text
    assert not (tmp_path / "never").exists()
