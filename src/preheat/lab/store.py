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
run is saved), and imports or calls nothing named in it.

**Which files are stores.** A store carries preheat's SQLite ``application_id``
(:data:`APPLICATION_ID`) and its schema version as ``user_version`` (:data:`SCHEMA_VERSION`).
Any other file named ``runs.sqlite`` (a foreign database, a store of an older or newer schema,
a file that is not SQLite) is refused with :class:`StoreError`, naming the file and what it is,
and is never written to: only a missing or empty file becomes a new store, and a reader
(``Store(..., read_only=True)``: ``preheat report``, metrics) opens the file read-only.
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
from typing import Callable, Iterable, TypeVar

import numpy as np

from preheat.adaptive import Decision
from preheat.lab.config import RunConfig
from preheat.lab.record import EVAL_COLUMNS, STEP_COLUMNS, RunResult

T = TypeVar("T")
DONE = ("finished", "diverged", "failed")
#: SQLite's ``application_id`` of a preheat store ("PREH").
APPLICATION_ID = 0x50524548
#: The layout of the tables below; a store of another version is refused, never converted.
SCHEMA_VERSION = 2
NAME = "runs.sqlite"

_SCHEMA = """
CREATE TABLE runs (
    id TEXT PRIMARY KEY, method TEXT NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', error TEXT, wall_time REAL,
    started REAL, ended REAL, versions TEXT, signal_seconds REAL, chance_accuracy REAL
);
CREATE TABLE steps (
    run_id TEXT NOT NULL REFERENCES runs(id), step INTEGER NOT NULL, lr REAL, train_loss REAL,
    train_accuracy REAL, grad_norm REAL, update_norm REAL, PRIMARY KEY (run_id, step)
);
CREATE TABLE decisions (
    run_id TEXT NOT NULL REFERENCES runs(id), step INTEGER NOT NULL, multiplier REAL,
    action TEXT, reason TEXT, evidence TEXT, PRIMARY KEY (run_id, step)
);
CREATE TABLE evals (
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


def _check(db: sqlite3.Connection, path: Path) -> bool:
    """Whether ``db`` is empty (a new store may be made in it); raise :class:`StoreError` unless
    it is a preheat store of :data:`SCHEMA_VERSION`. Reads only."""
    try:
        application, version = (db.execute(f"PRAGMA {name}").fetchone()[0]
                                for name in ("application_id", "user_version"))
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{path} is not a readable SQLite database ({err}); expected a preheat store") from None
    if application == APPLICATION_ID and version == SCHEMA_VERSION:
        return False
    if application == APPLICATION_ID:
        newer = "a newer" if version > SCHEMA_VERSION else "an older"
        raise StoreError(f"{path} is a store of schema {version}, written by {newer} preheat; this "
                         f"preheat reads schema {SCHEMA_VERSION}: report it with the preheat that "
                         "wrote it, or rerun its sweep into a new folder")
    if not tables and application == 0 and version == 0:
        return True
    if "runs" in tables and "evals" in tables:
        raise StoreError(f"{path} is a store written before stores had a schema version; this "
                         f"preheat reads schema {SCHEMA_VERSION}: rerun its sweep into a new folder")
    raise StoreError(f"{path} is not a preheat store (its tables: {', '.join(sorted(tables)) or 'none'}); "
                     "nothing was written to it")


def _sql(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


class StoreError(ValueError):
    """A file that is not a store this preheat can read (foreign, corrupt, or another schema)."""


class Store:
    """Read and write the runs of one sweep directory.

    ``read_only=False`` (a sweep's driver): the folder and an empty store are made if missing;
    ``read_only=True`` (a report): the store must exist and is never written. Either way an
    existing ``runs.sqlite`` must be a store of :data:`SCHEMA_VERSION`, else :class:`StoreError`.
    """

    def __init__(self, directory: str | Path, *, read_only: bool = False) -> None:
        self.directory = Path(directory)
        self.path = self.directory / NAME
        if read_only and not self.path.is_file():
            raise StoreError(f"{self.directory} holds no {NAME}; expected a directory made by preheat "
                             "sweep or preheat compare")
        if self.directory.exists() and not self.directory.is_dir():
            raise StoreError(f"{self.directory} is a file; expected a sweep directory (made if missing)")
        if not read_only:
            self.directory.mkdir(parents=True, exist_ok=True)
        uri = self.path.resolve().as_uri() + ("?mode=ro" if read_only else "")
        self.db = sqlite3.connect(uri, uri=True)
        try:
            fresh = _check(self.db, self.path)
            if fresh and read_only:
                raise StoreError(f"{self.path} is an empty database; expected a preheat store")
            if fresh:
                with self.db:
                    self.db.executescript(_SCHEMA)
                    self.db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            self.db.close()
            raise

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
        return self._read(lambda: [RunConfig.from_stored(config) for (config,) in self.db.execute(
            f"SELECT config FROM runs WHERE status NOT IN {DONE} ORDER BY rowid")])

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
        rows = self._read(lambda: self.db.execute(
            "SELECT id, method, config, status, error, wall_time, versions, signal_seconds, chance_accuracy "
            "FROM runs ORDER BY rowid").fetchall())
        return self._read(lambda: [
            StoredRun(id=r[0], method=r[1], config=RunConfig.from_stored(r[2]), status=r[3], error=r[4],
                      wall_time=r[5], versions=json.loads(r[6]) if r[6] else None, signal_seconds=r[7],
                      chance_accuracy=r[8])
            for r in rows
        ])

    def steps(self, run_id: str) -> dict[str, np.ndarray]:
        """The per-update columns of a run (NaN where a value is missing)."""
        return self._columns("steps", STEP_COLUMNS, run_id)

    def evals(self, run_id: str) -> dict[str, np.ndarray]:
        """The evaluation columns of a run (NaN where a value is missing)."""
        return self._columns("evals", EVAL_COLUMNS, run_id)

    def decisions(self, run_id: str) -> list[Decision]:
        """A controller's decisions in a run, by step (empty for a schedule)."""
        return self._read(lambda: [
            Decision(step=r[0], multiplier=r[1], action=r[2], reason=r[3], evidence=json.loads(r[4]))
            for r in self.db.execute("SELECT step, multiplier, action, reason, evidence FROM decisions "
                                     "WHERE run_id = ? ORDER BY step", (run_id,))])

    def _columns(self, table: str, columns: tuple[str, ...], run_id: str) -> dict[str, np.ndarray]:
        rows = self._read(lambda: self.db.execute(
            f"SELECT {', '.join(columns)} FROM {table} WHERE run_id = ? ORDER BY step", (run_id,)).fetchall())
        data = self._read(lambda: np.array(rows, dtype=np.float64).reshape(len(rows), len(columns)))
        return {c: data[:, i] for i, c in enumerate(columns)}

    def _read(self, read: Callable[[], T]) -> T:
        """``read()``, with a damaged file or a value this preheat cannot read (a tampered
        config, a text where a number belongs) raised as :class:`StoreError` naming the file."""
        try:
            return read()
        except (sqlite3.DatabaseError, ValueError, TypeError) as err:
            problem = " ".join(str(err).split())[:300]
            raise StoreError(f"{self.path} holds data this preheat cannot read ({type(err).__name__}: "
                             f"{problem})") from None
