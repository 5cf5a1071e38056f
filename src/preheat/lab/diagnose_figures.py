"""The figures of a diagnosed run (:mod:`preheat.lab.diagnose`) and writing them to a folder.

Drawn on matplotlib's Agg canvas (no pyplot state) with the helpers of :mod:`preheat.plotting`;
nothing here prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from preheat.lab.diagnose import Diagnosis
from preheat.plotting import agg_figure, plain_log_ticks, png

DPI = 90
FIGURES = ("sharpness.png", "smoothness.png")
JSON_NAME = "diagnosis.json"


def _title(d: Diagnosis) -> str:
    c = d.config
    return f"{c.task}, {c.optimizer}, peak LR {c.peak_lr:g}, {c.schedule_text}"


def _curvature(axes: Any, d: Diagnosis) -> None:
    """The sharpness series and the threshold, on a y range cut as :func:`sharpness_figure` says."""
    series = [("sharpness  $\\lambda_{max}(H)$", d.sharpness, "tab:blue", "o")]
    if d.preconditioned is not None:
        series.append(("preconditioned  $\\lambda_{max}(P^{-1}H)$", d.preconditioned, "tab:red", "s"))
    for label, values, color, marker in series:
        axes.plot(d.measured_step, values, color=color, marker=marker, markersize=3, linewidth=1.2, label=label)
    threshold = np.where(np.isfinite(d.threshold), d.threshold, np.nan)
    if d.threshold_rule is not None:
        color = "tab:red" if d.threshold_applies_to == "preconditioned" else "tab:blue"
        axes.plot(d.step, threshold, color=color, linestyle="--", linewidth=1.0,
                  label=f"threshold {d.threshold_rule}")
    shown = np.concatenate([v[np.isfinite(v)] for _, v, _, _ in series] + [np.zeros(0)])
    finite_threshold = threshold[np.isfinite(threshold)]
    if not shown.size:
        return
    top = max(shown.max(), finite_threshold.min() if finite_threshold.size else shown.max())
    low = shown.min()
    if low > 0:
        axes.set_yscale("log")
        axes.set_ylim(low / 2.0, top * 3.0)
        plain_log_ticks(axes.yaxis)
    else:
        axes.set_ylim(low - 0.1 * abs(top - low), top * 1.5 + 1e-12)


def sharpness_figure(d: Diagnosis, dpi: int = DPI) -> bytes:
    """The edge-of-stability picture as PNG bytes.

    Left axis (log when everything is positive): the sharpness ``lambda_max(H_t)`` at each
    measurement, the preconditioned sharpness ``lambda_max(P_t^{-1} H_t)`` for Adam-type
    optimizers, and the stability threshold at every update (dashed; ``2 / eta_t``,
    ``(2 + 2 beta) / eta_t`` or ``(2 + 2 beta1) / ((1 - beta1) eta_t)``, see
    :func:`stability_threshold`). Right axis: the LR ``eta_t``. The y range is cut at 3x the
    larger of the highest sharpness and the lowest threshold, so a threshold that starts far
    up (a warmup from a tiny LR) is seen coming down onto the sharpness.
    """
    figure = agg_figure(7.0, 4.0, dpi)
    axes = figure.add_subplot()
    _curvature(axes, d)
    axes.set_xlabel("update t")
    axes.set_ylabel("curvature")
    axes.grid(alpha=0.25, linewidth=0.5)
    right = axes.twinx()
    (lr_line,) = right.plot(d.step, d.lr, color="0.45", linewidth=1.0, label="LR  $\\eta_t$ (right)")
    if d.lr.size and (d.lr > 0).all() and d.lr.max() > 1.5 * d.lr.min():
        right.set_yscale("log")
        plain_log_ticks(right.yaxis)
    right.set_ylabel("learning rate")
    handles, labels = axes.get_legend_handles_labels()
    figure.legend(handles + [lr_line], labels + [lr_line.get_label()], loc="outside lower center",
                  ncols=2, fontsize="x-small", frameon=False)
    axes.set_title(_title(d), fontsize="small")
    if d.updates:
        axes.set_xlim(0, max(d.updates - 1, 1))
    return png(figure, dpi)


def smoothness_figure(d: Diagnosis, dpi: int = DPI) -> bytes:
    """Liu et al. (2025)'s Figure 1 as PNG bytes: local smoothness ``S_t`` against the loss gap ``L_t - L*``.

    Log-log scatter of the pairs with both positive, coloured by update ``t`` (colorbar); the
    fitted law ``K0 + K_rho gap^rho`` (solid, constants in the legend) and, when the task knows
    its own constants, its bound (dashed).
    """
    figure = agg_figure(6.0, 4.2, dpi)
    axes = figure.add_subplot()
    keep = np.isfinite(d.smoothness) & np.isfinite(d.gap) & (d.smoothness > 0) & (d.gap > 0)
    if keep.any():
        points = axes.scatter(d.gap[keep], d.smoothness[keep], c=d.step[keep], cmap="viridis", s=10,
                              linewidths=0, label="$S_t$ measured")
        colorbar = figure.colorbar(points, ax=axes)
        colorbar.set_label("update t")
        gaps = np.geomspace(d.gap[keep].min(), d.gap[keep].max(), 200)
        if d.fit is not None:
            rho, k0, k_rho = d.fit
            axes.plot(gaps, d.law(gaps), color="black", linewidth=1.5,
                      label=f"fit: $K_0$={k0:.3g}, $K_\\rho$={k_rho:.3g}, $\\rho$={rho:.3g}")
        if d.task_constants is not None:
            rho, k0, k_rho = d.task_constants
            axes.plot(gaps, k0 + k_rho * gaps**rho, color="tab:red", linestyle="--", linewidth=1.2,
                      label=f"task's bound: $K_0$={k0:.3g}, $K_\\rho$={k_rho:.3g}, $\\rho$={rho:.3g}")
        axes.set_xscale("log")
        axes.set_yscale("log")
        plain_log_ticks(axes.xaxis)
        plain_log_ticks(axes.yaxis)
        axes.legend(fontsize="x-small", framealpha=0.85, loc="best")
    else:
        axes.text(0.5, 0.5, "no pair with a positive gap and smoothness", ha="center", va="center",
                  transform=axes.transAxes)
    axes.set_xlabel("loss gap  $L_t - L^*$" + (f"  ($L^*$={d.f_star:g})" if d.f_star else ""))
    axes.set_ylabel("local smoothness  $S_t$")
    axes.grid(alpha=0.25, linewidth=0.5, which="both")
    axes.set_title(_title(d), fontsize="small")
    return png(figure, dpi)


def write(d: Diagnosis, out: str | Path, dpi: int = DPI) -> dict[str, Path]:
    """Write ``sharpness.png``, ``smoothness.png`` and ``diagnosis.json`` (:meth:`Diagnosis.to_dict`)
    into the folder ``out`` (created if missing); returns ``{name: path}``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in (*FIGURES, JSON_NAME)}
    paths["sharpness.png"].write_bytes(sharpness_figure(d, dpi))
    paths["smoothness.png"].write_bytes(smoothness_figure(d, dpi))
    paths[JSON_NAME].write_text(json.dumps(d.to_dict(), indent=1, allow_nan=False) + "\n")
    return paths
