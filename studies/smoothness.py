"""Study 4 — Liu et al. 2025: warmup accelerates gradient descent on a (rho, K0, K_rho)-smooth loss.

Liu, Ge, Pan, Kang & Zhang (arXiv:2509.07972) call a loss (rho, K0, K_rho)-smooth when
``||Hess f|| <= K0 + K_rho (f - f*)^rho``, and show that GD whose step follows the bound,
``eta_t = c / (K0 + K_rho (f(theta_t) - f*)^rho)`` (a warmup: it rises as the loss falls),
converges faster than GD at a constant step. Two measurements:

1. **River valley** (``preheat.lab`` task ``river-valley``, full-batch GD, curvature 10: provably
   (1, 2, 20)-smooth, ``docs/tasks.md``). Constant LRs on a doubling grid, the constant step the
   theory allows from the start, ``c / (K0 + K_rho f(theta_0))`` with ``c = 1``, and the
   smoothness-guided warmup (``smoothness_warmup``) with the task's constants and with constants
   fitted online, both with target LR ``c / K0 = 0.5``. None of these depends on the run's length,
   so one run of ``T_max`` updates per method gives the gap at every horizon ``T <= T_max`` and the
   updates needed to reach each loss target (validation, i.e. the exact gap, after every update).
2. **The smoothness law on a real network**: ``preheat.lab.diagnose.diagnose`` measures the local
   smoothness ``||g(theta_t+1) - g(theta_t)|| / ||theta_t+1 - theta_t||`` (same batch) against the
   loss gap along a digits-MLP run (SGD and Adam) and fits ``K0 + K_rho gap^rho``
   (``fit_smoothness_law``, an upper-envelope quantile fit): Liu et al.'s Figure 1.

    taskset -c 1 .venv/bin/python -m studies.smoothness
    .venv/bin/python -m studies.smoothness --smoke --out /tmp/s --docs /tmp/d
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from preheat.lab.config import RunConfig
from preheat.lab.tasks import make_task
from studies.common import Study, diagnosed, figure, finish, load, markdown_table, number, parse_args, plain_log_ticks, \
    seeds_text, sweep

NAME = "smoothness"
CURVATURE = 10.0
RHO, K0, K_RHO, C = 1.0, 2.0, 2.0 * CURVATURE, 1.0  # RiverValley.smoothness_constants() at curvature 10
TARGETS = (1e-1, 1e-2, 1e-4, 1e-8)
TASKS = {"digits": "digits MLP", "shakespeare-char": "Shakespeare GPT (tiny)"}
WARMUPS = {"smoothness warmup, task's constants": f"smoothness_warmup(rho={RHO}, K0={K0}, K_rho={K_RHO})",
           "smoothness warmup, fitted online": "smoothness_warmup()"}


def river_runs(smoke: bool) -> list[RunConfig]:
    """Constant LRs 0.003125 x 2^k up to 0.1, the theory's safe constant, and the two warmups."""
    if smoke:
        steps, seeds, constants = 40, (0,), (0.025, 0.1)
    else:
        steps, seeds, constants = 800, (0, 1, 2), tuple(0.003125 * 2**k for k in range(6))
    task = make_task("river-valley", {"curvature": CURVATURE})
    gap0 = float(task.evaluate(task.model(0))["val_loss"])  # f(theta_0); the same for every seed
    safe = C / (K0 + K_RHO * gap0**RHO)
    base = {"task": "river-valley", "task_options": {"curvature": CURVATURE}, "optimizer": "sgd", "batch_size": 1,
            "steps": steps, "eval_every": 1}
    runs = [RunConfig(**base, peak_lr=lr, seed=seed, label=f"constant {lr:.4g}") for lr in constants for seed in seeds]
    runs += [RunConfig(**base, peak_lr=safe, seed=seed, label=f"constant {safe:.4g} (theory's safe step)")
             for seed in seeds]
    runs += [RunConfig(**base, peak_lr=C / K0, controller=controller, seed=seed, label=label)
             for label, controller in WARMUPS.items() for seed in seeds]
    return runs


