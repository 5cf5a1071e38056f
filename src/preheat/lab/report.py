"""The sweep report: one self-contained HTML page (figures inline as PNG, CSS inline, no JS).

It reads only the store and the sweep's :class:`~preheat.lab.metrics.SweepMetrics` (computed
once by the caller) and holds: a summary line, the ranking table, the learning-rate curves (the
LR each run recorded), training and validation loss per peak LR, the stability heatmap over
peak LR x warmup, every run's exact config, the versions and seeds, and how to rerun. Figures
are shaped in :mod:`preheat.lab.figure_data` and drawn by :mod:`preheat.lab.figures`.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from preheat.lab import figure_data, figures
from preheat.lab.metrics import RunMetrics, SweepMetrics, format_ranking
from preheat.lab.store import DONE, Store


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


# ---- page --------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _img(data: bytes, alt: str, caption: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{encoded}" alt="{_e(alt)}">'
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


def _summary(metrics: SweepMetrics) -> str:
    rows, table = metrics.runs, metrics.ranking
    statuses = Counter(r.status for r in rows)
    tasks = sorted({r.config.task for r in rows})
    optimizers = sorted({r.config.optimizer for r in rows})
    parts = [f"{len(rows)} runs of {len(table) or len({r.method for r in rows})} methods on "
             f"{', '.join(tasks)} ({', '.join(optimizers)}): "
             + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) + "."]
    if metrics.target is not None:
        parts.append(f"Target val loss {metrics.target:.4g}.")
    if table and table[0].best_peak_lr is not None:
        best = table[0]
        parts.append(f"Best: {best.title} at peak LR {best.best_peak_lr:.3g}, final val loss "
                     f"{best.final_val_loss_mean:.4g}.")
    return " ".join(parts)


def _runs_section(rows: Sequence[RunMetrics]) -> str:
    headers = ["method", "warmup", "peak LR", "seed", "status", "final val loss", "best val loss",
               "steps to target", "spikes", "final train acc", "below chance (K&B)", "wall time (s)", "id"]
    cells, css = [], []
    for r in rows:
        cells.append([
            r.method, "—" if r.config.warmup is None else str(r.config.warmup), f"{r.config.peak_lr:.3g}",
            str(r.config.seed), r.status, _g(r.final_val_loss), _g(r.best_val_loss),
            _g(r.steps_to_target, 6), str(r.spikes), _g(r.final_train_accuracy, 3),
            "—" if r.below_chance is None else ("yes" if r.below_chance else "no"),
            _g(r.wall_time, 3), r.id,
        ])
        css.append("diverged" if r.diverged else "")
    configs = "".join(
        f"<details><summary><code>{_e(r.id)}</code> {_e(r.method)}, peak LR {r.config.peak_lr:.3g}, "
        f"seed {r.config.seed}: {_e(r.status)}</summary><pre>"
        f"{html.escape(json.dumps(r.config.model_dump(mode='json'), indent=2, sort_keys=True), quote=False)}"
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
    found = Counter(json.dumps(run.versions, sort_keys=True) for run in store.runs() if run.versions)
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
peak LR where any seed diverged has an infinite mean and is never a method's best.</li>
<li><b>target</b>: the validation loss to reach; unless given, 1.1 &times; the best validation loss of
any finished run (for a best loss b &le; 0: b + 0.1 |b|). <b>steps to target</b>: the first evaluation
at or below it, averaged over the seeds that reached it ((k/n) when not all did).</li>
<li><b>diverged</b>: stopped by the training loop (loss NaN/inf or above its diverge factor times the
initial validation loss). <b>below chance</b> (what Kalra &amp; Barkeshli call failed): mean training
accuracy over the last 10% of steps below 1.5 &times; the task's chance accuracy. A run that
<i>crashed</i> (status failed: an exception) is neither.</li>
<li><b>largest stable LR</b>: the largest swept peak LR such that every run at it and at every smaller
swept LR finished without diverging or falling below chance. <b>good LR range</b>: the peak LRs whose
mean final val loss is within 5% of the method's best.</li>
<li><b>spikes</b>: rising edges of &ldquo;training loss &gt; 2 &times; its exponential moving average
(&alpha; = 0.1) over the steps before, and above it by at least 25% of the initial training
loss&rdquo; (so minibatch noise at small losses does not count), from step 10 on.</li>
<li>A row is a method (a run's label, else its peer with its warmup, else its controller, else its
schedule with <code>{steps}</code> and <code>{warmup}</code> filled in). Where one method covers
several warmups (a label over a warmup sweep), the row is its best warmup's, and diverged / runs
counts all of them.</li>
</ul>
"""




def _figures(store: Store, metrics: SweepMetrics) -> tuple[dict[str, bytes], list[str]]:
    """The figures (file stem -> PNG) and their sections, from the done runs. Method names and
    labels are drawn as plain text: a ``$`` in one is never read as matplotlib mathtext."""
    from matplotlib import rc_context

    with rc_context({"text.parse_math": False}):
        return _draw(store, metrics)


