"""The sweep report: one self-contained HTML page (figures inline as PNG, CSS inline, no JS).

It reads only the store and the sweep's :class:`~preheat.lab.metrics.SweepMetrics` (computed
once by the caller) and holds, in order: the verdict (:mod:`preheat.lab.verdict`: what to use,
how sure, what next), a summary line, the ranking table, every method in one line with its
docs page (:mod:`preheat.lab.methods`), the figures (:mod:`preheat.lab.report_figures`), the
definitions, every run's exact config, the versions and seeds, and how to rerun. It reads at
800 px: wide tables scroll inside their box, figures scale down.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from preheat.lab.report_figures import report_figures
from preheat.lab.methods import describe, doc_url
from preheat.lab.metrics import RunMetrics, SweepMetrics, format_ranking
from preheat.lab.stats import CONFIDENCE
from preheat.lab.store import DONE, Store
from preheat.lab.verdict import Verdict, verdict


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
div.scroll { overflow-x: auto; max-width: 100%; }
section.verdict { background: #f4f8fc; border-left: 4px solid #2b6cb0; padding: 0.6em 1em; margin: 1em 0; }
section.verdict p { margin: 0.35em 0; } section.verdict p.headline { font-size: 1.1em; font-weight: 600; }
section.verdict pre { background: #fff; }
ul.methods { padding-left: 1.2em; } ul.methods li { margin: 0.15em 0; }
@media (max-width: 850px) { body { font-size: 14px; margin: 1em auto; } th, td { padding: 0.2em 0.4em; } }
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


def _verdict_section(judged: Verdict, commands: Sequence[str]) -> str:
    """The verdict's sentences (the headline first) and the next commands to run."""
    headline, *rest = judged.lines()
    lines = "".join(f"<p>{_e(line)}</p>" for line in rest)
    shell = f"<pre>{_e(chr(10).join(commands))}</pre>" if commands else ""
    return f'<section class="verdict"><p class="headline">{_e(headline)}</p>{lines}{shell}</section>'


def _methods_section(metrics: SweepMetrics) -> str:
    """A line per ranked method: its name, what it is and a link to its docs page (where the
    docs are installed)."""
    configs = {r.method: r.config for r in metrics.runs}
    items = []
    for row in metrics.ranking:
        info = describe(configs[row.method])
        url = doc_url(info.doc)
        link = f' (<a href="{_e(url)}">{_e(info.doc)}</a>)' if url else f" ({_e(info.doc)})"
        items.append(f"<li><b>{_e(row.title)}</b> [{_e(info.family)}]: {_e(info.note)}{link}</li>")
    return f'<h2>Methods</h2><ul class="methods">{"".join(items)}</ul>'


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
    return (f"<details><summary>{len(rows)} runs</summary><div class=\"scroll\">"
            f"{_table(headers, cells, {2, 3, 5, 6, 7, 8, 9, 11}, css)}</div></details>"
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
<li><b>interval</b>: the 95% confidence interval of a method's mean final val loss over its seeds at
its best peak LR, mean &plusmn; t(0.975, n&minus;1) &times; std / &radic;n (Student t); none for one
seed. Two methods are <b>within noise</b> of each other when their intervals overlap. The verdict
names a winner only when no other method is within noise of the best; with one seed it names none.</li>
<li><b>tuned baseline</b>: the best of the runs of linear warmup + cosine decay
(<code>warmup_cosine({warmup}, {steps})</code>) with a warmup of at least one update, over the
warmup lengths and peak LRs the sweep tried.</li>
<li><b>target</b>: the validation loss to reach; unless given, 1.1 &times; the best validation loss of
any finished run (for a best loss b &le; 0: b + 0.1 |b|). <b>steps to target</b>: the step where the
validation curve first reaches it, interpolated linearly between the two evaluations around the
crossing , averaged over the seeds that reached it ((k/n) when not all did).</li>
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




def _reproduce(store: Store, rows: Sequence[RunMetrics]) -> str:
    seeds = sorted({r.config.seed for r in rows})
    return ("<h2>Reproduce</h2>"
            f"<p>Seeds: {_e(', '.join(map(str, seeds)))}. The same config gives the same "
            "numbers on the same machine (seeded; CPU kernels are deterministic).</p>"
            f"<p>Rerun the sweep with <code>preheat sweep CONFIG</code> (runs already in the "
            f"store are kept; only missing ones run) and rebuild this page with "
            f"<code>preheat report {_e(store.directory)}</code>.</p>"
            "<h3>Versions</h3>" + _versions_section(store))


def _sections(store: Store, metrics: SweepMetrics, title: str, judged: Verdict,
              commands: Sequence[str]) -> tuple[list[str], dict[str, bytes]]:
    """The page's sections, in order, and its figures (file stem -> PNG)."""
    parts = [f"<h1>{_e(title)}</h1>"]
    if not metrics.runs:
        return parts + ['<p class="summary">The store has no runs yet.</p>'], {}
    headers, cells, numeric = format_ranking(metrics.ranking)
    parts.append(_verdict_section(judged, commands))
    parts.append(f'<p class="summary">{_e(_summary(metrics))}</p>'
                 '<h2>Ranking</h2><div class="scroll">' + _table(headers, cells, numeric, id_="ranking")
                 + f'</div><p class="note">Each method at its best peak LR; the final val loss is the mean over '
                 f"seeds &plusmn; the half-width of its {CONFIDENCE:.0%} interval (Student t; none for one "
                 "seed). Columns that are the same for every method are left out. ms / step is the wall "
                 "time per update on this machine under its load at the time: compare it only within "
                 "one sweep. Definitions are below.</p>")
    parts.append(_methods_section(metrics))
    drawn = {}
    for figure in report_figures(store, metrics, judged):
        drawn[figure.stem] = figure.png
        parts.append(f"<h2>{_e(figure.title)}</h2>" + _img(figure.png, figure.alt, figure.caption))
    parts += ["<h2>Definitions</h2>" + _DEFINITIONS, "<h2>Runs</h2>" + _runs_section(metrics.runs),
              _reproduce(store, metrics.runs)]
    return parts, drawn


def write_report(
    store: Store,
    metrics: SweepMetrics,
    path: str | Path | None = None,
    title: str | None = None,
    figures_dir: str | Path | None = None,
    judged: Verdict | None = None,
    commands: Sequence[str] = (),
) -> Path:
    """Write the report of ``store``'s sweep, whose metrics are ``metrics``
    (:func:`preheat.lab.metrics.sweep_metrics`), as one self-contained HTML file; return its path.

    ``path`` defaults to ``store.directory / "report.html"``; ``title`` to ``preheat: `` and
    the store's directory name. With ``figures_dir``, each figure is also written there as a PNG
    file named by its stem (``final_loss.png``, ``lr.png``, ...). ``judged`` is the sweep's
    verdict (default: :func:`preheat.lab.verdict.verdict` of ``metrics``); ``commands`` are the
    next commands to run, shown under it as a shell script (a ``# why`` line may precede each). Needs matplotlib (the ``plot`` extra).
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise ImportError("the report needs matplotlib; install it with: pip install 'preheat[plot]'") from err
    path = Path(path) if path is not None else store.directory / "report.html"
    title = title or f"preheat: {store.directory.resolve().name}"
    parts, drawn = _sections(store, metrics, title, judged or verdict(metrics), commands)
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
