"""Constrained types for whatever a client sends, used by every body, path and query parameter.

PostgreSQL cannot store a NUL character in text nor a lone UTF-16 surrogate (JSON allows
`"\\ud800"`), and its bigint stops at 2**63-1: such input is refused here as a 422 naming the
field, instead of failing inside psycopg as a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from annotated_types import Ge, Le
from pydantic import AfterValidator, StringConstraints

BIGINT_MAX = 2**63 - 1


def text_problem(value: str) -> str | None:
    """Why PostgreSQL could not store this text, or None when it can."""
    if "\x00" in value:
        return "must not contain the NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain unpaired surrogate characters"
    return None


def storable_text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def nested_text_problem(value: Any, at: str = "") -> str | None:
    """The first unstorable key or string anywhere in a JSON-like value, with where it is."""
    if isinstance(value, str):
        problem = text_problem(value)
        return f"{problem} (at {at})" if problem and at else problem
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{at}.{key!r}" if at else repr(key)
            if isinstance(key, str) and (problem := text_problem(key)):
                return f"{problem} (in the key {ascii(key)})"
            if (problem := nested_text_problem(item, where)) is not None:
                return problem
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            if (problem := nested_text_problem(item, f"{at}[{i}]")) is not None:
                return problem
    return None


SafeStr = Annotated[str, AfterValidator(storable_text)]
"""Text PostgreSQL can store: no NUL, no lone surrogate."""

Name = Annotated[SafeStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]

DbId = Annotated[int, Ge(1), Le(BIGINT_MAX)]
"""A bigint primary key (records, rows, do-not-contact entries) taken from a path."""

Cursor = Annotated[int, Ge(0), Le(BIGINT_MAX)]
"""A keyset pagination cursor (the last id seen)."""
