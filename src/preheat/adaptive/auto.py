"""``auto_warmup()``: a linear warmup that watches the loss and the gradient norm on the way up.

Undisturbed it is the linear warmup over ``ramp`` (40 %) of the run followed by cosine decay;
with SGD, where a probe before training puts the peak below twice the catapult LR, over 5 %.
The tuned warmup's best length ranged from 0 to 70 % over the benchmark's tasks; 40 % is the
ramp that, with the rules below, lost the fewest cells to it on the sixteen tasks the third
revision was designed on (20 %: 17 losses, 30 %: 15, 40 %: 10, 50 %: 12; ``docs/auto-warmup.md``).
A slow ramp is also what gives the rules time: they can only lower the LR, and the post-LN
transformers collapse at a 20 % ramp before any of them can see it. It watches what training
computes anyway and answers three signs that the LR is more than the network can take:

- **a loss spike** (Kalra & Barkeshli's catapult, or the start of a divergence), on the way up:
  the ramp steps back to half its level; a second spike at a comparable level makes half that
  level the **ceiling**: the decay starts from it;
- **a gradient-norm spike** (on the benchmark's GPT an LR the network could not take yet showed
  there first: the norm jumped 5-75x while the loss barely moved, and Adam's second moment,
  inflated by it, then shrank every update for tens of steps), on the way up: the ramp steps
  back to half its level and pauses, for longer after every such spike;
- **a loss that stays up**, on the way up and for ``watch`` (20 %) of the run into the decay:
  the mean loss of two windows in a row (three with SGD) is significantly above the lowest
  window so far. A peak the network cannot use keeps the loss up (the digits MLP's at 0.128
  did). With SGD a catapult's bump also lifts it, for up to two windows, and then comes back
  down below its best (the SGD MLP's did at its low peaks): there a third window is waited for.
  With the Adam family and Muon two were as steady and lowered a peak too high sooner (the
  fourth revision; ``docs/auto-warmup.md`` has the evidence and where it was judged). The ceiling
  becomes half the level at which the loss was lowest, as a range test reads the LR off the
  loss's minimum (AutoWU resets to it; see ``autowu.py``). A step back on a spike keeps the
  lowest window: a loss that stays above it after the step back still counts (on the deep MLP
  at its top rung, gradient spikes had restarted the count again and again). With SGD the
  first time the loss stays up only steps back (the sixth revision): the level goes to half the
  lowest window's and the ramp goes on, and the second time sets the ceiling. It was designed
  on the seen wide SGD CNN at its top rung, where the tuned warmup is 90 % and a ceiling at
  0.16-0.38 of the peak left the loss high (there 0.78x [0.71, 0.84] the fifth revision's loss
  on 20 fresh seeds); on unseen SGD tasks it was better once, tied twice and failed more seeds
  once, at a peak where every linear warmup fails (``docs/auto-warmup.md``).

With SGD the ramp's length can come from a probe before training (the fifth revision): the
catapult LR ``eta_c`` (Kalra & Barkeshli; :func:`preheat.probes.catapult_search`, capped at the
peak), given to :meth:`AutoWarmup.prepare`. On the seen SGD tasks the tuned warmup was 0-10 %
wherever the peak was below about ``2 eta_c`` and the 40 % ramp cost there; above it, and with the
Adam family, the probe said nothing about the tuned length (``docs/auto-warmup.md``). The lab runs
the probe; elsewhere the caller may, and without it the ramp is 40 %.

Where none of them fires it is exactly the linear warmup and its cosine (shifted by one update:
update 0 trains at ``1 / W`` of the peak, not at 0). Past the probe it reads the loss and the
gradient norm only (no extra forward or backward), so it costs a few float operations per
update, and it assumes nothing of the optimizer beyond "a smaller LR is safer".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from preheat.adaptive.base import Controller, ControllerState, Proposal, within
from preheat.schedules.validate import check_int, check_real

if TYPE_CHECKING:
    from typing import Unpack

    from preheat.adaptive.base import BoundsKeywords

DEFAULT_AFTER = "cosine_decay({steps})"
MIN_CEILING = 1e-6  # a ceiling is positive (the state rule), however often the LR was cut
SETTLED = 5  # losses in the average before the spike and gradient rules may fire
RISE_Z = 2.0  # a window's mean loss is "up" when it is this many standard errors above the lowest so far
RAMP = 0.4  # the ramp's length as a fraction of the run, unless chosen or probed
SHORT_RAMP = 0.05  # with SGD, where the probe says the peak is below PROBE_RATIO x the catapult LR
PROBE_RATIO = 2.0


@dataclass
class AutoState(ControllerState):
    """:class:`AutoWarmup`'s state: the ramp's position (``clock``: the level is ``clock / W``),
    the ceiling, the loss average (``ema``, over ``samples`` losses), the level of the last loss
    spike and how many high losses in a row there were, the gradient norm's average, the number
    of gradient spikes and the updates still paused, the current window's loss sum, sum of
    squares and count, the lowest window's mean, variance and level, how many windows in a row
    were up, whether the loss has just stayed up, the update the watch started (``None``
    on the way up), the catapult LR the probe found (``None``: not prepared), and whether the
    loss has stayed up once already with SGD (the step back is spent)."""

    clock: float = field(default=1.0, metadata=within(0.0))
    ceiling: float = field(default=1.0, metadata=within(0.0, 1.0, low_open=True))
    ema: float | None = None
    samples: int = 0
    spiked_at: float | None = field(default=None, metadata=within(0.0, 1.0))
    high: int = 0
    grad_ema: float | None = None
    grad_spikes: int = 0
    pause: int = 0
    window_sum: float = 0.0
    window_squares: float = 0.0
    window_count: int = 0
    lowest_mean: float | None = None
    lowest_variance: float = field(default=0.0, metadata=within(0.0))
    lowest_level: float = field(default=1.0, metadata=within(0.0, 1.0))
    above: int = 0
    stays_up: bool = False
    since: int | None = field(default=None, metadata=within(1.0))
    catapult_lr: float | None = field(default=None, metadata=within(0.0, low_open=True))
    stepped_back: bool = False


class AutoWarmup(Controller):
    """Linear warmup over ``ramp`` of the run that steps back on spikes and lowers a peak the
    loss cannot take, watching into the decay.

    With ``W = max(1, round(ramp * total))``, ``c`` the ramp's clock (1 at update 0), ``C`` the
    ceiling (1 at first), the multiplier of update ``t`` on the way up is ``m = min(C, c / W)``.
    With ``L`` the average loss (a plain mean while that weighs each loss more than ``alpha``,
    then an EMA of weight ``alpha``) and ``G`` the same average of the gradient norm, after
    each update, in this order:

    - **outlier**: a loss above ``spike_limit * L`` (once ``L`` holds ``SETTLED`` = 5 losses)
      stays out of the averages and the windows; one alone changes nothing (single batches are
      noisy);
    - **windows**: every ``w = max(4, round(window * total))`` averaged losses form a window; a
      window is *up* when its mean exceeds the lowest window mean so far by more than ``RISE_Z``
      = 2 standard errors of the difference (``sqrt((s1^2 + s2^2) / w)``, sample variances).
      The loss **stays up** when ``persist`` windows in a row are up (by default 3 when the
      controller was bound with ``sgd=True``, else 2). ``m_low`` is the
      level at the end of the lowest window;
    - **watch** (from the update ``s`` the ramp reached the ceiling, for ``watch * total``
      updates): the multiplier is ``C * after(t - s)``. If the loss stays up and
      ``C >= watch_above``: ``C = min(C, m_low) / 2``, or, bound with ``sgd=True`` and the
      first time the loss stays up, the **step back** below. At the end the warmup hands over,
      dated back to ``s``: from then on too, update ``t`` gets ``C * after(t - s)``;
    - on the way up, **loss spike**: the second outlier in a row: ``c = c / 2`` (the level
      halves) and the averages, the current window and the count of windows up restart (the
      lowest window is kept: a step back does not erase where the loss was lowest); if the
      level of the last loss spike is at most twice today's, the ceiling becomes ``m / 2``;
    - on the way up, **gradient spike**: ``grad_norm > grad_limit * G`` (``G`` before this
      update, with 5 losses averaged) at a level of at least ``watch_above``: ``c = c / 2``, the
      same restart, and the ramp pauses ``2^k`` updates, ``k`` the gradient spikes so far.
      Below ``watch_above`` the LR is too small for its spikes to say anything; without a
      ``grad_norm`` signal the rule is off;
    - on the way up, **the loss stays up** at a level ``m >= watch_above``: ``C = min(m, m_low)
      / 2``, the level drops to it, and the watch starts; bound with ``sgd=True``, the first
      time (on the way up or in the watch) it is a **step back** instead: ``c = min(m, m_low) /
      2 * W``, the same restart, the watch (if on) ends and the ramp goes on;
    - otherwise, unless paused, **raise**: ``c = c + 1``; the watch starts when the level
      reaches the ceiling.

    Update 0 gets ``1 / W`` (0 < it <= 1): the first update trains. Undisturbed, update ``t``
    gets ``(t + 1) / W`` up to update ``W - 1``, and from there ``after(t - W + 1)``, with
    ``after`` cosine decay over the updates left by default; the handover is dated at update
    ``W - 1``. With a lowered ceiling ``C``, from ``s`` on update ``t`` gets ``C * after(t - s)``
    (:attr:`~preheat.adaptive.base.Controller.scale_after`), until a further cut if the loss
    stays up during the watch. If the level never reaches the ceiling, the warmup ends at
    update ``total``, and after the last update nothing changes (the run is over).

    Args:
        total: the run's length in updates; the latest handover.
        ramp: the undisturbed ramp's length as a fraction of the run, in ``(0, 1]``, or
            ``None`` (default): 0.4, and with SGD 0.05 where the catapult LR given to
            :meth:`prepare` puts the peak below ``PROBE_RATIO`` = 2 times it (the controller
            then names ``catapult_lr`` in :attr:`prepare_needs` once bound with ``sgd=True``).
        alpha: EMA weight of the newest loss and gradient norm, in ``(0, 1]``; default 0.3.
        spike_limit: a loss above this multiple of the average is high, > 1; default 3.
        grad_limit: a gradient norm above this multiple of its average is a spike, > 1;
            default 4.
        window: the loss windows' length as a fraction of the run, in ``(0, 1]``; default 0.025.
        watch: how long the loss is watched into the decay, as a fraction of the run, in
            ``[0, 1]``; default 0.2.
        watch_above: the lowest level (or ceiling) at which gradient spikes and a loss that
            stays up count, in ``[0, 1]``; default 1/8.
        persist: how many windows in a row up make the loss stay up, an integer >= 1, or
            ``None`` (default): 3 when bound with ``sgd=True`` (a catapult's bump with SGD
            lasts up to two windows and comes back down; two read it as a loss that stays up:
            ``docs/auto-warmup.md``), else 2 (also before :meth:`bind`; the
            :class:`~preheat.torch.Scheduler` binds it).
        after: the decay, a schedule expression with ``{steps}`` the updates left; default
            ``cosine_decay({steps})``.
        floor, max_step, backoff: see :class:`~preheat.adaptive.base.Bounds`.

    Raises:
        ValueError: naming the argument, its value and what is valid.
    """

    name: ClassVar[str] = "auto_warmup"
    State = AutoState
    state: AutoState
    scale_after: ClassVar[bool] = True

    def __init__(
        self,
        total: int,
        *,
        ramp: float | None = None,
        alpha: float = 0.3,
        spike_limit: float = 3.0,
        grad_limit: float = 4.0,
        window: float = 0.025,
        watch: float = 0.2,
        watch_above: float = 0.125,
        persist: int | None = None,
        after: str = DEFAULT_AFTER,
        **bounds: Unpack[BoundsKeywords],
    ) -> None:
        owner = self.name
        total = check_int(owner, "total", total, minimum=1)
        self.chosen_ramp = None if ramp is None else check_real(owner, "ramp", ramp, 0.0, 1.0, low_open=True)
        self.sgd = False
        self.ramp = RAMP if ramp is None else self.chosen_ramp
        self.alpha = check_real(owner, "alpha", alpha, 0.0, 1.0, low_open=True)
        self.spike_limit = check_real(owner, "spike_limit", spike_limit, 1.0, low_open=True)
        self.grad_limit = check_real(owner, "grad_limit", grad_limit, 1.0, low_open=True)
        self.window = check_real(owner, "window", window, 0.0, 1.0, low_open=True)
        self.watch_above = check_real(owner, "watch_above", watch_above, 0.0, 1.0)
        self.watch = check_real(owner, "watch", watch, 0.0, 1.0)
        self.chosen_persist = None if persist is None else check_int(owner, "persist", persist, minimum=1)
        self.length = max(1, round(self.ramp * total))
        self.window_length = max(4, round(self.window * total))
        self.watch_length = round(self.watch * total)
        super().__init__(total, after=after, **bounds)

    def bind(self, peak_lr: float, *, sgd: bool = False) -> None:
        """The base's binding; then the ramp is set again (:meth:`_settle`)."""
        super().bind(peak_lr, sgd=sgd)
        self.sgd = sgd
        self._settle()

    @property
    def persist(self) -> int:
        """Windows in a row up that make the loss stay up: the chosen ``persist``, else 3 for SGD
        and 2 otherwise."""
        return self.chosen_persist or (3 if self.sgd else 2)

    @property
    def prepare_needs(self) -> tuple[str, ...]:  # type: ignore[override]
        """``("catapult_lr",)`` once bound with ``sgd=True`` and without a chosen ``ramp``; else none."""
        return ("catapult_lr",) if self.sgd and self.chosen_ramp is None else ()

    def prepare(self, **measurements: float) -> None:
        """Take ``catapult_lr`` (absolute, > 0; the catapult search's LR, capped at the peak or
        not), before update 0, after :meth:`bind` and before the scheduler sets update 0's LR
        (build the :class:`~preheat.torch.Scheduler` after it): with ``peak_lr / catapult_lr <
        2`` the ramp is 5 % of the run, else 40 %.

        Raises:
            ValueError: a measurement other than :attr:`prepare_needs` names (none for the Adam
                family or a chosen ``ramp``), ``catapult_lr`` not a finite number > 0, or an
                update was observed already.
        """
        if set(measurements) != set(self.prepare_needs) or self.observed:
            raise ValueError(f"{self.name}.prepare: {sorted(measurements)} given after {self.observed} "
                             f"update(s); expected {list(self.prepare_needs)} before update 0")
        if measurements:
            self.state.catapult_lr = check_real(self.name, "catapult_lr", measurements["catapult_lr"], 0.0,
                                                low_open=True)
            self._settle()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """The base's restore; the ramp is set again from the restored catapult LR."""
        super().load_state_dict(state)
        self._settle()

    def _settle(self) -> None:
        """Set the ramp from what is known: the chosen ``ramp``; else with SGD and a catapult LR
        the peak is below ``PROBE_RATIO`` times, ``SHORT_RAMP``; else ``RAMP``. Before update 0,
        update 0's multiplier follows."""
        probed = self.state.catapult_lr
        short = self.sgd and probed is not None and self.peak_lr / probed < PROBE_RATIO
        self.ramp = self.chosen_ramp or (SHORT_RAMP if short else RAMP)
        self.length = max(1, round(self.ramp * self.total))
        if self.observed == 0:
            self.state.current = self.bounds.clip(self.start())

    def start(self) -> float:
        """Update 0 gets ``1 / W``: the ramp's first step, so the first update trains."""
        return 1.0 / self.length

    def level(self) -> float:
        """The multiplier the ramp is at: ``min(ceiling, clock / W)``."""
        return min(self.state.ceiling, self.state.clock / self.length)

    def decide(self, signals: Mapping[str, float]) -> Proposal:
        """The rules below; the first decision also says where the ramp's length came from."""
        proposal = self._decide(signals)
        if self.observed == 0:
            return replace(proposal, reason=f"{proposal.reason}; {self._ramp_origin()}")
        return proposal

    def _ramp_origin(self) -> str:
        """Why the ramp is :attr:`ramp` of the run: chosen, probed (with SGD) or the default."""
        if self.chosen_ramp is not None:
            return f"ramp {self.ramp:g} of the run, as chosen"
        probed = self.state.catapult_lr
        if not self.sgd or probed is None:
            return f"ramp {self.ramp:g} of the run" + (" (SGD, no probe before training)" if self.sgd else "")
        below = self.ramp == SHORT_RAMP  # what _settle read off the probe
        return (f"ramp {self.ramp:g} of the run: with SGD the peak is {self.peak_lr / probed:.3g}x the "
                f"catapult LR {probed:.3g}, {'below' if below else 'not below'} {PROBE_RATIO:g}x")

    def _decide(self, signals: Mapping[str, float]) -> Proposal:
        if "loss" not in signals:
            return Proposal(self.current, "hold", "no loss signal")
        state, loss, grad = self.state, signals["loss"], signals.get("grad_norm")
        grad_before = state.grad_ema
        settled = state.samples >= SETTLED
        if settled and state.ema is not None and loss > self.spike_limit * state.ema:
            state.high += 1  # an outlier stays out of the averages; two in a row are a spike
        else:
            state.high = 0
            self._average(loss)
        if grad is not None and math.isfinite(grad):
            average = grad if grad_before is None else (1.0 - self.alpha) * grad_before + self.alpha * grad
            state.grad_ema = average if math.isfinite(average) else grad  # overflow: restart the average
        level = self.level()
        evidence = {"loss": loss, "ema": state.ema if state.ema is not None else loss, "level": level,
                    "ceiling": state.ceiling}
        stays_up, state.stays_up = state.stays_up, False
        if state.since is not None:
            return self._watch(stays_up, evidence)
        if state.high >= 2:
            again = state.spiked_at is not None and level >= state.spiked_at / 2
            state.spiked_at = level
            if again:
                state.ceiling = max(level / 2, MIN_CEILING)
            state.clock /= 2
            self._restart()
            return Proposal(self.level(), "lower", f"loss {loss:.4g} > spike_limit={self.spike_limit} x the "
                            f"average {evidence['ema']:.4g} twice in a row: back to half the level"
                            + (f"; second spike near this level: ceiling {state.ceiling:.4g}" if again else ""),
                            evidence)
        if (grad is not None and grad_before is not None and settled and level >= self.watch_above
                and grad > self.grad_limit * grad_before):
            state.grad_spikes += 1
            state.clock /= 2
            state.pause = 2**state.grad_spikes
            self._restart()
            return Proposal(self.level(), "lower", f"gradient norm {grad:.4g} > grad_limit={self.grad_limit} x "
                            f"its average {grad_before:.4g}: back to half the level, pause {state.pause} updates",
                            {**evidence, "grad_norm": grad})
        if stays_up and level >= self.watch_above:
            if self.sgd and not state.stepped_back:
                return self._step_back(level, evidence)
            state.since = state.observed + 1
            return self._cut(level, evidence)
        if state.pause > 0:
            state.pause -= 1
            return Proposal(level, "hold", f"paused after a gradient spike ({state.pause} more updates)", evidence)
        state.clock += 1
        if self.level() >= state.ceiling:
            state.since = state.observed + 1
            return Proposal(state.ceiling, "raise", f"at the ceiling {state.ceiling:.4g}: the decay starts; the "
                            f"loss is watched for {self.watch_length} more updates", evidence)
        return Proposal(self.level(), "raise", "ramp", evidence)

    def _watch(self, stays_up: bool, evidence: dict[str, float]) -> Proposal:
        """After the ramp: the decay from ``since``, scaled by the ceiling; the ceiling is cut
        while the loss stays up; the handover, dated back to ``since``, after ``watch`` updates."""
        state = self.state
        following = state.observed + 1
        if stays_up and state.ceiling >= self.watch_above:
            if self.sgd and not state.stepped_back:
                return self._step_back(state.ceiling, evidence)
            cut = self._cut(state.ceiling, evidence)
            return replace(cut, multiplier=cut.multiplier * self.after_value(state.since, following))
        if following - state.since >= self.watch_length:
            return Proposal(state.ceiling, "hold", f"watched {self.watch_length} updates of the decay: handover",
                            evidence, done=True, origin=state.since)
        return Proposal(state.ceiling * self.after_value(state.since, following), "hold",
                        "decay, watching the loss", evidence)

    def _cut(self, level: float, evidence: dict[str, float]) -> Proposal:
        """The loss stayed up at ``level``: the ceiling (and the level) becomes half the lower of
        ``level`` and the level of the lowest window; the proposal of the new ceiling."""
        state = self.state
        state.ceiling = max(min(level, state.lowest_level) / 2, MIN_CEILING)
        state.clock = state.ceiling * self.length
        return Proposal(state.ceiling, "lower", f"{self._stayed_up()}: ceiling {state.ceiling:.4g}",
                        {**evidence, "lowest_level": state.lowest_level})

    def _step_back(self, level: float, evidence: dict[str, float]) -> Proposal:
        """With SGD, the loss stayed up at ``level`` for the first time: the level steps back to
        half the lower of ``level`` and the lowest window's, the watch (if on) ends, and the ramp
        goes on from there; the next time the loss stays up, :meth:`_cut` sets the ceiling."""
        state = self.state
        state.stepped_back, state.since = True, None
        state.clock = max(min(level, state.lowest_level) / 2, MIN_CEILING) * self.length
        self._restart()
        return Proposal(self.level(), "lower", f"{self._stayed_up()}: back to {self.level():.4g}, the ramp goes on",
                        {**evidence, "lowest_level": state.lowest_level})

    def _stayed_up(self) -> str:
        """Why the loss counts as staying up, the start of a cut's or a step back's reason."""
        return (f"mean loss of {self.persist} windows of {self.window_length} updates in a row more than "
                f"{RISE_Z:g} standard errors above the lowest window")

    def _average(self, loss: float) -> None:
        """Take ``loss`` into the average and the current window; close the window when full."""
        state = self.state
        state.samples += 1
        weight = max(self.alpha, 1.0 / state.samples)  # a plain mean until the EMA has enough losses
        state.ema = loss if state.ema is None else (1.0 - weight) * state.ema + weight * loss
        if not math.isfinite(state.ema):  # overflow of huge finite losses: restart the average
            state.ema, state.samples = loss, 1
        state.window_sum += loss
        state.window_squares += loss * loss
        state.window_count += 1
        if not (math.isfinite(state.window_sum) and math.isfinite(state.window_squares)):
            state.window_sum, state.window_squares, state.window_count = 0.0, 0.0, 0  # overflow: a new window
            return
        if state.window_count < self.window_length:
            return
        n = state.window_count
        mean = state.window_sum / n
        variance = max(0.0, state.window_squares / n - mean * mean) * n / (n - 1)
        lowest = state.lowest_mean
        up = lowest is not None and mean - lowest > RISE_Z * math.sqrt((variance + state.lowest_variance) / n)
        state.above = state.above + 1 if up else 0
        if state.above >= self.persist:
            state.stays_up, state.above = True, 0
        if lowest is None or mean < lowest:
            state.lowest_mean, state.lowest_variance, state.lowest_level = mean, variance, self.level()
        state.window_sum, state.window_squares, state.window_count = 0.0, 0.0, 0

    def _restart(self) -> None:
        """After a step back: the averages, the current window and the count of windows up start
        again at the new level; the lowest window stays, so a loss that stays above it after the
        step back still counts as staying up."""
        state = self.state
        state.ema, state.samples, state.grad_ema, state.high = None, 0, None, 0
        state.window_sum, state.window_squares, state.window_count = 0.0, 0.0, 0
        state.above, state.stays_up = 0, False