def law_runs(study: Study, smoke: bool) -> list[dict[str, Any]]:
    """The smoothness-vs-gap measurements (digits with SGD and Adam, the GPT with Adam), kept as
    JSON next to the store (reused when there)."""
    digits = {"task": "digits", "task_options": {"width": 32} if smoke else {}, "steps": 20 if smoke else 500}
    gpt = {"task": "shakespeare-char", "task_options": {"size": "tiny"}, "batch_size": 16, "steps": 300}
    setups = [(digits, "sgd", 0.5), (digits, "adam", 0.01)] + ([] if smoke else [(gpt, "adam", 0.01)])
    results = []
    for base, optimizer, lr in setups:
        config = RunConfig(**base, optimizer=optimizer, peak_lr=lr, schedule=f"linear_warmup({base['steps'] // 5})",
                           seed=0)
        results.append(diagnosed(study, config, every=config.steps))
    return results


def first_below(gaps: np.ndarray, target: float) -> int | None:
    """The first update after which the gap is at or below ``target`` (evaluations at every update)."""
    hit = np.flatnonzero(gaps <= target)
    return int(hit[0]) if hit.size else None


def main(argv: Sequence[str] | None = None) -> None:
    study = parse_args(NAME, __doc__, argv)
    runs = river_runs(study.smoke)
    rows = sweep(study, runs)
    gaps: dict[str, list[np.ndarray]] = {}
    for row, evals in zip(rows, load(study, rows, "evals")):
        gap = np.full(row.config.steps + 1, np.inf)  # gap after update t at index t (0: the start); inf once diverged
        gap[evals["step"].astype(int)] = evals["val_loss"]
        if row.status == "diverged":
            gap[int(evals["step"][-1]) + 1:] = np.inf
        gaps.setdefault(row.method, []).append(gap)
    worst = {name: np.max(g, axis=0) for name, g in gaps.items()}  # the slowest seed
    constants = [name for name in worst if name.startswith("constant")]
    safe = next(name for name in constants if "safe" in name)
    steps = rows[0].config.steps
    horizons = [t for t in (10, 20, 40, 50, 100, 200, 400, 800) if t <= steps]
    header = ("horizon T", "best constant LR at T", "its gap", "theory's safe constant", *WARMUPS)
    body = []
    for t in horizons:
        best = min(constants, key=lambda name: worst[name][t])
        body.append([t, best.split()[1], number(worst[best][t]), number(worst[safe][t]),
                     *(number(worst[name][t]) for name in WARMUPS)])
    target_rows = []
    for target in TARGETS:
        reach = {name: first_below(worst[name], target) for name in worst}
        fastest = min((n for n in constants if reach[n] is not None), key=lambda n: reach[n], default=None)
        target_rows.append([number(target), "—" if fastest is None else f"{reach[fastest]} ({fastest.split()[1]})",
                            number(reach[safe]), *(number(reach[name]) for name in WARMUPS)])
    laws = law_runs(study, study.smoke)
    law_rows = []
    for result in laws:
        config, fit = result["config"], result["fit"]
        constants_fitted = ("—",) * 3 if fit is None else (number(fit["rho"]), number(fit["K0"]), number(fit["K_rho"]))
        law_rows.append([f"{TASKS[config['task']]}, {config['optimizer']}, peak {config['peak_lr']:g}, "
                         f"linear_warmup({config['steps'] // 5}), {config['steps']} updates", *constants_fitted])
    tables = (f"**River valley, GD: gap f(θ_T) − f\\* after T updates** (the slowest of the seeds; `diverged` "
              f"once any seed diverged). Theory's safe constant: {safe.split()[1]} = "
              f"1 / (K0 + K_ρ f(θ_0)); the warmups' target LR is c / K0 = {C / K0:g}.\n\n"
              + markdown_table(header, body)
              + "\n**Updates to reach a gap target** (slowest seed; `—`: not within "
              f"{steps} updates):\n\n"
              + markdown_table(("target gap", "best constant LR: updates (LR)", "theory's safe constant", *WARMUPS),
                               target_rows)
              + "\n**Smoothness law fitted along real runs** (`fit_smoothness_law`, 0.9 upper envelope, f\\* = 0):\n\n"
              + markdown_table(("run", "ρ", "K0", "K_ρ"), law_rows))

    fig, axes = figure(14.0, 7.0, 2, 3)
    colors = {"constant": "0.6", **dict(zip(WARMUPS, ("tab:red", "tab:blue")))}
    first = {row.method: row for row in rows if row.config.seed == rows[0].config.seed}
    for (name, row), columns in zip(first.items(), load(study, list(first.values()), "steps")):
        color = colors.get(name, "tab:green" if "safe" in name else colors["constant"])
        width = 1.6 if name in WARMUPS or "safe" in name else 0.8
        curve = gaps[name][0]
        label = name if name in WARMUPS or "safe" in name else None
        axes[0, 0].plot(np.arange(curve.size), curve, color=color, linewidth=width, label=label)
        axes[0, 1].plot(columns["step"], columns["lr"], color=color, linewidth=width, label=label)
        finite = np.flatnonzero(np.isfinite(curve))
        if label is None and finite.size:  # name the constant LR at the end of its curve
            axes[0, 0].annotate(name.split()[1], (finite[-1], curve[finite[-1]]), fontsize=6, color=color)
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylim(1e-12, 1e3)
    axes[0, 0].set_title("river valley, GD: gap vs update (seed 0; grey: constant LRs)", fontsize="small")
    axes[0, 0].set_xlabel("update", fontsize="x-small")
    axes[0, 0].legend(fontsize="xx-small")
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_title("the LR each run used", fontsize="small")
    axes[0, 1].set_xlabel("update", fontsize="x-small")
    for name in [*WARMUPS, safe]:
        reach = [first_below(worst[name], target) for target in TARGETS]
        axes[0, 2].plot(TARGETS, [np.nan if r is None else r for r in reach], marker="o", label=name,
                        color=colors.get(name, "tab:green"))
    best = [min((r for n in constants if (r := first_below(worst[n], target)) is not None), default=np.nan)
            for target in TARGETS]
    axes[0, 2].plot(TARGETS, best, marker="s", color="0.4", label="best constant LR (per target)")
    axes[0, 2].set_xscale("log")
    if np.isfinite(best).any():  # (a smoke run reaches no target)
        axes[0, 2].set_yscale("log")
        plain_log_ticks(axes[0, 2].yaxis)
    axes[0, 2].invert_xaxis()
    axes[0, 2].set_title("updates to reach a gap target (slowest seed)", fontsize="small")
    axes[0, 2].set_xlabel("target gap", fontsize="x-small")
    axes[0, 2].legend(fontsize="xx-small")
    for ax, result in zip(axes[1], laws):
        draw_law(ax, result)
    for ax in axes[1, len(laws):]:
        ax.set_visible(False)
    for ax in axes.flat:
        ax.tick_params(labelsize="x-small")
        ax.grid(alpha=0.3, linewidth=0.5)
    finish(study, fig, tables, seeds_text([run.seed for run in runs] + [0]))


