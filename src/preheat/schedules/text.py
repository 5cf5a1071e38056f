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
import warnings
from typing import Any, Callable, Mapping

from preheat.schedules.base import Schedule
from preheat.schedules.validate import shorten

#: An error shows an expression up to this long whole; a longer one only around the problem.
SHOWN_WHOLE = 500
#: Characters shown on either side of the problem in a longer expression.
CONTEXT = 100


class ParseError(ValueError):
    """A schedule expression that cannot be read, with the 0-based ``position`` and a ``hint``."""

    def __init__(self, message: str, expression: str, position: int, hint: str = "") -> None:
        self.message = message
        self.expression = expression
        self.position = position
        self.hint = hint
        super().__init__(str(self))

    def excerpt(self) -> tuple[str, int]:
        """The expression as an error shows it, and the column of the caret under it.

        Line breaks, tabs and other control characters show as spaces, so the caret lines up and
        nothing reaches the terminal as a control code. An expression longer than
        :data:`SHOWN_WHOLE` shows only :data:`CONTEXT` characters either side of the position,
        cut with ``...``.
        """
        text = re.sub(r"[\x00-\x1f\x7f]", " ", self.expression)
        if len(text) <= SHOWN_WHOLE:
            return text, self.position
        start = max(0, self.position - CONTEXT)
        end = self.position + CONTEXT
        head = "..." if start else ""
        tail = "..." if end < len(text) else ""
        return head + text[start:end] + tail, len(head) + self.position - start

    def __str__(self) -> str:
        shown, column = self.excerpt()
        lines = [
            f"{self.message} (at column {self.position + 1})",
            f"  {shown}",
            "  " + " " * column + "^",
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
    Raises :class:`ParseError` (a ``ValueError``) with the column of the problem and a hint,
    for any text: never another exception.
    """
    example = "write e.g. 'linear_warmup(100) >> cosine_decay(900)'"
    if not isinstance(text, str):
        raise ParseError(
            f"expected a schedule expression as a string, got {type(text).__name__} {shorten(text)}",
            shorten(text), 0, example,
        )
    if not text.strip():
        raise ParseError("empty schedule expression", text, 0, example)
    source = text.strip()
    deep = "expression nested too deeply", source, 0, "write a very long chain as join([...], [...])"
    try:
        with warnings.catch_warnings():  # Python's own warnings on odd literals ('1if', '\d'): the
            warnings.simplefilter("ignore")  # expression is refused or read, nothing is printed
            tree = ast.parse(source, mode="eval")
    except SyntaxError as err:
        position = _Lines(source).offset(err.lineno or 1, (err.offset or 1) - 1, chars=True)
        raise ParseError(f"syntax error: {err.msg}", source, position, "check brackets, commas and quotes") from None
    except ValueError as err:  # text Python refuses to read: a null character
        raise ParseError(f"syntax error: {err}", source, 0, "check for invisible characters") from None
    except (RecursionError, MemoryError):  # the parser's own limits on nesting (----1, say)
        raise ParseError(*deep) from None
    try:
        return _Reader(source, known or functions()).schedule(tree.body)
    except RecursionError:
        raise ParseError(*deep) from None


class _Lines:
    """Positions in a multi-line expression: (line, column) to the offset in the whole text."""

    def __init__(self, source: str) -> None:
        self.lines = re.split(r"(?<=\n)|(?<=\r)(?!\n)", source)
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, column: int, chars: bool = False) -> int:
        """The 0-based offset of ``column`` on line ``lineno`` (1-based); the column counts UTF-8
        bytes, as in Python's syntax tree, unless ``chars``."""
        index = min(max(lineno, 1), len(self.lines)) - 1
        line = self.lines[index]
        if not chars:
            column = len(line.encode("utf-8")[: max(column, 0)].decode("utf-8", errors="ignore"))
        return self.starts[index] + min(max(column, 0), len(line))


class _Reader:
    def __init__(self, source: str, known: Mapping[str, Callable[..., Any]]) -> None:
        self.source = source
        self.known = known
        self.lines = _Lines(source)

    def position(self, node: ast.AST) -> int:
        return self.lines.offset(getattr(node, "lineno", 1), getattr(node, "col_offset", 0))

    def fail(self, node: ast.AST, message: str, hint: str = "") -> ParseError:
        return ParseError(message, self.source, self.position(node), hint)

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
                    left_end = self.lines.offset(link.left.end_lineno or 1, link.left.end_col_offset or 0)
                    position = self.source.find(operator, left_end)
                    raise ParseError(str(err), self.source, max(position, 0)) from None
            return result
        if isinstance(node, ast.BinOp):
            raise self.fail(node, "only >> (then) and * (product) combine schedules",
                            "a >> b runs a, then b; a * b multiplies them")
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.fail(node, f"expected a schedule, found {_code(node)}",
                        "call a schedule function, e.g. linear_warmup(100)")

    def call(self, node: ast.Call) -> Schedule:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node, f"{_code(node.func)} is not a schedule function", self.names_hint(""))
        name = node.func.id
        function = self.known.get(name)
        if function is None:
            raise self.fail(node, f"unknown schedule {shorten(name)}", self.names_hint(name))
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
            # Signs in a loop, not recursion: ---1 is -1, however many there are.
            negate, operand = False, node
            while isinstance(operand, ast.UnaryOp) and isinstance(operand.op, (ast.USub, ast.UAdd)):
                negate ^= isinstance(operand.op, ast.USub)
                operand = operand.operand
            if isinstance(operand, ast.Constant) and type(operand.value) in (int, float, bool):
                return -operand.value if negate else operand.value
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.value(item) for item in node.elts]
        combines = isinstance(node, ast.BinOp) and isinstance(node.op, (ast.RShift, ast.Mult))
        if isinstance(node, ast.Call) or (combines and isinstance(node.right, (ast.Call, ast.BinOp))):
            return self.schedule(node)
        raise self.fail(node, f"{_code(node)} is not allowed as an argument",
                        "arguments are numbers, strings, lists or schedules (no arithmetic or names)")

    def names_hint(self, name: str) -> str:
        close = difflib.get_close_matches(name[:100], self.known, n=3)
        if close:
            return "did you mean " + " or ".join(close) + "?"
        return "known: " + ", ".join(sorted(self.known))


def _code(node: ast.AST) -> str:
    """The source of ``node`` quoted for a message, cut when long."""
    try:
        return shorten(ast.unparse(node))
    except RecursionError:
        return "(a deeply nested expression)"
