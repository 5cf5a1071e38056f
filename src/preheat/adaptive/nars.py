"""NARS warmup: a learning-rate controller that reasons with evidence, after Pei Wang's NARS.

The Non-Axiomatic Reasoning System (NARS) and its logic NAL attach to every belief a truth value
measured by the evidence behind it. :class:`TruthValue` implements that algebra;
:class:`NARSWarmup` keeps two beliefs about the run, turns what each interval of training shows
into evidence for or against them, and raises, holds or lowers the LR multiplier accordingly.

Truth values (NAL). A belief has ``w+ >= 0`` units of positive and ``w- >= 0`` units of negative
evidence, ``w = w+ + w-`` in all, and ``k > 0``, the evidential horizon (1 by default, as in NAL):

- frequency   ``f = w+ / w``, the share of positive evidence; ``f = 1/2`` when ``w = 0`` (no
  evidence either way, as the OpenNARS wiki defines it);
- confidence  ``c = w / (w + k)``, in ``[0, 1)``: how much evidence there is, relative to ``k``;
  ``c = 0`` exactly when ``w = 0``;
- expectation ``e = c (f - 1/2) + 1/2``, in ``(0, 1)``: the frequency shrunk towards 1/2 by the
  lack of confidence, used to decide;
- revision: two truth values from independent evidence combine by adding their evidence,
  ``w+ = w1+ + w2+`` and ``w- = w1- + w2-``; in ``(f, c)`` terms ``f = (w1 f1 + w2 f2) / (w1 + w2)``
  and ``c = (w1 + w2) / (w1 + w2 + k)``;
- conversion back from ``(f, c)``: ``w = k c / (1 - c)``, ``w+ = f w``, ``w- = (1 - f) w``;
- forgetting (not one of NAL's truth functions; our choice, akin to OpenNARS for Applications'
  ``Truth_Projection``, which shrinks confidence by a constant factor per time step):
  ``decay(r)`` multiplies both ``w+`` and ``w-`` by ``r`` in ``[0, 1]``, so ``f`` is unchanged and
  ``c`` falls. Applied once per interval, evidence ``n`` intervals old weighs ``r^n``; with at
  most one new unit per interval a belief never holds more than ``1 / (1 - r)`` units (5 for
  ``r = 0.8``), so old evidence cannot outvote what the run shows now.

Sources, and what was checked against each:

- OpenNARS for Applications, ``src/Truth.c`` (github.com/opennars/OpenNARS-for-Applications):
  ``Truth_w2c(w) = w / (w + k)``, ``Truth_c2w(c) = k c / (1 - c)``,
  ``Truth_Expectation = c (f - 0.5) + 0.5``, ``Truth_Revision``: the ``w``-weighted mean of the
  frequencies with ``c = w2c(w1 + w2)``; ``src/Config.h``: the horizon
  ``TRUTH_EVIDENTAL_HORIZON_INITIAL 1.0`` (``k = 1``).
- OpenNARS, ``src/main/java/org/opennars/inference/UtilityFunctions.java``: ``w2c`` and ``c2w``
  with the parameter ``HORIZON``.
- The OpenNARS wiki page "Truth Value: Definition and Examples" (as kept in
  github.com/yuanbei/Nars-Wiki): positive, negative and total evidence, ``f = w+ / w``, and
  ``f = 0.5`` when there is no evidence.
- P. Wang, "Formalization of Evidence: A Comparative Study", *Journal of Artificial General
  Intelligence* 1 (2009) 25-53, and "Confidence as Higher-Order Uncertainty", ISIPTA 2001:
  confidence defined by the amount of evidence, revision as pooling evidence; P. Wang,
  *Non-Axiomatic Logic: A Model of Intelligent Reasoning*, World Scientific, 2013, the reference
  for NAL as a whole.

Differences from OpenNARS: no rounding to short floats and no cap on the confidence a revision
may reach (OpenNARS caps it below 1); truth values are kept as evidence, so revision is exact
addition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Mapping, Sequence

from preheat.adaptive.base import Controller, ControllerState, Proposal, Rule, rule
from preheat.schedules.validate import check_int, check_real

if TYPE_CHECKING:
    from typing import Unpack

    from preheat.adaptive.base import BoundsKeywords

#: Smoothing of the loss and gradient-norm EMAs: ``ema <- EMA_BETA * ema + (1 - EMA_BETA) * x``.
EMA_BETA = 0.9
#: A difference of this many standard errors counts as one whole unit of evidence.
FULL_EVIDENCE_Z = 2.0
#: Significance values are clipped to +-Z_CAP (a difference with zero standard error gets +-Z_CAP).
Z_CAP = 100.0
#: An interval's rate ``d`` and its error ``s`` are clipped to +-RATE_CAP: only losses near the
#: float range reach it, and it keeps every difference of two rates and its error finite.
RATE_CAP = 1e300


@dataclass(frozen=True)
class TruthValue:
    """A NAL truth value kept as its evidence: ``positive = w+``, ``negative = w-``, ``horizon = k``.

    ``f = w+ / w`` (``1/2`` when ``w = 0``), ``c = w / (w + k)``, ``e = c (f - 1/2) + 1/2``
    (see the module docstring for the sources). Immutable; :meth:`revise` and :meth:`decay`
    return new values.

    Raises:
        ValueError: ``positive`` or ``negative`` not a finite number >= 0, or ``horizon`` not a
            finite number > 0.
    """

    positive: float = 0.0
    negative: float = 0.0
    horizon: float = 1.0

    def __post_init__(self) -> None:
        owner = "TruthValue"
        object.__setattr__(self, "positive", check_real(owner, "positive", self.positive, 0.0))
        object.__setattr__(self, "negative", check_real(owner, "negative", self.negative, 0.0))
        horizon = check_real(owner, "horizon", self.horizon, 0.0, low_open=True)
        object.__setattr__(self, "horizon", horizon)

    @classmethod
    def from_frequency_confidence(cls, frequency: float, confidence: float,
                                  horizon: float = 1.0) -> TruthValue:
        """The evidence behind ``(f, c)``: ``w = k c / (1 - c)``, ``w+ = f w``, ``w- = (1 - f) w``.

        Raises:
            ValueError: ``frequency`` not in [0, 1], ``confidence`` not in [0, 1), or ``horizon``
                not > 0.
        """
        owner = "TruthValue.from_frequency_confidence"
        f = check_real(owner, "frequency", frequency, 0.0, 1.0)
        c = check_real(owner, "confidence", confidence, 0.0, 1.0, high_open=True)
        k = check_real(owner, "horizon", horizon, 0.0, low_open=True)
        total = k * c / (1.0 - c)
        return cls(f * total, (1.0 - f) * total, k)

    @property
    def total(self) -> float:
        """``w = w+ + w-``, the amount of evidence."""
        return self.positive + self.negative

    @property
    def frequency(self) -> float:
        """``f = w+ / w``; ``1/2`` when there is no evidence (``w = 0``)."""
        total = self.total
        return self.positive / total if total > 0 else 0.5

    @property
    def confidence(self) -> float:
        """``c = w / (w + k)``, in ``[0, 1)``; 0 exactly when ``w = 0``."""
        return self.total / (self.total + self.horizon)

    @property
    def expectation(self) -> float:
        """``e = c (f - 1/2) + 1/2``, in ``(0, 1)``; 1/2 without evidence."""
        return self.confidence * (self.frequency - 0.5) + 0.5

    def revise(self, other: TruthValue) -> TruthValue:
        """Revision: pool independent evidence, ``w+ = w1+ + w2+`` and ``w- = w1- + w2-``.

        Raises:
            ValueError: the two horizons differ (their confidences are not on one scale).
        """
        if not isinstance(other, TruthValue):
            raise ValueError(f"TruthValue.revise: other={other!r} is invalid; expected a TruthValue")
        if other.horizon != self.horizon:
            raise ValueError(f"TruthValue.revise: other.horizon={other.horizon!r} is invalid; "
                             f"expected the same horizon as this truth value, {self.horizon!r}")
        return TruthValue(self.positive + other.positive, self.negative + other.negative, self.horizon)

    def decay(self, factor: float) -> TruthValue:
        """Forgetting: ``w+ -> r w+``, ``w- -> r w-`` with ``r = factor`` in [0, 1]; ``f`` is kept,
        ``c`` falls (``r = 1`` forgets nothing, ``r = 0`` everything).

        Raises:
            ValueError: ``factor`` not in [0, 1].
        """
        r = check_real("TruthValue.decay", "factor", factor, 0.0, 1.0)
        return TruthValue(self.positive * r, self.negative * r, self.horizon)

    def describe(self, prefix: str) -> dict[str, float]:
        """``{prefix_f, prefix_c, prefix_e, prefix_w_plus, prefix_w_minus}`` for a decision log."""
        return {f"{prefix}_f": self.frequency, f"{prefix}_c": self.confidence,
                f"{prefix}_e": self.expectation, f"{prefix}_w_plus": self.positive,
                f"{prefix}_w_minus": self.negative}


def trend(values: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope ``b`` of ``values`` against ``0, 1, ..., n-1`` and its standard error.

    With ``x_i = i``, ``S = sum (x_i - mean x)^2 = n (n^2 - 1) / 12``:
    ``b = sum (x_i - mean x)(y_i - mean y) / S`` and ``se = sqrt(sum r_i^2 / ((n - 2) S))`` with
    residuals ``r_i = y_i - mean y - b (x_i - mean x)``. Needs ``n >= 3`` finite values.

    Computed on the values divided by a power of two near the largest of them
    (:func:`_scaled_trend`), so no square overflows: for any finite values the result is finite
    unless ``b`` or ``se`` itself lies beyond the float range (then it is ``inf``).
    """
    slope, error, _, exponent = _scaled_trend(values)
    return _unscale(slope, exponent), _unscale(error, exponent)


