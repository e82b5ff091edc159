"""Data tables: plan capacity, the "in use by a job" hook, show data and CSV export."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import func, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import AppError
from api.services.byte_stream import coalesce
from api.services.formula_guard import SQL_FORMULA, SQL_NUMBER_OR_PHONE, guard
from api.services.plan_limits import register_capacity_meter
from models.data_table import (
    MAX_ROWS_PAGE,
    DataTable,
    DataTablePublic,
    RowPublic,
    RowsPublic,
)
from models.plan import Meter

register_capacity_meter(
    Meter.data_tables,
    lambda org_id: select(func.count()).select_from(DataTable).where(DataTable.org_id == org_id),
)

ActiveJobCheck = Callable[[AsyncSession, uuid.UUID], Awaitable[bool]]

# The jobs module registers a check here ("is a queued/running/paused job reading this table?");
# data tables must not import jobs, which already depend on them.
ACTIVE_JOB_CHECKS: list[ActiveJobCheck] = []

EXPORT_CHUNK_BYTES = 64 * 1024


async def table_in_use(session: AsyncSession, table_id: uuid.UUID) -> bool:
    for check in ACTIVE_JOB_CHECKS:
        if await check(session, table_id):
            return True
    return False


def table_public(table: DataTable) -> DataTablePublic:
    return DataTablePublic(
        id=table.id,
        project_id=table.project_id,
        name=table.name,
        columns=list(table.columns or []),
        metadata_fields=list(table.metadata_fields or []),
        row_count=table.row_count,
        has_ingest_token=table.ingest_token_hash is not None,
        created_at=table.created_at,
        updated_at=table.updated_at,
    )


async def name_taken(
    session: AsyncSession, project_id: uuid.UUID, name: str, *, other_than: uuid.UUID | None = None
) -> bool:
    stmt = select(DataTable.id).where(DataTable.project_id == project_id, DataTable.name == name)
    if other_than is not None:
        stmt = stmt.where(col(DataTable.id) != other_than)
    return (await session.exec(stmt)).first() is not None


def name_taken_error(name: str) -> AppError:
    return AppError(f"This project already has a data table named '{name}'", "NAME_TAKEN", 409)


def checked_metadata_fields(table: DataTable, fields: list[str]) -> list[str]:
    """The chosen columns without repeats, in the order given; every one must be a column."""
    unknown = [f for f in fields if f not in set(table.columns or [])]
    if unknown:
        listed = ", ".join(f"'{f}'" for f in unknown)
        raise AppError(
            f"Not columns of this table: {listed}"
            + ("" if table.columns else " (import a CSV first)"),
            "VALIDATION_ERROR",
            422,
            [{"field": "metadataFields", "message": f"unknown column '{f}'"} for f in unknown],
        )
    return list(dict.fromkeys(fields))


async def rows_page(
    session: AsyncSession, table: DataTable, *, after: int | None, limit: int
) -> RowsPublic:
    size = max(1, min(limit, MAX_ROWS_PAGE))
    result = await session.execute(
        text(
            "SELECT row_id, data FROM data_row WHERE table_id = :table AND row_id > :after"
            " ORDER BY row_id LIMIT :limit"
        ),
        {"table": table.id, "after": after or 0, "limit": size + 1},
    )
    rows = [RowPublic(row_id=r[0], data=r[1]) for r in result]
    more = len(rows) > size
    rows = rows[:size]
    return RowsPublic(
        columns=list(table.columns or []),
        data=rows,
        count=table.row_count,
        next_after=rows[-1].row_id if more else None,
    )


def export_header(columns: list[str], *, formula_guard: bool = True) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(
        [guard(c) for c in columns] if formula_guard else columns
    )
    return out.getvalue().encode()


def export_query(
    table_id: uuid.UUID, columns: list[str], *, formula_guard: bool = True
) -> sql.Composed:
    """COPY … TO STDOUT with the formula guard done by PostgreSQL, so no row passes through Python."""
    cells: list[sql.Composable] = []
    for name in columns:
        cell: sql.Composable = sql.SQL("(data ->> {})").format(sql.Literal(name))
        if formula_guard:
            cell = sql.SQL(
                "CASE WHEN {cell} ~ {formula} AND ltrim({cell}, {quote}) !~ {number}"
                " THEN {quote} || {cell} ELSE {cell} END"
            ).format(
                cell=cell,
                quote=sql.Literal("'"),
                formula=sql.Literal(SQL_FORMULA),
                number=sql.Literal(SQL_NUMBER_OR_PHONE),
            )
        cells.append(cell)
    return sql.SQL(
        "COPY (SELECT {cells} FROM data_row WHERE table_id = {table} ORDER BY row_id)"
        " TO STDOUT (FORMAT csv)"
    ).format(cells=sql.SQL(", ").join(cells), table=sql.Literal(table_id))


async def export_csv(
    conninfo: str, table_id: uuid.UUID, columns: list[str], *, formula_guard: bool = True
) -> AsyncIterator[bytes]:
    """The table as CSV, streamed from one COPY (one consistent snapshot) in ~64 KB chunks."""
    yield export_header(columns, formula_guard=formula_guard)
    conn: psycopg.AsyncConnection[Any] = await psycopg.AsyncConnection.connect(
        conninfo, autocommit=True, application_name="cxgear csv export"
    )
    async with conn:
        query = export_query(table_id, columns, formula_guard=formula_guard)
        async with conn.cursor() as cur, cur.copy(query) as copy:
            async for block in coalesce(copy, EXPORT_CHUNK_BYTES):
                yield block
