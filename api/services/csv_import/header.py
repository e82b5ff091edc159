"""The header row: column names checked, and matched against the table's columns on append."""

from __future__ import annotations

from collections import Counter
from typing import Any

from api.errors import AppError
from api.services.csv_import.errors import bad, quoted

MAX_COLUMN_NAME = 200


def check_header(raw: list[str], max_columns: int) -> list[str]:
    if len(raw) > max_columns:
        raise bad(
            "CSV_TOO_MANY_COLUMNS",
            f"The file has {len(raw)} columns; at most {max_columns} are allowed",
            {"columns": len(raw), "max": max_columns},
        )
    names = [name.strip() for name in raw]
    blank = [i + 1 for i, name in enumerate(names) if not name]
    if blank:
        raise bad(
            "CSV_BAD_HEADER",
            f"Column {', '.join(map(str, blank))} of the header row has no name",
            {"blank": blank},
        )
    duplicates = sorted(name for name, n in Counter(names).items() if n > 1)
    if duplicates:
        raise bad(
            "CSV_BAD_HEADER",
            f"The header row repeats column names: {quoted(duplicates)}",
            {"duplicates": duplicates},
        )
    long = [name for name in names if len(name) > MAX_COLUMN_NAME]
    if long:
        raise bad(
            "CSV_BAD_HEADER",
            f"Column names must be at most {MAX_COLUMN_NAME} characters",
            {"tooLong": [n[:40] for n in long]},
        )
    return names


def mismatch_error(
    what: str, missing: list[str], unexpected: list[str], **details: Any
) -> AppError:
    parts = []
    if missing:
        parts.append(f"missing {quoted(missing)}")
    if unexpected:
        parts.append(f"unexpected {quoted(unexpected)}")
    return bad(
        "SCHEMA_MISMATCH",
        f"{what} does not have the table's columns: {'; '.join(parts)}",
        {"missing": missing, "unexpected": unexpected, **details},
    )


def schema_mismatch(columns: list[str], header: list[str]) -> AppError | None:
    """Append needs the same set of columns; the order may differ."""
    wanted, have = set(columns), set(header)
    missing = [c for c in columns if c not in have]
    unexpected = [c for c in header if c not in wanted]
    if missing or unexpected:
        return mismatch_error("The file", missing, unexpected)
    return None
