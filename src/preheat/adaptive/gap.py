"""Loss-gap warmup (Riabinin et al. 2026): the LR is a rational function of the loss gap.

Riabinin, Veprikov, Bolatov, Takáč & Beznosikov, "Where Does Warm-Up Come From? Adaptive
Scheduling for Norm-Constrained Optimizers" (arXiv:2602.05813, 2026), assume that the local
smoothness of ``f`` in the optimizer's norm shrinks with the gap ``Delta = f(x) - f*``; the step
their convergence proof allows is then::

    eta(Delta) = Delta / (K0 + K1 Delta + K2 Delta^2)

which is small at the large gap of the first updates, peaks, and falls again as ``Delta -> 0``:
warmup followed by decay. Their practical scheduler (code: ``brain-lab-research/LLM-baselines``,
branch ``warmup``, ``src/optim/lipschitz_scheduler.py`` and ``lipschitz_computeK.py``) fits the
three constants once, from the first loss, so that the rule rises from ``eta_max / div`` to
``eta_max`` and then hands over to an ordinary decay. :class:`GapWarmup` is that scheduler;
:func:`fit_gap_law` is its fit, :func:`norm_ratio` the optimizer-geometry constant it weights the
fit with.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Mapping

import numpy as np

from preheat.adaptive.base import Controller, ControllerState, Proposal, rule, within
from preheat.schedules.validate import check_real

if TYPE_CHECKING:
    from typing import Unpack

    from preheat.adaptive.base import BoundsKeywords

#: The smallest gap (``Delta = max(loss - f*, EPSILON)``), as in their scheduler.
EPSILON = 1e-8
#: How many candidate ``Delta*`` the fit scans, evenly from ``MARGIN`` to ``Delta0 - MARGIN``.
GRID = 500
#: The candidates' distance from 0 and from ``Delta0``, in the loss's units (theirs).
MARGIN = 0.01
#: The ways of choosing ``Delta*`` (their ``mode`` names).
MODES = ("linear_and_cos", "func_prime")
#: The norm geometries of :func:`norm_ratio` and the optimizers they belong to.
GEOMETRIES = {"spectral": "Muon", "sign": "Lion, signSGD", "frobenius": "normalized SGD"}

_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(8)
_UNIFORM_PANELS = 128  # per side of Delta*
_NEAR_PANELS = 32  # within 12 standard deviations of the weight, per side


@dataclass
class GapFit:
    """What the fit from the first loss keeps: the first loss's gap ``delta0``, the peak gap
    ``delta_star`` (``0 < delta_star < delta0``), ``div`` and the peak LR at the fit
    ``peak_lr``. The constants of ``eta(Delta) = Delta / (K0 + K1 Delta + K2 Delta^2)`` (absolute
    LR units for ``peak_lr``) follow from them exactly: :attr:`K0`, :attr:`K1`, :attr:`K2`."""

    delta0: float = field(metadata=within(0.0, low_open=True))
    delta_star: float = field(metadata=within(0.0, low_open=True))
    div: float = field(metadata=within(1.0, low_open=True))
    peak_lr: float = field(metadata=within(0.0, low_open=True))

    @property
    def curvature(self) -> float:
        """``peak_lr K2 = delta0 (div - 1) / (delta0 - delta_star)^2``, free of the LR (computed
        as a product of two ratios, so it does not overflow)."""
        left = self.delta0 - self.delta_star
        return (self.delta0 / left) * ((self.div - 1.0) / left)

    @property
    def K2(self) -> float:
        """``delta0 (div - 1) / (peak_lr (delta0 - delta_star)^2)``."""
        return self.curvature / self.peak_lr

    @property
    def K0(self) -> float:
        """``K2 delta_star^2``: ``eta'(delta_star) = 0``."""
        return self.K2 * self.delta_star**2

    @property
    def K1(self) -> float:
        """``1 / peak_lr - 2 K2 delta_star``: ``eta(delta_star) = peak_lr``."""
        return 1.0 / self.peak_lr - 2.0 * self.K2 * self.delta_star

    def multiplier(self, gap: float) -> float:
        """``eta(gap) / peak_lr``, in ``[0, 1]`` (0 for a gap that is not positive, or infinite).

        With ``K0 = K2 Delta*^2`` and ``K1 = 1/peak_lr - 2 K2 Delta*`` the denominator is
        ``gap / peak_lr + K2 d^2``, ``d = gap - Delta*``, so the multiplier is
        ``1 / (1 + peak_lr K2 d (d / gap))``: computed so, without the cancellation of the three
        terms (``K1 < 0`` unless ``Delta*`` is tiny) and without overflow for huge gaps."""
        if not 0 < gap < math.inf:
            return 0.0
        distance = gap - self.delta_star
        return min(1.0, 1.0 / (1.0 + self.curvature * distance * (distance / gap)))


