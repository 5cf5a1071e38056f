"""The ``preheat`` command (entry point ``preheat.cli:app``)."""

from preheat.cli import advise, bench, check, diagnose, lab, schedules  # noqa: F401  (each registers its commands on the app)
from preheat.cli.app import app

__all__ = ["app"]
