"""AutoWU (Kim et al. 2021): an exponential warmup that stops where the smoothed loss stopped falling.

Kim, Kim, Kim, Lee & Kim, "Automated Learning Rate Scheduler for Large-batch Training" (8th
ICML Workshop on AutoML, 2021; arXiv:2107.05855; code: github.com/kakaobrain/autowu). The LR
rises exponentially from a small value, like an LR range test run inside the real training.
Periodically a Gaussian process (GP) smooths the training loss seen so far and tests whether
its minimum lies in the past with high probability; after a few tests in a row say so, the
warmup ends, the LR is reset to the one in use where the smoothed loss was lowest, and a decay
schedule takes over. :class:`AutoWUWarmup` is that rule as a controller; the GP is a fixed-
lengthscale RBF regression, a few small linear solves in NumPy (:func:`gp_minimum_test`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import numpy as np

from preheat.adaptive.base import Controller, ControllerState, Proposal, rule
from preheat.schedules.validate import check_int, check_real

if TYPE_CHECKING:
    from typing import Unpack

    from preheat.adaptive.base import BoundsKeywords

#: Losses the GP's hyperparameters (output scale and noise) are fitted on, at most (the
#: authors' code fits them on a subsample of 100).
FIT_POINTS = 100
#: Where the posterior is evaluated: this many evenly spaced points on ``[0, 1]`` (as in the code).
GRID = 500
#: Added to the variance of each difference ``f(x_i) - f(1)``, in units of the losses' variance
#: (the code adds 1e-4 in the loss's own units), so a near-certain posterior stays finite.
JITTER = 1e-4
#: The noise-to-signal variance ratios the marginal likelihood is maximised over.
NOISE_RATIOS = np.logspace(-6.0, 4.0, 81)


def _losses_rule(value: list[float], controller: Any, state: Any) -> str | None:
    limit = min(state.observed, controller.warmup)
    return None if len(value) <= limit else f"at most min(observed, warmup) = {limit} losses"


def _rates_rule(value: list[float], controller: Any, state: Any) -> str | None:
    if len(value) != len(state.losses):
        return f"one multiplier per recorded loss: {len(state.losses)} numbers"
    if any(not 0.0 <= rate <= 1.0 for rate in value):
        return "multipliers in [0, 1]"
    return None


def _passes_rule(value: int, controller: Any, state: Any) -> str | None:
    return None if value <= controller.patience else f"an integer in [0, patience] = [0, {controller.patience}]"


@dataclass
class AutoWUState(ControllerState):
    """:class:`AutoWUWarmup`'s state: every finite loss seen during warmup with the multiplier
    it was taken at (the GP's data; at most ``warmup`` of each), and how many GP tests in a row
    have passed."""

    losses: list[float] = field(default_factory=list, metadata=rule(_losses_rule))
    rates: list[float] = field(default_factory=list, metadata=rule(_rates_rule))
    passes: int = field(default=0, metadata=rule(_passes_rule))


class AutoWUWarmup(Controller):
    """Exponential warmup ``m_t = initial * gamma^t``, ``gamma = (1 / initial)^(1 / warmup)``,
    ended by a GP test of the training loss; then ``m_t = m_reset * after(t - h)``.

    **Ramp.** Update 0 gets ``initial`` (default 1e-3, a multiplier of the peak LR; the
    authors' code starts at the absolute ``min_lr = 1e-5`` below ``max_lr = 1.0``, i.e.
    ``initial = min_lr / peak_lr``). Each update whose loss is finite multiplies the
    multiplier by ``gamma``, so without backoffs update ``t`` gets exactly
    ``initial^(1 - t / warmup)`` and update ``warmup`` the peak, 1. A NaN/inf signal cuts the
    multiplier by ``backoff`` and the ramp goes on from the cut value (as does an update
    without a loss, which holds): each of those postpones the peak.

    **GP test** (:func:`gp_minimum_test`), when the ``n``-th finite loss has been recorded and
    ``n`` is a multiple of ``interval`` and at least ``min_points``: the losses
    ``y_0 .. y_{n-1}`` are placed at ``x_i = i / (n - 1)`` and regressed with a GP, an RBF
    kernel of ``lengthscale`` (default 0.2, fixed as in the paper) plus Gaussian noise, the
    output scale and the noise by maximum marginal likelihood. ``draws`` (default 5) draws
    each condition it on at most ``points`` (default 500) losses subsampled without
    replacement, and each votes "the loss stopped falling" when
    ``max_i P(f(x_i) < f(1)) > confidence`` (default 0.95) under its posterior, ``x_i`` on a
    grid of 500 points: some earlier point is very probably lower than the latest. The test
    passes on a strict majority of votes. With at most ``points`` losses every draw is the
    whole history, so the votes are unanimous (as in the authors' code). The draws' random
    numbers come from ``(seed, n)``, so every rank and every resumed run draws the same.

    **Handover.** After ``patience`` (default 3) passed tests in a row the warmup ends: the
    multiplier is reset to ``m_reset``, the multiplier in use at the update where the
    posterior mean of the smoothed loss is lowest (the mean over the draws of that multiplier,
    never above the current one), and from then on update ``t`` gets ``m_reset * after(t - h)``
    with ``h`` the handover update: the ``after`` schedule, scaled so that it starts from the
    chosen LR instead of the peak (``after="cosine_decay({steps})"`` decays it to 0 by the end,
    as the paper does). Otherwise the warmup ends at update ``warmup`` (default ``total // 2``,
    the paper's maximum warmup fraction 0.5), where the ramp reached the peak, and ``m_reset``
    is the multiplier reached (1 without backoffs); if that update's loss was NaN/inf or
    missing, at the next finite loss (or at ``total``). ``max_step`` and ``floor`` bound the
    reset as any warmup change. After ``total`` updates the ``after`` schedule holds its last
    value (see :class:`~preheat.schedules.Schedule`).

    **Assumptions.** The loss is comparable across updates (one training objective; a noisy
    mini-batch loss is what the GP is for); the run's LR sensitivity spans less than
    ``1 / initial`` (the ramp can only find an LR between ``initial`` and 1 times the peak, so
    the peak is an upper bound of the search, not a tuned value). Signals are all-reduced
    before :meth:`observe`, so every rank decides the same.

    **Differences from the paper and the authors' code.** Tests run every ``interval``
    updates (default ``max(1, total // 100)``: the code's ImageNet script tests once per epoch
    of a 120-epoch run) instead of once per epoch, and not before ``min_points`` losses (the
    code's first test has a whole epoch of them). The output scale and noise are the exact
    maximum of the marginal likelihood (a grid over the noise ratio, the scale in closed form)
    on at most 100 losses, refitted at every test, with the mean fixed at the losses' mean;
    the code runs 100 Adam steps on those and the mean per test, carrying them over from test
    to test. ``x`` runs to the latest loss (the code's ``i / n`` ends one update short of its
    test point ``x = 1``). The difference jitter is relative to the losses' variance.
    ``m_reset`` is looked up from the multipliers actually used, not recomputed from the
    ramp's formula. NaN/inf losses back off (the code has no backoff; it only leaves them out
    of the GP, as here). The decay is any ``after`` schedule (the code offers cosine or
    constant-then-cosine).

    Args:
        total: the run's length in updates (>= 1); ``after`` gets ``{steps} = total - h``.
        warmup: ``T_w``, the ramp's length and the latest handover, in updates, in
            ``[1, total]``; default ``max(1, total // 2)``.
        initial: update 0's multiplier, in ``(0, 1]``; default 1e-3.
        interval: updates (with a finite loss) between two GP tests (>= 1); default
            ``max(1, total // 100)``.
        patience: passed tests in a row that end the warmup (>= 1); default 3.
        draws: subsample draws per test, each with a vote (>= 1); default 5.
        confidence: the probability above which a draw votes "stopped", in ``(0.5, 1)``;
            default 0.95.
        lengthscale: the RBF kernel's lengthscale on ``x`` in ``[0, 1]``, > 0; default 0.2.
        points: the most losses one draw conditions on (>= ``min_points``); default 500.
        min_points: losses needed before the first test (>= 3); default 20.
        seed: the seed of the draws (an integer >= 0); default 0.
        after, floor, max_step, backoff: see :class:`~preheat.adaptive.base.Bounds`.

    Raises:
        ValueError: naming the argument, its value and what is valid.
    """

    name: ClassVar[str] = "autowu_warmup"
    scale_after: ClassVar[bool] = True
    State = AutoWUState
    state: AutoWUState

    def __init__(
        self,
        total: int,
        *,
        warmup: int | None = None,
        initial: float = 1e-3,
        interval: int | None = None,
        patience: int = 3,
        draws: int = 5,
        confidence: float = 0.95,
        lengthscale: float = 0.2,
        points: int = 500,
        min_points: int = 20,
        seed: int = 0,
        **bounds: Unpack[BoundsKeywords],
    ) -> None:
        owner = self.name
        total = check_int(owner, "total", total, minimum=1)
        self.warmup = max(1, total // 2) if warmup is None else check_int(owner, "warmup", warmup, 1, total)
        self.initial = check_real(owner, "initial", initial, 0.0, 1.0, low_open=True)
        self.interval = max(1, total // 100) if interval is None else check_int(owner, "interval", interval, 1)
        self.patience = check_int(owner, "patience", patience, minimum=1)
        self.draws = check_int(owner, "draws", draws, minimum=1)
        self.confidence = check_real(owner, "confidence", confidence, 0.5, 1.0, low_open=True, high_open=True)
        self.lengthscale = check_real(owner, "lengthscale", lengthscale, 0.0, low_open=True)
        self.min_points = check_int(owner, "min_points", min_points, minimum=3)
        self.points = check_int(owner, "points", points, minimum=self.min_points)
        self.seed = check_int(owner, "seed", seed, minimum=0)
        self.gamma = (1.0 / self.initial) ** (1.0 / self.warmup)
        super().__init__(total, **bounds)

    def start(self) -> float:
        """Update 0 gets ``initial`` (within ``[floor, 1]``)."""
        return self.initial

    def ramp(self, t: int) -> float:
        """The ramp without backoffs: ``initial^(1 - min(t, warmup) / warmup)`` (exactly 1 at ``warmup``)."""
        return self.initial ** (1.0 - min(t, self.warmup) / self.warmup)

    def decide(self, signals: Mapping[str, float]) -> Proposal:
        state = self.state
        if "loss" not in signals:
            return Proposal(state.current, "hold", "no loss signal: the ramp waits")
        t, loss, current = state.observed, signals["loss"], state.current
        state.losses.append(loss)
        state.rates.append(current)
        n = len(state.losses)
        # current * gamma, written so that an undisturbed ramp gives exactly ramp(t + 1)
        ramp = min(1.0, current / self.ramp(t) * self.ramp(t + 1))
        evidence: dict[str, float] = {"loss": loss, "ramp": ramp, "gamma": self.gamma, "losses": float(n)}
        if n >= self.min_points and n % self.interval == 0:
            test = gp_minimum_test(state.losses, state.rates, draws=self.draws, points=self.points,
                                   confidence=self.confidence, lengthscale=self.lengthscale,
                                   seed=(self.seed, n))
            state.passes = state.passes + 1 if test["passed"] else 0
            evidence.update(test, passes=float(state.passes))
            verdict = (f"GP test at {n} losses: {test['votes']:.0f}/{self.draws} draws put an earlier "
                       f"smoothed loss below the latest with P > {self.confidence} (max P "
                       f"{test['probability']:.4g}); {state.passes}/{self.patience} passed in a row")
            if state.passes >= self.patience:
                reset = min(test["reset"], current)
                evidence["reset"] = reset
                return Proposal(reset, "lower" if reset < current else "hold",
                                f"{verdict}: the loss stopped falling; LR reset to the GP minimum's, "
                                f"{reset:.4g} of the peak (update {test['argmin_update']:.0f})", evidence, done=True)
        else:
            evidence["passes"] = float(state.passes)
            verdict = f"exponential ramp x{self.gamma:.4g}"
        if t + 1 >= self.warmup:
            return Proposal(ramp, "raise" if ramp > current else "hold",
                            f"{verdict}; the ramp reached warmup={self.warmup} updates", evidence, done=True)
        return Proposal(ramp, "raise" if ramp > current else "hold", verdict, evidence)


def gp_minimum_test(
    losses: Any,
    rates: Any,
    *,
    draws: int = 5,
    points: int = 500,
    confidence: float = 0.95,
    lengthscale: float = 0.2,
    seed: Any = 0,
) -> dict[str, float]:
    """AutoWU's test: is the GP-smoothed minimum of ``losses`` very probably in the past?

    ``losses`` (finite, in order) sit at ``x_i = i / (n - 1)`` and are standardised (scaled by
    their largest magnitude first, so no step overflows). The GP is ``f ~ GP(0, s k)`` with
    ``k(x, x') = exp(-(x - x')^2 / (2 lengthscale^2))`` and noise variance ``s r``: on at most
    ``FIT_POINTS`` losses, ``r`` maximises the marginal likelihood over ``NOISE_RATIOS`` with
    ``s`` in closed form (``s = mean(z_j^2 / (lambda_j + r))``, ``lambda, U`` the eigenpairs of
    the kernel matrix and ``z = U^T y``). Then ``draws`` times, on at most ``points`` losses
    drawn without replacement (all of them when there are no more): the posterior of ``f`` on
    ``GRID`` points ``g_0 = 0 .. g_last = 1``, and ``P = max_i Phi((mu_last - mu_i) / sd_i)``,
    ``sd_i^2 = Var f(g_i) + Var f(1) - 2 Cov(f(g_i), f(1)) + JITTER``; a vote when
    ``P > confidence``. The ``rates`` (one multiplier per loss) give the reset: the multiplier
    at the loss nearest the posterior mean's argmin, averaged over the draws.

    ``seed`` seeds ``numpy.random.default_rng`` (an int or a sequence of ints). Losses that
    are constant to 12 digits cannot show a minimum: the test fails with ``P = 0.5``.

    Returns:
        ``passed`` (1.0 on a strict majority of votes, else 0.0), ``votes``, ``probability``
        (the mean over the draws of ``P``), ``argmin_update`` (the mean loss index of the
        argmin), ``reset`` (the multiplier there), ``noise_ratio`` (``r``) and ``points``
        (losses per draw).
    """
    y = np.asarray(losses, dtype=np.float64)
    rate = np.asarray(rates, dtype=np.float64)
    n = y.size
    rng = np.random.default_rng(seed)
    top = float(np.abs(y).max()) if n else 0.0
    y = y / top if top > 0 else y
    spread = float(y.std()) if n else 0.0
    if n < 3 or spread <= 1e-12:
        last = float(rate[-1]) if n else 1.0
        return {"passed": 0.0, "votes": 0.0, "probability": 0.5, "argmin_update": float(max(n - 1, 0)),
                "reset": last, "noise_ratio": math.inf, "points": float(n)}
    y = (y - y.mean()) / spread
    x = np.arange(n, dtype=np.float64) / (n - 1)
    fit = _subsample(rng, n, FIT_POINTS)
    scale, ratio = _fit_scale_and_noise(x[fit], y[fit], lengthscale)
    grid = np.linspace(0.0, 1.0, GRID)
    repeats = draws if n > points else 1  # with every loss in each draw, the draws agree
    probabilities, argmins = [], []
    for _ in range(repeats):
        chosen = _subsample(rng, n, points)
        probability, argmin = _past_minimum(x[chosen], y[chosen], grid, scale, ratio, lengthscale)
        probabilities.append(probability)
        argmins.append(int(round(argmin * (n - 1))))
    votes = sum(p > confidence for p in probabilities) * (draws // repeats)
    return {
        "passed": float(votes > draws / 2),
        "votes": float(votes),
        "probability": float(np.mean(probabilities)),
        "argmin_update": float(np.mean(argmins)),
        "reset": float(np.mean(rate[argmins])),
        "noise_ratio": float(ratio),
        "points": float(min(n, points)),
    }


def _subsample(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``size`` sorted indices of ``range(n)`` without replacement (all of them when ``n <= size``)."""
    if n <= size:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))


def _rbf(a: np.ndarray, b: np.ndarray, lengthscale: float) -> np.ndarray:
    return np.exp(-0.5 * ((a[:, None] - b[None, :]) / lengthscale) ** 2)


def _fit_scale_and_noise(x: np.ndarray, y: np.ndarray, lengthscale: float) -> tuple[float, float]:
    """``(s, r)`` maximising the GP marginal likelihood of ``y`` under ``s (k + r I)``."""
    eigenvalues, vectors = np.linalg.eigh(_rbf(x, x, lengthscale))
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    z2 = (vectors.T @ y) ** 2
    total = eigenvalues[None, :] + NOISE_RATIOS[:, None]
    scales = np.maximum((z2[None, :] / total).mean(axis=1), 1e-300)
    nll = y.size * np.log(scales) + np.log(total).sum(axis=1)
    best = int(np.argmin(nll))
    return float(scales[best]), float(NOISE_RATIOS[best])


def _past_minimum(x: np.ndarray, y: np.ndarray, grid: np.ndarray, scale: float, ratio: float,
                  lengthscale: float) -> tuple[float, float]:
    """``(max_i P(f(g_i) < f(1)), argmin of the posterior mean on the grid)`` given data ``(x, y)``."""
    chol = np.linalg.cholesky(_rbf(x, x, lengthscale) + ratio * np.eye(x.size))
    cross = _rbf(grid, x, lengthscale)  # (grid, data)
    v = np.linalg.solve(chol, cross.T)  # L^-1 k(X, g)
    mean = v.T @ np.linalg.solve(chol, y)
    var = scale * np.maximum(1.0 - (v * v).sum(axis=0), 0.0)
    cov = scale * (_rbf(grid, grid[-1:], lengthscale)[:, 0] - v.T @ v[:, -1])
    spread = np.sqrt(np.maximum(var + var[-1] - 2.0 * cov, 0.0) + JITTER)
    z = float(np.max((mean[-1] - mean[:-1]) / spread[:-1]))
    return 0.5 * math.erfc(-z / math.sqrt(2.0)), float(grid[int(np.argmin(mean))])
