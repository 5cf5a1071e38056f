"""The text form: parse the Python expression a user writes, without ``eval``.

``parse("linear_warmup(2000) >> cosine_decay(98000, end=0.1)")`` walks Python's own syntax
tree and allows only calls of schedule functions with literal arguments (numbers, strings,
lists, nested schedules), combined with ``>>`` and ``*``. ``str(schedule)`` prints the same form.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import re
from typing import Any, Callable, Mapping

from preheat.schedules.base import Schedule


class ParseError(ValueError):
    """A schedule expression that cannot be read, with the 0-based ``position`` and a ``hint``."""

    def __init__(self, message: str, expression: str, position: int, hint: str = "") -> None:
        self.message = message
        self.expression = expression
        self.position = position
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [
            f"{self.message} (at column {self.position + 1})",
            f"  {self.expression}",
            "  " + " " * self.position + "^",
        ]
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


def functions() -> dict[str, Callable[..., Schedule]]:
    """The names an expression may call: every schedule family, the presets and ``join``."""
    from preheat import schedules

    return {name: getattr(schedules, name) for name in schedules.EXPRESSION_NAMES}


def parse(text: str, known: Mapping[str, Callable[..., Any]] | None = None) -> Schedule:
    """Read a schedule expression, e.g. ``"linear_warmup(2000) >> cosine_decay(98000, end=0.1)"``.

    ``known`` replaces the callable names (default: every schedule function); other packages
    use it to read their own expressions (``preheat.adaptive`` reads controllers so).
    Raises :class:`ParseError` (a ``ValueError``) with the column of the problem and a hint.
    """
    if not isinstance(text, str) or not text.strip():
        raise ParseError("empty schedule expression", str(text), 0, "write e.g. 'linear_warmup(100) >> cosine_decay(900)'")
    source = text.strip()
    try:
        tree = ast.parse(source, mode="eval")
        return _Reader(source, known or functions()).schedule(tree.body)
    except SyntaxError as err:
        position = max((err.offset or 1) - 1, 0)
        raise ParseError(f"syntax error: {err.msg}", source, position, "check brackets, commas and quotes") from None
    except RecursionError:
        raise ParseError("expression nested too deeply", source, 0,
                         "write a very long chain as join([...], [...])") from None


class _Reader:
    def __init__(self, source: str, known: Mapping[str, Callable[..., Any]]) -> None:
        self.source = source
        self.known = known

    def fail(self, node: ast.AST, message: str, hint: str = "") -> ParseError:
        return ParseError(message, self.source, getattr(node, "col_offset", 0), hint)

    def schedule(self, node: ast.expr) -> Schedule:
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.RShift, ast.Mult)):
            # Walk a chain a >> b >> c (nested to the left) without recursion: chains get long.
            kind, links = type(node.op), []
            while isinstance(node, ast.BinOp) and isinstance(node.op, kind):
                links.append(node)
                node = node.left
            result = self.schedule(node)
            for link in reversed(links):
                right = self.schedule(link.right)
                try:
                    result = result >> right if kind is ast.RShift else result * right
                except ValueError as err:
                    operator = ">>" if kind is ast.RShift else "*"
                    position = self.source.find(operator, link.left.end_col_offset or 0)
                    raise ParseError(str(err), self.source, position) from None
            return result
        if isinstance(node, ast.BinOp):
            raise self.fail(node, "only >> (then) and * (product) combine schedules",
                            "a >> b runs a, then b; a * b multiplies them")
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.fail(node, f"expected a schedule, found {ast.unparse(node)!r}",
                        "call a schedule function, e.g. linear_warmup(100)")

    def call(self, node: ast.Call) -> Schedule:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node, f"{ast.unparse(node.func)!r} is not a schedule function", self.names_hint(""))
        name = node.func.id
        function = self.known.get(name)
        if function is None:
            raise self.fail(node, f"unknown schedule {name!r}", self.names_hint(name))
        args = [self.value(a) for a in node.args]
        kwargs = {}
        for keyword in node.keywords:
            if keyword.arg is None:
                raise self.fail(keyword.value, "** is not allowed in a schedule expression",
                                "write each keyword argument out, e.g. end=0.1")
            kwargs[keyword.arg] = self.value(keyword.value)
        try:
            return function(*args, **kwargs)
        except TypeError as err:
            signature = inspect.signature(function).replace(return_annotation=inspect.Signature.empty)
            problem = re.sub(r"^[\w.]*\(\)", f"{name}()", str(err))
            hint = f"signature: {name}{signature}".replace("'", "")
            raise self.fail(node, problem, hint) from None
        except ValueError as err:
            raise self.fail(node, str(err)) from None

    def value(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
            return node.value  # bools too (a controller's switches); schedules refuse them by name
        if isinstance(node, ast.Constant) and node.value is None:
            return None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.value(node.operand)
            if isinstance(operand, (int, float)):
                return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.value(item) for item in node.elts]
        combines = isinstance(node, ast.BinOp) and isinstance(node.op, (ast.RShift, ast.Mult))
        if isinstance(node, ast.Call) or (combines and isinstance(node.right, (ast.Call, ast.BinOp))):
            return self.schedule(node)
        raise self.fail(node, f"{ast.unparse(node)!r} is not allowed as an argument",
                        "arguments are numbers, strings, lists or schedules (no arithmetic or names)")

    def names_hint(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.known, n=3)
        if close:
            return "did you mean " + " or ".join(close) + "?"
        return "known: " + ", ".join(sorted(self.known))
