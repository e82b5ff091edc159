"""Rows as COPY text: one %-template per file, JSON-escaping only the cells per row."""

from __future__ import annotations

import uuid
from itertools import chain
from json.encoder import encode_basestring

COPY_SQL = "COPY data_row (table_id, data) FROM STDIN"


def row_template(table_id: uuid.UUID, header: list[str]) -> str:
    """A %-template producing one COPY line body: ``<table_id>\\t{"col": <cell>, ...}``."""
    keys = ",".join(encode_basestring(name).replace("%", "%%") + ":%s" for name in header)
    return f"{table_id}\t{{{keys}}}"


def copy_text(lines: list[str]) -> bytes:
    # JSON never contains raw tabs or newlines, so backslashes are all COPY text format needs escaped.
    return "\n".join(chain(lines, ("",))).replace("\\", "\\\\").encode()