def draw_law(axes: Any, result: dict[str, Any]) -> None:
    """Local smoothness against the loss gap (log-log), coloured by update, with the fitted law."""
    updates = result["updates"]
    gap = np.array([np.nan if v is None else v for v in updates["gap"]], dtype=np.float64)
    smooth = np.array([np.nan if v is None else v for v in updates["smoothness"]], dtype=np.float64)
    keep = np.isfinite(gap) & np.isfinite(smooth) & (gap > 0) & (smooth > 0)
    points = axes.scatter(gap[keep], smooth[keep], c=np.flatnonzero(keep), s=6, cmap="viridis", linewidths=0)
    axes.figure.colorbar(points, ax=axes).set_label("update", fontsize="x-small")
    fit = result["fit"]
    if fit is not None and keep.any():
        line = np.geomspace(gap[keep].min(), gap[keep].max(), 100)
        axes.plot(line, fit["K0"] + fit["K_rho"] * line ** fit["rho"], color="black",
                  label=f"K0 + K_ρ gap^ρ: ρ={fit['rho']:.2g}, K0={fit['K0']:.3g}, K_ρ={fit['K_rho']:.3g}")
        axes.legend(fontsize="xx-small")
    axes.set_xscale("log")
    axes.set_yscale("log")
    config = result["config"]
    axes.set_title(f"{TASKS[config['task']]}, {config['optimizer']}: local smoothness vs loss gap",
                   fontsize="small")
    axes.set_xlabel("training loss gap L_t − 0", fontsize="x-small")
    axes.set_ylabel("local smoothness S_t", fontsize="x-small")


if __name__ == "__main__":
    main()
