"""Controller expressions: ``"nars_warmup(interval=20)"``, read with the schedule parser.

A run gives a controller its length and its after-warmup schedule, so an expression names only
the controller's own arguments.
"""

from __future__ import annotations

import functools

from preheat.adaptive.base import Controller
from preheat.schedules import parse


def controllers() -> dict[str, type[Controller]]:
    """Every controller class by the name an expression uses."""
    from preheat import adaptive

    return {cls.name: cls for cls in adaptive.CONTROLLERS}


def parse_controller(text: str, total: int, after: str | None = None) -> Controller:
    """Build the controller ``text`` names for a run of ``total`` updates, handing over to
    ``after`` (a schedule expression; ``{steps}`` is filled with the steps left at the handover;
    None: the controller's own default, ``constant()`` for most, cosine decay for
    ``auto_warmup``).

    Raises :class:`preheat.ParseError` with the position and a hint for a bad expression.
    """
    given = {} if after is None else {"after": after}
    known = {name: functools.partial(cls, total=total, **given) for name, cls in controllers().items()}
    return parse(text, known)  # type: ignore[return-value]