def _fit_fits(value: GapFit | None, controller: Controller, state: Any) -> str | None:
    div = getattr(controller, "div", None)
    if value is None or (value.delta_star < value.delta0 and value.div == div):
        return None
    return f"None or a fit with delta_star < delta0 and div = the controller's div ({div})"


@dataclass
class GapState(ControllerState):
    """:class:`GapWarmup`'s state: the fit from the first finite loss, ``(delta0, delta_star,
    div, peak_lr)``, from which ``K0, K1, K2`` follow exactly (``None`` before that loss, and
    when it was too close to ``f_star`` to fit)."""

    fit: GapFit | None = field(default=None, metadata=rule(_fit_fits))


class GapWarmup(Controller):
    """``eta_t = eta(Delta_t) = Delta_t / (K0 + K1 Delta_t + K2 Delta_t^2)``, multiplier ``eta_t / eta_max``.

    **Signal.** ``loss``: the training loss of the update just taken (one batch, no averaging,
    as theirs), ``Delta_t = max(loss_t - f_star, 1e-8)``. ``f_star`` is the loss the run could
    reach, in the loss's units (their LLM scripts use 3.2 to 3.6 for FineWeb cross-entropy).
    ``eta_max`` is the scheduler's peak LR (``peak_lr``).

    **The fit, once, from the first finite loss** (gap ``Delta0``), by :func:`fit_gap_law`: for
    a candidate peak gap ``Delta*``::

        K2 = Delta0 (div - 1) / (eta_max (Delta0 - Delta*)^2)
        K0 = K2 Delta*^2
        K1 = 1 / eta_max - 2 K2 Delta*

    so that ``eta(Delta*) = eta_max``, ``eta'(Delta*) = 0`` and ``eta(Delta0) = eta_max / div``;
    equivalently ``eta(Delta) / eta_max = Delta / (Delta + eta_max K2 (Delta - Delta*)^2)``, which
    lies in ``(0, 1]`` and does not depend on ``eta_max``. ``Delta*`` is the best of 500 candidates
    ``linspace(0.01, Delta0 - 0.01, 500)`` by ``mode`` (both theirs):

    - ``"linear_and_cos"`` (default; what all their published runs use): the weighted mean squared
      distance over ``[0, Delta0]`` between ``eta`` and a target that rises as a half cosine from
      0 at ``Delta = 0`` to ``eta_max`` at ``Delta*`` and falls linearly to ``eta_max / div`` at
      ``Delta0``: read from ``Delta0`` down, a linear warmup then a cosine decay;
    - ``"func_prime"`` (their class's default argument): the weighted mean over
      ``[Delta*, Delta0]`` of ``|eta - lin| + |eta' - lin'|``, ``lin`` the line from
      ``(Delta*, eta_max)`` to ``(Delta0, eta_max / div)``: a linear warmup in value and slope.

    The weight is ``w(Delta) = exp(-(Delta - Delta*)^2 kappa sigma_f / 2)``, their Gaussian around
    the candidate; ``kappa`` is the optimizer's norm ratio ``sup ||v||_* / ||v||`` over the
    model's matrices (:func:`norm_ratio`; their code computes it from the optimizer's 2-D
    parameters). ``kappa=None`` (default) weighs every gap the same (``w = 1``, the limit
    ``kappa -> 0``): preheat does not see the model. Give ``kappa`` to reproduce their choice of
    ``Delta*`` for a given model and optimizer.

    **Update 0** gets ``1 / div`` (no loss seen yet): the value the fitted rule gives at
    ``Delta0`` (theirs runs update 0 at the optimizer's base LR, ``eta_max``, before any loss).
    After update ``t``: the first finite loss fits the constants; then ``eta(Delta_t) / eta_max``,
    within the bounds. **Handover** (the warmup ends for good and ``after`` runs, ``{steps}`` the
    updates left) at the first update whose ``Delta_t <= Delta*`` (the LR has reached the peak;
    with ``max_step < 1`` it first climbs to 1 in steps of ``max_step``), at once when the first
    loss's gap is below ``2 * 0.01`` (no candidate ``Delta*`` lies between the margins: the loss
    is already at ``f_star``, nothing to warm up), or at ``total``. Theirs then decays by cosine
    over the rest of the run to ``eta_max / 1e4``: ``after="cosine_decay({steps}, end=1e-4)"``.
    A NaN or infinite loss backs off (``backoff``), and the fit waits for a finite one. If the
    peak LR is re-bound after the fit, the multiplier keeps its shape (the LR scales with the
    new peak).

    The law is derived for **norm-constrained optimizers** (Muon, Lion, signSGD, normalized SGD),
    whose step length is the LR; with Adam, SGD or others the rule is used as it is, without
    their theory behind it.

    Args:
        total: the latest update at which the warmup hands over (>= 1): the run's length, so
            that ``after`` gets the updates left.
        f_star: the target loss ``f*``, any finite number (default 0, the infimum of losses
            bounded below by 0). For a language model 0 lies far below any reachable loss: at a
            first loss of 10.83, ``Delta*`` is then about 3.1 (uniform weight), a loss the run
            may never reach, and the warmup lasts until ``total``; give the reachable loss.
        div: ``eta_max / eta(Delta0)``, the ratio of the peak to the first fitted LR, > 1
            (default 100, theirs).
        kappa: the norm ratio of the optimizer over the model, > 0, or ``None`` (default:
            uniform weight); see :func:`norm_ratio`.
        sigma_f: the scale of the weight, > 0 (default 1e-3, theirs); with ``kappa`` only.
        mode: how ``Delta*`` is chosen: ``"linear_and_cos"`` (default) or ``"func_prime"``.
        after, floor, max_step, backoff: the :class:`~preheat.adaptive.base.Bounds`.

    Raises:
        ValueError: naming the argument, its value and what is valid.
    """

    name: ClassVar[str] = "gap_warmup"
    State: ClassVar[type[ControllerState]] = GapState
    state: GapState

    def __init__(
        self,
        total: int,
        *,
        f_star: float = 0.0,
        div: float = 100.0,
        kappa: float | None = None,
        sigma_f: float = 1e-3,
        mode: str = "linear_and_cos",
        **bounds: Unpack[BoundsKeywords],
    ) -> None:
        owner = self.name
        self.f_star = check_real(owner, "f_star", f_star)
        self.div, self.kappa, self.sigma_f, self.mode = _check_fit_arguments(owner, div, kappa, sigma_f, mode)
        super().__init__(total, **bounds)

    def start(self) -> float:
        """Update 0 gets ``1 / div``: no loss has been seen yet."""
        return 1.0 / self.div

    @property
    def fit(self) -> GapFit | None:
        """The constants fitted from the first finite loss (``None`` before it)."""
        return self.state.fit

    def decide(self, signals: Mapping[str, float]) -> Proposal:
        if "loss" not in signals:
            return Proposal(self.current, "hold", "no loss signal")
        loss, state = signals["loss"], self.state
        gap = min(max(loss - self.f_star, EPSILON), sys.float_info.max)  # the difference may overflow
        evidence: dict[str, float] = {"loss": loss, "gap": gap}
        fit = state.fit
        if fit is None:
            if gap < 2 * MARGIN:
                return Proposal(1.0, "raise", f"first loss gap {gap:.4g} = loss - f_star (f_star="
                                f"{self.f_star:.4g}) is below {2 * MARGIN:.4g}: no peak gap Delta* to fit, "
                                "the loss is at its target already; no warmup", evidence, done=True)
            fit = state.fit = fit_gap_law(gap, self.peak_lr, div=self.div, kappa=self.kappa,
                                          sigma_f=self.sigma_f, mode=self.mode)
            fitted = f"fitted from the first loss (Delta0={gap:.4g}, mode={self.mode}): "
        else:
            fitted = ""
        # the constants in multiplier units (peak_lr K), finite whatever the peak LR
        k2 = fit.curvature
        k0, k1 = k2 * fit.delta_star**2, 1.0 - 2.0 * k2 * fit.delta_star
        evidence.update(delta0=fit.delta0, delta_star=fit.delta_star, peak_K0=k0, peak_K1=k1, peak_K2=k2)
        constants = (f"{fitted}Delta* {fit.delta_star:.4g}, peak_lr x (K0, K1, K2) = ({k0:.4g}, {k1:.4g}, "
                     f"{k2:.4g})")
        if gap <= fit.delta_star:
            done = self.current + self.bounds.max_step >= 1.0
            reason = (f"gap {gap:.4g} <= Delta* {fit.delta_star:.4g}: the warmup reached the peak"
                      + ("" if done else f"; rising to it by max_step={self.bounds.max_step}")
                      + f"; {constants}")
            return Proposal(1.0, "raise", reason, evidence, done=done)
        proposal = fit.multiplier(gap)
        evidence.update(eta=proposal * self.peak_lr, multiplier=proposal)
        action = "raise" if proposal > self.current else "lower" if proposal < self.current else "hold"
        return Proposal(proposal, action, f"eta(gap {gap:.4g}) / eta_max; {constants}", evidence)


