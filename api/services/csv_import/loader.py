"""The loader thread: one sync connection, one COPY, committed only for a whole valid file."""

from __future__ import annotations

import csv
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from itertools import chain, islice
from json.encoder import encode_basestring
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from api.errors import AppError
from api.services.csv_import.copy_format import COPY_SQL, copy_text, row_template
from api.services.csv_import.decoding import MAX_CELL_CHARS, TextDecoder
from api.services.csv_import.errors import (
    bad,
    cell_too_large,
    malformed,
    ragged_row,
    table_empty_for_append,
    table_not_empty,
    unclosed_quote,
)
from api.services.csv_import.header import check_header, schema_mismatch
from api.services.csv_import.locating import locate_failure
from api.services.csv_import.sniffing import sniff_delimiter
from api.services.formula_guard import unguard

log = logging.getLogger(__name__)

SAMPLE_CHARS = 64 * 1024
COPY_BATCH_ROWS = 2000
APPLICATION_NAME = "cxgear csv import"

# Process-wide, but every reader in the API wants the same: cells as long as a line may be.
csv.field_size_limit(MAX_CELL_CHARS)


class ImportMode(StrEnum):
    import_ = "import"
    append = "append"


@dataclass(frozen=True)
class LoadResult:
    inserted: int
    columns: list[str]
    delimiter: str


class CsvLoader:
    """Runs in a worker thread: reads the blocks, writes one COPY, commits only a whole file."""

    def __init__(
        self,
        *,
        conninfo: str,
        table_id: uuid.UUID,
        org_id: uuid.UUID,
        mode: ImportMode,
        max_columns: int,
        formula_guard: bool = True,
    ) -> None:
        self.conninfo = conninfo
        self.table_id = table_id
        self.org_id = org_id
        self.mode = mode
        self.max_columns = max_columns
        # The file may come from our export, whose guard ' is removed again (see formula_guard).
        self.formula_guard = formula_guard
        # Set once the file's delimiter is known; read again only to locate a CSV error.
        self._text = TextDecoder()
        self._delimiter = ","

    def run(self, blocks: Iterator[bytes]) -> LoadResult:
        with psycopg.connect(
            self.conninfo, client_encoding="UTF8", application_name=APPLICATION_NAME
        ) as conn:
            columns = self._locked_columns(conn)
            text = TextDecoder()
            texts = text.texts(blocks)
            sample_parts: list[str] = []
            size = 0
            complete = True
            for part in texts:
                sample_parts.append(part)
                size += len(part)
                if size >= SAMPLE_CHARS:
                    complete = False
                    break
            sample = "".join(sample_parts)
            if complete and not sample.strip():
                raise bad("CSV_EMPTY", "The file is empty")
            delimiter = sniff_delimiter(sample, complete=complete)
            reader = csv.reader(
                text.lines(chain([sample], texts)), delimiter=delimiter, strict=True
            )
            self._text = text
            self._delimiter = delimiter
            header = self._header(reader)
            if self.mode is ImportMode.append:
                mismatch = schema_mismatch(columns, header)
                if mismatch is not None:
                    raise mismatch
            inserted = self._copy(conn, reader, header)
            if inserted == 0:
                raise bad("CSV_NO_ROWS", "The file has a header row but no data rows")
            if self.mode is ImportMode.import_:
                conn.execute(
                    "UPDATE data_table SET columns = %s, row_count = %s, updated_at = now()"
                    " WHERE id = %s",
                    (Jsonb(header), inserted, self.table_id),
                )
                columns = header
            else:
                conn.execute(
                    "UPDATE data_table SET row_count = row_count + %s, updated_at = now()"
                    " WHERE id = %s",
                    (inserted, self.table_id),
                )
        log.info("%s of %d rows into data table %s", self.mode.value, inserted, self.table_id)
        return LoadResult(inserted=inserted, columns=columns, delimiter=delimiter)

    def _locked_columns(self, conn: psycopg.Connection[Any]) -> list[str]:
        # Import takes the row so a second import (or append) waits and then sees the columns;
        # append only needs the table to stay (KEY SHARE), which leaves ingest free to run.
        lock = "FOR NO KEY UPDATE" if self.mode is ImportMode.import_ else "FOR KEY SHARE"
        row = conn.execute(
            f"SELECT columns FROM data_table WHERE id = %s AND org_id = %s {lock}",
            (self.table_id, self.org_id),
        ).fetchone()
        if row is None:
            raise AppError("Data table not found", "NOT_FOUND", 404)
        columns: list[str] = list(row[0] or [])
        if self.mode is ImportMode.import_ and columns:
            raise table_not_empty()
        if self.mode is ImportMode.append and not columns:
            raise table_empty_for_append()
        return columns

    def _header(self, reader: Any) -> list[str]:
        try:
            for row in reader:
                if any(cell.strip() for cell in row):
                    if self.formula_guard:
                        row = [unguard(cell) for cell in row]
                    return check_header(row, self.max_columns)
        except csv.Error as exc:
            raise self._located(exc, 0, reader.line_num) from None
        raise bad("CSV_EMPTY", "The file is empty")

    def _located(self, exc: csv.Error, before: int, line: int) -> AppError:
        """The error of a csv.Error raised after `before` lines, with `line` lines consumed."""
        failure = locate_failure(
            self._text.kept_lines(before + 1, line), before + 1, self._delimiter, MAX_CELL_CHARS
        )
        if failure.too_large is not None:
            return cell_too_large(failure.too_large.line, failure.too_large.column, MAX_CELL_CHARS)
        if failure.open_quote is not None:
            return unclosed_quote(failure.open_quote.line, failure.open_quote.column)
        return malformed(line, exc)

    def _copy(self, conn: psycopg.Connection[Any], reader: Any, header: list[str]) -> int:
        template = row_template(self.table_id, header)
        encode: Callable[[str], str] = encode_basestring
        if self.formula_guard:

            def encode(cell: str) -> str:
                return encode_basestring(unguard(cell))

        inserted = 0
        with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
            while True:
                before = reader.line_num
                self._text.keep_from(before + 1)
                try:
                    rows = list(islice(reader, COPY_BATCH_ROWS))
                except csv.Error as exc:
                    raise self._located(exc, before, reader.line_num) from None
                if not rows:
                    return inserted
                try:
                    # Blank lines and rows of empty cells are skipped; a row of the wrong width
                    # does not fit the template, which is the only TypeError possible here.
                    lines = [template % tuple(map(encode, row)) for row in rows if any(row)]
                except TypeError:
                    raise ragged_row(rows, before, len(header)) from None
                if lines:
                    copy.write(copy_text(lines))
                    inserted += len(lines)