def _scaled_trend(values: Sequence[float]) -> tuple[float, float, float, int]:
    """``(b, se, mean)`` of ``values / 2^e`` (see :func:`trend`) and ``e``, where ``2^e`` is just
    above the largest ``|value|``, so every scaled value lies in ``(-1, 1)``. Dividing by a
    power of two is exact, so away from the ends of the float range ``b 2^e``, ``se 2^e`` and
    ``mean 2^e`` are bit for bit those computed on ``values`` themselves."""
    exponent = math.frexp(max(abs(y) for y in values))[1]
    scaled = [math.ldexp(y, -exponent) for y in values]
    n = len(scaled)
    x_mean = (n - 1) / 2.0
    y_mean = sum(scaled) / n
    s_xx = n * (n * n - 1) / 12.0
    slope = sum((i - x_mean) * (y - y_mean) for i, y in enumerate(scaled)) / s_xx
    residuals = sum((y - y_mean - slope * (i - x_mean)) ** 2 for i, y in enumerate(scaled))
    return slope, math.sqrt(residuals / ((n - 2) * s_xx)), y_mean, exponent


def _unscale(value: float, exponent: int) -> float:
    """``value * 2^exponent``; ``+-inf`` beyond the float range."""
    try:
        return math.ldexp(value, exponent)
    except OverflowError:
        return math.copysign(math.inf, value)