def _draw(store: Store, metrics: SweepMetrics) -> tuple[dict[str, bytes], list[str]]:
    done = [r for r in metrics.runs if r.status in DONE]
    if not (metrics.ranking and done):
        return {}, []
    color = figures.colors([entry.method for entry in metrics.ranking])
    representatives = figure_data.representative_runs(done, metrics.ranking)
    curves = figure_data.lr_curves(store, metrics.ranking, representatives)
    drawn = {"lr": figures.lr_figure(curves, max(r.config.steps for r in representatives), color)}
    sections = ["<h2>Learning-rate schedules</h2>" + _img(
        drawn["lr"], f"Learning rate divided by peak LR against step for {len(representatives)} methods",
        "LR / peak LR that each method's representative run recorded (its best peak LR, lowest "
        "seed; a method swept over warmup at its best-ranked warmup).")]
    lrs = len({r.config.peak_lr for r in done})
    for kind, title, alt, caption in _LOSS_FIGURES:
        panels = figure_data.loss_panels(store, done, metrics.ranking, kind)
        drawn[f"{kind}_loss"] = figures.loss_figure(panels, color, kind)
        sections.append(f"<h2>{title}</h2>" + _img(drawn[f"{kind}_loss"], alt.format(lrs=lrs), caption))
    heatmap = figure_data.heatmap(done)
    if heatmap is not None:
        drawn["stability"] = figures.heatmap_figure(heatmap)
        sections.append("<h2>Stability over peak LR and warmup</h2>" + _img(
            drawn["stability"],
            f"Heatmap of mean final validation loss over peak LR and warmup length, {len(heatmap.panels)} panels",
            _HEATMAP_CAPTION))
    return drawn, sections


_LOSS_FIGURES = (  # kind, section title, alt text, caption
    ("train", "Training loss",
     "Smoothed training loss against step, one panel for each of {lrs} peak LRs, one line per method",
     "Training loss (trailing mean over 1/40 of the run), mean over seeds; one panel per peak "
     "LR, one line per method (at its best-ranked warmup). An x at the top marks where a "
     "seed diverged."),
    ("val", "Validation loss",
     "Validation loss against step, one panel for each of {lrs} peak LRs, one line per method",
     "Validation loss at each evaluation, mean over seeds; one panel per peak LR, one line "
     "per method (at its best-ranked warmup). An x at the top marks where a seed diverged."),
)
_HEATMAP_CAPTION = (
    "Mean final val loss of the seeds that did not diverge, per peak LR (x) and warmup "
    "length (y), one panel per template swept over warmup; the last panel (if any) has a "
    "row per method without a warmup length. Hatched cells: at least one seed diverged "
    "(k/n div; &ldquo;div&rdquo;: all did). Grey: no value.")


def _reproduce(store: Store, rows: Sequence[RunMetrics]) -> str:
    seeds = sorted({r.config.seed for r in rows})
    return ("<h2>Reproduce</h2>"
            f"<p>Seeds: {_e(', '.join(map(str, seeds)))}. The same config gives the same "
            "numbers on the same machine (seeded; CPU kernels are deterministic).</p>"
            f"<p>Rerun the sweep with <code>preheat sweep CONFIG</code> (runs already in the "
            f"store are kept; only missing ones run) and rebuild this page with "
            f"<code>preheat report {_e(store.directory)}</code>.</p>"
            "<h3>Versions</h3>" + _versions_section(store))


def _sections(store: Store, metrics: SweepMetrics, title: str) -> tuple[list[str], dict[str, bytes]]:
    """The page's sections, in order, and its figures (file stem -> PNG)."""
    parts = [f"<h1>{_e(title)}</h1>"]
    if not metrics.runs:
        return parts + ['<p class="summary">The store has no runs yet.</p>'], {}
    headers, cells = format_ranking(metrics.ranking)
    parts.append(f'<p class="summary">{_e(_summary(metrics))}</p>'
                 "<h2>Ranking</h2>" + _table(headers, cells, {0, 3, 4, 5, 6, 7, 9}, id_="ranking")
                 + '<p class="note">Final val loss is mean ± std over seeds at the best peak LR; '
                 "definitions are below.</p>")
    drawn, figure_sections = _figures(store, metrics)
    parts += figure_sections
    parts += ["<h2>Definitions</h2>" + _DEFINITIONS, "<h2>Runs</h2>" + _runs_section(metrics.runs),
              _reproduce(store, metrics.runs)]
    return parts, drawn


def write_report(
    store: Store,
    metrics: SweepMetrics,
    path: str | Path | None = None,
    title: str | None = None,
    figures_dir: str | Path | None = None,
) -> Path:
    """Write the report of ``store``'s sweep, whose metrics are ``metrics``
    (:func:`preheat.lab.metrics.sweep_metrics`), as one self-contained HTML file; return its path.

    ``path`` defaults to ``store.directory / "report.html"``; ``title`` to the store's directory
    name. With ``figures_dir``, each figure is also written there as a PNG file (``lr.png``,
    ``train_loss.png``, ``val_loss.png``, ``stability.png``). Needs matplotlib (the ``plot`` extra).
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise ImportError("the report needs matplotlib; install it with: pip install 'preheat[plot]'") from err
    path = Path(path) if path is not None else store.directory / "report.html"
    title = title or f"preheat sweep: {store.directory.resolve().name}"
    parts, drawn = _sections(store, metrics, title)
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    if figures_dir is not None:
        Path(figures_dir).mkdir(parents=True, exist_ok=True)
        for stem, data in drawn.items():
            (Path(figures_dir) / f"{stem}.png").write_bytes(data)
    return path
