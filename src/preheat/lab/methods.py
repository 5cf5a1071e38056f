"""What a run's method is, from its config alone: its family, a one-line note and its docs page.

The report and the ranking's legend explain every method with :func:`describe`; the figures
colour methods by family (one hue per family, shades within it). Families:

- ``no warmup``: a schedule whose multiplier at update 0 is already 1;
- ``schedule``: any other schedule (a warmup of fixed length);
- ``optimizer``: an optimizer that stands in for the warmup (RAdam's rectification, GI-Adam's
  initial second moment), with a schedule;
- ``adaptive``: a :mod:`preheat.adaptive` controller;
- ``peer``: another package's warmup (``peer``), or an optimizer of another package that
  learns or replaces it (schedule-free AdamW, Prodigy, D-Adaptation, DoG).

Nothing here builds a controller or an optimizer; a schedule is parsed (NumPy only) to read
its first multiplier.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from preheat.lab.config import RunConfig

FAMILIES = ("no warmup", "schedule", "optimizer", "adaptive", "peer")
DOCS = Path(__file__).resolve().parents[3] / "docs"  # a source checkout's docs folder

_OPTIMIZER_NOTES = {  # optimizers that stand in for a warmup: what each does, its docs page
    "radam": ("RAdam: its variance rectification stands in for a warmup", "schedules.md"),
    "giadam": ("GI-Adam: Adam's second moment starts from the first gradient", "adaptive.md"),
}
_PEER_OPTIMIZERS = {  # optimizers from other packages that learn or replace the warmup themselves
    "schedulefree_adamw": "schedule-free AdamW",
    "prodigy": "Prodigy (learns its step size)",
    "dadapt_adam": "D-Adaptation Adam (learns its step size)",
    "dog": "DoG (learns its step size)",
}
_CONTROLLER_NOTES = {  # controller name -> what it does (all are in docs/adaptive.md)
    "auto_warmup": "preheat's default: a linear ramp that backs off on spikes, lowers the peak where the loss stays up",
    "smoothness_warmup": "LR raised as far as the measured smoothness allows (Liu et al. 2025)",
    "sharpness_warmup": "LR raised while the sharpness stays below the edge of stability",
    "catapult_warmup": "starts at the LR a catapult search finds, then a linear ramp",
    "nars_warmup": "a NARS reasoning controller raises, holds or cuts the LR",
    "autowu_warmup": "AutoWU: exponential ramp until a GP-smoothed loss stops falling (Kim et al. 2021)",
    "gap_warmup": "LR from the loss gap, peak once the gap falls to its fitted optimum (Riabinin et al. 2026)",
}
_PERSISTENT = "starts at the LR a catapult search finds, raised x2 while the loss recovers"


@dataclass(frozen=True)
class MethodInfo:
    """A method's ``family`` (one of :data:`FAMILIES`), its one-line ``note`` and ``doc``, the
    page under ``docs/`` that explains it."""

    family: str
    note: str
    doc: str


def describe(config: RunConfig) -> MethodInfo:
    """The family, note and docs page of ``config``'s method. The note is ``config.note`` when
    given, else made from the config (what it runs, with its expressions filled in). A schedule
    that no longer parses is described as a ``schedule`` by its stored text."""
    if config.peer is not None or config.optimizer in _PEER_OPTIMIZERS:
        what = config.peer or _PEER_OPTIMIZERS[config.optimizer]
        info = MethodInfo("peer", f"{what}: another package's warmup, run through that package", "results.md")
    elif config.controller is not None:
        name = config.controller.split("(", 1)[0].strip()
        text = _PERSISTENT if "persistent=True" in config.controller else _CONTROLLER_NOTES.get(name, name)
        decay = "its default decay" if config.after is None else _head(config.after)
        info = MethodInfo("adaptive", f"{text}; then {decay} over the updates left", "adaptive.md")
    elif config.optimizer.rstrip("w") in _OPTIMIZER_NOTES:
        text, doc = _OPTIMIZER_NOTES[config.optimizer.rstrip("w")]
        info = MethodInfo("optimizer", f"{text}; with {config.schedule_text}", doc)
    elif _starts_at_peak(config):
        info = MethodInfo("no warmup", f"the peak LR from update 0: {config.schedule_text}", "schedules.md")
    else:
        info = MethodInfo("schedule", config.schedule_text, "schedules.md")
    return info if config.note is None else MethodInfo(info.family, config.note, info.doc)


def _starts_at_peak(config: RunConfig) -> bool:
    """Whether the schedule's multiplier at update 0 is 1; False for a schedule this version of
    preheat no longer parses (a stored run is described by its text, never refused)."""
    try:
        return config.resolved_schedule()(0) >= 1.0
    except ValueError:
        return False


def _head(expression: str) -> str:
    """The function an expression starts with (``cosine_decay`` for ``cosine_decay({steps})``)."""
    return expression.split("(", 1)[0].strip()


def doc_url(doc: str) -> str | None:
    """``file://`` URL of the page ``doc`` in the docs folder of a source checkout;
    None where preheat was installed without its docs."""
    path = DOCS / doc
    return path.as_uri() if path.is_file() else None