def _clip_rate(value: float) -> float:
    """``value`` within ``[-RATE_CAP, RATE_CAP]``."""
    return max(-RATE_CAP, min(RATE_CAP, value))


def _significance(difference: float, error: float) -> float:
    """``difference / error`` clipped to ``[-Z_CAP, Z_CAP]``; with ``error = 0``: ``+-Z_CAP`` or 0."""
    if error > 0:
        return max(-Z_CAP, min(Z_CAP, difference / error))
    return math.copysign(Z_CAP, difference) if difference != 0 else 0.0


def _graded(z: float) -> float:
    """One observation's share of positive evidence: ``p = clip(1/2 + z / (2 Z), 0, 1)`` with
    ``Z = FULL_EVIDENCE_Z``: 1/2 for no effect, 1 (or 0) from ``Z`` standard errors on."""
    return max(0.0, min(1.0, 0.5 + z / (2.0 * FULL_EVIDENCE_Z)))


def _same_horizon(value: TruthValue, controller: NARSWarmup, state: NARSState) -> str | None:
    """A loaded belief has the controller's horizon (revision needs one scale)."""
    return None if value.horizon == controller.horizon else f"a truth value with horizon={controller.horizon}"


def _set_with(*others: str) -> Rule:
    """An EMA is set (a number) exactly when its first value and reference are."""
    def check(value: float | None, controller: NARSWarmup, state: NARSState) -> str | None:
        together = [value, *(getattr(state, name) for name in others)]
        if all(v is None for v in together) or all(v is not None for v in together):
            return None
        return f"{' and '.join(others)} set as well, or all of them None"
    return check


