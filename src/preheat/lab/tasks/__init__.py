"""Built-in lab tasks and the loader for users' own (``package.module:function``)."""

from __future__ import annotations

import importlib
from typing import Any

from preheat.lab.catalog import BUILTIN
from preheat.lab.tasks.base import Task


def make_task(name: str, options: dict[str, Any] | None = None) -> Task:
    """Build the task ``name`` with keyword ``options``.

    ``name`` is a built-in (:data:`preheat.lab.catalog.BUILTIN`: ``river-valley``, ``digits``,
    ``shakespeare-char``, ``cifar10``) or ``package.module:function``, a callable that takes the options as keywords and returns a
    :class:`Task` (see ``docs/tasks.md`` for an example).
    """
    target = BUILTIN.get(name, name)
    if ":" not in target:
        raise ValueError(
            f"task={name!r} is unknown; expected one of {', '.join(BUILTIN)} or "
            "'package.module:function' returning a preheat.lab.tasks.Task"
        )
    module_name, _, attribute = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"task={name!r} cannot be loaded: {err}") from None
    try:
        task = factory(**(options or {}))
    except TypeError as err:
        raise ValueError(f"task={name!r}: bad task_options {options!r}: {err}") from None
    if not isinstance(task, Task):
        raise ValueError(
            f"task={name!r} returned {type(task).__name__}; expected a preheat.lab.tasks.Task"
        )
    return task


__all__ = ["BUILTIN", "Task", "make_task"]
