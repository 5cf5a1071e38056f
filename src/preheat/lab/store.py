"""The run store: one SQLite file per sweep directory (``DIR/runs.sqlite``).

Tables:

- ``runs``: one row per run: ``id`` (the config fingerprint), ``method`` (``RunConfig.method``:
  what a comparison groups by), ``config`` (JSON), ``status`` (``pending``, ``running``,
  ``finished``, ``diverged``, ``failed``), ``error``, ``wall_time`` (s), ``started``/``ended``
  (Unix time), ``versions`` (JSON), ``chance_accuracy`` (the task's, ``NULL`` where it has none
  or it is unknown).
- ``steps``: per update ``t``: ``lr``, ``train_loss``, ``train_accuracy``, ``grad_norm``,
  ``update_norm``.
- ``evals``: per evaluation: ``step``, ``val_loss``, ``val_accuracy``.
- ``decisions``: a controller's decision per update: ``step``, ``multiplier``, ``action``,
  ``reason``, ``evidence`` (JSON); and ``runs.signal_seconds``, the time its signals cost.

A finished run's rows and its status are written in one transaction, so a killed process
leaves either the whole run or none of it; runs still ``pending`` or ``running`` are what a
rerun of the sweep does again. Only one process (the sweep's driver) writes.

Reading a store imports no training code and no torch (:func:`versions` imports torch when a
run is saved). A store written before ``runs.name`` became ``runs.method`` and
``runs.chance_accuracy`` was added is brought up to date when it is opened (the column renamed,
chance unknown for its runs).
"""

from __future__ import annotations

import json
import math
import platform
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from preheat.adaptive import Decision
from preheat.lab.config import RunConfig
from preheat.lab.record import EVAL_COLUMNS, STEP_COLUMNS, RunResult

