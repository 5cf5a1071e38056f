"""The Scheduler inside real trainers: Lightning and Hugging Face ``Trainer``, on CPU.

Each records the LR the optimizer holds as every training step begins and checks it is
``peak * schedule(step)``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from preheat.schedules import warmup_cosine
from preheat.torch import Scheduler

PEAK, STEPS = 0.05, 6
SCHEDULE = warmup_cosine(2, STEPS, start=0.1, end=0.2)
EXPECTED = [PEAK * SCHEDULE(k) for k in range(STEPS)]


def features() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(24, 4, generator=generator), torch.randn(24, generator=generator)


def test_lightning_trainer(tmp_path: Path) -> None:
    lightning = pytest.importorskip("lightning")

    class Tiny(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)
            self.seen: list[float] = []

        def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
            self.seen.append(self.trainer.optimizers[0].param_groups[0]["lr"])
            x, y = batch
            return F.mse_loss(self.layer(x).squeeze(-1), y)

        def configure_optimizers(self) -> dict:
            optimizer = torch.optim.SGD(self.parameters(), lr=PEAK)
            self.scheduler = Scheduler(optimizer, SCHEDULE)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler, "interval": "step"}}

    model = Tiny()
    trainer = lightning.Trainer(
        max_steps=STEPS,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, DataLoader(TensorDataset(*features()), batch_size=4))
    assert model.seen == EXPECTED
    assert model.scheduler.last_epoch == STEPS


def test_hugging_face_trainer(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")

    class TinyModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"loss": F.mse_loss(self.layer(x).squeeze(-1), labels)}

    class TinyData(Dataset):
        def __init__(self) -> None:
            self.x, self.y = features()

        def __len__(self) -> int:
            return len(self.y)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"x": self.x[i], "labels": self.y[i]}

    seen: list[float] = []

    class RecordLR(transformers.TrainerCallback):
        def on_step_begin(self, args, state, control, optimizer=None, **kwargs) -> None:
            seen.append(optimizer.param_groups[0]["lr"])

    model = TinyModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=PEAK)
    scheduler = Scheduler(optimizer, SCHEDULE)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=STEPS,
        per_device_train_batch_size=4,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=TinyData(),
        optimizers=(optimizer, scheduler),
        callbacks=[RecordLR()],
    )
    trainer.train()
    assert seen == EXPECTED
    assert scheduler.last_epoch == STEPS
