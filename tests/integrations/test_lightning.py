"""preheat in a real ``lightning.Trainer`` on CPU: LR sequence, a controller's loss, resume,
LearningRateMonitor, and the docs' example."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

lightning = pytest.importorskip("lightning")

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402

import preheat  # noqa: E402
from preheat.probes import catapult_search  # noqa: E402
from preheat.integrations.lightning import ACTION_CODES, PreheatLightningCallback  # noqa: E402
from preheat.schedules import warmup_cosine  # noqa: E402
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


class Tiny(lightning.LightningModule):
    def __init__(self, make: Any) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(4, 1)
        self.make = make
        self.seen: list[float] = []
        self.losses: list[float] = []
        self.grad_norms: list[float] = []

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.seen.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        x, y = batch
        loss = F.mse_loss(self.layer(x).squeeze(-1), y)
        self.losses.append(loss.item())
        return loss

    def on_before_optimizer_step(self, optimizer: Any) -> None:  # gradients before any clipping
        self.grad_norms.append(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in self.parameters()])).item())

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.SGD(self.parameters(), lr=PEAK)
        assert self.trainer.estimated_stepping_batches == STEPS
        self.scheduler = Scheduler(optimizer, self.make())
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler, "interval": "step"}}


def loader() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(32, 4, generator=g), torch.randn(32, generator=g))
    return torch.utils.data.DataLoader(data, batch_size=4)  # 8 batches: one epoch is the run


def fit(tmp_path: Path, make: Any, callbacks: list[Any] = (), ckpt_path: str | None = None,
        logger: Any = False, **kwargs: Any) -> Tiny:
    model = Tiny(make)
    trainer = lightning.Trainer(
        max_steps=STEPS, accelerator="cpu", devices=1, logger=logger, default_root_dir=tmp_path,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
        callbacks=list(callbacks), **kwargs,
    )
    trainer.fit(model, loader(), ckpt_path=ckpt_path)
    return model


def controller_lrs() -> list[float]:
    return [PEAK * min(1.0, 0.2 + 0.2 * k) for k in range(STEPS)]


def test_lr_each_step_is_the_schedule(tmp_path: Path) -> None:
    model = fit(tmp_path, lambda: SCHEDULE)
    assert model.seen == [PEAK * SCHEDULE(k) for k in range(STEPS)]
    assert model.scheduler.last_epoch == STEPS


def test_controller_gets_each_step_loss_in_time(tmp_path: Path) -> None:
    model = fit(tmp_path, lambda: Recording(total=100), callbacks=[PreheatLightningCallback()])
    controller = model.scheduler.controller
    assert controller.losses == pytest.approx(model.losses, rel=1e-6)
    assert len(controller.losses) == STEPS
    # each loss arrived before the scheduler stepped: the multiplier rose at every update
    assert model.seen == pytest.approx(controller_lrs())
    assert [d.action for d in controller.decisions] == ["raise"] * STEPS


def test_controller_gets_each_step_gradient_norm_before_clipping(tmp_path: Path) -> None:
    model = fit(tmp_path, lambda: Recording(total=100), callbacks=[PreheatLightningCallback()],
                gradient_clip_val=1e-6)
    controller = model.scheduler.controller
    assert controller.grad_norms == pytest.approx(model.grad_norms, rel=1e-6) and len(controller.grad_norms) == STEPS
    assert min(controller.grad_norms) > 1e-3  # not the clipped norm


def test_auto_warmup_gets_each_step_loss(tmp_path: Path) -> None:
    model = fit(tmp_path, lambda: preheat.auto_warmup(total=STEPS), callbacks=[PreheatLightningCallback()])
    replay, expected = preheat.auto_warmup(total=STEPS), []
    for loss, grad_norm in zip(model.losses, model.grad_norms, strict=True):  # the same decisions from
        expected.append(PEAK * replay.multiplier())                          # what the model computed
        replay.observe(loss=loss, grad_norm=grad_norm)
    assert model.seen == pytest.approx(expected, rel=1e-12)
    assert model.seen[0] == PEAK / max(1, round(0.4 * STEPS)) and len(set(model.seen)) > 1  # W = 40 % of the run


def mse(module: Tiny, batch: list[torch.Tensor]) -> torch.Tensor:
    return F.mse_loss(module.layer(batch[0]).squeeze(-1), batch[1])


@pytest.mark.parametrize("accumulate", [1, 2])
def test_with_loss_fn_auto_warmup_is_prepared_on_the_first_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  accumulate: int) -> None:
    calls = []
    original = Scheduler.prepare
    monkeypatch.setattr(Scheduler, "prepare", lambda self, *args, **kw: calls.append(args) or original(self, *args, **kw))
    model = fit(tmp_path, lambda: preheat.auto_warmup(total=STEPS * 10),
                callbacks=[PreheatLightningCallback(loss_fn=mse)], accumulate_grad_batches=accumulate)
    first = next(iter(loader()))
    expected = catapult_search(Tiny(None), mse, first, eta0=PEAK * 1e-3, target_lr=PEAK).lr
    assert len(calls) == 1 and torch.equal(calls[0][2][0], first[0])  # once, on the first batch
    assert model.scheduler.controller.state.catapult_lr == expected  # capped at PEAK: the short ramp
    assert model.scheduler.controller.ramp == 0.05 and model.seen[0] == PEAK / round(0.05 * STEPS * 10)


def test_without_loss_fn_nothing_is_measured(tmp_path: Path) -> None:
    model = fit(tmp_path, lambda: preheat.auto_warmup(total=STEPS * 10), callbacks=[PreheatLightningCallback()])
    controller = model.scheduler.controller
    assert controller.state.catapult_lr is None and controller.ramp == 0.4
    assert controller.decisions[0].reason.endswith("ramp 0.4 of the run (SGD, no probe before training)")
    with pytest.raises(ValueError, match="PreheatLightningCallback: loss_fn=3 is invalid"):
        PreheatLightningCallback(loss_fn=3)


def test_decisions_and_lr_are_logged(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, name="run")
    fit(tmp_path, lambda: Recording(total=100), logger=logger,
        callbacks=[PreheatLightningCallback(), LearningRateMonitor(logging_interval="step")])
    rows = list(csv.DictReader(open(Path(logger.log_dir) / "metrics.csv")))
    lrs = {int(r["step"]): float(r["lr-SGD"]) for r in rows if r.get("lr-SGD")}
    assert [lrs[k] for k in range(STEPS)] == pytest.approx(controller_lrs())
    multipliers = [float(r["preheat/lr_multiplier"]) for r in rows if r.get("preheat/lr_multiplier")]
    assert multipliers == pytest.approx([min(1.0, 0.2 + 0.2 * k) for k in range(1, STEPS + 1)])
    actions = [float(r["preheat/action"]) for r in rows if r.get("preheat/action")]
    assert actions == [ACTION_CODES["raise"]] * STEPS


def test_learning_rate_monitor_logs_the_schedule(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, name="run")
    fit(tmp_path, lambda: SCHEDULE, logger=logger, callbacks=[LearningRateMonitor(logging_interval="step")])
    rows = list(csv.DictReader(open(Path(logger.log_dir) / "metrics.csv")))
    lrs = {int(r["step"]): float(r["lr-SGD"]) for r in rows if r.get("lr-SGD")}
    assert [lrs[k] for k in range(STEPS)] == pytest.approx([PEAK * SCHEDULE(k) for k in range(STEPS)], rel=1e-12)


@pytest.mark.parametrize("adaptive", [False, True], ids=["schedule", "controller"])
def test_resume_gives_the_same_lr_sequence(tmp_path: Path, adaptive: bool) -> None:
    def make() -> Any:
        return Recording(total=100) if adaptive else SCHEDULE

    def extra() -> list[Any]:
        return [PreheatLightningCallback()] if adaptive else []

    full = fit(tmp_path / "full", make, callbacks=extra())
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1)
    fit(tmp_path / "first", make, callbacks=[checkpoint, *extra()])
    path = tmp_path / "ckpt" / "epoch=0-step=4.ckpt"
    assert path.is_file(), sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    resumed = fit(tmp_path / "second", make, callbacks=extra(), ckpt_path=str(path))
    assert resumed.seen == pytest.approx(full.seen[4:], rel=1e-12)
    assert resumed.scheduler.last_epoch == STEPS
    if adaptive:  # the controller's state came back too: a fresh one would restart at 0.2
        assert resumed.scheduler.controller.losses[:4] == pytest.approx(full.scheduler.controller.losses[:4])


def test_docs_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (block,) = code_blocks("Lightning")
    exec(compile(block, "docs/integrations.md", "exec"), {"__name__": "__doc_example__"})
    rows = list(csv.DictReader(open(next((tmp_path / "lightning-run" / "controller").rglob("metrics.csv")))))
    assert any(r.get("preheat/lr_multiplier") for r in rows)
    assert any(r.get("lr-SGD") for r in rows)
