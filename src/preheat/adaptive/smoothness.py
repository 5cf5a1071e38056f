"""Smoothness-guided warmup (Liu et al. 2025): the LR follows the local smoothness the loss predicts.

Liu, Ge, Pan, Kang & Zhang, "Theoretical analysis on how learning rate warmup accelerates
convergence" (arXiv:2509.07972, 2025), call ``f`` **(rho, K0, K_rho)-smooth** when::

    ||Hess f(theta)|| <= K0 + K_rho (f(theta) - f*)^rho        (K0, K_rho >= 0, rho > 0)

The local smoothness shrinks as the loss falls, so gradient descent may take larger steps as it
goes: the step ``c / (K0 + K_rho (f - f*)^rho)`` rises from a small value to ``c / K0``, which is
a warmup. :class:`SmoothnessWarmup` runs that rule on an EMA of the training loss, with the
constants given or fitted online from measured (local smoothness, loss gap) pairs by
:func:`fit_smoothness_law`.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import numpy as np

from preheat.adaptive.base import Controller, ControllerState, Proposal, within
from preheat.schedules.validate import check_int, check_real

if TYPE_CHECKING:
    from typing import Unpack

    from preheat.adaptive.base import BoundsKeywords

#: The smallest spread of ``log(gap)`` over the pairs that lets the fit see an exponent
#: (``log 1.5``: the largest gap at least 1.5 times the smallest).
MIN_LOG_SPREAD = math.log(1.5)
#: Pairs with a smoothness or gap above this are left out of the fit (far beyond any real
#: measurement; it keeps every step of the fit finite).
LARGEST = 1e300
#: Fits whose check loss is within this fraction of the best count as ties; among ties the
#: largest K0 wins (the most conservative extrapolation to small gaps).
TIE = 0.05


@dataclass
class SmoothnessState(ControllerState):
    """:class:`SmoothnessWarmup`'s state: the loss EMA, the ``(smoothness, gap)`` pairs of the
    last ``window`` updates, the last ``guard`` smoothness measurements, the last fit
    ``(rho, K0, K_rho)`` and the updates since it."""

    ema: float | None = None
    pairs: list[tuple[float, float]] = field(default_factory=list, metadata=within(0.0, low_open=True))
    recent: list[float] = field(default_factory=list, metadata=within(0.0, low_open=True))
    fit: tuple[float, float, float] | None = field(default=None, metadata=within(0.0))
    since_fit: int = 0


class SmoothnessWarmup(Controller):
    """``eta_t = min(eta_peak, c / (K0 + K_rho (L_t - L*)^rho))``, multiplier ``eta_t / eta_peak``.

    ``L_t`` is an EMA of the training loss, ``L_t = (1 - alpha) L_{t-1} + alpha loss_t`` with
    ``L_0 = loss_0`` (``alpha=1``: no smoothing); the gap ``max(L_t - L*, 0)`` uses the given
    ``L* = f_star`` (default 0, right for losses bounded below by 0 such as cross-entropy; a
    loss whose infimum is elsewhere needs its own ``f_star``). While the loss falls, the EMA
    lags above it, which errs towards a smaller LR. ``eta_peak`` is the scheduler's peak LR
    (``peak_lr``): the constants are in the loss's own units, the LR is absolute.

    ``c`` (default 1) is the stability constant: gradient descent on an ``S``-smooth function is
    stable for ``eta < 2 / S`` and decreases the loss by at least ``eta ||g||^2 / 2`` for
    ``eta <= 1 / S``; ``c = 1`` is half the stability limit (the classic ``1 / L`` step), and
    ``c`` must stay below 2.

    **Constants given** (``rho``, ``K0``, ``K_rho`` all set): exactly the rule above, from the
    first loss on (``growth`` unlimited unless given). Needs only ``loss``; if the loop passes
    ``smoothness`` too, the measurement guard below applies as well. The rule is a function of
    the loss, so after a NaN/inf backoff the next finite loss brings the law's value back
    (limit that with ``growth`` or ``max_step``).

    **Constants fitted** (all three left ``None``): ``needs = {"smoothness": 1}``: after each
    update the loop passes ``smoothness = ||g_t - g_{t-1}|| / ||theta_t - theta_{t-1}||``, the
    local smoothness between the last two iterates (from full-batch or same-batch gradients;
    gradients of different batches add their noise to it), and leaves it out when it has none
    (update 0). Each pair ``(smoothness_t, loss_t - L*)`` with both positive is kept (the last
    ``window``); every ``refit_every`` updates, once ``min_pairs`` exist,
    :func:`fit_smoothness_law` refits ``(rho, K0, K_rho)``: a quantile regression at level
    ``envelope`` in log-log with K0 profiled and ``rho <= max_rho`` (see there). ``envelope``
    defaults to 0.9, an upper envelope of the pairs, because the law bounds ``||Hess f||``
    while the measured smoothness is its value along one direction only, often far below it
    (on the river valley, sliding down the river measures ~0.02 where the walls' curvature
    is ~30). Two guards make the extrapolated law safe to follow:

    - the multiplier is at most ``max(c / (S_max eta_peak), initial)``, ``S_max`` the largest
      of the last ``guard`` measurements: a measurement above the law wins at once, before the
      next refit (``guard=0`` turns this off). It never pulls the multiplier below
      ``initial`` (the law itself may): a smoothness measured from gradients of *different*
      batches is mostly gradient noise over the step length, which grows as the LR shrinks,
      and would otherwise drive the LR to 0;
    - a raise multiplies the LR by at most ``growth`` (default 1.1) per update.

    **Fallback** while no fit exists (fewer than ``min_pairs`` pairs, gaps too alike to show an
    exponent): a slow linear warmup, each update adding ``(1 - initial) / fallback_steps`` to
    the multiplier (without backoffs, ``linear_warmup(fallback_steps, start=initial)``), capped
    by the measurements as above. The reason says so.

    Update 0 gets ``initial`` (default 0.01): before the first loss nothing is known. The
    warmup hands over to ``after`` once the multiplier reaches ``handover_at`` (default 0.99:
    the rule tends to the peak only as the gap tends to 0, unless ``c / K0 > eta_peak``), or
    at update ``total``.

    Args:
        total: the latest update at which the warmup hands over.
        rho, K0, K_rho: the smoothness constants (``rho > 0``, ``K0, K_rho >= 0``); all three,
            or none to fit them online.
        c: the stability constant, in ``(0, 2)``; default 1.
        f_star: ``L*``, the loss's infimum; default 0.
        alpha: EMA weight of the newest loss, in ``(0, 1]``; default 0.1.
        initial: update 0's multiplier and the fallback's start, in ``(0, 1]``; default 0.01.
        growth: the largest factor one update raises the multiplier by, > 1; default 1.1 when
            fitting, unlimited (``None``) with given constants.
        fallback_steps: the fallback's length in updates (>= 1); default 1000.
        min_pairs: pairs needed before the first fit (>= 3); default 20.
        window: pairs kept for the fit (>= ``min_pairs``); default 200.
        refit_every: updates between fits (>= 1); default 10.
        envelope: the quantile level of the fit, in ``(0, 1)``; default 0.9.
        k0_quantile: K0 is searched up to this quantile of the measured smoothness, in
            ``[0, 1)``; default 0.5.
        max_rho: the largest exponent the fit may find, > 0; default 2.
        guard: how many recent smoothness measurements cap the LR directly (>= 0); default 10.
        handover_at: the multiplier at which the warmup ends, in ``(0, 1]``; default 0.99.
        after, floor, max_step, backoff: see :class:`~preheat.adaptive.base.Bounds`.

    Raises:
        ValueError: naming the argument, its value and what is valid.
    """

    name: ClassVar[str] = "smoothness_warmup"
    State = SmoothnessState
    state: SmoothnessState

    def __init__(
        self,
        total: int,
        *,
        rho: float | None = None,
        K0: float | None = None,
        K_rho: float | None = None,
        c: float = 1.0,
        f_star: float = 0.0,
        alpha: float = 0.1,
        initial: float = 0.01,
        growth: float | None = None,
        fallback_steps: int = 1000,
        min_pairs: int = 20,
        window: int = 200,
        refit_every: int = 10,
        envelope: float = 0.9,
        k0_quantile: float = 0.5,
        max_rho: float = 2.0,
        guard: int = 10,
        handover_at: float = 0.99,
        **bounds: Unpack[BoundsKeywords],
    ) -> None:
        owner = self.name
        given = [v is not None for v in (rho, K0, K_rho)]
        if any(given) and not all(given):
            raise ValueError(
                f"{owner}: rho={rho!r}, K0={K0!r}, K_rho={K_rho!r} is invalid; expected all "
                "three (fixed constants) or none (fitted online from smoothness measurements)"
            )
        self.fixed = all(given)
        if self.fixed:
            self.rho: float | None = check_real(owner, "rho", rho, 0.0, low_open=True)
            self.K0: float | None = check_real(owner, "K0", K0, 0.0)
            self.K_rho: float | None = check_real(owner, "K_rho", K_rho, 0.0)
        else:
            self.rho = self.K0 = self.K_rho = None
            self.needs = {"smoothness": 1}
        self.c = check_real(owner, "c", c, 0.0, 2.0, low_open=True, high_open=True)
        self.f_star = check_real(owner, "f_star", f_star)
        self.alpha = check_real(owner, "alpha", alpha, 0.0, 1.0, low_open=True)
        self.initial = check_real(owner, "initial", initial, 0.0, 1.0, low_open=True)
        if growth is None:
            self.growth = math.inf if self.fixed else 1.1
        else:
            self.growth = check_real(owner, "growth", growth, 1.0, low_open=True)
        self.fallback_steps = check_int(owner, "fallback_steps", fallback_steps, minimum=1)
        self.min_pairs = check_int(owner, "min_pairs", min_pairs, minimum=3)
        self.window = check_int(owner, "window", window, minimum=self.min_pairs)
        self.refit_every = check_int(owner, "refit_every", refit_every, minimum=1)
        self.envelope = check_real(owner, "envelope", envelope, 0.0, 1.0, low_open=True, high_open=True)
        self.k0_quantile = check_real(owner, "k0_quantile", k0_quantile, 0.0, 1.0, high_open=True)
        self.max_rho = check_real(owner, "max_rho", max_rho, 0.0, low_open=True)
        self.guard = check_int(owner, "guard", guard, minimum=0)
        self.handover_at = check_real(owner, "handover_at", handover_at, 0.0, 1.0, low_open=True)
        super().__init__(total, **bounds)

    def start(self) -> float:
        """Update 0 gets ``initial``: no loss has been seen yet."""
        return self.initial

    # -- the rule ---------------------------------------------------------------------------

    def constants(self) -> tuple[float, float, float] | None:
        """``(rho, K0, K_rho)`` in use: the given ones, the last fit, or ``None`` (fallback)."""
        if self.fixed:
            return self.rho, self.K0, self.K_rho  # type: ignore[return-value]
        return self.state.fit

    @property
    def fit(self) -> tuple[float, float, float] | None:
        """``(rho, K0, K_rho)`` of the last successful online fit (``None`` before one)."""
        return self.state.fit

    def smoothness_at(self, gap: float) -> float:
        """``K0 + K_rho gap^rho`` with the constants in use (``nan`` when there are none)."""
        constants = self.constants()
        if constants is None:
            return math.nan
        rho, k0, k_rho = constants
        return k0 + (k_rho * _power(gap, rho) if k_rho > 0 else 0.0)

    def decide(self, signals: Mapping[str, float]) -> Proposal:
        if "loss" not in signals:
            return Proposal(self.current, "hold", "no loss signal")
        state, loss = self.state, signals["loss"]
        state.ema = loss if state.ema is None else (1.0 - self.alpha) * state.ema + self.alpha * loss
        if not math.isfinite(state.ema):  # overflow of huge finite losses: restart the average
            state.ema = loss
        gap = min(max(state.ema - self.f_star, 0.0), sys.float_info.max)  # ema - f_star may overflow
        evidence: dict[str, float] = {"loss": loss, "ema": state.ema, "gap": gap}
        if "smoothness" in signals:
            self._record(signals["smoothness"], loss - self.f_star)
            evidence["smoothness"] = signals["smoothness"]
        measured = max(state.recent) if state.recent else 0.0
        # what the recent measurements allow: c / S, but never below `initial` on their account
        product = measured * self.peak_lr  # underflows to 0 for denormal measurements
        guard = math.inf if product <= 0 else max(self.c / product, self.initial)
        constants = self.constants()
        done = False
        if constants is None:
            proposal = self.current + (1.0 - self.initial) / self.fallback_steps
            reason = (f"fallback linear warmup: {len(state.pairs)} smoothness pairs of "
                      f"{self.min_pairs} needed" if len(state.pairs) < self.min_pairs
                      else "fallback linear warmup: the pairs' gaps are too alike to fit a law")
            if guard < proposal:
                proposal = guard
                reason += f"; capped by the measured smoothness {measured:.4g}"
            evidence.update(pairs=float(len(state.pairs)), measured=measured)
        else:
            rho, k0, k_rho = constants
            law = self.smoothness_at(gap)
            eta = math.inf if law <= 0 else self.c / law
            proposal = min(1.0, eta / self.peak_lr)
            source = "given" if self.fixed else "fitted"
            reason = (f"c / (K0 + K_rho gap^rho), {source} rho={rho:.4g}, K0={k0:.4g}, "
                      f"K_rho={k_rho:.4g}, gap {gap:.4g}")
            if guard < proposal:
                proposal = guard
                reason += f"; capped by the measured smoothness {measured:.4g}, above the law's {law:.4g}"
            if proposal > self.growth * self.current:
                proposal = self.growth * self.current
                reason += f"; raise limited to x{self.growth}"
            evidence.update(rho=rho, K0=k0, K_rho=k_rho, law=min(law, 1e308), measured=measured,
                            eta=min(eta, 1e308))
            if not self.fixed:
                evidence["pairs"] = float(len(state.pairs))
            reachable = min(proposal, self.current + self.bounds.max_step)
            done = reachable >= self.handover_at
            if done:
                reason = f"reached {reachable:.4g} >= handover_at={self.handover_at}: " + reason
        action = "raise" if proposal > self.current else "lower" if proposal < self.current else "hold"
        return Proposal(proposal, action, reason, evidence, done)

    def _record(self, smoothness: float, gap: float) -> None:
        """Keep a measured (smoothness, gap) pair and refit when due."""
        state = self.state
        if smoothness > 0 and self.guard:
            state.recent = (state.recent + [smoothness])[-self.guard:]
        if self.fixed:
            return
        if smoothness > 0 and gap > 0:
            state.pairs = (state.pairs + [(smoothness, gap)])[-self.window:]
        state.since_fit += 1
        if len(state.pairs) >= self.min_pairs and (state.fit is None or state.since_fit >= self.refit_every):
            state.since_fit = 0
            data = np.asarray(state.pairs, dtype=np.float64)
            fitted = fit_smoothness_law(data[:, 0], data[:, 1], envelope=self.envelope,
                                        k0_quantile=self.k0_quantile, max_rho=self.max_rho)
            if fitted is not None:
                state.fit = fitted


def fit_smoothness_law(
    smoothness: Any,
    gap: Any,
    *,
    envelope: float = 0.5,
    k0_quantile: float = 0.5,
    max_rho: float = 2.0,
    grid: int = 10,
) -> tuple[float, float, float] | None:
    """Fit ``S = K0 + K_rho gap^rho`` to measured pairs robustly; ``(rho, K0, K_rho)`` or ``None``.

    Pairs with an ``S`` or gap that is not positive, not finite or above ``LARGEST = 1e300``
    are dropped (so no step of the fit overflows); ``x = log(gap)``.

    1. **Exponent and scale for a given K0**: with ``y = log(S - K0)`` over the pairs with
       ``S > K0``, a *quantile regression* of ``y`` on ``x`` at level ``tau = envelope``:
       ``(rho, log K_rho)`` minimise ``sum check_tau(y - log K_rho - rho x)``, with
       ``check_tau(r) = r (tau - [r < 0])``. At ``tau = 0.5`` this is least absolute
       deviations (median regression: a few wild pairs move it little, unlike least squares);
       at ``tau = 0.9`` the curve lies above 90% of the pairs, an upper envelope, which is
       what the (rho, K0, K_rho) law is (a bound on ``||Hess f||``), and what measurements of
       the smoothness along one direction (lower bounds of it) call for. For a given ``rho``
       the best ``log K_rho`` is the ``tau`` quantile of ``y - rho x``, so only ``rho`` is
       searched: on a grid over ``(0, max_rho]``, then a finer grid around the best.
    2. **K0 profiled**: the step above runs for ``K0`` on a grid over ``[0, q]``, ``q`` the
       ``k0_quantile`` quantile of ``S`` (default the median: with noisy measurements a low
       quantile of ``S`` can lie below the true ``K0``), then a finer grid around the best.
       The constant law ``S = K0``, ``K0`` the ``tau`` quantile of ``S`` (``K_rho = 0``,
       reported with ``rho = 1``), is a candidate too, for smoothness that does not grow
       with the gap. Each candidate is scored by the same check loss on
       ``log S - log(K0 + K_rho gap^rho)`` over all pairs (the original units, so candidates
       with different K0 compare fairly). Candidates within 5% of the best score are ties,
       and the largest K0 among them wins (it predicts the most smoothness, so the smallest
       LR, at gaps below those measured).

    ``rho`` is capped at ``max_rho`` (default 2): a steeper fitted law usually means the
    measurements mix directions of different curvature at similar gaps, and extrapolating it
    promises far too small a smoothness at smaller gaps. Returns ``None`` with fewer than 3
    usable pairs or when ``log(gap)`` spans less than ``log 1.5`` (no exponent can be seen).
    Cost: ``O(grid^2 n)`` for ``n`` pairs, a few milliseconds for 200.
    """
    s = np.asarray(smoothness, dtype=np.float64).ravel()
    g = np.asarray(gap, dtype=np.float64).ravel()
    usable = (s > 0) & (g > 0) & (s <= LARGEST) & (g <= LARGEST)  # NaN compares False
    s, g = s[usable], g[usable]
    if s.size < 3:
        return None
    x = np.log(g)
    if x.max() - x.min() < MIN_LOG_SPREAD:
        return None
    tau = envelope
    log_s = np.log(s)
    candidates: list[tuple[float, float, float, float]] = []  # (score, K0, rho, K_rho)

    def score(k0: float, rho: float, log_k: float) -> float:
        # log(K0 + K_rho gap^rho) = logaddexp(log K0, log K_rho + rho x): no exp of a large x
        log_k0 = math.log(k0) if k0 > 0 else -math.inf
        return float(_check(log_s - np.logaddexp(log_k0, log_k + rho * x), tau).mean())

    constant = float(np.quantile(s, tau))
    candidates.append((score(constant, 1.0, -math.inf), constant, 1.0, 0.0))

    def try_k0(k0: float) -> None:
        keep = s > k0 * (1.0 + 1e-9)
        if keep.sum() < 3:
            return
        xk, yk = x[keep], np.log(s[keep] - k0)
        rho, log_k = _quantile_line(xk, yk, tau, max_rho, grid)
        if not math.isfinite(log_k) or log_k > 700:
            return
        k_rho = math.exp(log_k)
        value = score(k0, rho, log_k)
        if math.isfinite(value):
            candidates.append((value, k0, rho, k_rho))

    top = float(np.quantile(s, k0_quantile))
    for k0 in np.linspace(0.0, top, grid):
        try_k0(float(k0))
    fitted = [c for c in candidates if c[3] > 0]
    if fitted and grid > 1:
        best_k0 = min(fitted, key=lambda c: c[0])[1]
        width = top / (grid - 1)
        for k0 in np.linspace(max(0.0, best_k0 - width), min(top, best_k0 + width), grid):
            try_k0(float(k0))
    best = min(c[0] for c in candidates)
    ties = [c for c in candidates if c[0] <= best * (1.0 + TIE) + 1e-12]
    _, k0, rho, k_rho = max(ties, key=lambda c: (c[1], -c[0]))
    return float(rho), float(k0), float(k_rho)


def _check(residual: np.ndarray, tau: float) -> np.ndarray:
    """The quantile (pinball) loss ``r (tau - [r < 0])``, elementwise."""
    return residual * (tau - (residual < 0))


def _quantile_line(x: np.ndarray, y: np.ndarray, tau: float, max_rho: float, grid: int) -> tuple[float, float]:
    """``(slope, intercept)`` of the ``tau`` quantile regression of ``y`` on ``x``, slope in ``(0, max_rho]``.

    The check loss is convex in the slope once the intercept is profiled out (the ``tau``
    quantile of ``y - slope x``), so a coarse grid then a fine grid around its best point
    finds the minimum to within ``max_rho / (4 grid^2)``.
    """
    def best_of(slopes: np.ndarray) -> tuple[float, float, float]:
        residual = y[None, :] - slopes[:, None] * x[None, :]
        intercepts = np.quantile(residual, tau, axis=1)
        losses = _check(residual - intercepts[:, None], tau).sum(axis=1)
        k = int(np.argmin(losses))
        return float(losses[k]), float(slopes[k]), float(intercepts[k])

    coarse_n = 4 * grid
    step = max_rho / coarse_n
    _, slope, _ = best_of(np.linspace(step, max_rho, coarse_n))
    fine = np.linspace(max(step / grid, slope - step), min(max_rho, slope + step), 2 * grid + 1)
    _, slope, intercept = best_of(fine)
    return slope, intercept


def _power(base: float, exponent: float) -> float:
    """``base ** exponent`` for ``base >= 0``, ``inf`` on overflow."""
    try:
        return base ** exponent
    except OverflowError:
        return math.inf