@dataclass
class NARSState(ControllerState):
    """:class:`NARSWarmup`'s state: the beliefs ``gain`` (B1) and ``instability`` (B2), the
    current interval's losses, the loss and grad-norm EMAs with their first values and their
    values when the interval began (``*_ref``), ``(d, s)`` of the last normal interval
    (``previous``), whether the interval runs at a raised multiplier, the decisions already
    scanned for the base's backoffs (``seen``), the high updates in a row, whether the interval
    had a high signal (``unsettled``) and the updates left of the cooldown after a spike."""

    gain: TruthValue = field(default_factory=TruthValue, metadata=rule(_same_horizon))
    instability: TruthValue = field(default_factory=TruthValue, metadata=rule(_same_horizon))
    losses: list[float] = field(default_factory=list)
    loss_ema: float | None = field(default=None, metadata=rule(_set_with("loss_first", "loss_ref")))
    grad_ema: float | None = field(default=None, metadata=rule(_set_with("grad_first", "grad_ref")))
    loss_first: float | None = None
    grad_first: float | None = None
    loss_ref: float | None = None
    grad_ref: float | None = None
    previous: tuple[float, float] | None = None
    raised: bool = False
    seen: int = 0
    high: int = 0
    unsettled: bool = False
    cooldown: int = 0


