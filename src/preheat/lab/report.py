"""The sweep report: one self-contained HTML page (figures inline as PNG, CSS inline, no JS).

It reads only the store (through :mod:`preheat.lab.metrics`) and holds: a summary line, the
ranking table, the learning-rate curves, training and validation loss per peak LR, the
stability heatmap over peak LR x warmup, every run's exact config, the versions and seeds, and
how to rerun. Figures are drawn on matplotlib's Agg canvas directly (no pyplot state).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from preheat.lab.metrics import format_ranking, ranking, run_metrics
from preheat.lab.store import DONE, Store
from preheat.plotting import learning_rates, phase_boundaries

DPI = 90
PANEL = (3.0, 2.3)  # inches per loss panel
COLUMNS = 4  # loss panels per figure row
SMOOTH = 40  # a training-loss curve is averaged over windows of len / SMOOTH steps
FIXED = "schedules without {warmup}"  # the heatmap panel of schedules not swept over warmup

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.8em;
       border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p.summary { font-size: 1.05em; color: #333; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.diverged td { color: #a33; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, .note { font-size: 0.85em; color: #555; }
code, pre { font: 0.85em/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
       background: #f6f6f6; } pre { padding: 0.6em; overflow-x: auto; }
#ranking td { white-space: nowrap; }
details { margin: 0.4em 0; } summary { cursor: pointer; }
"""


# ---- figures -----------------------------------------------------------------------------


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> str:
    """The figure as base64 PNG text."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _short(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _best_per_family(rows: list[dict[str, Any]], table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The best-ranked ranking row of each family (a schedule template or label), best first,
    with its ``family`` and a legend ``label`` added.

    The curve figures draw one line per family: a schedule swept over warmup is shown at the
    warmup that ranked best (the heatmap shows the others). The label names the warmup when the
    name does not already show it (a label shared by several warmups).
    """
    family = {r["name"]: r["family"] for r in rows}
    chosen: dict[str, dict[str, Any]] = {}
    for entry in table:
        name, warmup = entry["name"], entry["warmup"]
        label = f"{name} (warmup={warmup})" if warmup is not None and family[name] == name else name
        chosen.setdefault(family[name], {**entry, "family": family[name], "label": _short(label, 60)})
    return list(chosen.values())


def _representatives(rows: list[dict[str, Any]], entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per ranking row, the run of its best (warmup, peak LR) with the lowest seed (else its first run)."""
    chosen = []
    for entry in entries:
        runs = [r for r in rows if r["name"] == entry["name"]]
        best = [r for r in runs if r["warmup"] == entry["warmup"] and r["peak_lr"] == entry["best_peak_lr"]]
        chosen.append(min(best or runs, key=lambda r: r["seed"]))
    return chosen


def _lr_figure(entries: list[dict[str, Any]], representatives: list[dict[str, Any]], colors: dict[str, str]) -> str:
    """LR / peak LR against step, one line per schedule at its representative run."""
    figure = _figure(7.0, 3.0)
    axes = figure.add_subplot()
    total = max(r["steps"] for r in representatives)
    for entry, run in zip(entries, representatives):
        schedule = run["config"].resolved_schedule()
        color = colors[run["family"]]
        label = f"{entry['label']}, peak {run['peak_lr']:.3g}"
        axes.plot(np.arange(total), learning_rates(schedule, total, 1.0), color=color, linewidth=1.5, label=label)
        for boundary in phase_boundaries(schedule):
            if 0 < boundary < total:
                axes.axvline(boundary, color=color, alpha=0.35, linewidth=0.8, linestyle=":")
    axes.set_xlabel("step")
    axes.set_ylabel("LR / peak LR")
    axes.set_xlim(0, max(total - 1, 1))
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.25, linewidth=0.5)
    axes.legend(fontsize="x-small", framealpha=0.85)
    return _png(figure)


def _plain_ticks(axis: Any, low: float, high: float) -> None:
    """Label a log axis spanning ``low .. high`` with plain numbers (0.6, 2, not 6x10^-1);
    minor ticks get labels only when the span is under one decade."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:.3g}")
    axis.set_major_formatter(plain)
    axis.set_minor_formatter(plain if high / low < 10 else NullFormatter())


