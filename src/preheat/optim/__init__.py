"""Optimizers that change warmup behaviour.

- :class:`GIAdam` / :class:`GIAdamW`: Adam / AdamW with the second moment initialised from the
  first gradient (Kalra & Barkeshli, 2024), which acts as an implicit warmup.
"""

from preheat.optim.giadam import GIAdam, GIAdamW

__all__ = ["GIAdam", "GIAdamW"]
