"""Decision conditions (`amount > 100 and payload.country in ["FR", "BE"]`).

The source is parsed with `ast.parse(mode="eval")` only to get a syntax tree; the tree
is then checked against a short whitelist and turned into plain Python closures. User
text is never compiled or executed as Python.

Metadata imported from CSV is all text, so comparisons coerce: a number against a
numeric string compares as numbers, `true`/`false` match "true"/"false", and a
comparison that makes no sense (a missing value, text against a number) is simply
False instead of an error.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from models.spinner_language.templating import resolve_reference

__all__ = ["Expression", "ExpressionError", "compile_expression"]

MAX_EXPRESSION_LENGTH: Final = 2_000
MAX_DEPTH: Final = 40

_LITERAL_NAMES: Final[dict[str, Any]] = {"true": True, "false": False, "null": None}
_NUMBER: Final = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_FALSE_WORDS: Final = frozenset({"", "false", "0", "no", "null", "none"})

_REFUSALS: Final[dict[type[ast.AST], str]] = {
    ast.Call: "function calls are not allowed",
    ast.Subscript: "indexing with [...] is not allowed; use dotted names like output.x",
    ast.BinOp: "arithmetic is not supported",
    ast.Lambda: "lambdas are not allowed",
    ast.IfExp: "'x if y else z' is not supported; use separate branches",
    ast.Dict: "dictionary literals are not allowed",
    ast.Set: 'set literals are not allowed; use a list like ["a", "b"]',
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.NamedExpr: "assignments are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.Starred: "'*' is not allowed",
    ast.Await: "'await' is not allowed",
    ast.Yield: "'yield' is not allowed",
    ast.YieldFrom: "'yield' is not allowed",
}

Scope = tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]
Evaluator = Callable[[Scope], Any]


class ExpressionError(ValueError):
    """A condition that is not valid; the message is meant for the user."""


class _Refused(Exception):
    def __init__(self, message: str, lineno: int | None, column: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.lineno = lineno
        self.column = column


@dataclass(frozen=True, eq=False)
class Expression:
    """A checked condition, ready to evaluate for many records."""

    source: str
    _evaluate: Evaluator
    _references: tuple[str, ...]

    def evaluate(
        self,
        metadata: Mapping[str, Any],
        outputs: Mapping[str, Any],
        context: Mapping[str, Any],
    ) -> bool:
        return truthy(self._evaluate((metadata, outputs, context)))

    def references(self) -> list[str]:
        """Dotted names the condition reads, in order: "amount", "payload.x", "output.y"."""
        return list(self._references)


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> Expression:
    """Parse and check a condition; raises ExpressionError with the column of the problem."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"condition is longer than {MAX_EXPRESSION_LENGTH} characters")
    if not source.strip():
        raise ExpressionError("condition is empty")
    # Leading whitespace is an indentation error to the Python parser, not to users;
    # parsing inside parentheses allows it (and line breaks) without moving columns.
    try:
        tree = ast.parse(f"(\n{source}\n)", mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(_syntax_message(source, exc)) from None
    except (ValueError, RecursionError, MemoryError):
        raise ExpressionError("condition cannot be parsed") from None
    refs: list[str] = []
    try:
        evaluator = _build(tree.body, refs, 0)
    except _Refused as exc:
        raise ExpressionError(f"{exc.message}{_where(source, exc.lineno, exc.column)}") from None
    return Expression(source, evaluator, tuple(dict.fromkeys(refs)))


def _syntax_message(source: str, exc: SyntaxError) -> str:
    hint = ""
    if "&&" in source or "||" in source:
        hint = "; use 'and' / 'or'"
    elif "!" in source.replace("!=", ""):
        hint = "; use 'not'"
    elif re.search(r"(?<![=!<>])=(?!=)", source):
        hint = "; compare with '=='"
    return f"invalid syntax{_where(source, exc.lineno, exc.offset)}{hint}"


def _where(source: str, lineno: int | None, column: int | None) -> str:
    """Position in the user's text; the parsed text has one extra line before it."""
    if lineno is None or column is None:
        return ""
    line = lineno - 1
    if not 1 <= line <= source.count("\n") + 1:
        return " at the end"
    if "\n" in source:
        return f" at line {line}, column {column}"
    return f" at column {column}"


def _fail(node: ast.AST, message: str) -> _Refused:
    lineno = getattr(node, "lineno", None)
    column = getattr(node, "col_offset", None)
    return _Refused(message, lineno, None if column is None else column + 1)


def _build(node: ast.expr, refs: list[str], depth: int) -> Evaluator:
    if depth > MAX_DEPTH:
        raise _fail(node, "condition is nested too deeply")
    depth += 1
    if isinstance(node, ast.Constant):
        return _constant(node)
    if isinstance(node, ast.Name | ast.Attribute):
        return _reference(node, refs)
    if isinstance(node, ast.BoolOp):
        parts = [_build(v, refs, depth) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda s: all(truthy(p(s)) for p in parts)
        return lambda s: any(truthy(p(s)) for p in parts)
    if isinstance(node, ast.UnaryOp):
        return _unary(node, refs, depth)
    if isinstance(node, ast.Compare):
        return _compare(node, refs, depth)
    if isinstance(node, ast.List | ast.Tuple):
        items = [_build(e, refs, depth) for e in node.elts]
        return lambda s: [item(s) for item in items]
    refusal = next(
        (text for kind, text in _REFUSALS.items() if isinstance(node, kind)),
        f"'{type(node).__name__}' is not allowed",
    )
    raise _fail(node, refusal)


def _constant(node: ast.Constant) -> Evaluator:
    value = node.value
    if value is not None and not isinstance(value, str | int | float | bool):
        raise _fail(node, f"{type(value).__name__} values are not allowed")
    return lambda s: value


def _reference(node: ast.Name | ast.Attribute, refs: list[str]) -> Evaluator:
    keys: list[str] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        keys.append(current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        raise _fail(node, "values can only be read from names like payload.x or output.y")
    keys.append(current.id)
    keys.reverse()
    if any(key.startswith("__") for key in keys):
        raise _fail(node, "names starting with '__' are not allowed")
    if keys[0] in _LITERAL_NAMES:
        if len(keys) > 1:
            raise _fail(node, f"'{keys[0]}' has no fields")
        literal = _LITERAL_NAMES[keys[0]]
        return lambda s: literal
    refs.append(".".join(keys))

    def resolve(s: Scope) -> Any:
        return resolve_reference(keys, metadata=s[0], outputs=s[1], context=s[2])[1]

    return resolve


def _unary(node: ast.UnaryOp, refs: list[str], depth: int) -> Evaluator:
    if isinstance(node.op, ast.Not):
        inner = _build(node.operand, refs, depth)
        return lambda s: not truthy(inner(s))
    if isinstance(node.op, ast.USub | ast.UAdd) and isinstance(node.operand, ast.Constant):
        number = _as_number(node.operand.value) if _is_number(node.operand.value) else None
        if number is not None:
            value = -number if isinstance(node.op, ast.USub) else number
            return lambda s: value
    raise _fail(node, "'-' and '+' only go in front of numbers; arithmetic is not supported")


_ORDERING: Final[dict[type[ast.cmpop], Callable[[Any, Any], bool]]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def _compare(node: ast.Compare, refs: list[str], depth: int) -> Evaluator:
    operands = [_build(node.left, refs, depth)] + [_build(c, refs, depth) for c in node.comparators]
    tests: list[Callable[[Any, Any], bool]] = []
    for op in node.ops:
        if isinstance(op, ast.Eq):
            tests.append(equals)
        elif isinstance(op, ast.NotEq):
            tests.append(lambda a, b: not equals(a, b))
        elif isinstance(op, ast.In):
            tests.append(contains)
        elif isinstance(op, ast.NotIn):
            tests.append(lambda a, b: not contains(a, b))
        elif type(op) in _ORDERING:
            tests.append(_ordered(_ORDERING[type(op)]))
        else:
            raise _fail(node, "'is' is not supported; compare with '== null' or '!= null'")

    def evaluate(s: Scope) -> bool:
        # Chained comparisons (1 < x < 10) read each operand once, as Python does.
        left = operands[0](s)
        for test, operand in zip(tests, operands[1:], strict=True):
            right = operand(s)
            if not test(left, right):
                return False
            left = right
        return True

    return evaluate


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_number(value: Any) -> float | int | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    return None


def truthy(value: Any) -> bool:
    """How a bare value reads as a condition; CSV text like "false", "0", "no" is false."""
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_WORDS
    return bool(value)


def equals(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        left, right = _as_bool(a), _as_bool(b)
        if left is not None and right is not None:
            return left == right
    if _is_number(a) or _is_number(b):
        left_n, right_n = _as_number(a), _as_number(b)
        return left_n is not None and right_n is not None and left_n == right_n
    return bool(a == b)


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def test(a: Any, b: Any) -> bool:
        if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
            return False
        left_n, right_n = _as_number(a), _as_number(b)
        if left_n is not None and right_n is not None:
            return compare(left_n, right_n)
        if isinstance(a, str) and isinstance(b, str):
            return compare(a, b)
        return False

    return test


def contains(item: Any, container: Any) -> bool:
    if container is None or item is None:
        return False
    if isinstance(container, str):
        if isinstance(item, str):
            return item in container
        return _is_number(item) and str(item) in container
    if isinstance(container, Mapping):
        return isinstance(item, str) and item in container
    if isinstance(container, list | tuple):
        return any(equals(item, element) for element in container)
    return False