def _smooth(values: np.ndarray) -> np.ndarray:
    """Trailing mean over ``max(1, len // SMOOTH)`` steps (shorter at the start); NaN/inf -> NaN."""
    values = np.where(np.isfinite(values), values, np.nan)
    window = max(1, values.size // SMOOTH)
    out = np.empty_like(values)
    for t in range(values.size):
        part = values[max(0, t - window + 1): t + 1]
        part = part[~np.isnan(part)]
        out[t] = part.mean() if part.size else np.nan
    return out


def _mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds, index by index (NaN-padded: a seed that stopped early drops out)."""
    longest = max(curves, key=lambda c: c[0].size)[0]
    stacked = np.full((len(curves), longest.size), np.nan)
    for i, (_, y) in enumerate(curves):
        stacked[i, : y.size] = np.where(np.isfinite(y), y, np.nan)
    with np.errstate(all="ignore"):
        counts = np.sum(~np.isnan(stacked), axis=0)
        mean = np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), np.nan)
    return longest, mean


def _loss_figure(
    store: Store,
    rows: list[dict[str, Any]],
    entries: list[dict[str, Any]],
    colors: dict[str, str],
    kind: str,
) -> str:
    """One panel per peak LR, one line per schedule (its best warmup), mean over seeds.

    ``kind`` is ``train`` (smoothed training loss per step) or ``val`` (validation loss at
    each evaluation). A diverged seed is marked with an ``x`` at the top of the panel.
    """
    lrs = sorted({r["peak_lr"] for r in rows if r["status"] in DONE})
    ncols = min(len(lrs), COLUMNS)
    nrows = math.ceil(len(lrs) / ncols)
    figure = _figure(PANEL[0] * ncols, PANEL[1] * nrows + 0.5)
    handles: dict[str, Any] = {}
    for index, lr in enumerate(lrs):
        axes = figure.add_subplot(nrows, ncols, index + 1)
        starts, lows, highs, stops = [], [], [], []
        for entry in entries:
            runs = [r for r in rows if r["name"] == entry["name"] and r["warmup"] == entry["warmup"]
                    and r["peak_lr"] == lr and r["status"] in DONE]
            curves = []
            for run in runs:
                if kind == "train":
                    data = store.steps(run["id"])
                    curves.append((data["step"], _smooth(data["train_loss"])))
                else:
                    data = store.evals(run["id"])
                    curves.append((data["step"], data["val_loss"]))
                if run["diverged"] and data["step"].size:
                    stops.append((float(data["step"][-1]), colors[run["family"]]))
            curves = [c for c in curves if c[0].size]
            if not curves:
                continue
            x, y = _mean_curve(curves)
            label = entry["label"]
            (line,) = axes.plot(x, y, color=colors[runs[0]["family"]], linewidth=1.2, label=label)
            handles.setdefault(label, line)
            finite = y[np.isfinite(y)]
            if finite.size:
                starts.append(finite[0])
                lows.append(finite.min())
                highs.append(finite.max())
        axes.set_title(f"peak LR {lr:.3g}", fontsize="small")
        axes.set_xlabel("step", fontsize="small")
        if index % ncols == 0:
            axes.set_ylabel("train loss (smoothed)" if kind == "train" else "val loss", fontsize="small")
        axes.tick_params(labelsize="x-small")
        axes.grid(alpha=0.25, linewidth=0.5)
        if lows:
            low, high = min(lows), min(max(highs), 2.0 * max(starts))
            if low > 0 and high > low:
                axes.set_yscale("log")
                axes.set_ylim(low / 1.1, high * 1.1)
                _plain_ticks(axes.yaxis, low / 1.1, high * 1.1)
            elif high > low:
                axes.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
        for step, color in stops:
            axes.plot([step], [0.95], marker="x", color=color, markersize=7, mew=2,
                      transform=axes.get_xaxis_transform(), clip_on=False)
    if handles:
        figure.legend(list(handles.values()), list(handles), loc="outside lower center",
                      ncols=min(len(handles), 3), fontsize="small", frameon=False)
    return _png(figure)


def _heatmap_figure(rows: list[dict[str, Any]]) -> tuple[str, int] | None:
    """Mean final val loss over peak LR (x) x warmup (y), one panel per schedule template swept
    over warmup (whatever the runs' labels), and one panel (a row per schedule name) for runs
    without a warmup field.

    The colour is the mean over the seeds that did not diverge or crash; a hatched cell had at
    least one diverged seed (``k/n div``); a grey cell has no such seed. Returns the PNG and
    the number of panels, or None without done runs.
    """
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.patches import Rectangle

    done = [r for r in rows if r["status"] in DONE]
    if not done:
        return None
    lrs = sorted({r["peak_lr"] for r in done})
    swept = list(dict.fromkeys(r["template"] for r in done if r["warmup"] is not None))
    fixed = list(dict.fromkeys(r["family"] for r in done if r["warmup"] is None))
    panels: list[tuple[str, list[str], list[list[dict[str, Any]]]]] = []
    for template in swept:
        warmups = sorted({r["warmup"] for r in done if r["template"] == template and r["warmup"] is not None})
        cells = [[r for r in done if r["template"] == template and r["warmup"] == w] for w in warmups]
        panels.append((_short(template, 70), [str(w) for w in warmups], cells))
    if fixed:
        cells = [[r for r in done if r["family"] == f] for f in fixed]
        panels.append((FIXED, [_short(f, 32) for f in fixed], cells))

    grids = []
    for _, _, cells in panels:
        grid = np.full((len(cells), len(lrs)), np.nan)
        counts = np.zeros((len(cells), len(lrs), 2), dtype=int)  # diverged, runs
        for i, runs in enumerate(cells):
            for j, lr in enumerate(lrs):
                at = [r for r in runs if r["peak_lr"] == lr]
                ok = [r["final_val_loss"] for r in at if not r["diverged"] and math.isfinite(r["final_val_loss"])]
                if ok:
                    grid[i, j] = float(np.mean(ok))
                counts[i, j] = (sum(r["diverged"] for r in at), len(at))
        grids.append((grid, counts))
    values = np.concatenate([g[np.isfinite(g)] for g, _ in grids])
    if values.size and values.min() > 0 and values.max() > values.min():
        norm: Any = LogNorm(values.min(), values.max())
    elif values.size:
        norm = Normalize(values.min(), values.max() if values.max() > values.min() else values.min() + 1)
    else:
        norm = Normalize(0, 1)

    heights = [len(labels) * 0.42 + 0.9 for _, labels, _ in panels]
    figure = _figure(7.5, sum(heights) + 0.3)
    axes_list = figure.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    import matplotlib

    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
    image = None
    for axes, (title, labels, _), (grid, counts) in zip(axes_list, panels, grids):
        image = axes.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                diverged, total = counts[i, j]
                text = "" if total == 0 else ("div" if np.isnan(grid[i, j]) else f"{grid[i, j]:.3g}")
                if diverged:
                    axes.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="xx",
                                             edgecolor="#b22222", linewidth=0))
                    if not np.isnan(grid[i, j]):
                        text += f"\n{diverged}/{total} div"
                light = diverged or np.isnan(grid[i, j]) or norm(grid[i, j]) > 0.6
                box = dict(facecolor="white", alpha=0.8, linewidth=0, pad=1.5) if diverged else None
                axes.text(j, i, text, ha="center", va="center", fontsize=7,
                          color="black" if light else "white", bbox=box)
        axes.set_xticks(range(len(lrs)), [f"{lr:.2g}" for lr in lrs], fontsize="x-small")
        axes.set_yticks(range(len(labels)), labels, fontsize="x-small")
        axes.set_title(title, fontsize="small")
        axes.set_ylabel("" if title == FIXED else "warmup (steps)", fontsize="small")
    axes_list[-1].set_xlabel("peak LR", fontsize="small")
    colorbar = figure.colorbar(image, ax=list(axes_list), shrink=0.9)
    colorbar.set_label("mean final val loss", fontsize="small")
    if isinstance(norm, LogNorm):
        _plain_ticks(colorbar.ax.yaxis, norm.vmin, norm.vmax)
    colorbar.ax.tick_params(labelsize="x-small")
    return _png(figure), len(panels)


# ---- page --------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _img(data: str, alt: str, caption: str) -> str:
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _table(headers: tuple[str, ...] | list[str], cells: list[list[str]], numeric: set[int],
           css: list[str] | None = None, id_: str | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for k, row in enumerate(cells):
        cls = f' class="{css[k]}"' if css and css[k] else ""
        tds = "".join(f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
                      for i, c in enumerate(row))
        body.append(f"<tr{cls}>{tds}</tr>")
    ident = f' id="{id_}"' if id_ else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _g(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}g}"


def _summary(rows: list[dict[str, Any]], table: list[dict[str, Any]]) -> str:
    statuses = Counter(r["status"] for r in rows)
    tasks = sorted({r["task"] for r in rows})
    optimizers = sorted({r["optimizer"] for r in rows})
    parts = [f"{len(rows)} runs of {len(table) or len({r['name'] for r in rows})} schedules on "
             f"{', '.join(tasks)} ({', '.join(optimizers)}): "
             + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) + "."]
    target = rows[0]["target"]
    if target is not None:
        parts.append(f"Target val loss {target:.4g}.")
    if table and table[0]["best_peak_lr"] is not None:
        best = table[0]
        shows_warmup = best["warmup"] is None or any(
            r["name"] == best["name"] and r["family"] != r["name"] for r in rows)
        parts.append(f"Best: {best['name']}"
                     + ("" if shows_warmup else f" (warmup={best['warmup']})")
                     + f" at peak LR {best['best_peak_lr']:.3g}, final val loss "
                     f"{best['final_val_loss_mean']:.4g}.")
    return " ".join(parts)


def _runs_section(rows: list[dict[str, Any]]) -> str:
    headers = ["schedule", "warmup", "peak LR", "seed", "status", "final val loss", "best val loss",
               "steps to target", "spikes", "final train acc", "failed (K&B)", "wall time (s)", "id"]
    cells, css = [], []
    for r in rows:
        cells.append([
            r["name"], "—" if r["warmup"] is None else str(r["warmup"]), f"{r['peak_lr']:.3g}",
            str(r["seed"]), r["status"], _g(r["final_val_loss"]), _g(r["best_val_loss"]),
            _g(r["steps_to_target"], 6), str(r["spikes"]), _g(r["final_train_accuracy"], 3),
            "—" if r["failed"] is None else ("yes" if r["failed"] else "no"),
            _g(r["wall_time"], 3), r["id"],
        ])
        css.append("diverged" if r["diverged"] else "")
    configs = "".join(
        f"<details><summary><code>{_e(r['id'])}</code> {_e(r['name'])}, peak LR {r['peak_lr']:.3g}, "
        f"seed {r['seed']}: {_e(r['status'])}</summary><pre>"
        f"{html.escape(json.dumps(r['config'].model_dump(mode='json'), indent=2, sort_keys=True), quote=False)}"
        "</pre></details>"
        for r in rows
    )
    return (f"<details open><summary>{len(rows)} runs</summary>"
            f"{_table(headers, cells, {2, 3, 5, 6, 7, 8, 9, 11}, css)}</details>"
            f"<h3>Exact configs</h3><p class=\"note\">Each block is the run's <code>RunConfig</code> "
            f"as JSON (<code>RunConfig(**json)</code> rebuilds it; its id is the config's "
            f"fingerprint).</p>{configs}")


def _versions_section(store: Store) -> str:
    """The versions the store recorded, one table per distinct set, with how many runs used it."""
    found = Counter(json.dumps(run["versions"], sort_keys=True) for run in store.runs() if run["versions"])
    if not found:
        return "<p>No run has recorded versions yet.</p>"
    blocks = []
    for text, count in found.most_common():
        versions = json.loads(text)
        cells = [[k, str(v)] for k, v in versions.items()]
        blocks.append(f"<p class=\"note\">{count} run(s):</p>{_table(['package', 'version'], cells, set())}")
    return "".join(blocks)


_DEFINITIONS = """
<ul class="note">
<li><b>final val loss</b>: the last evaluation's validation loss; infinite for a diverged run, so a
peak LR where any seed diverged has an infinite mean and is never a schedule's best.</li>
<li><b>target</b>: the validation loss to reach; unless given, 1.1 &times; the best validation loss of
any finished run (for a best loss b &le; 0: b + 0.1 |b|). <b>steps to target</b>: the first evaluation
at or below it, averaged over the seeds that reached it ((k/n) when not all did).</li>
<li><b>diverged</b>: stopped by the training loop (loss NaN/inf or above its diverge factor times the
initial validation loss). <b>failed</b> (Kalra &amp; Barkeshli): mean training accuracy over the last
10% of steps below 1.5 &times; chance.</li>
<li><b>largest stable LR</b>: the largest swept peak LR such that every run at it and at every smaller
swept LR finished without diverging or failing. <b>good LR range</b>: the peak LRs whose mean final
val loss is within 5% of the schedule's best.</li>
<li><b>spikes</b>: rising edges of &ldquo;training loss &gt; 2 &times; its exponential moving average
(&alpha; = 0.1) over the steps before, and above it by at least 25% of the initial training
loss&rdquo; (so minibatch noise at small losses does not count), from step 10 on.</li>
<li>A row is a schedule name (a run's label, else its schedule with <code>{steps}</code> and
<code>{warmup}</code> filled in). Where one name covers several warmups (a label over a warmup
sweep), the row is its best warmup's, and diverged / runs counts all of them.</li>
</ul>
"""


def write_report(
    store: Store,
    path: str | Path | None = None,
    target: float | None = None,
    title: str | None = None,
    chance: Mapping[str, float | None] | None = None,
) -> Path:
    """Write the sweep's report as one self-contained HTML file and return its path.

    ``path`` defaults to ``store.directory / "report.html"``; ``target`` (a validation loss) and
    ``chance`` (task name -> chance accuracy) are passed to
    :func:`preheat.lab.metrics.run_metrics`; ``title`` defaults to the store's directory name.
    Needs matplotlib (the ``plot`` extra).
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise ImportError("the report needs matplotlib; install it with: pip install 'preheat[plot]'") from err
    path = Path(path) if path is not None else store.directory / "report.html"
    title = title or f"preheat sweep: {store.directory.resolve().name}"
    rows = run_metrics(store, target=target, chance=chance)
    table = ranking(rows)
    done = [r for r in rows if r["status"] in DONE]
    entries = _best_per_family(rows, table)
    families = list(dict.fromkeys([e["family"] for e in entries] + [r["family"] for r in rows]))
    colors = {family: f"C{i % 10}" for i, family in enumerate(families)}

    parts = [f"<h1>{_e(title)}</h1>"]
    if not rows:
        parts.append('<p class="summary">The store has no runs yet.</p>')
    else:
        parts.append(f'<p class="summary">{_e(_summary(rows, table))}</p>')
        headers, cells = format_ranking(table)
        parts.append("<h2>Ranking</h2>" + _table(headers, cells, {0, 3, 4, 5, 6, 7}, id_="ranking")
                     + '<p class="note">Final val loss is mean ± std over seeds at the best peak LR; '
                     "definitions are below.</p>")
    if table and done:
        representatives = _representatives(done, entries)
        parts.append("<h2>Learning-rate schedules</h2>" + _img(
            _lr_figure(entries, representatives, colors),
            f"Learning rate divided by peak LR against step for {len(representatives)} schedules",
            "LR / peak LR of each schedule at its representative run (its best peak LR, lowest "
            "seed; a schedule swept over warmup at its best-ranked warmup); dotted lines are phase "
            "boundaries."))
        lrs = len({r["peak_lr"] for r in done})
        parts.append("<h2>Training loss</h2>" + _img(
            _loss_figure(store, done, entries, colors, "train"),
            f"Smoothed training loss against step, one panel for each of {lrs} peak LRs, one line per schedule",
            "Training loss (trailing mean over 1/40 of the run), mean over seeds; one panel per peak "
            "LR, one line per schedule (at its best-ranked warmup). An x at the top marks where a "
            "seed diverged."))
        parts.append("<h2>Validation loss</h2>" + _img(
            _loss_figure(store, done, entries, colors, "val"),
            f"Validation loss against step, one panel for each of {lrs} peak LRs, one line per schedule",
            "Validation loss at each evaluation, mean over seeds; one panel per peak LR, one line "
            "per schedule (at its best-ranked warmup). An x at the top marks where a seed diverged."))
        heatmap = _heatmap_figure(done)
        if heatmap is not None:
            png, panels = heatmap
            parts.append("<h2>Stability over peak LR and warmup</h2>" + _img(
                png, f"Heatmap of mean final validation loss over peak LR and warmup length, {panels} panels",
                "Mean final val loss of the seeds that did not diverge, per peak LR (x) and warmup "
                "length (y), one panel per schedule swept over warmup; the last panel (if any) has a "
                "row per schedule without a <code>{warmup}</code> placeholder. Hatched cells: at "
                "least one seed diverged (k/n div; &ldquo;div&rdquo;: all did). Grey: no value."))
    if rows:
        parts.append("<h2>Definitions</h2>" + _DEFINITIONS)
        parts.append("<h2>Runs</h2>" + _runs_section(rows))
        seeds = sorted({r["seed"] for r in rows})
        parts.append("<h2>Reproduce</h2>"
                     f"<p>Seeds: {_e(', '.join(map(str, seeds)))}. The same config gives the same "
                     "numbers on the same machine (seeded; CPU kernels are deterministic).</p>"
                     f"<p>Rerun the sweep with <code>preheat sweep CONFIG</code> (runs already in the "
                     f"store are kept; only missing ones run) and rebuild this page with "
                     f"<code>preheat report {_e(store.directory)}</code>.</p>"
                     "<h3>Versions</h3>" + _versions_section(store))
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