def fit_gap_law(
    delta0: float,
    peak_lr: float,
    *,
    div: float = 100.0,
    kappa: float | None = None,
    sigma_f: float = 1e-3,
    mode: str = "linear_and_cos",
) -> GapFit:
    """The constants of ``eta(Delta) = Delta / (K0 + K1 Delta + K2 Delta^2)`` for a first gap
    ``delta0`` and peak LR ``peak_lr``, as :class:`GapWarmup` fits them (its docstring has the
    formulas, ``mode`` and the weight).

    Each candidate's cost is integrated by 8-point Gauss-Legendre quadrature on each side of the
    candidate ``Delta*`` (128 equal panels, and 32 more within 12 standard deviations of the
    weight), exact enough that a narrow weight (a large ``kappa sigma_f``) is not missed; theirs
    uses ``scipy.integrate.quad``. About 1.3 million evaluations: a few tenths of a second,
    once per run. The multiplier ``eta / eta_max`` does not depend on ``peak_lr``, nor does the
    choice of ``Delta*``; the first of equal costs wins.

    Raises:
        ValueError: ``delta0 < 0.02`` (no candidate) or another argument out of range, named.
    """
    owner = "fit_gap_law"
    delta0 = check_real(owner, "delta0", delta0, 2 * MARGIN)
    peak_lr = check_real(owner, "peak_lr", peak_lr, 0.0, low_open=True)
    div, kappa, sigma_f, mode = _check_fit_arguments(owner, div, kappa, sigma_f, mode)
    stars = np.linspace(MARGIN, delta0 - MARGIN, GRID)
    stars = stars[stars < delta0]  # delta0 - MARGIN rounds to delta0 for a delta0 beyond ~1e14
    precision = 0.0 if kappa is None else kappa * sigma_f
    cost = _costs(stars, delta0, div, precision, mode)
    best = int(np.argmin(np.where(np.isfinite(cost), cost, np.inf)))
    return GapFit(delta0=delta0, delta_star=float(stars[best]), div=div, peak_lr=peak_lr)


