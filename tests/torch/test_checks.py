"""The warmup mistake checks, each triggered through the real framework where it is installed:
Lightning's epoch interval, optax's decay_steps, Hugging Face's schedules, gradient accumulation,
Prodigy's safeguard, a schedule-free checkpoint in train mode."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import preheat
from preheat.schedules.checks import GRID, check_steps, lr_findings
from preheat.torch.checks import MICRO_BATCH_EVIDENCE, cadence_findings, check, checkpoint_findings


def codes(findings) -> list[str]:
    return [f.code for f in findings]


def mistakes(record) -> list[str]:
    """The codes of the WarmupMistake warnings recorded."""
    return [str(w.message).split(":")[0] for w in record if issubclass(w.category, preheat.WarmupMistake)]


def sgd(lr: float = 0.1, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
    return torch.optim.SGD((model or torch.nn.Linear(2, 1)).parameters(), lr=lr)


# -- the LR rules, on values written out by hand --------------------------------------------


def test_a_decay_that_ends_early_is_found_with_its_tail():
    values = np.array([0.5, 1.0, 0.8, 0.6, 0.4, 0.2, 0.0, 0.0, 0.0, 0.0])
    (finding,) = lr_findings(np.arange(10), values, 10)
    assert finding.code == "decay-ends-early" and finding.severity == "error"
    assert "by update 6 and holds it for the last 4 of 10 updates" in finding.message


def test_a_step_decay_that_holds_its_last_value_is_not_a_decay_ending_early():
    values = np.array([1.0] * 30 + [0.1] * 30 + [0.01] * 40)
    assert lr_findings(np.arange(100), values, 100) == []


def test_a_warmup_still_rising_at_the_last_update_is_too_long():
    values = np.linspace(0.1, 0.9, 50)
    assert codes(lr_findings(np.arange(50), values, 50)) == ["warmup-too-long"]


def test_a_first_update_at_zero_is_a_note():
    values = np.array([0.0, 0.5, 1.0, 1.0])
    (finding,) = lr_findings(np.arange(4), values, 4)
    assert (finding.code, finding.severity) == ("zero-first-update", "note")


def test_a_long_run_is_checked_on_a_grid_that_keeps_both_ends():
    steps = check_steps(10**9)
    assert steps[0] == 0 and steps[-1] == 10**9 - 1 and np.all(np.diff(steps) > 0)
    assert len(steps) <= GRID + 4096
    schedule = preheat.warmup_cosine(10**7, 9 * 10**8)
    assert codes(check(schedule=schedule, total=10**9)) == ["decay-ends-early", "zero-first-update"]


def test_the_cadence_rules_need_a_habit_not_a_skipped_update():
    assert cadence_findings(1, 1) == [] and cadence_findings(5, 4) == []  # a scaler skipped one
    assert codes(cadence_findings(1, 50)) == ["stepped-per-epoch"]
    assert cadence_findings(31, 0) == []  # mixed precision's first skipped updates
    assert codes(cadence_findings(32, 8)) == ["stepped-per-micro-batch"]


# -- through the frameworks -----------------------------------------------------------------


def test_lightning_default_epoch_interval_is_caught_while_training(tmp_path: Path):
    lightning = pytest.importorskip("lightning.pytorch")

    class Module(lightning.LightningModule):
        def __init__(self, interval: str | None) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)
            self.interval = interval

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
            scheduler = preheat.Scheduler(optimizer, preheat.linear_warmup("25%") >> preheat.constant(),
                                          total=self.trainer.estimated_stepping_batches)
            self.built = scheduler
            config = {"scheduler": scheduler} if self.interval is None else {"scheduler": scheduler,
                                                                             "interval": self.interval}
            return {"optimizer": optimizer, "lr_scheduler": config}

    data = torch.utils.data.TensorDataset(torch.randn(32, 2), torch.randn(32, 1))
    seen = {}
    for interval in (None, "step"):
        trainer = lightning.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                                    enable_progress_bar=False, enable_model_summary=False,
                                    default_root_dir=tmp_path)
        module = Module(interval)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=4))
        seen[interval] = mistakes(record)
        # 2 epochs of 8 batches: "25%" of Lightning's 16 stepping batches is 4 updates
        assert module.built.schedules == [preheat.linear_warmup(4) >> preheat.constant()]
    assert seen == {None: ["stepped-per-epoch"], "step": []}


def test_an_optax_decay_steps_that_leaves_out_the_warmup_is_caught():
    optax = pytest.importorskip("optax")
    wrong = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=10, decay_steps=90)
    right = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=10, decay_steps=100)
    found = check(schedule=wrong, total=100)
    assert codes(found) == ["decay-ends-early", "zero-first-update"]
    assert "by update 90 and holds it for the last 10 of 100 updates" in found[0].message
    assert codes(check(schedule=right, total=100)) == ["zero-first-update"]


def test_hugging_face_schedules_are_read_through_their_lambda():
    transformers = pytest.importorskip("transformers")
    optimizer = sgd()
    short = transformers.get_linear_schedule_with_warmup(optimizer, num_warmup_steps=10, num_training_steps=80)
    assert codes(check(short, total=100)) == ["decay-ends-early", "zero-first-update"]
    long_warmup = transformers.get_linear_schedule_with_warmup(sgd(), num_warmup_steps=200, num_training_steps=1000)
    assert codes(check(long_warmup, total=150)) == ["warmup-too-long", "zero-first-update"]
    fine = transformers.get_cosine_schedule_with_warmup(sgd(), num_warmup_steps=10, num_training_steps=100)
    assert codes(check(fine, total=100)) == ["zero-first-update"]


def test_the_scheduler_warns_when_built_for_a_run_its_schedule_does_not_fit():
    with pytest.warns(preheat.WarmupMistake, match="warmup-too-long"):
        preheat.Scheduler(sgd(), preheat.linear_warmup(200) >> preheat.constant(), total=150)
    with pytest.warns(preheat.WarmupMistake, match="decay-ends-early"):
        preheat.Scheduler(sgd(), preheat.warmup_cosine(10, 90), total=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preheat.Scheduler(sgd(), preheat.warmup_cosine(10, 100), total=100)  # the note stays quiet
        preheat.Scheduler(sgd(), preheat.warmup_cosine(10, 90))  # no total, nothing to check against


def train(scheduler: preheat.Scheduler, model: torch.nn.Module, updates: int, accumulation: int,
          step_per_micro_batch: bool) -> None:
    optimizer = scheduler.optimizer
    for i in range(updates * accumulation):
        model(torch.randn(4, 2)).pow(2).mean().backward()
        if (i + 1) % accumulation == 0:
            optimizer.step()
            optimizer.zero_grad()
            if not step_per_micro_batch:
                scheduler.step()
        if step_per_micro_batch:
            scheduler.step()


@pytest.mark.parametrize(("per_micro_batch", "expected"), [(True, ["stepped-per-micro-batch"]), (False, [])])
def test_gradient_accumulation_counted_in_micro_batches_is_caught(per_micro_batch, expected):
    model = torch.nn.Linear(2, 1)
    scheduler = preheat.Scheduler(sgd(model=model), preheat.warmup_cosine(10, 100))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        train(scheduler, model, updates=20, accumulation=4, step_per_micro_batch=per_micro_batch)
    assert mistakes(record) == expected


def test_a_resumed_scheduler_counts_from_the_resume():
    model = torch.nn.Linear(2, 1)
    first = preheat.Scheduler(sgd(model=model), preheat.warmup_cosine(10, 100))
    train(first, model, updates=10, accumulation=1, step_per_micro_batch=False)
    resumed = preheat.Scheduler(sgd(model=model), preheat.warmup_cosine(10, 100))
    resumed.load_state_dict(first.state_dict())
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        train(resumed, model, updates=40, accumulation=1, step_per_micro_batch=False)
    assert mistakes(record) == []


def test_a_settled_cadence_stops_counting_and_a_resume_watches_again():
    model = torch.nn.Linear(2, 1)
    optimizer = sgd(model=model)
    hooks = optimizer._optimizer_step_post_hooks  # torch's registry of step post hooks
    scheduler = preheat.Scheduler(optimizer, preheat.warmup_cosine(10, 1000))
    train(scheduler, model, updates=MICRO_BATCH_EVIDENCE - 1, accumulation=1, step_per_micro_batch=False)
    assert len(hooks) == 1
    train(scheduler, model, updates=1, accumulation=1, step_per_micro_batch=False)
    assert len(hooks) == 0  # settled: no cost per update from here on
    scheduler.load_state_dict(scheduler.state_dict())
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        train(scheduler, model, updates=10, accumulation=4, step_per_micro_batch=True)
    assert mistakes(record) == ["stepped-per-micro-batch"] and len(hooks) == 0


def test_hugging_face_trainer_with_accumulation_steps_the_scheduler_per_update(tmp_path: Path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from preheat.integrations.huggingface import optimizers_for_trainer

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def forward(self, x, labels):
            return {"loss": torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), labels)}

    class Data(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 64

        def __getitem__(self, i):
            return {"x": torch.randn(2), "labels": torch.randn(())}

    model = Model()
    optimizers = optimizers_for_trainer(model, preheat.linear_warmup("20%") >> preheat.cosine_decay("80%"),
                                        lr=0.01, optimizer="sgd", num_training_steps=40)
    arguments = transformers.TrainingArguments(output_dir=str(tmp_path), max_steps=40, per_device_train_batch_size=2,
                                               gradient_accumulation_steps=4, report_to="none", use_cpu=True,
                                               save_strategy="no", disable_tqdm=True)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        transformers.Trainer(model=model, args=arguments, train_dataset=Data(), optimizers=optimizers).train()
    assert optimizers[1].last_epoch == 40
    assert mistakes(record) == []


def test_prodigy_with_a_warmup_needs_its_safeguard():
    prodigyopt = pytest.importorskip("prodigyopt")
    params = list(torch.nn.Linear(2, 1).parameters())
    with pytest.warns(preheat.WarmupMistake, match="prodigy-no-safeguard: Prodigy runs with a warmup"):
        preheat.Scheduler(prodigyopt.Prodigy(params, lr=1.0), preheat.warmup_cosine(10, 100))
    with pytest.warns(preheat.WarmupMistake, match="prodigy-no-safeguard"):
        preheat.Scheduler(prodigyopt.Prodigy(params, lr=1.0), preheat.auto_warmup(total=100))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preheat.Scheduler(prodigyopt.Prodigy(params, lr=1.0, safeguard_warmup=True), preheat.warmup_cosine(10, 100))
        preheat.Scheduler(prodigyopt.Prodigy(params, lr=1.0), preheat.cosine_decay(100))  # no warmup
    assert codes(check(optimizer=prodigyopt.Prodigy(params, lr=1.0), schedule=preheat.linear_warmup(5))) == [
        "prodigy-no-safeguard"]


def test_a_schedule_free_optimizer_saved_in_train_mode_is_caught(tmp_path: Path):
    schedulefree = pytest.importorskip("schedulefree")
    optimizer = schedulefree.AdamWScheduleFree(torch.nn.Linear(2, 1).parameters(), lr=1e-3)
    optimizer.train()
    scheduler = preheat.Scheduler(optimizer, preheat.constant())
    with pytest.warns(preheat.WarmupMistake, match="schedule-free-train-mode"):
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    torch.save(state, tmp_path / "train.pt")
    assert codes(checkpoint_findings(torch.load(tmp_path / "train.pt", weights_only=True))) == [
        "schedule-free-train-mode"]
    optimizer.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    torch.save(state, tmp_path / "eval.pt")
    assert checkpoint_findings(torch.load(tmp_path / "eval.pt", weights_only=True)) == []


def test_check_reads_a_preheat_scheduler_and_its_optimizer():
    scheduler = preheat.Scheduler(sgd(), preheat.linear_warmup("5%", start=0.05) >> preheat.cosine_decay("95%"),
                                  total=200)
    assert check(scheduler, total=200) == []
    assert codes(check(scheduler, total=400)) == ["decay-ends-early"]
    controlled = preheat.Scheduler(sgd(), preheat.auto_warmup(total=100))
    assert check(controlled, total=100) == []  # a controller has no LRs to read ahead


def test_a_schedule_passed_as_the_scheduler_is_refused_with_the_keyword_to_use():
    schedule = preheat.warmup_cosine(100, 1000)
    with pytest.raises(ValueError, match=r"scheduler=linear_warmup\(100\) >> cosine_decay\(900\) is invalid; expected a torch LR "
                                         r"scheduler .* check\(schedule=\.\.\., total=\.\.\.\)"):
        check(schedule, total=1000)
    assert codes(check(schedule=schedule, total=1000)) == ["zero-first-update"]
