"""Which delimiter a file uses, read from a sample of its first rows."""

from __future__ import annotations

import csv
import io
from contextlib import suppress

from api.services.csv_import.errors import bad

DELIMITERS = (",", ";", "\t", "|")
# Separators seen in the wild that we do not read; a one-column parse that splits cleanly on one of
# these is refused rather than imported as a single oddly named column.
FOREIGN_DELIMITERS = (":", "^", "~", "¦", "\x1f")
SAMPLE_ROWS = 50


def _sample_rows(sample: str, delimiter: str, complete: bool) -> list[list[str]]:
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter)
    rows: list[list[str]] = []
    with suppress(csv.Error):
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append(row)
            if len(rows) > SAMPLE_ROWS:
                break
    if not complete and len(rows) > 1:
        rows.pop()  # the sample may end inside this row
    return rows


def sniff_delimiter(sample: str, *, complete: bool) -> str:
    """Comma, semicolon, tab or pipe: the one that splits the header and sample rows evenly."""
    widths: dict[str, tuple[int, bool]] = {}
    for delimiter in DELIMITERS:
        rows = _sample_rows(sample, delimiter, complete)
        if rows:
            width = len(rows[0])
            widths[delimiter] = (width, all(len(r) == width for r in rows[1:]))
    even = [d for d, (w, ok) in widths.items() if w > 1 and ok]
    if even:
        return max(even, key=lambda d: widths[d][0])
    split = [d for d, (w, _) in widths.items() if w > 1]
    if split:
        # Nothing splits evenly: keep the widest reading so the ragged row is reported by line.
        return max(split, key=lambda d: widths[d][0])
    rows = _sample_rows(sample, ",", complete)
    for foreign in FOREIGN_DELIMITERS:
        if (
            rows
            and rows[0][0].count(foreign)
            and all(r[0].count(foreign) == rows[0][0].count(foreign) for r in rows)
        ):
            shown = repr(foreign) if foreign.isprintable() else f"U+{ord(foreign):04X}"
            raise bad(
                "CSV_DELIMITER",
                f"The file looks separated by {shown}; use comma, semicolon, tab or pipe separated CSV",
                {"delimiter": foreign},
            )
    return ","
