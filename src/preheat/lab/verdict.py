"""The verdict at the end of a comparison: what to use, how sure that is, and what to do next.

Read from a sweep's :class:`~preheat.lab.metrics.SweepMetrics` alone (the terminal and the
report print the same sentences):

- **best**: the ranking's first row, the lowest mean final val loss at its best peak LR.
- **within noise**: the other rows whose 95% interval over seeds overlaps the best's
  (:func:`preheat.lab.metrics.within_noise`). The verdict names a winner only when no other
  row is within noise; otherwise it says which are tied. With one seed there is no interval,
  and the verdict says that the lowest loss is not yet a winner.
- **auto_warmup**: the row of :func:`preheat.auto_warmup` (a run whose controller is
  ``auto_warmup(...)``), where the sweep has one: how the warmup with no length to choose
  stands against the best.
- **tuned baseline**: the best row that runs linear warmup + cosine decay
  (:data:`preheat.lab.compare.WARMUP_TEMPLATE`) with a warmup of at least one update: linear
  warmup tuned over the lengths the sweep tried.
- **next steps**: more seeds where the noise is unknown or methods are tied; a wider peak-LR
  range where the best peak LR is the largest or smallest tried; other warmup lengths where the
  baseline's best is the longest or shortest tried.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from preheat.lab.compare import WARMUP_TEMPLATE
from preheat.lab.metrics import RankedMethod, SweepMetrics, loss_text, within_noise
from preheat.lab.store import DONE

MORE_SEEDS = 3  # what the verdict asks for where there is one seed
TIES_SHOWN = 4  # the tied methods the headline names (then "and k more")
AUTO = "auto_warmup("  # a run of preheat.auto_warmup, by its controller expression


@dataclass(frozen=True)
class Verdict:
    """What a comparison says (see the module docstring): the ``best`` row (None: no method
    has a finite loss), the rows ``tied`` with it, the tuned ``baseline`` row (None: the sweep
    has no linear warmup), the fewest ``seeds`` of any ranked row, the peak LRs and the
    baseline's warmups tried, per peak LR the rows with a diverged run (``diverged``), and the
    ``auto`` row (None: the sweep has no auto_warmup run)."""

    best: RankedMethod | None
    tied: tuple[RankedMethod, ...]
    baseline: RankedMethod | None
    seeds: int
    peak_lrs: tuple[float, ...]
    baseline_warmups: tuple[int, ...]
    diverged: tuple[tuple[float, tuple[str, ...]], ...]
    auto: RankedMethod | None = None

    @property
    def headline(self) -> str:
        """One sentence: the winner, the tie, or why there is neither."""
        best = self.best
        if best is None:
            return "No method has a final loss: every run diverged or crashed. Try a smaller peak LR."
        at = f"{best.title} at peak LR {best.best_peak_lr:.3g} (final val loss {loss_text(best)})"
        if self.seeds < 2:
            return (f"Lowest loss: {at}, from one seed. How much seeds differ is unknown, so this "
                    "is not yet a winner.")
        if not self.tied:
            return f"Use {at}: no other method is within noise of it ({self.seeds}+ seeds, 95% intervals)."
        titles = [row.title for row in self.tied]
        names = ", ".join(titles[:TIES_SHOWN]) + (f" and {len(titles) - TIES_SHOWN} more" if len(titles) > TIES_SHOWN else "")
        return (f"Within noise: {best.title} and {names} (95% intervals over {self.seeds}+ seeds "
                f"overlap); any of them will do. Lowest mean: {at}.")

    def lines(self) -> list[str]:
        """The headline, the baseline's standing, where runs diverged, and the next steps."""
        out = [self.headline]
        base, best = self.baseline, self.best
        if base is not None and best is not None and base is not best:
            standing = {None: "its gap to the best is of unknown noise", True: "within noise of the best",
                        False: "worse than the best beyond noise"}[within_noise(base, best)]
            out.append(f"Tuned baseline (linear warmup, best of {len(self.baseline_warmups)} lengths): "
                       f"{base.title}, {loss_text(base)}; {standing}.")
        elif base is not None:
            out.append(f"The best is the tuned baseline (linear warmup, best of {len(self.baseline_warmups)} lengths).")
        auto = self.auto
        if auto is not None and best is not None:
            if auto is best:
                out.append("auto_warmup, with no warmup length to choose, has the lowest loss here.")
            else:
                standing = {None: "of unknown noise against", True: "within noise of",
                            False: "worse beyond noise than"}[within_noise(auto, best)]
                out.append(f"auto_warmup (no warmup length to choose): {loss_text(auto)}, rank {auto.rank}; "
                           f"{standing} the best, {best.title}.")
        for lr, names in self.diverged:
            out.append(f"At peak LR {lr:.3g}, runs of {len(names)} method(s) diverged: {', '.join(names)}.")
        return out + [f"Next: {step}" for step in self.next_steps()]

    def next_steps(self) -> list[str]:
        """What would make the verdict surer or better (empty when nothing would)."""
        steps = []
        if self.best is not None and self.seeds < 2:
            steps.append(f"run {MORE_SEEDS} or more seeds per setting to tell real differences from noise.")
        elif self.tied:
            steps.append(f"more seeds (now {self.seeds}) would narrow the intervals of the tied methods.")
        lr = None if self.best is None else self.best.best_peak_lr
        if lr is not None and len(self.peak_lrs) > 1 and lr in (self.peak_lrs[0], self.peak_lrs[-1]):
            side = "largest" if lr == self.peak_lrs[-1] else "smallest"
            steps.append(f"the best peak LR is the {side} tried ({lr:.3g}); try a wider LR range.")
        base = self.baseline
        if base is not None and base.warmup is not None and len(self.baseline_warmups) > 1 and \
                base.warmup in (self.baseline_warmups[0], self.baseline_warmups[-1]):
            side = "longest" if base.warmup == self.baseline_warmups[-1] else "shortest"
            steps.append(f"the baseline's best warmup ({base.warmup} updates) is the {side} tried; "
                         "try warmups beyond it.")
        return steps


def verdict(metrics: SweepMetrics) -> Verdict:
    """The :class:`Verdict` of a sweep's metrics."""
    ranked = [row for row in metrics.ranking if math.isfinite(row.final_val_loss_mean)]
    best = ranked[0] if ranked else None
    tied = tuple(row for row in ranked[1:] if within_noise(best, row))
    done = [r for r in metrics.runs if r.status in DONE]
    linear = {r.method for r in done if r.config.template == WARMUP_TEMPLATE and r.config.warmup}
    baseline = next((row for row in ranked if row.method in linear), None)
    autos = {r.method for r in done if (r.config.controller or "").startswith(AUTO)}
    warmups = sorted({r.config.warmup for r in done if r.method in linear and r.config.warmup})
    lrs = sorted({r.config.peak_lr for r in done})
    diverged = tuple((lr, tuple(dict.fromkeys(r.method for r in done if r.diverged and r.config.peak_lr == lr)))
                     for lr in lrs)
    return Verdict(best=best, tied=tied, baseline=baseline, seeds=min((row.seeds for row in ranked), default=0),
                   peak_lrs=tuple(lrs), baseline_warmups=tuple(warmups),
                   diverged=tuple((lr, names) for lr, names in diverged if names),
                   auto=next((row for row in ranked if row.method in autos), None))
