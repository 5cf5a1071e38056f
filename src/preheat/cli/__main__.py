"""``python -m preheat.cli``: the same as the ``preheat`` command."""

from preheat.cli import app

app()
