"""Built-in tasks river-valley and digits, and loading a user's task (``module:function``)."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Iterator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from preheat.lab.config import RunConfig
from preheat.lab.run import train
from preheat.lab.tasks import Task, make_task
from preheat.lab.tasks.digits import Digits
from preheat.lab.tasks.river_valley import RiverValley, river_valley_loss

DOCS = Path(__file__).resolve().parents[2] / "docs" / "tasks.md"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and much faster when other processes share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def exact_hessian_norm(task: RiverValley, theta: torch.Tensor) -> float:
    """Spectral norm of the autograd Hessian of ``f`` (float64)."""
    hessian = torch.autograd.functional.hessian(task.value, theta.to(torch.float64))
    return torch.linalg.matrix_norm(hessian, ord=2).item()


def random_points(generator: torch.Generator, n: int, dim: int) -> torch.Tensor:
    """Points from the bottom to far up the river and the walls: |u|, ||v|| log-uniform."""
    sign = torch.where(torch.rand(n, generator=generator, dtype=torch.float64) < 0.5, -1.0, 1.0)
    u = sign * 10.0 ** (-4 + 7 * torch.rand(n, generator=generator, dtype=torch.float64))
    direction = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    direction /= torch.linalg.vector_norm(direction, dim=1, keepdim=True)
    radius = 10.0 ** (-5 + 8 * torch.rand(n, 1, generator=generator, dtype=torch.float64))
    points = torch.cat([u[:, None], radius * direction], dim=1)
    points[: n // 10, 1:] = 0.0  # some exactly on the river bottom
    points[n // 10 : n // 5, 0] = 0.0  # some exactly at u = 0
    return points


# -- river valley: the function ----------------------------------------------------------------


@pytest.mark.parametrize("curvature", [0.0, 0.3, 10.0, 1000.0])
@pytest.mark.parametrize("dim", [1, 3, 10])
def test_river_valley_smoothness_bound_holds_on_a_wide_sweep(curvature: float, dim: int) -> None:
    task = RiverValley(dim=dim, curvature=curvature)
    points = random_points(torch.Generator().manual_seed(dim), 2000, dim)
    gap = task.value(points)
    norm = task.hessian_norm(points)
    rho, k0, k_rho = task.smoothness_constants()
    assert (rho, k0, k_rho) == (1.0, 2.0, 2.0 * curvature)
    assert torch.all(gap >= 0)
    assert torch.all(norm <= task.hessian_bound(gap) * (1 + 1e-12))
    assert torch.all(norm <= (k0 + k_rho * gap**rho) * (1 + 1e-12))
    # The closed form is the exact spectral norm (autograd Hessian) on a subset.
    for theta in points[::40]:
        assert task.hessian_norm(theta).item() == pytest.approx(exact_hessian_norm(task, theta), rel=1e-9, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(
    u=st.floats(-1e3, 1e3),
    v=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=6),
    curvature=st.floats(0.0, 1e3),
)
def test_river_valley_bound_holds_with_the_autograd_hessian(u: float, v: list[float], curvature: float) -> None:
    task = RiverValley(dim=len(v), curvature=curvature)
    theta = torch.tensor([u, *v], dtype=torch.float64)
    gap = task.value(theta).item()
    rho, k0, k_rho = task.smoothness_constants()
    exact = exact_hessian_norm(task, theta)
    assert gap >= 0.0
    assert exact <= (k0 + k_rho * gap**rho) * (1 + 1e-9)
    assert exact <= task.hessian_bound(gap) * (1 + 1e-9)


def test_river_valley_bound_is_tight_in_order_on_the_river_bottom() -> None:
    task = RiverValley(dim=4, curvature=10.0)
    for u in [0.5, 3.0, 40.0, 700.0]:
        theta = torch.tensor([u, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
        gap = task.value(theta).item()
        assert exact_hessian_norm(task, theta) == pytest.approx(1 + 10.0 * gap, rel=1e-12)


def test_river_valley_minimum_is_zero_and_attained_at_the_origin() -> None:
    task = RiverValley(dim=5)
    origin = torch.zeros(6, dtype=torch.float64)
    assert task.value(origin).item() == 0.0
    points = random_points(torch.Generator().manual_seed(1), 5000, 5)
    assert torch.all(task.value(points) >= 0.0)
    model = task.model(0)
    with torch.no_grad():
        model.theta.zero_()
    assert task.evaluate(model) == {"val_loss": 0.0}


def test_river_valley_gradient_matches_finite_differences() -> None:
    task = RiverValley(dim=4, curvature=3.0)
    for theta in random_points(torch.Generator().manual_seed(2), 20, 4) / 100:
        theta = theta.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(task.value, (theta,))


def test_river_valley_training_gradient_is_grad_f_plus_noise() -> None:
    task = RiverValley(dim=3, noise=2.0)
    model = task.model(0)
    batch = next(task.batches(0, 4))
    loss, accuracy = task.loss(model, batch)
    loss.backward()
    theta = model.theta.detach().clone().requires_grad_(True)
    (grad_f,) = torch.autograd.grad(river_valley_loss(theta, task.curvature), theta)
    assert accuracy is None
    assert torch.allclose(model.theta.grad, grad_f + batch)


# -- river valley: determinism, start, noise --------------------------------------------------


def test_river_valley_start_and_determinism() -> None:
    task = RiverValley(dim=7, start=3.0, wall=0.5, noise=0.1)
    a, b, c = task.model(0).theta.detach(), task.model(0).theta.detach(), task.model(1).theta.detach()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.float64 and a.shape == (8,)
    assert a[0].item() == 3.0
    assert torch.linalg.vector_norm(a[1:]).item() == pytest.approx(0.5, rel=1e-12)
    first, second = task.batches(3, 8), task.batches(3, 8)
    for _ in range(5):
        assert torch.equal(next(first), next(second))
    assert not torch.equal(next(task.batches(3, 8)), next(task.batches(4, 8)))


def test_river_valley_noise_scale() -> None:
    task = RiverValley(dim=9, noise=2.0)
    stream = task.batches(0, 16)
    samples = torch.stack([next(stream) for _ in range(2000)])
    assert samples.std().item() == pytest.approx(2.0 / 4.0, rel=0.05)
    assert abs(samples.mean().item()) < 0.02
    gd = RiverValley(noise=0.0).batches(0, 16)
    assert all(torch.count_nonzero(next(gd)) == 0 for _ in range(3))


def test_river_valley_defaults() -> None:
    task = make_task("river-valley")
    assert isinstance(task, RiverValley) and task.chance_accuracy is None
    assert task.evaluate(task.model(0))["val_loss"] == pytest.approx(19.2386, abs=1e-3)
    assert task.stable_lr(task.start) == pytest.approx(2 / 32.231, rel=1e-4)
    assert task.stable_lr(0.0) == 2.0


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"dim": 0}, "dim"),
        ({"dim": 2.5}, "dim"),
        ({"curvature": -1.0}, "curvature"),
        ({"curvature": math.inf}, "curvature"),
        ({"start": math.nan}, "start"),
        ({"wall": -0.1}, "wall"),
        ({"noise": -1e-3}, "noise"),
        ({"noise": "lots"}, "noise"),
    ],
)
def test_river_valley_bad_options_raise(options: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=rf"RiverValley: {argument}=.* is invalid; expected"):
        make_task("river-valley", options)


def test_river_valley_unknown_option_raises() -> None:
    with pytest.raises(ValueError, match="bad task_options"):
        make_task("river-valley", {"curvatur": 3.0})


# -- river valley: warmup through the training loop --------------------------------------------


def run_river(peak_lr: float, warmup: int | None, steps: int = 200, **options: float):
    schedule = "constant()" if warmup is None else "linear_warmup({warmup})"
    config = RunConfig(task="river-valley", task_options=options, optimizer="sgd", peak_lr=peak_lr,
                       schedule=schedule, warmup=warmup, steps=steps, eval_every=50)
    return train(config)


def test_river_valley_large_constant_lr_diverges_but_warmup_converges() -> None:
    constant = run_river(0.5, None)
    assert constant.status == "diverged", constant.error
    assert len(constant.steps["step"]) <= 5  # blows up at the very start
    warm = run_river(0.5, 100)
    assert warm.status == "finished", warm.error
    assert warm.evals["val_loss"][-1] < 1e-10
    assert max(warm.steps["train_loss"]) <= warm.evals["val_loss"][0] * (1 + 1e-12)


def test_river_valley_moderate_constant_lr_makes_steady_progress() -> None:
    result = run_river(0.05, None)
    assert result.status == "finished", result.error
    gaps = result.evals["val_loss"]
    assert gaps[0] > 19 and gaps[2] < 0.05 and gaps[-1] < 1e-6
    assert all(later < earlier for earlier, later in zip(gaps, gaps[1:]))


def test_river_valley_sgd_runs_are_deterministic_and_noisy() -> None:
    first = run_river(0.3, 50, noise=1.0)
    second = run_river(0.3, 50, noise=1.0)
    assert first.status == "finished", first.error
    assert first.steps == second.steps and first.evals == second.evals
    assert 0.0 < first.evals["val_loss"][-1] < 0.1  # a noise floor, not the exact minimum


# -- digits --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> Digits:
    return Digits()


def test_digits_shapes_and_scaling(digits: Digits) -> None:
    data = digits.data
    assert data["x_train"].shape == (1438, 64) and data["y_train"].shape == (1438,)
    assert data["x_val"].shape == (359, 64) and data["y_val"].shape == (359,)
    assert data["x_train"].min() >= 0 and data["x_train"].max() == 1.0
    assert set(data["y_train"].tolist()) == set(range(10))
    x, y = next(digits.batches(0, 32))
    assert x.shape == (32, 64) and y.shape == (32,) and y.dtype == torch.int64
    model = digits.model(0)
    assert model(x).shape == (32, 10)
    loss, accuracy = digits.loss(model, (x, y))
    assert loss.ndim == 0 and 0.0 <= accuracy.item() <= 1.0
    metrics = digits.evaluate(model)
    assert set(metrics) == {"val_loss", "val_accuracy"}
    assert digits.chance_accuracy == 0.1
    assert digits.data is data  # loaded once


def test_digits_split_is_reproducible_and_disjoint(digits: Digits) -> None:
    train_index, val_index = digits.data["train_index"], digits.data["val_index"]
    assert set(train_index.tolist()).isdisjoint(val_index.tolist())
    assert sorted(train_index.tolist() + val_index.tolist()) == list(range(1797))
    again = Digits(width=16).data
    assert torch.equal(again["val_index"], val_index)
    other = Digits(split_seed=1).data
    assert not torch.equal(other["val_index"], val_index)
    assert len(Digits(val_fraction=0.5).data["val_index"]) == 898


def test_digits_batches_are_deterministic_epochs(digits: Digits) -> None:
    a, b = digits.batches(5, 719), digits.batches(5, 719)
    epoch = [next(a) for _ in range(2)]
    for x, y in epoch:
        x2, y2 = next(b)
        assert torch.equal(x, x2) and torch.equal(y, y2)
    labels = torch.cat([y for _, y in epoch])
    assert torch.equal(torch.bincount(labels), torch.bincount(digits.data["y_train"]))
    assert not torch.equal(next(digits.batches(6, 719))[1], epoch[0][1])


def test_digits_model_init_is_deterministic(digits: Digits) -> None:
    a, b, c = digits.model(0), digits.model(0), digits.model(1)
    for p, q, r in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)
    sizes = [tuple(layer.weight.shape) for layer in Digits(width=24, depth=3).model(0).layers]
    assert sizes == [(24, 64), (24, 24), (24, 24), (10, 24)]


def test_digits_two_runs_of_one_config_are_identical() -> None:
    config = RunConfig(task="digits", optimizer="adamw", peak_lr=1e-3, steps=40, eval_every=20)
    first, second = train(config), train(config)
    assert first.status == "finished", first.error
    assert first.steps["train_loss"] == second.steps["train_loss"]
    assert first.evals == second.evals


@pytest.mark.parametrize("parameterization", ["standard", "mup"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_digits_trains_above_80_percent(digits: Digits, parameterization: str, loss: str) -> None:
    config = RunConfig(task="digits", task_options={"parameterization": parameterization, "loss": loss},
                       optimizer="momentum", peak_lr=0.05, steps=150, eval_every=150)
    result = train(config)
    assert result.status == "finished", result.error
    assert result.evals["val_accuracy"][0] < 0.3
    assert result.evals["val_accuracy"][-1] > 0.8


def test_digits_mup_equals_standard_at_base_width() -> None:
    standard = Digits(width=32, parameterization="standard").model(3)
    mup = Digits(width=32, base_width=32, parameterization="mup").model(3)
    x = Digits().data["x_val"]
    assert torch.equal(standard(x), mup(x))


def test_digits_mup_keeps_the_update_size_across_widths() -> None:
    """One SGD step changes the logits by about as much at width 1024 as at 128 under muP;
    under the standard parameterization the change grows with the width."""

    def logit_change(width: int, parameterization: str) -> float:
        task = Digits(width=width, parameterization=parameterization)
        model, x = task.model(0), task.data["x_val"]
        before = model(x).detach()
        loss, _ = task.loss(model, next(task.batches(0, 64)))
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.05 * p.grad
        return (model(x) - before).abs().mean().item()

    mup = logit_change(1024, "mup") / logit_change(128, "mup")
    standard = logit_change(1024, "standard") / logit_change(128, "standard")
    assert 0.5 < mup < 2.0
    assert standard > 4.0


def test_digits_mlp_is_the_default_model() -> None:
    default, mlp = Digits().model(4), Digits(model="mlp").model(4)
    assert [tuple(p.shape) for p in default.parameters()] == [tuple(p.shape) for p in mlp.parameters()]
    assert all(torch.equal(p, q) for p, q in zip(default.parameters(), mlp.parameters()))


def test_digits_cnn_architecture_and_init() -> None:
    task = Digits(model="cnn", width=8)
    model = task.model(0)
    assert [name for name, _ in model.named_children()] == ["conv1", "conv2", "conv3", "readout"]
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes == {"conv1.weight": (8, 1, 3, 3), "conv1.bias": (8,), "conv2.weight": (8, 8, 3, 3),
                      "conv2.bias": (8,), "conv3.weight": (16, 8, 3, 3), "conv3.bias": (16,),
                      "readout.weight": (10, 16), "readout.bias": (10,)}
    x = task.data["x_val"][:5]
    assert model(x).shape == (5, 10)
    assert torch.equal(model(x), model(x.reshape(5, 1, 8, 8)))  # rows of 64 pixels are 8x8 images
    # Seeded from 2 * seed like the MLP, without touching the global RNG; biases start at 0.
    state = torch.random.get_rng_state()
    again, other = task.model(0), task.model(1)
    assert torch.equal(state, torch.random.get_rng_state())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))
    assert not torch.equal(model.conv1.weight, other.conv1.weight)
    assert all(torch.all(p == 0) for name, p in model.named_parameters() if name.endswith("bias"))
    # He init: N(0, 2 / fan_in) for the convolutions, N(0, 1 / fan_in) for the readout.
    wide = Digits(model="cnn", width=64).model(0)
    for layer, variance in ((wide.conv2, 2 / (64 * 9)), (wide.conv3, 2 / (64 * 9)), (wide.readout, 1 / 128)):
        assert layer.weight.std().item() == pytest.approx(math.sqrt(variance), rel=0.05)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_digits_cnn_trains_with_both_losses(loss: str) -> None:
    config = RunConfig(task="digits", task_options={"model": "cnn", "width": 16, "loss": loss},
                       optimizer="adamw", peak_lr=3e-3, steps=60, eval_every=60)
    result = train(config)
    assert result.status == "finished", result.error
    assert all(math.isfinite(v) for v in result.steps["train_loss"])
    assert result.evals["val_loss"][-1] < result.evals["val_loss"][0]
    assert result.evals["val_accuracy"][-1] > 0.5


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"width": 0}, "width"),
        ({"depth": 0}, "depth"),
        ({"width": 1.5}, "width"),
        ({"parameterization": "ntk"}, "parameterization"),
        ({"loss": "hinge"}, "loss"),
        ({"base_width": -1}, "base_width"),
        ({"split_seed": -1}, "split_seed"),
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"val_fraction": 1e-5}, "val_fraction"),
        ({"model": "resnet"}, "model"),
        ({"model": "cnn", "parameterization": "mup"}, "parameterization"),
        ({"model": "cnn", "depth": 3}, "depth"),
    ],
)
def test_digits_bad_options_raise(options: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=rf"Digits: {argument}=.* is invalid; expected"):
        make_task("digits", options)


def test_digits_model_errors_name_the_valid_choices() -> None:
    with pytest.raises(ValueError, match=r"model='resnet' is invalid; expected one of 'mlp', 'cnn'"):
        Digits(model="resnet")
    with pytest.raises(ValueError, match=r"parameterization='mup' is invalid; expected 'standard' with "
                                         r"model='cnn' .*, or model='mlp'"):
        Digits(model="cnn", parameterization="mup")
    assert Digits(model="mlp", parameterization="mup").model_name == "mlp"


def test_digits_unknown_option_raises() -> None:
    with pytest.raises(ValueError, match="bad task_options"):
        make_task("digits", {"widht": 3})


# -- a user's own task ---------------------------------------------------------------------------


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The example of docs/tasks.md as ``<pkg>.mytask``, plus a factory returning a non-Task and
    one that crashes."""
    text = DOCS.read_text()
    section = text[text.index("## Your own task") :]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    package = "preheat_docs_example_pkg"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "mytask.py").write_text(
        example + "\n\ndef not_a_task(**options) -> LeastSquares:\n    return 42\n\n\n"
        "def broken(**options) -> LeastSquares:\n    return None.x\n\n\n"
        "def undeclared(**options):\n    raise SystemExit('called')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in (package, f"{package}.mytask"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield package
    for name in (package, f"{package}.mytask"):
        sys.modules.pop(name, None)


def test_user_task_from_the_docs_loads_and_trains(user_package: str) -> None:
    name = f"{user_package}.mytask:make"
    task = make_task(name, {"features": 8})
    assert isinstance(task, Task) and task.features == 8
    config = RunConfig(task=name, task_options={"features": 8}, optimizer="sgd", peak_lr=0.1,
                       steps=100, eval_every=50)
    first, second = train(config), train(config)
    assert first.status == "finished", first.error
    assert first.evals["val_loss"][-1] < 0.1 * first.evals["val_loss"][0]
    assert first.steps["train_loss"] == second.steps["train_loss"]
    assert math.isnan(first.steps["train_accuracy"][0])


def test_user_task_errors(user_package: str) -> None:
    with pytest.raises(ValueError, match="unknown; expected one of river-valley"):
        make_task("no-such-task")
    with pytest.raises(ValueError, match="cannot be loaded"):
        make_task("preheat_no_such_module_xyz:make")
    with pytest.raises(ValueError, match="cannot be loaded"):
        make_task(f"{user_package}.mytask:missing")
    with pytest.raises(ValueError, match="returned int; expected a preheat.lab.tasks.Task"):
        make_task(f"{user_package}.mytask:not_a_task")
    with pytest.raises(ValueError, match="does not declare that it returns a preheat.lab.tasks.Task"):
        make_task(f"{user_package}.mytask:undeclared")  # refused before it is called
    with pytest.raises(ValueError, match="does not declare"):
        make_task("os:system", {"command": "echo never"})
    with pytest.raises(ValueError, match="bad task_options"):
        make_task(f"{user_package}.mytask:make", {"colour": "red"})
    with pytest.raises(ValueError, match=r"features=0 is invalid"):
        make_task(f"{user_package}.mytask:make", {"features": 0})
    with pytest.raises(ValueError, match="task='no-such-task' is unknown"):
        RunConfig(task="no-such-task")  # refused when the config is made, before any run
    failed = train(RunConfig(task="preheat_no_such_module_xyz:make"))
    assert failed.status == "failed" and "preheat_no_such_module_xyz" in failed.error
    crashed = train(RunConfig(task=f"{user_package}.mytask:broken"))  # the factory's own error
    assert crashed.status == "failed" and crashed.error.startswith("AttributeError")


def test_constant_prediction_loss_against_hand_computed_values() -> None:
    from preheat.lab.tasks.base import constant_prediction_loss
    train, val = torch.tensor([0, 0, 1]), torch.tensor([0, 2])
    # counts 2, 1, 0 -> add-one frequencies 3/6, 2/6, 1/6
    assert constant_prediction_loss(train, val, 3) == pytest.approx(-(math.log(1 / 2) + math.log(1 / 6)) / 2)
    # one-hot mean (2/3, 1/3, 0): 2/9 for class 0, 4/9 + 1/9 + 1 for class 2
    assert constant_prediction_loss(train, val, 3, "mse") == pytest.approx((2 / 9 + 14 / 9) / 2)
    with pytest.raises(ValueError, match="loss='hinge' is invalid; expected 'cross_entropy' or 'mse'"):
        constant_prediction_loss(train, val, 3, "hinge")


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_digits_constant_loss_is_what_a_constant_readout_scores(loss: str) -> None:
    task = make_task("digits", {"width": 16, "loss": loss})
    counts = torch.bincount(task.data["y_train"], minlength=10).double()
    logits = ((counts + 1) / (counts.sum() + 10)).log() if loss == "cross_entropy" else counts / counts.sum()
    model = task.model(0)
    with torch.no_grad():  # zero the readout's weights: its bias is the output, whatever the input
        model.layers[-1].weight.zero_()
        model.layers[-1].bias.copy_(logits.float())  # (standard parameterization: multipliers 1)
    assert task.constant_loss == pytest.approx(task.evaluate(model)["val_loss"], rel=1e-5)
