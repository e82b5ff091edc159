"""The records pages' queries: one builder per shape, shared by the API routes and the test that
EXPLAINs them on a million records (see the record read-indexes migration for the indexes)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Text, cast, func, literal_column, or_
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement, ColumnElement
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from models.job import Job
from models.record import Record

# Filtered views count exactly up to this many records (an index range, bounded work); past it
# the count is PostgreSQL's estimate for the same query, flagged as such.
EXACT_COUNT_CAP = 10_000
# Trigrams need three characters: a shorter pattern would read the whole search index.
MIN_SEARCH = 3


@dataclass(frozen=True)
class RecordFilter:
    """Which records a page lists: always one organization, then a job or a project."""

    org_id: uuid.UUID
    job_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    status: str | None = None
    disposition: str | None = None
    q: str | None = None

    @property
    def narrowed(self) -> bool:
        return bool(self.status or self.disposition or self.q)


@dataclass(frozen=True)
class RecordCount:
    count: int
    estimated: bool


def search_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def conditions(f: RecordFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [col(Record.org_id) == f.org_id]
    if f.job_id is not None:
        where.append(col(Record.job_id) == f.job_id)
    if f.project_id is not None:
        where.append(col(Record.project_id) == f.project_id)
    if f.status:
        where.append(col(Record.status) == f.status)
    if f.disposition:
        where.append(col(Record.disposition) == f.disposition)
    if f.q:
        # The same expression as the trigram index: `metadata::text`.
        where.append(cast(col(Record.metadata_), Text).ilike(search_pattern(f.q)))
    return where


def page_query(f: RecordFilter, *, after: int | None, limit: int) -> SelectOfScalar[Record]:
    stmt = select(Record).where(*conditions(f))
    if after is not None:
        stmt = stmt.where(col(Record.id) > after)
    return stmt.order_by(col(Record.id)).limit(limit)


def capped_count_query(f: RecordFilter, cap: int = EXACT_COUNT_CAP) -> Select[Any]:
    # In id order, like the page: the same index range, stopped at the cap (an unordered LIMIT
    # lets the planner bet on a sequential scan finding enough rows early).
    inner: Select[Any] = (
        sa_select(literal_column("1"))
        .select_from(Record)
        .where(*conditions(f))
        .order_by(col(Record.id))
        .limit(cap)
    )
    return sa_select(func.count()).select_from(inner.subquery())


def matching_query(f: RecordFilter) -> Select[Any]:
    """The uncapped set, only ever EXPLAINed for its row estimate."""
    return sa_select(col(Record.id)).where(*conditions(f))


def project_total_query(org_id: uuid.UUID, project_id: uuid.UUID) -> Select[Any]:
    return sa_select(func.coalesce(func.sum(Job.total), 0)).where(
        col(Job.org_id) == org_id, col(Job.project_id) == project_id
    )


def children_query(
    org_id: uuid.UUID, record_id: int
) -> Select[int | None, int | None, str, uuid.UUID]:
    """Supporting records one record started, plus (for a retry chain's root) every attempt."""
    return (
        sa_select(col(Record.id), col(Record.link_attempt), col(Record.status), col(Record.job_id))
        .where(
            col(Record.org_id) == org_id,
            or_(
                col(Record.parent_record_id) == record_id,
                (col(Record.root_record_id) == record_id) & col(Record.link_attempt).is_not(None),
            ),
        )
        .order_by(col(Record.id))
    )


async def explain(conn: AsyncConnection, stmt: ClauseElement) -> dict[str, Any]:
    """PostgreSQL's plan for `stmt` with its parameters bound as the route binds them."""
    compiled = stmt.compile(dialect=conn.dialect)
    result = await conn.exec_driver_sql("explain (format json) " + str(compiled), compiled.params)
    raw = result.scalar_one()
    plan: dict[str, Any] = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    return plan


async def count_records(
    conn: AsyncConnection, f: RecordFilter, *, job_total: int | None = None
) -> RecordCount:
    """A page's count: the stored totals when unfiltered, else exact up to the cap, else estimated."""
    if not f.narrowed:
        if job_total is not None:
            return RecordCount(job_total, estimated=False)
        if f.project_id is not None:
            total = (await conn.execute(project_total_query(f.org_id, f.project_id))).scalar_one()
            return RecordCount(int(total), estimated=False)
    exact = int((await conn.execute(capped_count_query(f))).scalar_one())
    if exact < EXACT_COUNT_CAP:
        return RecordCount(exact, estimated=False)
    estimate = int((await explain(conn, matching_query(f)))["Plan Rows"])
    return RecordCount(max(estimate, EXACT_COUNT_CAP), estimated=True)
