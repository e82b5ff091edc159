"""Step templates: `{{name}}`, `{{payload.x}}`, `{{output.x}}`, `{{context.jobId}}`.

Templates are written by tenants and rendered inside workers for every record, so
they run in a jinja2 sandbox that can only read the data handed to it: every dotted
name is rewritten at compile time into a plain dictionary walk, calls are refused,
and only a handful of text filters exist.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Final

import jinja2
from jinja2 import nodes
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "CONTEXT_FIELDS",
    "MAX_TEMPLATE_LENGTH",
    "NAMESPACES",
    "TemplateError",
    "lookup",
    "render_template",
    "resolve_reference",
    "template_references",
]

NAMESPACES: Final = ("payload", "output", "context")
CONTEXT_FIELDS: Final = ("jobId", "recordId", "callbackUrl", "spinnerId", "projectId")
MAX_TEMPLATE_LENGTH: Final = 20_000

ALLOWED_FILTERS: Final = frozenset(
    {"upper", "lower", "title", "capitalize", "trim", "default", "d", "round", "join"}
    | {"truncate", "length", "int", "float"}
)
ALLOWED_TESTS: Final = frozenset({"defined", "undefined", "none", "number", "string"})

# Node types a template may contain; everything else (calls, imports, macros, loops,
# arithmetic, assignments) is refused when the template is compiled.
_ALLOWED_NODES: Final = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Filter,
    nodes.Test,
    nodes.Keyword,
    nodes.If,
    nodes.CondExpr,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Compare,
    nodes.Operand,
    nodes.Concat,
    nodes.List,
    nodes.Tuple,
    nodes.Neg,
    nodes.Pos,
)

_REFUSALS: Final[dict[type[nodes.Node], str]] = {
    nodes.Call: "function calls",
    nodes.For: "loops (use the join filter for lists)",
    nodes.Macro: "macros",
    nodes.CallBlock: "call blocks",
    nodes.Import: "imports",
    nodes.FromImport: "imports",
    nodes.Include: "includes",
    nodes.Extends: "template inheritance",
    nodes.Block: "blocks",
    nodes.Assign: "assignments",
    nodes.AssignBlock: "assignments",
    nodes.With: "with blocks",
    nodes.FilterBlock: "filter blocks",
    nodes.Slice: "slices",
    nodes.Dict: "dictionary literals",
    nodes.BinExpr: "arithmetic",
    nodes.Scope: "scoped blocks",
}

_PATH_FILTER: Final = "_cx_path"
_ABSENT: Final = object()


class TemplateError(ValueError):
    """A template that cannot be compiled or rendered; the message is meant for the user."""


class Missing(Undefined):
    """A value that is not in the data: renders as `‹path›` so typos show in the output."""

    def __str__(self) -> str:
        return f"‹{self._undefined_name}›"


def lookup(value: Any, keys: Sequence[str | int]) -> Any:
    """Walk `keys` through nested mappings and lists; `_ABSENT` when any step is missing.

    Only item lookups happen, never attribute access, so a key like `items` or
    `__class__` can only ever find data.
    """
    for key in keys:
        if isinstance(value, Mapping):
            if key not in value:
                return _ABSENT
            value = value[key]
        elif isinstance(value, list | tuple) and not isinstance(value, str):
            index = _as_index(key)
            if index is None or not -len(value) <= index < len(value):
                return _ABSENT
            value = value[index]
        else:
            return _ABSENT
    return value


def resolve_reference(
    parts: Sequence[str | int],
    *,
    metadata: Mapping[str, Any],
    outputs: Mapping[str, Any],
    context: Mapping[str, Any],
) -> tuple[bool, Any]:
    """(found, value) for a dotted reference split into parts, with the template rules:
    `payload.x` reads metadata, `output.x` prior outputs, `context.x` the run context,
    and a bare name prefers a prior output over metadata of the same name."""
    root, rest = parts[0], parts[1:]
    if root == "payload":
        value = lookup(metadata, rest)
    elif root == "output":
        value = lookup(outputs, rest)
    elif root == "context":
        value = lookup(context, rest)
    elif isinstance(root, str) and root in outputs:
        value = lookup(outputs[root], rest)
    elif isinstance(root, str) and root in metadata:
        value = lookup(metadata[root], rest)
    else:
        value = _ABSENT
    return (value is not _ABSENT, None if value is _ABSENT else value)


def _as_index(key: str | int) -> int | None:
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    if isinstance(key, str) and key.lstrip("-").isdigit():
        return int(key)
    return None


def _finalize(value: Any) -> Any:
    if isinstance(value, Undefined):
        return str(value)
    if value is None:
        return ""
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def _path_filter(value: Any, keys: tuple[str | int, ...], path: str) -> Any:
    if isinstance(value, Undefined):
        return Missing(name=path)
    found = lookup(value, keys)
    return Missing(name=path) if found is _ABSENT else found


class _DataOnlyEnvironment(SandboxedEnvironment):
    """Dotted names never reach these hooks (they are rewritten to `_cx_path`); the
    overrides make sure that anything else that tries attribute access gets nothing."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        return Missing(name=attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        return Missing(name=str(argument))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        raise jinja2.exceptions.SecurityError("function calls are not allowed in templates")


