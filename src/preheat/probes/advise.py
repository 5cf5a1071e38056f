"""``advise``: a peak LR and a warmup for your own model, from probes run before training.

Three probes, within a budget of the planned run's updates (2 % by default):

1. **Catapult search** (Kalra & Barkeshli 2024, :func:`~preheat.probes.catapult_search`) on one
   batch at the initial weights: ``eta_c``, the smallest LR whose first update raises the loss
   (by 1 % for the Adam family, 10 % for SGD). Forward passes only.
2. **Curvature** at the initial weights, where the budget leaves room for it: the top
   eigenvalue of the Hessian on that batch (:func:`~preheat.probes.sharpness`, 10 Lanczos
   steps), preconditioned for the Adam family by its first update's ``|g| + eps``, against the
   stability threshold of a step at LR ``eta``: ``2 (1 + momentum) / eta`` for SGD,
   ``(2 + 2 beta1) / ((1 - beta1) eta)`` for Adam (Cohen et al. 2022). Reported and drawn,
   not used by the rules.
3. **LR range test** (Smith 2017, :func:`~preheat.probes.lr_range_test`) with the rest of the
   budget: the loss under an exponentially rising LR, smoothed; where it falls and where it
   blows up. With ``eta_c`` found it sweeps ``eta_c / 1000 .. 100 eta_c``, else
   ``start_lr .. end_lr``.

The advice read off them (the rules were set on the benchmark's development tasks, see
``docs/advise.md``):

- **peak LR**: for the Adam family (and any optimizer without SGD's first update), the range
  test's ``valley`` suggestion (two thirds of the way down its longest descent; ``steepest``
  where there is no valley). For SGD, half the LR at which the smoothed loss, past its lowest
  point, is back above its start: with a warmup, SGD's best peaks on the development tasks sat
  near the largest stable LR, 10-60x above the valley. It is the weakest rule (2-11x off, both
  ways, on three of the four SGD problems measured), and the evidence says so.
- **stable range**: from the LR at which the smoothed loss first falls 2 % below its start to
  the LR at which, past its lowest point, it is back above its start (``None``: it never is, up
  to the last LR tested).
- **warmup**: linear over 20 % of the run, then cosine decay to 0 - the best fixed length on
  the benchmark's development tasks (1 win, 13 ties, 5 losses; ``docs/which-warmup.md``). ``eta_c`` places the range
  test and is reported; it does not shorten the warmup, because on the development GPT a peak
  below ``eta_c`` still needed one (no warmup there cost 1.2x the best loss).

The model and optimizer are left as they were (each probe restores them). Random number
generators are not restored (dropout draws from them).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from preheat.probes._state import LossFn, check_training, fail
from preheat.probes.catapult import CatapultResult, catapult_search
from preheat.probes.lr_range import LRRangeResult, lr_range_test
from preheat.probes.sharpness import sharpness
from preheat.schedules.units import RunSize, duration, to_updates
from preheat.schedules.validate import check_int, check_real

#: The fewest updates a range test is read from; a smaller budget is raised to it (and said so).
MIN_RANGE_UPDATES = 30
#: The warmup's share of the run: the best fixed length on the benchmark's development tasks.
WARMUP_FRACTION = 0.2
_PERCENT = round(100 * WARMUP_FRACTION)
#: The advised warmup and decay, in fractions of the run.
SCHEDULE = f"linear_warmup('{_PERCENT}%') >> cosine_decay('{100 - _PERCENT}%')"
#: For SGD the advised peak is this share of the stable range's top.
SGD_SHARE = 0.5
#: The smoothed loss this far below its start marks the low end of the stable range.
FALL = 0.02
#: With ``eta_c`` known, the range test sweeps from ``eta_c * SPAN[0]`` to ``eta_c * SPAN[1]``
#: (within ``start_lr .. end_lr``): its updates go where peaks are, not 8 decades wide.
SPAN = (1e-3, 1e2)
#: Lanczos steps of the curvature probe, and what one Hessian-vector product costs in updates.
CURVATURE_STEPS = 10
HVP_COST = 2.0
#: A forward pass costs about this much of a training update (forward + backward + step).
FORWARD_COST = 1 / 3


@dataclass(frozen=True)
class Advice:
    """What :func:`advise` recommends, and the evidence.

    Attributes:
        peak_lr: the recommended peak LR.
        stable_range: ``(low, high)``: where the range test's smoothed loss starts to fall and
            where it is back above its start (either None where that was not seen).
        schedule: the warmup and decay as a schedule expression in fractions of the run
            (``preheat.parse(schedule)``; resolve with ``total``).
        total: the planned run's updates.
        critical_lr: Kalra & Barkeshli's ``eta_c`` at the initial weights (None: the search did not
            bracket it, see ``catapult.status``; or the optimizer is not SGD- or Adam-like).
        range_test: the range test's record.
        catapult: the catapult search's record (None where it was not run).
        curvature: ``(sharpness, threshold_coefficient, kind)``: the top Hessian eigenvalue at
            init (preconditioned for Adam) and ``c`` of the stability threshold ``c / eta``;
            None where the budget left no room for it or the optimizer is of another kind.
        budget: the updates the probes were allowed.
        cost: what they spent, in training updates (a forward pass counts as 1/3 of one).
        seconds: wall-clock time of both probes.
        evidence: one sentence per decision, in order.
    """

    peak_lr: float
    stable_range: tuple[float | None, float | None]
    schedule: str
    total: int
    critical_lr: float | None
    range_test: LRRangeResult
    catapult: CatapultResult | None
    curvature: tuple[float, float, str] | None
    budget: int
    cost: float
    seconds: float
    evidence: tuple[str, ...]

    def huggingface(self) -> str:
        """The lines that train with this advice under Hugging Face's ``Trainer``."""
        return (
            "from preheat.integrations.huggingface import optimizers_for_trainer\n"
            f"optimizers = optimizers_for_trainer(model, preheat.parse({self.schedule!r}),\n"
            f"                                    lr={self.peak_lr:.3g}, num_training_steps={self.total})\n"
            "trainer = transformers.Trainer(..., optimizers=optimizers)"
        )

    def lightning(self) -> str:
        """The ``configure_optimizers`` lines for Lightning (stepped every update)."""
        return (
            f"optimizer = ...(self.parameters(), lr={self.peak_lr:.3g})\n"
            f"scheduler = preheat.Scheduler(optimizer, preheat.parse({self.schedule!r}),\n"
            "                              total=self.trainer.estimated_stepping_batches)\n"
            'return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}'
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record: the advice, the evidence and both probes' measurements."""
        catapult = None
        if self.catapult is not None:
            catapult = {"lr": self.catapult.lr, "status": self.catapult.status, "L0": self.catapult.L0,
                        "threshold": self.catapult.threshold, "delta": self.catapult.delta,
                        "kind": self.catapult.kind, "evidence": [list(e) for e in self.catapult.evidence]}
        return {
            "peak_lr": self.peak_lr,
            "stable_range": list(self.stable_range),
            "schedule": self.schedule,
            "total": self.total,
            "critical_lr": self.critical_lr,
            "budget": self.budget,
            "cost": self.cost,
            "seconds": self.seconds,
            "evidence": list(self.evidence),
            "range_test": {
                "lrs": _finite(self.range_test.lrs), "losses": _finite(self.range_test.losses),
                "smoothed": _finite(self.range_test.smoothed), "suggestions": self.range_test.suggestions,
                "stop_reason": self.range_test.stop_reason,
            },
            "catapult": catapult,
            "curvature": None if self.curvature is None else {
                "sharpness": self.curvature[0], "threshold": f"{self.curvature[1]:g} / lr",
                "kind": self.curvature[2]},
        }

    def save(self, folder: str | Path) -> list[Path]:
        """Write ``advice.json`` and the figure ``advice.png`` into ``folder`` (made if missing)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        record = folder / "advice.json"
        record.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        return [record, self.figure(folder / "advice.png")]

    def _curvature_panel(self, axes: Any, lrs: np.ndarray) -> None:
        """The sharpness at init against the stability threshold ``c / lr`` over the LRs tested."""
        if self.curvature is None:
            axes.text(0.5, 0.5, "no curvature measurement\n(budget, or optimizer kind)", ha="center",
                      va="center", transform=axes.transAxes)
            axes.set_axis_off()
            return
        value, coefficient, kind = self.curvature
        grid = np.geomspace(lrs[0], lrs[-1], 100)
        axes.plot(grid, coefficient / grid, color="0.3", ls=":", label=f"stability threshold {coefficient:g} / lr")
        axes.axhline(value, color="C4", lw=1.6, label=f"{'preconditioned ' if kind == 'adam' else ''}"
                                                       f"sharpness at init {value:.3g}")
        axes.axvline(self.peak_lr, color="C3", lw=1.6, label="advised peak")
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("learning rate")
        axes.set_ylabel("curvature")
        axes.set_title("curvature against the stability threshold")
        axes.legend(fontsize=8)

    def figure(self, path: str | Path) -> Path:
        """The range test with the advice on it, the catapult bracket and the curvature against the
        stability threshold, as one figure."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        test = self.range_test
        fig, (left, right, third) = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
        left.plot(test.lrs, test.losses, color="0.75", lw=0.8, label="loss of each update's batch")
        left.plot(test.lrs, test.smoothed, color="C0", lw=1.8, label="smoothed")
        low, high = self.stable_range
        if low is not None:
            left.axvspan(low, high or test.lrs[-1], color="C2", alpha=0.12, label="stable range")
        left.axvline(self.peak_lr, color="C3", lw=1.6, label=f"advised peak {self.peak_lr:.3g}")
        if self.critical_lr is not None:
            left.axvline(self.critical_lr, color="C1", ls="--", lw=1.2, label=f"eta_c {self.critical_lr:.3g}")
        left.set_xscale("log")
        finite = test.smoothed[np.isfinite(test.smoothed)]
        if finite.size:
            left.set_ylim(finite.min() - 0.1 * abs(finite.min()), 1.5 * finite[0] + 1e-12)
        left.set_xlabel("learning rate")
        left.set_ylabel("training loss")
        left.set_title(f"LR range test ({len(test.lrs)} updates, stopped: {test.stop_reason})")
        left.legend(fontsize=8)
        if self.catapult is not None and self.catapult.evidence:
            tried = np.array(self.catapult.evidence, dtype=np.float64)
            order = np.argsort(tried[:, 0])
            right.plot(tried[order, 0], tried[order, 1], "o-", color="C1", ms=3, label="loss after one update")
            right.axhline(self.catapult.threshold, color="0.3", ls=":",
                          label=f"L0 (1 + {self.catapult.delta:g})")
            if self.critical_lr is not None:
                right.axvline(self.critical_lr, color="C1", ls="--", lw=1.2, label="eta_c")
            right.axvline(self.peak_lr, color="C3", lw=1.6, label="advised peak")
            right.set_xscale("log")
            right.set_ylim(None, 2.0 * self.catapult.threshold)
            right.legend(fontsize=8)
            right.set_title(f"catapult search at init ({self.catapult.status})")
        else:
            right.text(0.5, 0.5, "no catapult search", ha="center", va="center", transform=right.transAxes)
        right.set_xlabel("learning rate of the first update")
        right.set_ylabel("loss after it")
        self._curvature_panel(third, test.lrs)
        path = Path(path)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def advise(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    *,
    total: int,
    budget: int | str = "2%",
    time_limit: float | None = 600.0,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
) -> Advice:
    """Recommend a peak LR, its stable range and a warmup for training ``model`` for ``total`` updates.

    Runs a catapult search on the first batch, a curvature measurement on it where the budget
    leaves room, and an LR range test on the next batches (see the module docstring for the
    rules), together within ``budget`` updates: an int, or a duration such as ``"2%"`` of
    ``total`` (the default). A budget that leaves the range test fewer than
    :data:`MIN_RANGE_UPDATES` updates is raised to that, and the advice says so. ``time_limit``
    (seconds, 600 by default) stops the range test early. The model, its gradients and the
    optimizer are restored.

    Args:
        model, loss_fn, batches, optimizer: as for :func:`~preheat.probes.lr_range_test`:
            ``loss_fn(model, batch) -> scalar tensor`` (positive), ``batches`` an iterable of
            batches (re-iterated if it runs out, when it can be), the optimizer you will train with.
        total: the planned run's updates, >= 1.
        budget: the updates the probes may spend.
        time_limit: seconds the range test may take (10 minutes by default), or None.
        start_lr, end_lr: the LRs the range test (and the catapult search) sweep between.

    Raises:
        ValueError: a bad argument, or a range test whose loss never fell (no LR to recommend:
            raise ``end_lr`` or the budget).
    """
    owner = "advise"
    check_training(owner, model, loss_fn, batches, optimizer)
    total = check_int(owner, "total", total, minimum=1)
    allowed = _budget(owner, budget, total)
    start_lr = check_real(owner, "start_lr", start_lr, 0.0, low_open=True)
    end_lr = check_real(owner, "end_lr", end_lr, start_lr, low_open=True)
    if time_limit is not None:
        time_limit = check_real(owner, "time_limit", time_limit, 0.0, low_open=True)
    started = time.perf_counter()
    evidence: list[str] = []
    iterator = iter(batches)
    try:
        first = next(iterator)
    except StopIteration:
        raise fail(owner, "batches", "<empty iterable>", "at least one batch") from None
    catapult, spent = _catapult(model, loss_fn, first, optimizer, start_lr, end_lr, evidence)
    curvature = None
    if catapult is not None and allowed - spent >= MIN_RANGE_UPDATES + CURVATURE_STEPS * HVP_COST:
        curvature = _curvature(model, loss_fn, first, optimizer, catapult.kind, evidence)
        spent += CURVATURE_STEPS * HVP_COST
    elif catapult is not None:
        evidence.append("No curvature measurement: the budget leaves no room for it beside the range test.")
    steps = max(MIN_RANGE_UPDATES, allowed - math.ceil(spent))
    if allowed - math.ceil(spent) < MIN_RANGE_UPDATES:
        evidence.append(f"The budget of {allowed} updates leaves fewer than {MIN_RANGE_UPDATES} for the "
                        f"range test, the fewest it is read from: it ran {steps}.")
    source = batches if iterator is not batches else _chain(first, iterator)
    if time_limit is not None:
        source = _until(source, started + time_limit)
    low, high = start_lr, end_lr
    if catapult is not None and catapult.status == "bracketed":  # spend the updates around eta_c
        low, high = max(start_lr, catapult.lr * SPAN[0]), min(end_lr, catapult.lr * SPAN[1])
        evidence.append(f"The range test spans {low:.3g} to {high:.3g}, eta_c / {1 / SPAN[0]:g} to "
                        f"{SPAN[1]:g} eta_c.")
    test = lr_range_test(model, loss_fn, source, optimizer, start_lr=low, end_lr=high, steps=steps)
    spent += len(test.lrs)
    peak, stable = _peak(test, catapult is not None and catapult.kind == "sgd", evidence)
    critical = catapult.lr if catapult is not None and catapult.status == "bracketed" else None
    schedule = _schedule(evidence)
    return Advice(peak, stable, schedule, total, critical, test, catapult, curvature, allowed, spent,
                  time.perf_counter() - started, tuple(evidence))


def _budget(owner: str, budget: Any, total: int) -> int:
    if duration(budget) is not None:
        return to_updates(budget, RunSize(total=total), owner)
    if isinstance(budget, str):
        raise fail(owner, "budget", budget, "a number of updates or a duration such as '2%'")
    return check_int(owner, "budget", budget, minimum=1)


def _catapult(model: nn.Module, loss_fn: LossFn, batch: Any, optimizer: torch.optim.Optimizer,
              start_lr: float, end_lr: float, evidence: list[str]) -> tuple[CatapultResult | None, float]:
    """The catapult search for the optimizer's kind of first update, and its cost in updates."""
    kind = _first_update_kind(optimizer)
    if kind is None:
        evidence.append(f"No catapult search: the optimizer ({type(optimizer).__name__}) makes neither SGD's "
                        "nor Adam's first update, so eta_c is unknown and the warmup is the default one.")
        return None, 0.0
    eps = float(optimizer.param_groups[0].get("eps", 1e-8))
    result = catapult_search(model, loss_fn, batch, eta0=start_lr, target_lr=end_lr, kind=kind, eps=eps,
                             bisection_steps=6)
    cost = 1.0 + FORWARD_COST * (len(result.evidence) + 1)
    if result.status == "bracketed":
        evidence.append(f"Catapult search ({kind}'s first update, delta {result.delta:g}): one update at "
                        f"{result.lr:.3g} or more raises the loss; eta_c = {result.lr:.3g}.")
    else:
        evidence.append(f"Catapult search ({kind}): not bracketed ({result.status}); eta_c is unknown.")
    return result, cost


def _curvature(model: nn.Module, loss_fn: LossFn, batch: Any, optimizer: torch.optim.Optimizer, kind: str,
               evidence: list[str]) -> tuple[float, float, str]:
    """The top Hessian eigenvalue at init (for Adam, preconditioned by its first update's
    ``|g| + eps``) and the coefficient ``c`` of the stability threshold ``c / lr``."""
    group = optimizer.param_groups[0]
    preconditioner = None
    if kind == "adam":
        params = [p for p in model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss_fn(model, batch), params, allow_unused=True)
        eps = float(group.get("eps", 1e-8))
        preconditioner = [(g.abs() if g is not None else torch.zeros_like(p)) + eps for g, p in zip(grads, params)]
        beta1 = float(group["betas"][0])
        coefficient = (2 + 2 * beta1) / (1 - beta1)
    else:
        coefficient = 2 * (1 + float(group.get("momentum", 0.0)))
    value = sharpness(model, loss_fn, batch, iters=CURVATURE_STEPS, tol=1e-3, preconditioner=preconditioner).value
    evidence.append(f"Curvature at init: {'preconditioned ' if kind == 'adam' else ''}sharpness {value:.3g}, "
                    f"so a step above {coefficient / value:.3g} is past the stability threshold "
                    f"{coefficient:g} / lr along its top direction.")
    return value, coefficient, kind


def _first_update_kind(optimizer: torch.optim.Optimizer) -> str | None:
    """``"adam"`` for the Adam family (a first update of about ``lr * sign(g)``), ``"sgd"`` for SGD."""
    group = optimizer.param_groups[0]
    if "betas" in group and "eps" in group:
        return "adam"
    if isinstance(optimizer, torch.optim.SGD):
        return "sgd"
    return None


def _peak(test: LRRangeResult, sgd: bool,
          evidence: list[str]) -> tuple[float, tuple[float | None, float | None]]:
    """The recommended peak and the stable range, read off the range test (``sgd``: the
    optimizer's first update is SGD's)."""
    smoothed = np.where(np.isfinite(test.smoothed), test.smoothed, np.inf)
    falling = np.flatnonzero(smoothed < (1 - FALL) * smoothed[0])
    rule = "valley" if test.suggestions.get("valley") else "steepest"
    if test.suggestions.get(rule) is None or not falling.size:
        raise ValueError(
            f"advise: the range test's loss never fell {100 * FALL:g} % between {test.lrs[0]:.3g} and "
            f"{test.lrs[-1]:.3g} ({len(test.lrs)} updates, stopped: {test.stop_reason}); expected a falling "
            "loss: raise end_lr, the budget, or check the loss function"
        )
    low = float(test.lrs[falling[0]])
    lowest = int(np.argmin(smoothed))
    back = np.flatnonzero(smoothed[lowest:] >= smoothed[0])
    high = float(test.lrs[lowest + back[0]]) if back.size else None
    seen = (f"LR range test ({len(test.lrs)} updates, {test.stop_reason}): the loss falls from {low:.3g} and "
            + (f"is back above its start at {high:.3g}" if high else "never climbs back above its start"))
    if sgd and high is not None:
        peak = high * SGD_SHARE
        evidence.append(f"{seen}; for SGD the advised peak is {SGD_SHARE:g} of that, {peak:.3g}. "
                        "This is a rough guide: on the benchmark's SGD tasks it missed the best peak "
                        "several-fold, both ways (docs/advise.md); sweep peaks around it.")
    else:
        peak = float(test.suggestions[rule])  # type: ignore[arg-type]
        evidence.append(f"{seen}; its {rule} suggestion is {peak:.3g}, the advised peak.")
    return peak, (low, high)


def _schedule(evidence: list[str]) -> str:
    evidence.append(f"Linear warmup over {_PERCENT} % of the run (the best fixed length on the benchmark's "
                    "development tasks), then cosine decay.")
    return SCHEDULE


def _finite(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    """The first batch again (it was only probed, not trained on), then the rest."""
    yield first
    yield from rest


def _until(batches: Iterable[Any], deadline: float) -> Iterator[Any]:
    """``batches`` (again from the start when it runs out, if it can be) until
    ``time.perf_counter()`` passes ``deadline``, the first batch in any case: a one-shot iterator."""
    first = True
    while True:
        iterator = iter(batches)
        for batch in iterator:
            if time.perf_counter() > deadline and not first:  # the range test needs one batch
                return
            first = False
            yield batch
        if iterator is batches:
            return
