"""What every CLI command prints: rich tables or `--json`, and errors as one readable line."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpx
import typer
import yaml
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from infra.plans import PlansFileError
from models.spinner_language.errors import DefinitionError

out = Console()
# Errors go to stderr unwrapped and without markup: a message may hold brackets or be long.
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


def error_line(message: str) -> None:
    err.print(" ".join(message.split()))


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` as the command's one error line; raise the returned Exit."""
    error_line(message)
    return typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def show(
    rows: Sequence[dict[str, Any]],
    columns: Iterable[str | tuple[str, Callable[[dict[str, Any]], Any]]],
    *,
    as_json: bool,
    title: str | None = None,
    json_data: Any = None,
) -> None:
    """A listing as a rich table, or (with --json) the API's own objects for scripts."""
    if as_json:
        print_json(rows if json_data is None else json_data)
        return
    specs = [(c, lambda r, k=c: r.get(k)) if isinstance(c, str) else c for c in columns]
    table = Table(title=title)
    for name, _ in specs:
        # Ids are copied into the next command: never wrapped or cut; other cells fold instead.
        table.add_column(name, no_wrap=name.lower().endswith("id"), overflow="fold")
    for row in rows:
        table.add_row(*(cell(get(row)) for _, get in specs))
    out.print(table)


def _setting_name(loc: tuple[int | str, ...]) -> str:
    return "CXGEAR_" + str(loc[0]).upper()


def describe(exc: BaseException) -> tuple[str, int] | None:
    """The one line a user reads for an error we expect, and the exit code; None for a bug."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        if exc.title == "Settings":
            message = first["msg"].removeprefix("Value error, ")
            name = f" {_setting_name(first['loc'])}" if first["loc"] else ""
            return f"invalid setting{name}: {message}{more}", 2
        where = ".".join(str(p) for p in first["loc"])
        return f"invalid {exc.title}: {where}: {first['msg']}{more}", 2
    if isinstance(exc, SettingsError):
        return f"invalid setting: {exc}", 2
    if isinstance(exc, DefinitionError):
        problems = "; ".join(f"{i.path}: {i.message}" if i.path else i.message for i in exc.issues)
        return f"invalid spinner definition: {problems}", 1
    if isinstance(exc, PlansFileError):
        return str(exc), 2
    if isinstance(exc, httpx.TransportError):
        try:
            url: Any = exc.request.url.copy_with(query=None)
        except RuntimeError:  # raised before a request was made
            url = "the API"
        return f"cannot reach {url}: {exc or type(exc).__name__} (is the API running?)", 1
    if isinstance(exc, yaml.YAMLError):
        return f"invalid YAML: {exc}", 2
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}", 2
    return None


class CliGroup(TyperGroup):
    """Turns the errors a user can cause (bad settings, an unreachable API, an invalid file)
    into one line on stderr instead of a traceback; anything else is a bug and keeps its trace."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:  # typer's own Exit, Abort and usage errors describe() as None
            described = describe(exc)
            if described is None:
                raise
            error_line(described[0])
            raise typer.Exit(described[1]) from None


def show_one(data: dict[str, Any], fields: Iterable[str], *, as_json: bool) -> None:
    """One object as a field/value table, or (with --json) the API's object."""
    if as_json:
        print_json(data)
        return
    table = Table("field", "value", show_header=False)
    for name in fields:
        table.add_row(name, cell(data.get(name)))
    out.print(table)