def _build_environment() -> _DataOnlyEnvironment:
    env = _DataOnlyEnvironment(
        autoescape=False,
        undefined=Missing,
        finalize=_finalize,
        keep_trailing_newline=True,
    )
    env.globals.clear()
    env.filters = {name: env.filters[name] for name in ALLOWED_FILTERS}
    env.filters[_PATH_FILTER] = _path_filter
    env.tests = {name: env.tests[name] for name in ALLOWED_TESTS}
    return env


_ENV: Final = _build_environment()


def _chain(node: nodes.Node) -> tuple[str, list[str | int]] | None:
    """`payload.a["b"].c` → ("payload", ["a", "b", "c"]); None if not rooted at a name."""
    keys: list[str | int] = []
    while True:
        if isinstance(node, nodes.Getattr):
            keys.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem):
            if not isinstance(node.arg, nodes.Const) or not isinstance(node.arg.value, str | int):
                raise TemplateError(
                    f'line {node.lineno}: only fixed keys can be read, like payload["first name"]'
                )
            keys.append(node.arg.value)
            node = node.node
        elif isinstance(node, nodes.Name):
            keys.reverse()
            return node.name, keys
        else:
            return None


def _dotted(root: str, keys: Sequence[str | int]) -> str:
    return ".".join([root, *(str(k) for k in keys)])


def _check_and_rewrite(node: nodes.Node, refs: list[str]) -> nodes.Node:
    """Refuse what templates may not do and turn each dotted name into a `_cx_path`
    filter call, so the render only ever does dictionary lookups and a missing key
    knows its full path."""
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        chain = _chain(node)
        if chain is None:
            raise TemplateError(
                f"line {node.lineno}: values can only be read from names like payload.x"
            )
        root, keys = chain
        path = _dotted(root, keys)
        refs.append(path)
        rewritten = nodes.Filter(
            nodes.Name(root, "load", lineno=node.lineno),
            _PATH_FILTER,
            [nodes.Const(tuple(keys), lineno=node.lineno), nodes.Const(path, lineno=node.lineno)],
            [],
            None,
            None,
            lineno=node.lineno,
        )
        return rewritten
    if not isinstance(node, _ALLOWED_NODES):
        refusal = next(
            (text for kind, text in _REFUSALS.items() if isinstance(node, kind)),
            f"'{type(node).__name__}'",
        )
        raise TemplateError(f"line {node.lineno}: templates cannot use {refusal}")
    if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
        raise TemplateError(
            f"line {node.lineno}: unknown filter '{node.name}'; "
            f"available: {', '.join(sorted(ALLOWED_FILTERS))}"
        )
    if isinstance(node, nodes.Test) and node.name not in ALLOWED_TESTS:
        raise TemplateError(
            f"line {node.lineno}: unknown test '{node.name}'; "
            f"available: {', '.join(sorted(ALLOWED_TESTS))}"
        )
    if isinstance(node, nodes.Name):
        refs.append(node.name)
    for field, value in node.iter_fields():
        if isinstance(value, nodes.Node):
            setattr(node, field, _check_and_rewrite(value, refs))
        elif isinstance(value, list):
            setattr(
                node,
                field,
                [_check_and_rewrite(v, refs) if isinstance(v, nodes.Node) else v for v in value],
            )
    return node


@lru_cache(maxsize=4096)
def _compile(source: str) -> tuple[jinja2.Template, tuple[str, ...]]:
    if len(source) > MAX_TEMPLATE_LENGTH:
        raise TemplateError(f"template is longer than {MAX_TEMPLATE_LENGTH} characters")
    try:
        tree = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"line {exc.lineno}: {exc.message}") from None
    refs: list[str] = []
    _check_and_rewrite(tree, refs)
    # The rewrite added nodes that do not know their environment yet.
    tree.set_environment(_ENV)
    try:
        template = _ENV.from_string(tree)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"line {exc.lineno}: {exc.message}") from None
    return template, tuple(dict.fromkeys(refs))


def template_references(source: str) -> list[str]:
    """Dotted names the template reads, in order of first use: "name", "payload.x",
    "output.y.z", "context.jobId". Raises TemplateError if the template is invalid."""
    return list(_compile(source)[1])


def render_template(
    source: str,
    *,
    metadata: Mapping[str, Any],
    outputs: Mapping[str, Any],
    context: Mapping[str, Any],
) -> str:
    """Render a step template for one record. Raises TemplateError for an invalid template."""
    template, _ = _compile(source)
    variables: dict[str, Any] = {
        **metadata,
        **outputs,
        "payload": metadata,
        "output": outputs,
        "context": context,
    }
    try:
        return template.render(variables)
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        raise TemplateError(f"template could not be rendered: {exc}") from None