class NARSWarmup(Controller):
    """Warm up by reasoning about two beliefs with NAL truth values.

    Beliefs, each a :class:`TruthValue` with horizon ``horizon``, starting without evidence
    (``e = 1/2``):

    - **B1** (gain): "raising the LR now lowers the loss faster";
    - **B2** (instability): "raising the LR now causes instability".

    Update 0 gets ``initial``. Signals: ``loss`` (required) and ``grad_norm`` (optional). The run is
    cut into intervals of ``interval`` observed updates (updates without signals do not count);
    the multiplier ``m`` holds within an interval and changes only at its end or at a spike.

    **Measurements.** For an interval's losses ``y_0..y_{n-1}``: the least-squares slope ``b`` and
    its standard error ``se`` (:func:`trend`); the *relative decrease rate* ``d = -b / mean(y)``
    with error ``s = se / mean(y)`` (``d = -b``, ``s = se`` when ``mean(y) <= 0``), so that for a
    loss ``A exp(-a sum(lr))`` ``d`` is about ``a lr`` and the mere slow-down of a shrinking loss
    does not count against a raise; and the trend's significance ``t = d / s`` (clipped to
    ``+-Z_CAP = 100``; ``t > 0``: the loss fell). ``d`` and ``s`` are clipped to
    ``+-RATE_CAP = 1e300`` (only losses near the float range reach it), so any finite loss
    gives finite evidence.

    A signal is *high* when ``loss > spike_factor * max(L, spike_floor * L0)`` or
    ``grad_norm > spike_factor * max(G, G0)``; ``L``, ``G`` are the EMAs (``EMA_BETA = 0.9``) of
    the loss and grad norm when the interval began, ``L0``, ``G0`` their first values. The floors
    keep batch noise from counting as a spike once the loss has fallen far below its start: the
    batch-to-batch spread of both signals relative to their EMAs grows as the loss shrinks (on
    small batches a loss or gradient norm several times its EMA is then common). High values are
    left out of the EMAs. A *spike* is ``spike_patience`` high updates in a row (one outlying batch
    is not a spike); after a spike, high updates do not count towards the next one for
    ``interval`` updates (the loss gets time to recover). A spike, or a non-finite signal (which
    the base class has already backed off), ends the interval at once. An interval is *calm* when
    it had no high update and its loss did not rise (``t > -1``).

    **Evidence**, with ``Z = FULL_EVIDENCE_Z = 2``. At every interval end, first all evidence is
    multiplied by ``decay`` (forgetting), then:

    - an interval run at a *raised* multiplier is one observation for B1, compared with the
      interval before the raise (if that one ended normally): with
      ``z = (d - d_prev) / sqrt(s^2 + s_prev^2)`` (``z > 0``: the loss fell faster) and
      ``p = clip(1/2 + z / (2 Z), 0, 1)``, ``w+(B1) += p`` and ``w-(B1) += 1 - p``: no change is
      half and half, a speed-up of ``Z`` standard errors or more one whole positive unit, a
      slow-down as large one whole negative unit;
    - the same interval is one observation for B2: with ``u = clip(-t / Z, 0, 1)``,
      ``w+(B2) += u`` and ``w-(B2) += 1 - u``: a raise followed by a falling loss is one whole
      negative unit for B2, by a loss rising ``Z`` standard errors or more one whole positive unit;
    - a spike or a non-finite signal: ``w+(B2) += 1``, and ``w-(B1) += 1`` if the interval ran at
      a raised multiplier; the interval is not used as a comparison later.

    Intervals not run at a raised multiplier give no evidence: they say nothing about raising.

    **Decision.** At a spike: lower, ``m <- lower_factor * m``. At the end of an interval, the
    first rule that applies:

    1. not calm: hold;
    2. ``m = 1``: the warmup is done (hand over to ``after``);
    3. ``e(B2) >= threshold_instability``: hold (instability is believed);
    4. ``d <= 0``: hold (the loss did not fall: no progress to speed up);
    5. ``e(B1) > threshold_raise``: raise (raising is believed to help);
    6. ``m < plan(t + 1)``: raise (behind the default plan, and instability is not believed);
    7. otherwise hold.

    A raise is ``m <- min(raise_factor * m, envelope(t + 1))`` (a hold when the envelope leaves no
    room). The *plan* ``plan(t) = initial ** (1 - min(1, t / reference_steps))``, an exponential
    warmup reaching 1 at ``reference_steps``, is what the controller does while the evidence is
    silent (a noisy loss often leaves B1 near ``e = 1/2``): B1 lets it run ahead of the plan, B2
    and spikes hold it back or bring it down, and fading evidence (``decay``) returns it to the
    plan. Without a plan, a run whose loss soon stops responding to the LR would stall below the
    peak.

    **Bounds.** Besides the base class's ``[floor, 1]``, ``max_step`` and backoff, update ``t``
    never gets more than the envelope
    ``min(1, envelope_factor * (initial + (1 - initial) * min(1, t / reference_steps)))``,
    ``envelope_factor`` times a linear warmup from ``initial`` over ``reference_steps``. The
    envelope is 1 from about ``reference_steps / envelope_factor`` on, so it never blocks the
    peak after that. From ``initial`` to 1 takes at least
    ``ceil(log(1 / initial) / log(raise_factor))`` raises: 12 intervals (120 updates) with the
    defaults. So with the defaults (``reference_steps`` = 10% of ``total``) a run whose loss keeps
    falling without spikes reaches the peak between 5% and about 10% of ``total``, and after at
    least 120 updates; intervals where the loss did not fall, spikes and believed instability
    delay it, and the base class hands over at ``total`` at the latest.

    **Log.** Every decision's ``evidence`` holds both truth values (``b1_f``, ``b1_c``, ``b1_e``,
    ``b1_w_plus``, ``b1_w_minus`` and the same for ``b2``), ``loss``, ``proposal``, ``envelope``
    and ``plan`` (the last three for the next update); an interval end adds ``rate`` (``d``),
    ``rate_se`` (``s``) and ``trend_z`` (``t``), and after a raise ``b2_new_plus`` (``u``) and, when
    compared, ``previous_rate``, ``speedup_z`` (``z``) and ``b1_new_plus`` (``p``). The reason
    says in words what was seen, the evidence it gave, and the rule that decided.

    Args:
        total: the run's number of updates.
        interval: observed updates per interval (>= 3, for a slope with a standard error).
        initial: update 0's multiplier, in ``(0, 1]`` and not below ``floor``.
        raise_factor: ``m <- raise_factor * m`` on a raise (> 1).
        lower_factor: ``m <- lower_factor * m`` on a spike (in (0, 1)).
        threshold_raise: raise ahead of the plan only when ``e(B1) > threshold_raise`` (in [0, 1]).
        threshold_instability: hold while ``e(B2) >= threshold_instability`` (in [0, 1]).
        spike_factor: a signal above spike_factor times its reference is high (> 1).
        spike_floor: the loss reference's floor, as a fraction of the first loss (in [0, 1]).
        spike_patience: high updates in a row that make a spike (>= 1).
        decay: the share of evidence kept at each interval end, in ``(0, 1]`` (1: never forget).
        horizon: NAL's evidential horizon ``k`` (> 0).
        envelope_factor: the envelope's multiple of the reference warmup (>= 1).
        reference_steps: the length of the envelope's reference warmup and of the plan, in
            ``[1, total]``; default ``max(1, round(total / 10))``.
        after, floor, max_step, backoff: see :class:`~preheat.adaptive.base.Bounds`.

    Attributes:
        gain, instability: the beliefs B1 and B2 (:class:`TruthValue`).

    Raises:
        ValueError: naming the argument, its value and what is valid; at run time, when an
            update's signals lack ``loss``.
    """

    name: ClassVar[str] = "nars_warmup"
    State = NARSState
    state: NARSState

    def __init__(
        self,
        total: int,
        *,
        interval: int = 10,
        initial: float = 0.01,
        raise_factor: float = 1.5,
        lower_factor: float = 0.5,
        threshold_raise: float = 0.55,
        threshold_instability: float = 0.6,
        spike_factor: float = 2.0,
        spike_floor: float = 0.1,
        spike_patience: int = 2,
        decay: float = 0.8,
        horizon: float = 1.0,
        envelope_factor: float = 2.0,
        reference_steps: int | None = None,
        **bounds: Unpack[BoundsKeywords],
    ) -> None:
        owner = self.name
        self.interval = check_int(owner, "interval", interval, minimum=3)
        self.initial = check_real(owner, "initial", initial, 0.0, 1.0, low_open=True)
        self.raise_factor = check_real(owner, "raise_factor", raise_factor, 1.0, low_open=True)
        self.lower_factor = check_real(owner, "lower_factor", lower_factor, 0.0, 1.0,
                                       low_open=True, high_open=True)
        self.threshold_raise = check_real(owner, "threshold_raise", threshold_raise, 0.0, 1.0)
        self.threshold_instability = check_real(owner, "threshold_instability", threshold_instability,
                                                0.0, 1.0)
        self.spike_factor = check_real(owner, "spike_factor", spike_factor, 1.0, low_open=True)
        self.spike_floor = check_real(owner, "spike_floor", spike_floor, 0.0, 1.0)
        self.spike_patience = check_int(owner, "spike_patience", spike_patience, minimum=1)
        self.decay = check_real(owner, "decay", decay, 0.0, 1.0, low_open=True)
        self.horizon = check_real(owner, "horizon", horizon, 0.0, low_open=True)
        self.envelope_factor = check_real(owner, "envelope_factor", envelope_factor, 1.0)
        super().__init__(total, **bounds)
        if self.initial < self.bounds.floor:
            raise ValueError(f"{owner}: initial={initial!r} is invalid; expected a number in "
                             f"[floor, 1] = [{self.bounds.floor}, 1.0]")
        if reference_steps is None:
            reference_steps = max(1, round(self.total / 10))
        self.reference_steps = check_int(owner, "reference_steps", reference_steps, minimum=1)
        if self.reference_steps > self.total:
            raise ValueError(f"{owner}: reference_steps={reference_steps!r} is invalid; expected an "
                             f"integer in [1, total] = [1, {self.total}]")
        self.state.gain = TruthValue(horizon=self.horizon)
        self.state.instability = TruthValue(horizon=self.horizon)

    @property
    def gain(self) -> TruthValue:
        """B1: "raising the LR now lowers the loss faster"."""
        return self.state.gain

    @property
    def instability(self) -> TruthValue:
        """B2: "raising the LR now causes instability"."""
        return self.state.instability

    # -- the Controller interface ------------------------------------------------------------

    def start(self) -> float:
        """Update 0's multiplier: ``initial``."""
        return self.initial

    def envelope(self, step: int) -> float:
        """The most update ``step`` may get:
        ``min(1, envelope_factor * (initial + (1 - initial) * min(1, step / reference_steps)))``."""
        progress = min(1.0, step / self.reference_steps)
        return min(1.0, self.envelope_factor * (self.initial + (1.0 - self.initial) * progress))

    def plan(self, step: int) -> float:
        """The default plan for update ``step``, followed while B1 is not believed: the exponential
        warmup ``initial ** (1 - min(1, step / reference_steps))``."""
        return self.initial ** (1.0 - min(1.0, step / self.reference_steps))

    def decide(self, signals: Mapping[str, float]) -> Proposal:
        """Take update ``self.observed``'s loss (and grad norm); see the class docstring for the rules."""
        if "loss" not in signals:
            raise ValueError(f"{self.name}: signals {sorted(signals)} lack 'loss'; expected "
                             "observe(loss=..., grad_norm=...) with at least the loss")
        loss, grad = signals["loss"], signals.get("grad_norm")
        notes = []
        backed_off = any(d.action == "backoff" for d in self.decisions[self.state.seen:])
        self.state.seen = len(self.decisions) + 1  # the base appends this call's decision next
        if backed_off:
            self._disturbed()
            notes.append("a non-finite signal was backed off: B2 +1, new interval")
        if self.state.loss_ema is None:
            self.state.loss_ema = self.state.loss_ref = self.state.loss_first = loss
        if grad is not None and self.state.grad_ema is None:
            self.state.grad_ema = self.state.grad_ref = self.state.grad_first = grad
        high = self._high_signal(loss, grad)
        self.state.cooldown = max(0, self.state.cooldown - 1)
        self.state.high = self.state.high + 1 if high and not self.state.cooldown else 0
        if self.state.high >= self.spike_patience:
            self.state.high, self.state.cooldown = 0, self.interval
            self._disturbed()
            proposal = self.current * self.lower_factor
            reason = (f"spike ({high}, {self.spike_patience} high update(s) in a row): "
                      f"lower x{self.lower_factor:g}; B2 +1")
            return Proposal(proposal, "lower", "; ".join(notes + [reason]), self._evidence(loss, proposal))
        if high:
            self.state.unsettled = True
            state = "recovering from a spike" if self.state.cooldown else "not yet a spike"
            notes.append(f"high signal ({high}), {state}")
        else:  # a high value is left out of the EMAs, so a spike does not raise its own reference
            self.state.loss_ema = EMA_BETA * self.state.loss_ema + (1.0 - EMA_BETA) * loss
            if grad is not None:
                self.state.grad_ema = EMA_BETA * self.state.grad_ema + (1.0 - EMA_BETA) * grad
        self.state.losses.append(loss)
        if len(self.state.losses) < self.interval:
            reason = f"collecting evidence ({len(self.state.losses)}/{self.interval} of the interval)"
            evidence = self._evidence(loss, self.current)
            return Proposal(self.current, "hold", "; ".join(notes + [reason]), evidence)
        return self._interval_end(loss, notes)

    # -- the steps of a decision -------------------------------------------------------------

    def _high_signal(self, loss: float, grad: float | None) -> str:
        """Which of this update's signals is above its spike threshold (in words), or ``""``."""
        loss_ref = max(self.state.loss_ref, self.spike_floor * self.state.loss_first)
        if loss_ref > 0 and loss > self.spike_factor * loss_ref:
            return f"loss {loss:.4g} > {self.spike_factor:g} x {loss_ref:.4g}"
        if grad is not None:
            grad_ref = max(self.state.grad_ref, self.state.grad_first)
            if grad_ref > 0 and grad > self.spike_factor * grad_ref:
                return f"grad_norm {grad:.4g} > {self.spike_factor:g} x {grad_ref:.4g}"
        return ""

    def _disturbed(self) -> None:
        """A spike or a backed-off signal: evidence for B2 (and against B1 after a raise); the
        interval ends and its rate is not compared with later."""
        self._forget()
        self.state.instability = self.instability.revise(TruthValue(1.0, 0.0, self.horizon))
        if self.state.raised:
            self.state.gain = self.gain.revise(TruthValue(0.0, 1.0, self.horizon))
        self._new_interval(previous=None, raised=False)

    def _interval_end(self, loss: float,
                      notes: list[str]) -> Proposal:
        """A normal interval ended: revise the beliefs with its evidence, then decide."""
        self._forget()
        slope, error, mean, exponent = _scaled_trend(self.state.losses)  # in units of 2^exponent
        if mean > 0:  # the scale cancels
            rate, rate_error = -slope / mean, error / mean
        else:
            rate, rate_error = -_unscale(slope, exponent), _unscale(error, exponent)
        trend_z = _significance(-slope, error)  # t = d / s, whatever the scale; > 0: the loss fell
        rate, rate_error = _clip_rate(rate), _clip_rate(rate_error)
        measured = {"rate": rate, "rate_se": rate_error, "trend_z": trend_z}
        if self.state.raised:
            if self.state.previous is not None:
                prev_rate, prev_error = self.state.previous
                z = _significance(rate - prev_rate, math.hypot(rate_error, prev_error))
                p = _graded(z)
                self.state.gain = self.gain.revise(TruthValue(p, 1.0 - p, self.horizon))
                measured.update(previous_rate=prev_rate, speedup_z=z, b1_new_plus=p)
                notes.append(f"raise {'sped up' if z > 0 else 'did not speed up'} the decrease "
                             f"(z={z:.2f}): B1 +{p:.2f}/-{1 - p:.2f}")
            u = max(0.0, min(1.0, -trend_z / FULL_EVIDENCE_Z))
            self.state.instability = self.instability.revise(TruthValue(u, 1.0 - u, self.horizon))
            measured["b2_new_plus"] = u
            seen = "the loss rose" if u > 0 else "no trouble"
            notes.append(f"{seen} after a raise: B2 +{u:.2f}/-{1 - u:.2f}")
        proposal, action, verdict, done = self._choose(rate, trend_z)
        self._new_interval(previous=(rate, rate_error), raised=action == "raise")
        evidence = {**self._evidence(loss, proposal), **measured}
        return Proposal(proposal, action, "; ".join(notes + [f"interval end: {verdict}"]), evidence, done)

    def _choose(self, rate: float, trend_z: float) -> tuple[float, str, str, bool]:
        """The decision rule at the end of an interval: ``(proposal, action, verdict, done)``."""
        e1, e2, m = self.gain.expectation, self.instability.expectation, self.current
        if self.state.unsettled:
            return m, "hold", "hold: not calm (a signal was above its spike threshold)", False
        if trend_z <= -1.0:
            return m, "hold", f"hold: not calm (the loss rose, t={trend_z:.2f} <= -1)", False
        if m >= 1.0:
            return m, "hold", "at the peak and the interval was calm: warmup done", True
        if e2 >= self.threshold_instability:
            verdict = f"hold: instability believed, e(B2)={e2:.3f} >= {self.threshold_instability:g}"
            return m, "hold", verdict, False
        if rate <= 0:
            return m, "hold", f"hold: the loss did not fall (rate {rate:.3g} <= 0)", False
        plan = self.plan(self.observed + 1)
        if e1 > self.threshold_raise:
            why = f"raising believed to help, e(B1)={e1:.3f} > {self.threshold_raise:g}"
        elif m < plan:
            why = f"behind the plan {plan:.4g}"
        else:
            verdict = f"hold: at or ahead of the plan {plan:.4g}; e(B1)={e1:.3f} <= {self.threshold_raise:g}"
            return m, "hold", verdict, False
        why += f"; e(B2)={e2:.3f} < {self.threshold_instability:g}"
        ceiling = self.envelope(self.observed + 1)
        proposal = min(m * self.raise_factor, ceiling)
        if proposal <= m:
            return m, "hold", f"hold: at the envelope {ceiling:.4g} ({why})", False
        capped = " (capped by the envelope)" if proposal == ceiling < 1.0 else ""
        return proposal, "raise", f"raise to {proposal:.4g}{capped}: {why}", False

    def _forget(self) -> None:
        self.state.gain = self.gain.decay(self.decay)
        self.state.instability = self.instability.decay(self.decay)

    def _new_interval(self, previous: tuple[float, float] | None, raised: bool) -> None:
        self.state.losses, self.state.unsettled = [], False
        self.state.previous, self.state.raised = previous, raised
        self.state.loss_ref, self.state.grad_ref = self.state.loss_ema, self.state.grad_ema

    def _evidence(self, loss: float, proposal: float) -> dict[str, float]:
        """The numbers logged with every decision: both beliefs' truth values and evidence."""
        step = self.observed + 1
        return {"loss": loss, "proposal": proposal, "envelope": self.envelope(step), "plan": self.plan(step),
                **self.gain.describe("b1"), **self.instability.describe("b2")}