DONE = ("finished", "diverged", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, method TEXT NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', error TEXT, wall_time REAL,
    started REAL, ended REAL, versions TEXT, signal_seconds REAL, chance_accuracy REAL
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL REFERENCES runs(id), step INTEGER NOT NULL, lr REAL, train_loss REAL,
    train_accuracy REAL, grad_norm REAL, update_norm REAL, PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS decisions (
    run_id TEXT NOT NULL REFERENCES runs(id), step INTEGER NOT NULL, multiplier REAL,
    action TEXT, reason TEXT, evidence TEXT, PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS evals (
    run_id TEXT NOT NULL REFERENCES runs(id), step INTEGER NOT NULL, val_loss REAL,
    val_accuracy REAL, PRIMARY KEY (run_id, step)
);
"""


@dataclass(frozen=True)
class StoredRun:
    """One row of the ``runs`` table; ``config`` read back with :meth:`RunConfig.from_stored`
    (its expressions are not parsed again), ``versions`` a dict (None before the run ended)."""

    id: str
    method: str
    config: RunConfig
    status: str
    error: str | None
    wall_time: float | None
    versions: dict[str, str] | None
    signal_seconds: float | None
    chance_accuracy: float | None


def versions() -> dict[str, str]:
    """The versions a run's numbers depend on."""
    import torch

    import preheat

    return {
        "preheat": preheat.__version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def _sql(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


class Store:
    """Read and write the runs of one sweep directory (created if missing)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "runs.sqlite"
        self.db = sqlite3.connect(self.path)
        self._update_older()
        self.db.executescript(_SCHEMA)

    def _update_older(self) -> None:
        """Rename an older store's ``runs.name`` to ``method`` and add ``chance_accuracy``."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(runs)")}
        with self.db:
            if "name" in columns and "method" not in columns:
                self.db.execute("ALTER TABLE runs RENAME COLUMN name TO method")
            if columns and "chance_accuracy" not in columns:
                self.db.execute("ALTER TABLE runs ADD COLUMN chance_accuracy REAL")

    def close(self) -> None:
        self.db.close()

    def add(self, configs: Iterable[RunConfig]) -> None:
        """Register runs as ``pending``; runs already in the store are left as they are."""
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO runs (id, method, config) VALUES (?, ?, ?)",
                [(c.fingerprint(), c.method, c.model_dump_json()) for c in configs],
            )

    def todo(self) -> list[RunConfig]:
        """Runs not done yet (``pending``, or ``running`` when a previous process was killed)."""
        rows = self.db.execute(
            f"SELECT config FROM runs WHERE status NOT IN {DONE} ORDER BY rowid"
        ).fetchall()
        return [RunConfig.from_stored(config) for (config,) in rows]

    def mark_running(self, config: RunConfig) -> None:
        """The run was handed to a process."""
        with self.db:
            self.db.execute(
                "UPDATE runs SET status = 'running', started = ? WHERE id = ?",
                (time.time(), config.fingerprint()),
            )

    def mark_pending(self, config: RunConfig) -> None:
        """The run's process died before it returned a record: the run is to do again."""
        with self.db:
            self.db.execute("UPDATE runs SET status = 'pending', started = NULL WHERE id = ?",
                            (config.fingerprint(),))

    def save(self, config: RunConfig, result: RunResult) -> None:
        """Write a run's record and final status in one transaction (replacing any partial one)."""
        run_id = config.fingerprint()
        steps = [(run_id, *(_sql(result.steps[c][i]) for c in STEP_COLUMNS))
                 for i in range(len(result.steps["step"]))]
        evals = [(run_id, *(_sql(result.evals[c][i]) for c in EVAL_COLUMNS))
                 for i in range(len(result.evals["step"]))]
        with self.db:
            self.db.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
            self.db.execute("DELETE FROM evals WHERE run_id = ?", (run_id,))
            self.db.execute("DELETE FROM decisions WHERE run_id = ?", (run_id,))
            self.db.executemany("INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?)", [
                (run_id, d.step, d.multiplier, d.action, d.reason, json.dumps(d.evidence))
                for d in result.decisions])
            self.db.executemany(f"INSERT INTO steps VALUES ({', '.join('?' * (len(STEP_COLUMNS) + 1))})", steps)
            self.db.executemany(f"INSERT INTO evals VALUES ({', '.join('?' * (len(EVAL_COLUMNS) + 1))})", evals)
            self.db.execute(
                "UPDATE runs SET status = ?, error = ?, wall_time = ?, ended = ?, versions = ?, "
                "signal_seconds = ?, chance_accuracy = ? WHERE id = ?",
                (result.status, result.error, result.wall_time, time.time(), json.dumps(versions()),
                 result.signal_seconds, result.chance_accuracy, run_id),
            )

    def runs(self) -> list[StoredRun]:
        """Every run, in the order it was added."""
        rows = self.db.execute(
            "SELECT id, method, config, status, error, wall_time, versions, signal_seconds, chance_accuracy "
            "FROM runs ORDER BY rowid"
        ).fetchall()
        return [
            StoredRun(id=r[0], method=r[1], config=RunConfig.from_stored(r[2]), status=r[3], error=r[4],
                      wall_time=r[5], versions=json.loads(r[6]) if r[6] else None, signal_seconds=r[7],
                      chance_accuracy=r[8])
            for r in rows
        ]

    def steps(self, run_id: str) -> dict[str, np.ndarray]:
        """The per-update columns of a run (NaN where a value is missing)."""
        return self._columns("steps", STEP_COLUMNS, run_id)

    def evals(self, run_id: str) -> dict[str, np.ndarray]:
        """The evaluation columns of a run (NaN where a value is missing)."""
        return self._columns("evals", EVAL_COLUMNS, run_id)

    def decisions(self, run_id: str) -> list[Decision]:
        """A controller's decisions in a run, by step (empty for a schedule)."""
        rows = self.db.execute(
            "SELECT step, multiplier, action, reason, evidence FROM decisions WHERE run_id = ? ORDER BY step",
            (run_id,)).fetchall()
        return [Decision(step=r[0], multiplier=r[1], action=r[2], reason=r[3], evidence=json.loads(r[4]))
                for r in rows]

    def _columns(self, table: str, columns: tuple[str, ...], run_id: str) -> dict[str, np.ndarray]:
        rows = self.db.execute(
            f"SELECT {', '.join(columns)} FROM {table} WHERE run_id = ? ORDER BY step", (run_id,)
        ).fetchall()
        data = np.array(rows, dtype=np.float64).reshape(len(rows), len(columns))
        return {c: data[:, i] for i, c in enumerate(columns)}
