"""The loss-gap warmup (Riabinin et al. 2026): the fitted constants against hand-computed values
and against their code's choices, the rule on a falling loss, the handover, resume, NaN safety
and validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from preheat.adaptive.gap import GRID, GapFit, GapWarmup, _costs, fit_gap_law, norm_ratio
from preheat.schedules import parse

# Llama-124M's matrices as their lipschitz_computeK.llama124m_shapes lists them (vocab 50304,
# tied head): per layer Q, K, V, O (768 x 768), up and gate (768 x 2048), down (2048 x 768).
LLAMA_124M = [(768, 768)] * 4 * 12 + [(768, 2048)] * 2 * 12 + [(2048, 768)] * 12 + [(50304, 768)]


def polynomial_eta(fit: GapFit, gap: float) -> float:
    """Their formula as they evaluate it: ``Delta / (K0 + K1 Delta + K2 Delta^2)``."""
    return gap / (fit.K0 + fit.K1 * gap + fit.K2 * gap**2)


def test_norm_ratio_of_their_three_geometries() -> None:
    assert norm_ratio(LLAMA_124M, "spectral") == 12 * (4 * 768 + 3 * 768) + 768 == 65280.0
    assert norm_ratio(LLAMA_124M, "sign") == 12 * (4 * 768**2 + 3 * 768 * 2048) + 50304 * 768
    assert norm_ratio(LLAMA_124M, "frobenius") == 85.0
    assert norm_ratio([np.array([3, 5]).tolist()], "spectral") == 3.0


def test_fitted_constants_equal_the_hand_computed_ones() -> None:
    # Delta0 = 10.83 - 3.2, peak 1e-3, div 100, normalized SGD on Llama-124M (kappa = 85), their
    # default sigma_F: their compute_lipschitz_constants picks Delta* = 1.504549 (grid index 98)
    # and prints K0 = 45571.816, K1 = -59578.702, K2 = 20131.846. By hand (exact fractions):
    # Delta* = 0.01 + 98 (7.63 - 0.02) / 499; K2 = 7.63 * 99 / (1e-3 (7.63 - Delta*)^2);
    # K0 = K2 Delta*^2; K1 = 1/1e-3 - 2 K2 Delta*.
    fit = fit_gap_law(7.63, 1e-3, div=100.0, kappa=85.0, sigma_f=1e-3, mode="linear_and_cos")
    assert fit.delta_star == pytest.approx(1.5045490981963927, rel=1e-14)
    assert fit.K0 == pytest.approx(45571.81604799502, rel=1e-12)
    assert fit.K1 == pytest.approx(-59578.702420047455, rel=1e-12)
    assert fit.K2 == pytest.approx(20131.846309524677, rel=1e-12)
    assert fit.delta0 == 7.63 and fit.peak_lr == 1e-3 and fit.div == 100.0
    # eta(Delta*) = eta_max, eta'(Delta*) = 0 (K0 = K2 Delta*^2), eta(Delta0) = eta_max / div
    assert polynomial_eta(fit, fit.delta_star) == pytest.approx(1e-3, rel=1e-12)
    assert fit.K0 - fit.K2 * fit.delta_star**2 == pytest.approx(0.0, abs=1e-9)
    assert polynomial_eta(fit, 7.63) == pytest.approx(1e-5, rel=1e-10)
    assert fit.multiplier(fit.delta_star) == pytest.approx(1.0, rel=1e-15)
    assert fit.multiplier(7.63) == pytest.approx(0.01, rel=1e-12)
    for gap in (0.01, 0.7, 3.0, 7.0, 20.0):  # the stable form equals their formula
        assert fit.multiplier(gap) == pytest.approx(polynomial_eta(fit, gap) / 1e-3, rel=1e-10)


@pytest.mark.parametrize(("kappa", "delta0", "mode", "theirs"), [
    # Delta* printed by their compute_lipschitz_constants (scipy quad) for peak 1e-3 or 2e-3, div
    # 100, sigma_F 1e-3, kappa of Llama-124M: normalized SGD (85) and Muon (65280).
    (85.0, 7.63, "linear_and_cos", 1.50455),
    (85.0, 2.30, "linear_and_cos", 0.64054),
    (85.0, 7.63, "func_prime", 0.28451),
    (65280.0, 7.23, "linear_and_cos", 2.35072),
    (65280.0, 2.30, "linear_and_cos", 0.16078),
    (65280.0, 7.63, "func_prime", 1.70281),
])
def test_the_choice_of_delta_star_matches_their_code(kappa: float, delta0: float, mode: str, theirs: float) -> None:
    fit = fit_gap_law(delta0, 1e-3, kappa=kappa, mode=mode)
    assert fit.delta_star == pytest.approx(theirs, abs=5e-6)
    assert fit_gap_law(delta0, 0.5, kappa=kappa, mode=mode).delta_star == fit.delta_star  # LR-free


def reference_costs(stars: np.ndarray, delta0: float, div: float, precision: float, mode: str,
                    points: int) -> np.ndarray:
    """Their objectives (divided by eta_max), by the trapezoid rule on a fine uniform grid."""
    out = []
    for star in stars:
        a = delta0 * (div - 1) / (delta0 - star) ** 2
        x = np.linspace(0.0 if mode == "linear_and_cos" else star, delta0, points)
        eta = x / (x + a * (x - star) ** 2)
        line = 1 + (1 / div - 1) * (x - star) / (delta0 - star)
        weight = np.exp(-0.5 * precision * (x - star) ** 2)
        if mode == "linear_and_cos":
            target = np.where(x < star, (1 - np.cos(np.pi * x / star)) / 2, line)
            out.append(np.trapezoid(weight * (eta - target) ** 2, x) / delta0)
        else:
            slope = a * (star**2 - x**2) / (x + a * (x - star) ** 2) ** 2
            cost = np.abs(eta - line) + np.abs(slope - (1 / div - 1) / (delta0 - star))
            out.append(np.trapezoid(weight * cost, x) / (delta0 - star))
    return np.array(out)


@pytest.mark.parametrize(("precision", "mode", "rel"), [
    (0.0, "linear_and_cos", 1e-6), (65.28, "linear_and_cos", 1e-6), (1.2e5, "linear_and_cos", 1e-6),
    (0.085, "func_prime", 1e-4),  # |.| has kinks between the quadrature's nodes
])
def test_costs_agree_with_a_fine_trapezoid_rule(precision: float, mode: str, rel: float) -> None:
    stars = np.linspace(0.01, 5.0 - 0.01, GRID)[::25]
    ours = _costs(stars, 5.0, 100.0, precision, mode)
    assert ours == pytest.approx(reference_costs(stars, 5.0, 100.0, precision, mode, 400_001), rel=rel)


def test_where_their_quadrature_misses_the_narrow_weight_ours_finds_the_lower_cost() -> None:
    # Muon on Llama-124M at Delta0 = 7.63: their quad picks 2.09932, whose cost it underestimates
    # tenfold (the Gaussian of width 0.12 falls between its nodes); the true cost is lower at ours.
    fit = fit_gap_law(7.63, 1e-3, kappa=65280.0)
    assert fit.delta_star == pytest.approx(2.48058, abs=5e-6)
    stars = np.linspace(0.01, 7.62, GRID)
    theirs = stars[int(np.argmin(np.abs(stars - 2.09932)))]
    ref = reference_costs(np.array([fit.delta_star, theirs]), 7.63, 100.0, 65.28, "linear_and_cos", 400_001)
    assert ref[0] < ref[1]


def falling(n: int, start: float, end: float, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(np.geomspace(start, end, n) * np.exp(rng.normal(0.0, 0.02, n)))


def test_multiplier_follows_eta_over_eta_max_and_hands_over_at_the_first_gap_below_delta_star() -> None:
    peak, f_star = 2e-3, 3.2
    ctrl = GapWarmup(400, f_star=f_star, after="cosine_decay({steps}, end=1e-4)")
    ctrl.bind(peak)
    assert ctrl.multiplier() == 0.01  # update 0: 1 / div
    losses = falling(300, 10.83, 3.5)
    fit = fit_gap_law(losses[0] - f_star, peak)
    expected_handover = next(t for t, loss in enumerate(losses) if loss - f_star <= fit.delta_star) + 1
    assert 5 < expected_handover < 300
    for t, loss in enumerate(losses):
        got = ctrl.observe(loss=loss)
        if t + 1 < expected_handover:
            assert got == pytest.approx(polynomial_eta(fit, loss - f_star) / peak, rel=1e-9), t
            assert ctrl.decisions[-1].action in ("raise", "lower", "hold")
    assert ctrl.fit == fit
    assert ctrl.decisions[0].multiplier == pytest.approx(0.01, rel=1e-12)  # eta(Delta0) = eta_max / div
    assert "fitted from the first loss" in ctrl.decisions[0].reason
    assert ctrl.handover_step == expected_handover
    decision = ctrl.decisions[expected_handover - 1]
    assert decision.action == "handover" and "<= Delta*" in decision.reason
    assert decision.evidence["delta_star"] == fit.delta_star and decision.evidence["peak_K2"] == fit.K2 * fit.peak_lr
    assert len(ctrl.decisions) == expected_handover  # none after the handover
    after = parse(f"cosine_decay({400 - expected_handover}, end=1e-4)")
    assert decision.multiplier == 1.0 == float(after(0))
    ctrl.state = type(ctrl.state)(**vars(ctrl.state))  # a copy: replay the rest from the handover
    values = [ctrl.observe(loss=0.0) for _ in range(120)]  # signals are ignored from here on
    assert values == pytest.approx([float(after(300 - expected_handover + k + 1)) for k in range(120)])


def test_max_step_delays_the_handover_until_the_peak_is_reached() -> None:
    ctrl = GapWarmup(100, max_step=0.2)
    ctrl.observe(loss=5.0)
    star = ctrl.fit.delta_star  # type: ignore[union-attr]
    values = [ctrl.observe(loss=star / 2) for _ in range(6)]
    assert values[:4] == pytest.approx([0.21, 0.41, 0.61, 0.81])
    assert ctrl.handover_step == 6 and values[4:] == [1.0, 1.0]  # constant() after


def test_a_first_loss_at_f_star_hands_over_at_once() -> None:
    ctrl = GapWarmup(50, f_star=2.0)
    assert ctrl.observe(loss=2.015) == 1.0
    assert ctrl.handover_step == 1 and ctrl.fit is None
    assert ctrl.decisions[0].action == "handover" and "no warmup" in ctrl.decisions[0].reason


def test_non_finite_losses_back_off_and_the_fit_waits_for_a_finite_one() -> None:
    ctrl = GapWarmup(100, backoff=0.5)
    assert ctrl.observe(loss=math.nan) == 0.005
    assert ctrl.fit is None and ctrl.decisions[-1].action == "backoff"
    ctrl.observe(loss=8.0)
    assert ctrl.fit is not None and ctrl.fit.delta0 == 8.0
    before = ctrl.observe(loss=7.0)
    assert ctrl.observe(loss=math.inf) == before * 0.5 and ctrl.decisions[-1].action == "backoff"
    assert ctrl.observe(loss=-1e308) == 1.0  # a finite gap of 1e-8 <= Delta*: handover
    assert all(math.isfinite(d.multiplier) for d in ctrl.decisions)


@pytest.mark.parametrize("delta0", [1e3, 1e20, 1e100, 1e308])
def test_huge_gaps_fit_and_give_finite_multipliers(delta0: float) -> None:
    ctrl = GapWarmup(100, f_star=-delta0)
    assert ctrl.observe(loss=0.0) == pytest.approx(0.01, rel=1e-9)
    assert ctrl.fit is not None and 0.01 <= ctrl.fit.delta_star < delta0
    assert 0.0 <= ctrl.observe(loss=1e308) <= 0.01
    assert ctrl.observe(loss=-delta0 / 2) > 0.01


def run(ctrl: GapWarmup, losses: list[float]) -> list[float]:
    return [ctrl.observe(loss=loss) for loss in losses]


@pytest.mark.parametrize("cut", [0, 1, 12, 60])
def test_resume_is_exact(cut: int) -> None:
    arguments = dict(f_star=1.0, div=50.0, kappa=300.0, sigma_f=1e-2, mode="func_prime",
                     after="linear_decay({steps})", max_step=0.3)
    losses = falling(120, 9.0, 1.05, seed=3)
    losses[20] = math.nan
    first = GapWarmup(150, **arguments)  # type: ignore[arg-type]
    first.bind(3e-3)
    run(first, losses[:cut])
    saved = json.loads(json.dumps(first.state_dict()))
    second = GapWarmup(150, **arguments)  # type: ignore[arg-type]
    second.load_state_dict(saved)
    assert run(second, losses[cut:]) == run(first, losses[cut:])
    assert second.state_dict() == first.state_dict()


def test_a_state_that_does_not_fit_is_refused_and_changes_nothing() -> None:
    ctrl = GapWarmup(100)
    ctrl.observe(loss=6.0)
    good = json.loads(json.dumps(ctrl.state_dict()))
    fresh = GapWarmup(100)
    for field, value, named in [("delta_star", 7.0, "fit="), ("div", 50.0, "fit="),
                                ("delta0", 1.0, "fit="), ("peak_lr", 0.0, "fit.peak_lr=0.0")]:
        bad = json.loads(json.dumps(good))
        bad["state"]["fit"][field] = value
        with pytest.raises(ValueError, match=named):
            fresh.load_state_dict(bad)
    bad = json.loads(json.dumps(good))
    bad["state"]["fit"]["K0"] = 1.0  # the constants are not stored: they follow from the fit
    with pytest.raises(ValueError, match="unknown fields"):
        fresh.load_state_dict(bad)
    assert fresh.fit is None and fresh.observed == 0
    fresh.load_state_dict(good)
    assert fresh.fit == ctrl.fit


@pytest.mark.parametrize(("arguments", "named"), [
    ({"div": 1.0}, "div=1.0"),
    ({"div": math.nan}, "div=nan"),
    ({"kappa": 0.0}, "kappa=0.0"),
    ({"kappa": -3}, "kappa=-3"),
    ({"kappa": 1e300, "sigma_f": 1e300}, "kappa=1e+300 with sigma_f=1e+300"),
    ({"sigma_f": 0}, "sigma_f=0"),
    ({"mode": "cosine"}, "mode='cosine'"),
    ({"f_star": math.inf}, "f_star=inf"),
    ({"f_star": "3.2"}, "f_star='3.2'"),
])
def test_bad_arguments_raise_naming_them(arguments: dict, named: str) -> None:
    with pytest.raises(ValueError, match=r"gap_warmup: " + named.replace("(", r"\(").replace("+", r"\+")):
        GapWarmup(100, **arguments)
    with pytest.raises(ValueError, match="total=0"):
        GapWarmup(0)


def test_bad_fit_and_norm_ratio_arguments_raise_naming_them() -> None:
    with pytest.raises(ValueError, match=r"fit_gap_law: delta0=0.01 .*\[0.02"):
        fit_gap_law(0.01, 1e-3)
    with pytest.raises(ValueError, match="peak_lr=0"):
        fit_gap_law(5.0, 0)
    with pytest.raises(ValueError, match="geometry='muon'.*'spectral'"):
        norm_ratio([(2, 3)], "muon")
    with pytest.raises(ValueError, match=r"shapes\[1\]=\(3,\) .*two integers"):
        norm_ratio([(2, 3), (3,)], "sign")
    with pytest.raises(ValueError, match=r"shapes\[0\]=\(0, 3\)"):
        norm_ratio([(0, 3)], "sign")
    with pytest.raises(ValueError, match=r"shapes=\[\]"):
        norm_ratio([], "frobenius")


def test_works_in_the_torch_scheduler() -> None:
    torch = pytest.importorskip("torch")
    import preheat

    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scheduler = preheat.Scheduler(optimizer, GapWarmup(20, after="cosine_decay({steps})"))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.001)
    optimizer.step()
    scheduler.step(loss=4.0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.001, rel=1e-9)  # eta(Delta0) = 0.1 / 100
