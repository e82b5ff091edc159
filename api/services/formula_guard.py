"""The CSV formula guard (OWASP "CSV injection") and its exact inverse.

A spreadsheet runs a cell as a formula when it starts with ``= + - @``, a tab or a carriage
return; the guard prefixes such a cell with ``'``, which spreadsheets show as plain text. Plain
numbers and phone numbers (``+``/``-`` then digits, spaces, dots, dashes, parentheses) are data,
not formulas, and are left alone: ``+44 7700 900000`` and ``-12.5`` export unchanged.

The guard also prefixes a cell that already *looks* guarded (``'=x``, ``''=x``): so removing one
``'`` from exactly the cells that look guarded undoes it, and export → import gives back every
value, whatever it was.

The same rule is written twice, once here and once as SQL for the export (which runs in
PostgreSQL so no row passes through Python); the tests hold them together.
"""

from __future__ import annotations

import re

FORMULA_STARTS = "=+-@\t\r"
_NUMBER_OR_PHONE = re.compile(r"[+-][0-9 .()-]*[0-9][0-9 .()-]*")
# The same two tests in PostgreSQL's regular expression syntax (both anchored to the whole value).
SQL_FORMULA = "^'*[-=+@\\t\\r]"
SQL_NUMBER_OR_PHONE = "^[-+][0-9 .()-]*[0-9][0-9 .()-]*$"


def needs_guard(value: str) -> bool:
    """True when the value, after any leading quotes, starts a formula."""
    bare = value.lstrip("'")
    return bare[:1] in FORMULA_STARTS and bare != "" and not _NUMBER_OR_PHONE.fullmatch(bare)


def guard(value: str) -> str:
    return "'" + value if needs_guard(value) else value


def unguard(value: str) -> str:
    return value[1:] if value[:1] == "'" and needs_guard(value[1:]) else value
