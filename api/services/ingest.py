"""Ingest: JSON records appended to a data table, with optional Idempotency-Key replay.

Records must carry exactly the table's columns. Cells are stored as text, like an imported CSV,
so a row looks the same whichever way it arrived: a number keeps the JSON text it was sent as
(`1e5` stays `1e5`, `1.10` stays `1.10`; the routes parse bodies with `api.number_text`), a
boolean becomes `true`/`false`, null an empty cell. `NaN`, `Infinity` and numbers past the
float range (`1E400`) are refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import AppError
from api.number_text import NonFiniteNumber
from api.services.csv_import.header import mismatch_error
from models.data_table import DataTable, IngestResult

MAX_IDEMPOTENCY_KEY = 255
PURGE_BATCH = 500
SHOWN_RECORDS = 10

INSERT_ROWS = text(
    "INSERT INTO data_row (table_id, data)"
    " SELECT :table, r.value FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY"
    " AS r(value, n) ORDER BY r.n RETURNING row_id"
)
COUNT_ROWS = text(
    "UPDATE data_table SET row_count = row_count + :n, updated_at = now() WHERE id = :table"
)
# Expired keys count as absent; the claim then takes them over.
CLAIM_KEY = text(
    "INSERT INTO ingest_idempotency (org_id, key, body_sha256, response, created_at)"
    " VALUES (:org, :key, :sha, NULL, now())"
    " ON CONFLICT (org_id, key) DO UPDATE"
    " SET body_sha256 = EXCLUDED.body_sha256, response = NULL, created_at = now()"
    " WHERE ingest_idempotency.created_at < now() - CAST(:ttl AS interval)"
    " RETURNING 1"
)
EXISTING_KEY = text(
    "SELECT body_sha256, response FROM ingest_idempotency WHERE org_id = :org AND key = :key"
)
SAVE_RESPONSE = text(
    "UPDATE ingest_idempotency SET response = CAST(:response AS jsonb)"
    " WHERE org_id = :org AND key = :key"
)
# Bounded and SKIP LOCKED so concurrent ingests never queue behind each other's cleanup.
PURGE_EXPIRED = text(
    "DELETE FROM ingest_idempotency WHERE ctid IN ("
    " SELECT ctid FROM ingest_idempotency WHERE created_at < now() - CAST(:ttl AS interval)"
    " LIMIT :batch FOR UPDATE SKIP LOCKED)"
)


def table_empty() -> AppError:
    return AppError("This data table has no columns yet; import a CSV first", "TABLE_EMPTY", 409)


def _cell(value: Any, where: str) -> str:
    if isinstance(value, NonFiniteNumber) or (
        isinstance(value, float) and not math.isfinite(value)
    ):
        raise AppError(
            f"{where} is {value}: numbers must be finite",
            "VALIDATION_ERROR",
            422,
            [
                {
                    "field": where,
                    "message": "NaN, Infinity and numbers past the float range are not allowed",
                }
            ],
        )
    if isinstance(value, str):
        if "\x00" in value:
            raise AppError(f"{where} contains a NUL character", "VALIDATION_ERROR", 422)
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    raise AppError(
        f"{where} must be text, a number, a boolean or null, not a nested "
        f"{'list' if isinstance(value, list) else 'object'}",
        "VALIDATION_ERROR",
        422,
        [{"field": where, "message": "nested values are not allowed"}],
    )


def checked_records(columns: list[str], records: list[dict[str, Any]]) -> list[dict[str, str]]:
    wanted = set(columns)
    bad = [i for i, record in enumerate(records) if record.keys() != wanted]
    if bad:
        missing: dict[str, None] = {}
        unexpected: dict[str, None] = {}
        for i in bad:
            for c in columns:
                if c not in records[i]:
                    missing[c] = None
            for k in records[i]:
                if k not in wanted:
                    unexpected[k] = None
        where = ", ".join(f"records[{i}]" for i in bad[:SHOWN_RECORDS])
        if len(bad) > SHOWN_RECORDS:
            where += f" and {len(bad) - SHOWN_RECORDS} more records"
        raise mismatch_error(where, list(missing), list(unexpected), records=bad[:SHOWN_RECORDS])
    return [
        {key: _cell(value, f"records[{i}].{key}") for key, value in record.items()}
        for i, record in enumerate(records)
    ]


async def insert_records(
    session: AsyncSession, table: DataTable, records: list[dict[str, Any]]
) -> list[int]:
    """Append records in the session's transaction; returns the new row ids in order."""
    if not table.columns:
        raise table_empty()
    rows = checked_records(list(table.columns), records)
    result = await session.execute(
        INSERT_ROWS, {"table": table.id, "rows": json.dumps(rows, ensure_ascii=False)}
    )
    ids = [int(r[0]) for r in result]
    await session.execute(COUNT_ROWS, {"n": len(ids), "table": table.id})
    return ids


def body_digest(table_id: uuid.UUID, records: list[dict[str, Any]]) -> str:
    # The table is part of the digest: the same key sent to another table is another request.
    canonical = json.dumps(
        {"table": str(table_id), "records": records},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def checked_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise AppError(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
            "VALIDATION_ERROR",
            422,
        )
    return key


async def ingest(
    session: AsyncSession,
    table: DataTable,
    records: list[dict[str, Any]],
    *,
    idempotency_key: str | None,
    ttl: timedelta,
) -> IngestResult:
    """Insert records once per (organization, Idempotency-Key); a replay returns the first answer."""
    if idempotency_key is None:
        return IngestResult(ok=True, inserted=len(await insert_records(session, table, records)))
    key = checked_key(idempotency_key)
    params = {"org": table.org_id, "key": key, "ttl": ttl}
    await session.execute(PURGE_EXPIRED, {"ttl": ttl, "batch": PURGE_BATCH})
    digest = body_digest(table.id, records)
    # A concurrent request with the same key waits here until the first one commits or rolls back.
    claimed = (await session.execute(CLAIM_KEY, {**params, "sha": digest})).first()
    if claimed is None:
        existing = (await session.execute(EXISTING_KEY, params)).first()
        if existing is not None and existing[0] != digest:
            raise AppError(
                "This Idempotency-Key was already used with a different request body",
                "IDEMPOTENCY_KEY_REUSED",
                422,
            )
        if existing is not None and existing[1] is not None:
            return IngestResult.model_validate(existing[1])
        raise AppError(
            "A request with this Idempotency-Key is still being processed; retry shortly",
            "IDEMPOTENCY_IN_PROGRESS",
            409,
        )
    result = IngestResult(ok=True, inserted=len(await insert_records(session, table, records)))
    await session.execute(SAVE_RESPONSE, {**params, "response": result.model_dump_json()})
    return result
