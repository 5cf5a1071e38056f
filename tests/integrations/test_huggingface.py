"""preheat in a real ``transformers.Trainer`` on CPU: LR sequence, warmup rounding, a controller's
loss and log, resume, and the docs' example."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import preheat

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from preheat.integrations.huggingface import (  # noqa: E402
    PreheatCallback,
    PreheatTrainer,
    optimizers_for_trainer,
    warmup_steps,
)
from preheat.adaptive import AutoWarmup  # noqa: E402
from preheat.probes import catapult_search  # noqa: E402
from preheat.schedules import from_hf_name, warmup_cosine  # noqa: E402
from preheat.torch import Scheduler  # noqa: E402

from recording import Recording


DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


def code_blocks(section: str) -> list[str]:
    """The ```python blocks under ``## section`` of the docs page: its examples are this code."""
    parts = re.split(r"^## ", DOC.read_text(encoding="utf-8"), flags=re.M)
    body = next(p for p in parts if p.startswith(section))
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


PEAK, STEPS = 0.05, 8
SCHEDULE = warmup_cosine(3, STEPS, start=0.1, end=0.2)


class TinyModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": F.mse_loss(self.layer(x).squeeze(-1), labels)}


class TinyData(torch.utils.data.Dataset):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(64, 4, generator=g), torch.randn(64, generator=g)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


def lr_recorder(seen: list[float]) -> Any:
    class RecordLR(transformers.TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs) -> None:  # the LR it steps with
            seen.append(optimizer.param_groups[0]["lr"])

    return RecordLR()


def arguments(tmp_path: Path, **kwargs: Any) -> Any:
    base = dict(output_dir=str(tmp_path), max_steps=STEPS, per_device_train_batch_size=4,
                report_to="none", use_cpu=True, save_strategy="no", logging_steps=1,
                disable_tqdm=True, seed=0)
    base.update(kwargs)
    return transformers.TrainingArguments(**base)


def train(trainer_cls: type, tmp_path: Path, schedule: Any, **kwargs: Any) -> tuple[Any, list[float], Any]:
    model = TinyModel()
    optimizers = optimizers_for_trainer(model, schedule, lr=PEAK, optimizer="sgd")
    seen: list[float] = []
    trainer = trainer_cls(model=model, args=arguments(tmp_path, **kwargs), train_dataset=TinyData(),
                          optimizers=optimizers, callbacks=[lr_recorder(seen)])
    trainer.train()
    return trainer, seen, optimizers[1]


def test_lr_sequence_is_the_schedule(tmp_path: Path) -> None:
    trainer, seen, scheduler = train(transformers.Trainer, tmp_path, SCHEDULE)
    assert seen == [PEAK * SCHEDULE(k) for k in range(STEPS)]
    assert scheduler.last_epoch == STEPS
    logged = [e["learning_rate"] for e in trainer.state.log_history if "learning_rate" in e]
    assert logged == pytest.approx([PEAK * SCHEDULE(k) for k in range(STEPS)])


@pytest.mark.parametrize("ratio", [0.05, 0.1, 0.13, 0.25, 0.3, 0.5, 0.99])
@pytest.mark.parametrize("total", [8, 10, 37, 1000])
def test_warmup_ratio_rounds_as_hf(ratio: float, total: int) -> None:
    expected = transformers.TrainingArguments(output_dir="unused", warmup_steps=ratio).get_warmup_steps(total)
    assert warmup_steps(total, warmup_ratio=ratio) == expected
    assert warmup_steps(total, num_warmup_steps=ratio) == expected


def test_hf_name_with_ratio_matches_hf_scheduler() -> None:
    model = TinyModel()
    _, scheduler = optimizers_for_trainer(model, "cosine", lr=PEAK, num_training_steps=STEPS, warmup_ratio=0.3)
    assert math.ceil(0.3 * STEPS) == 3
    reference = torch.optim.SGD(TinyModel().parameters(), lr=PEAK)
    hf = transformers.get_scheduler("cosine", reference, num_warmup_steps=3, num_training_steps=STEPS)
    for _ in range(STEPS):
        assert scheduler.get_last_lr()[0] == pytest.approx(hf.get_last_lr()[0], rel=1e-12, abs=1e-15)
        reference.step(), scheduler.optimizer.step()
        hf.step(), scheduler.step()
    assert scheduler.schedules[0] == from_hf_name("cosine", 3, STEPS)


def test_a_schedule_in_units_resolves_against_num_training_steps(tmp_path: Path) -> None:
    written = preheat.linear_warmup("25%", start=0.1) >> preheat.cosine_decay("75%", end=0.2)
    model = TinyModel()
    optimizers = optimizers_for_trainer(model, written, lr=PEAK, optimizer="sgd", num_training_steps=STEPS)
    assert optimizers[1].schedules == [preheat.linear_warmup(2, start=0.1) >> preheat.cosine_decay(6, end=0.2)]
    seen: list[float] = []
    transformers.Trainer(model=model, args=arguments(tmp_path), train_dataset=TinyData(), optimizers=optimizers,
                         callbacks=[lr_recorder(seen)]).train()
    assert seen == [PEAK * optimizers[1].schedules[0](k) for k in range(STEPS)]
    with pytest.raises(ValueError, match="'25%' is in a percentage of the run but total was not given"):
        optimizers_for_trainer(TinyModel(), written, lr=PEAK)


def test_arguments_are_checked() -> None:
    model = TinyModel()
    with pytest.raises(ValueError, match="warmup_ratio"):
        optimizers_for_trainer(model, SCHEDULE, lr=PEAK, warmup_ratio=0.1)
    with pytest.raises(ValueError, match="optimizer="):
        optimizers_for_trainer(model, SCHEDULE, lr=PEAK, optimizer="lion")
    with pytest.raises(ValueError, match="at most one"):
        warmup_steps(10, num_warmup_steps=2, warmup_ratio=0.1)
    with pytest.raises(ValueError, match="num_training_steps"):
        warmup_steps(None, warmup_ratio=0.1)


def step_losses(trainer: Any) -> list[float]:
    return [e["loss"] for e in trainer.state.log_history if "loss" in e and "train_loss" not in e]


def step_grad_norms(trainer: Any) -> list[float]:
    return [e["grad_norm"] for e in trainer.state.log_history if "grad_norm" in e]


def test_auto_is_auto_warmup_fed_every_loss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = TinyModel()
    optimizers = optimizers_for_trainer(model, "auto", lr=PEAK, optimizer="sgd", num_training_steps=STEPS)
    assert isinstance(optimizers[1].controller, AutoWarmup) and optimizers[1].controller.total == STEPS
    seen: list[float] = []
    trainer = PreheatTrainer(model=model, args=arguments(tmp_path), train_dataset=TinyData(),
                             optimizers=optimizers, callbacks=[lr_recorder(seen)])
    inputs: list[torch.Tensor] = []
    model.register_forward_hook(lambda module, args, kwargs, output: inputs.append(kwargs["x"]), with_kwargs=True)
    prepared = []
    original = Scheduler.prepare
    monkeypatch.setattr(Scheduler, "prepare", lambda self, *args, **kw: prepared.append(args) or original(self, *args, **kw))
    trainer.train()
    assert len(prepared) == 1 and torch.equal(prepared[0][2]["x"], inputs[-STEPS])  # on the first micro-batch
    probed = catapult_search(TinyModel(), lambda net, batch: net(**batch)["loss"], prepared[0][2],
                             eta0=PEAK * 1e-3, target_lr=PEAK).lr
    replay, expected = AutoWarmup(STEPS), []
    replay.bind(PEAK, sgd=True)
    replay.prepare(catapult_lr=probed)  # with SGD the probe ran before update 0
    assert optimizers[1].controller.state.catapult_lr == probed
    # the same decisions from the losses and gradient norms the trainer logged
    for loss, grad_norm in zip(step_losses(trainer), step_grad_norms(trainer), strict=True):
        expected.append(PEAK * replay.multiplier())
        replay.observe(loss=loss, grad_norm=grad_norm)
    assert seen == pytest.approx(expected, rel=1e-12)
    assert seen[0] == PEAK / max(1, round(replay.ramp * STEPS))  # update 0 trains: 1 / W
    with pytest.raises(ValueError, match="num_training_steps=None is invalid with 'auto'"):
        optimizers_for_trainer(model, "auto", lr=PEAK)
    with pytest.raises(ValueError, match=r"\['warmup_ratio'\] given with 'auto'"):
        optimizers_for_trainer(model, "auto", lr=PEAK, num_training_steps=STEPS, warmup_ratio=0.1)


def test_controller_gets_every_loss_and_logs_decisions(tmp_path: Path) -> None:
    controller = Recording(total=100)
    trainer, seen, scheduler = train(PreheatTrainer, tmp_path, controller)
    assert controller.losses == pytest.approx(step_losses(trainer), rel=1e-4)
    assert len(controller.losses) == STEPS
    multipliers = [min(1.0, 0.2 + 0.2 * k) for k in range(STEPS)]
    assert seen == pytest.approx([PEAK * m for m in multipliers])
    entries = [e for e in trainer.state.log_history if "controller_action" in e and "loss" in e]
    assert [e["step"] for e in entries] == list(range(1, STEPS + 1))
    assert all(e["controller_action"] == "raise" for e in entries)
    assert [e["lr_multiplier"] for e in entries] == pytest.approx([min(1.0, 0.2 + 0.2 * k) for k in range(1, STEPS + 1)])


@pytest.mark.parametrize("max_grad_norm", [0.01, 0.0])
def test_controller_gets_the_gradient_norm_before_clipping(tmp_path: Path, max_grad_norm: float) -> None:
    controller = Recording(total=100)
    trainer, _, _ = train(PreheatTrainer, tmp_path, controller, max_grad_norm=max_grad_norm)
    assert len(controller.grad_norms) == STEPS and all(g > 0.1 for g in controller.grad_norms)  # not clipped
    assert controller.grad_norms == pytest.approx(step_grad_norms(trainer), rel=1e-6)


def test_gradient_accumulation_feeds_the_step_loss(tmp_path: Path) -> None:
    controller = Recording(total=100)
    trainer, _, _ = train(PreheatTrainer, tmp_path, controller, gradient_accumulation_steps=2, max_steps=4)
    assert len(controller.losses) == len(controller.grad_norms) == 4
    assert controller.losses == pytest.approx(step_losses(trainer), rel=1e-4)
    assert controller.grad_norms == pytest.approx(step_grad_norms(trainer), rel=1e-6)


def test_callback_alone_reads_the_model_loss(tmp_path: Path) -> None:
    controller = Recording(total=100)
    model = TinyModel()
    optimizers = optimizers_for_trainer(model, controller, lr=PEAK, optimizer="sgd")
    trainer = transformers.Trainer(model=model, args=arguments(tmp_path), train_dataset=TinyData(),
                                   optimizers=optimizers, callbacks=[PreheatCallback()])
    trainer.train()
    assert controller.losses == pytest.approx(step_losses(trainer), rel=1e-4)
    assert controller.grad_norms == [-1.0] * STEPS  # a plain Trainer keeps its norm to itself


@pytest.mark.parametrize("make", [lambda: SCHEDULE, lambda: Recording(total=100)], ids=["schedule", "controller"])
def test_resume_continues_the_lr_sequence(tmp_path: Path, make: Any) -> None:
    _, full, _ = train(PreheatTrainer, tmp_path / "full", make())
    first, _, _ = train(PreheatTrainer, tmp_path / "ckpt", make(), save_strategy="steps", save_steps=4)
    assert (tmp_path / "ckpt" / "checkpoint-4").is_dir()
    model = TinyModel()
    controller = make()
    optimizers = optimizers_for_trainer(model, controller, lr=PEAK, optimizer="sgd")
    seen: list[float] = []
    trainer = PreheatTrainer(model=model, args=arguments(tmp_path / "ckpt"), train_dataset=TinyData(),
                             optimizers=optimizers, callbacks=[lr_recorder(seen)])
    trainer.train(resume_from_checkpoint=str(tmp_path / "ckpt" / "checkpoint-4"))
    assert seen == pytest.approx(full[4:], rel=1e-12)
    assert optimizers[1].last_epoch == STEPS


def test_docs_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    (block,) = code_blocks("Hugging Face Transformers")
    exec(compile(block, "docs/integrations.md", "exec"), {"__name__": "__doc_example__"})
    out = capsys.readouterr().out
    assert "[(1, " in out and any(a in out for a in ("'raise'", "'hold'", "'lower'", "'handover'"))
