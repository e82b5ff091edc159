"""The import's errors, each a 4xx `AppError` that says which line or column is wrong."""

from __future__ import annotations

import csv
from typing import Any

from api.errors import AppError


def bad(code: str, message: str, details: Any = None, status: int = 422) -> AppError:
    return AppError(message, code, status, details)


def quoted(items: list[str]) -> str:
    return ", ".join(f"'{i}'" for i in items)


def ragged_row(rows: list[list[str]], before: int, width: int) -> AppError:
    """The first row of the wrong width, with the line it starts on."""
    line = before
    for row in rows:
        start = line + 1
        line = start + sum(c.count("\n") + c.count("\r") - c.count("\r\n") for c in row)
        if any(row) and len(row) != width:
            return bad(
                "CSV_RAGGED_ROW",
                f"Line {start} has {len(row)} fields but the header has {width}",
                {"line": start, "fields": len(row), "expected": width},
            )
    raise AssertionError("no ragged row in a batch that did not fit the template")


def malformed(line: int, exc: csv.Error) -> AppError:
    return bad(
        "CSV_MALFORMED",
        f"Line {line} is not valid CSV ({exc}); check its quotes",
        {"line": line},
    )


def unclosed_quote(line: int, column: int) -> AppError:
    return bad(
        "CSV_MALFORMED",
        f"Line {line}, column {column}: a quoted cell starts here and its closing quote never "
        "comes; check its quotes",
        {"line": line, "column": column},
    )


def cell_too_large(line: int, column: int, limit: int) -> AppError:
    return bad(
        "CSV_CELL_TOO_LARGE",
        f"Line {line}, column {column}: cell too large (more than {limit:,} characters); if it "
        "should be shorter, check the quotes before it",
        {"line": line, "column": column, "max": limit},
    )


def table_not_empty() -> AppError:
    return AppError(
        "This data table already has rows; append to it, or import into a new table",
        "TABLE_NOT_EMPTY",
        409,
    )


def table_empty_for_append() -> AppError:
    return AppError("This data table has no columns yet; import a CSV first", "TABLE_EMPTY", 409)