def norm_ratio(shapes: Iterable[Any], geometry: str) -> float:
    """``kappa = sup ||v||_* / ||v||`` for the max-over-matrices norm of an optimizer's geometry.

    ``shapes``: the ``(m, n)`` shapes of the model's matrices (e.g.
    ``[p.shape for p in model.parameters() if p.ndim == 2]``, as their code collects them);
    ``geometry``: ``"spectral"`` (Muon: ``sum min(m, n)``), ``"sign"`` (Lion, signSGD, the
    l-infinity norm: ``sum m n``) or ``"frobenius"`` (normalized SGD: the number of matrices).

    Raises:
        ValueError: an unknown ``geometry``, or a shape that is not two positive integers.
    """
    if geometry not in GEOMETRIES:
        raise ValueError(f"norm_ratio: geometry={geometry!r} is invalid; expected one of "
                         f"{', '.join(f'{g!r} ({o})' for g, o in GEOMETRIES.items())}")
    pairs = []
    for i, shape in enumerate(shapes):
        try:
            m, n = (int(size) for size in shape)
            valid = m >= 1 and n >= 1 and (m, n) == tuple(shape)
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise ValueError(f"norm_ratio: shapes[{i}]={shape!r} is invalid; expected two integers >= 1")
        pairs.append((m, n))
    if not pairs:
        raise ValueError("norm_ratio: shapes=[] is invalid; expected the shape of at least one matrix")
    if geometry == "spectral":
        return float(sum(min(m, n) for m, n in pairs))
    if geometry == "sign":
        return float(sum(m * n for m, n in pairs))
    return float(len(pairs))


