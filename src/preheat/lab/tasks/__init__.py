"""Built-in lab tasks and the loader for users' own (``package.module:function``)."""

from __future__ import annotations

import importlib
import inspect
import typing
from typing import Any

from preheat.lab.catalog import BUILTIN
from preheat.lab.tasks.base import Task


def make_task(name: str, options: dict[str, Any] | None = None) -> Task:
    """Build the task ``name`` with keyword ``options``.

    ``name`` is a built-in (:data:`preheat.lab.catalog.BUILTIN`: ``river-valley``, ``digits``,
    ``shakespeare-char``, ``cifar10``) or ``package.module:function``: a :class:`Task` subclass,
    or a function annotated to return one (``def make(**options) -> MyTask``), which takes the
    options as keywords (see ``docs/tasks.md`` for an example). That declaration is checked
    before anything is called, so a name such as ``os:system`` is refused without running it;
    what the call returns is checked too.

    Importing a module runs its code: only name a module you trust. A config file or a store is
    never trusted to (:func:`preheat.lab.config.load_config`, :mod:`preheat.lab.store`).
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
    if not _makes_a_task(factory):
        raise ValueError(f"task={name!r} is {factory!r}, which does not declare that it returns a "
                         "preheat.lab.tasks.Task; expected a Task subclass or a function annotated "
                         "'-> Task' (or -> a subclass)")
    try:
        task = factory(**(options or {}))
    except TypeError as err:
        raise ValueError(f"task={name!r}: bad task_options {options!r}: {err}") from None
    if not isinstance(task, Task):
        raise ValueError(
            f"task={name!r} returned {type(task).__name__}; expected a preheat.lab.tasks.Task"
        )
    return task


def _makes_a_task(factory: Any) -> bool:
    """Whether ``factory`` is a Task subclass or a function whose return annotation is one."""
    if isinstance(factory, type):
        return issubclass(factory, Task)
    if not inspect.isfunction(factory):
        return False
    try:
        returned = typing.get_type_hints(factory).get("return")
    except Exception:  # an annotation that does not resolve declares nothing
        return False
    return isinstance(returned, type) and issubclass(returned, Task)


__all__ = ["BUILTIN", "Task", "make_task"]