def _check_fit_arguments(owner: str, div: Any, kappa: Any, sigma_f: Any,
                         mode: Any) -> tuple[float, float | None, float, str]:
    div = check_real(owner, "div", div, 1.0, low_open=True)
    if kappa is not None:
        kappa = check_real(owner, "kappa", kappa, 0.0, low_open=True)
    sigma_f = check_real(owner, "sigma_f", sigma_f, 0.0, low_open=True)
    if kappa is not None and not math.isfinite(kappa * sigma_f):
        raise ValueError(f"{owner}: kappa={kappa!r} with sigma_f={sigma_f!r} is invalid; expected a "
                         "finite product kappa * sigma_f")
    if mode not in MODES:
        raise ValueError(f"{owner}: mode={mode!r} is invalid; expected one of {', '.join(map(repr, MODES))}")
    return div, kappa, sigma_f, mode


def _costs(stars: np.ndarray, delta0: float, div: float, precision: float, mode: str) -> np.ndarray:
    """Each candidate ``Delta*``'s cost, in multiplier units (theirs divided by ``eta_max``)."""
    a = (delta0 / (delta0 - stars)) * ((div - 1.0) / (delta0 - stars))  # eta_max K2, as GapFit.curvature
    drop = (1.0 / div - 1.0) / (delta0 - stars)  # the slope of the line from (Delta*, 1) to (Delta0, 1/div)

    def side(length: np.ndarray, sign: float, cost: Any) -> np.ndarray:
        """The weighted integral of ``cost`` over ``Delta* + sign * [0, length]``."""
        width = math.inf if precision == 0 else 12.0 / math.sqrt(precision)
        edges = np.sort(np.concatenate([
            length[:, None] * np.linspace(0.0, 1.0, _UNIFORM_PANELS + 1),
            np.minimum(length, width)[:, None] * np.linspace(0.0, 1.0, _NEAR_PANELS + 1)], axis=1), axis=1)
        low, high = edges[:, :-1, None], edges[:, 1:, None]
        distance = (low + high) / 2 + (high - low) / 2 * _GAUSS_NODES  # (candidates, panels, nodes)
        x = stars[:, None, None] + sign * distance
        weight = np.exp(-0.5 * precision * distance**2)
        values = cost(x, stars[:, None, None], a[:, None, None])
        return (weight * values * _GAUSS_WEIGHTS * (high - low) / 2).sum(axis=(1, 2))

    def eta(x: np.ndarray, star: np.ndarray, a: np.ndarray) -> np.ndarray:
        return x / (x + a * (x - star) ** 2)

    def line(x: np.ndarray, star: np.ndarray) -> np.ndarray:
        return 1.0 + drop[:, None, None] * (x - star)

    def right_squared(x: np.ndarray, star: np.ndarray, a: np.ndarray) -> np.ndarray:
        return (eta(x, star, a) - line(x, star)) ** 2

    def left_squared(x: np.ndarray, star: np.ndarray, a: np.ndarray) -> np.ndarray:
        return (eta(x, star, a) - (1.0 - np.cos(np.pi * x / star)) / 2) ** 2

    def value_and_slope(x: np.ndarray, star: np.ndarray, a: np.ndarray) -> np.ndarray:
        denominator = x + a * (x - star) ** 2
        slope = a * (star**2 - x**2) / denominator**2
        return np.abs(x / denominator - line(x, star)) + np.abs(slope - drop[:, None, None])

    with np.errstate(all="ignore"):  # a huge delta0 overflows some costs: they lose (inf)
        if mode == "linear_and_cos":
            return (side(delta0 - stars, 1.0, right_squared) + side(stars, -1.0, left_squared)) / delta0
        return side(delta0 - stars, 1.0, value_and_slope) / (delta0 - stars)
