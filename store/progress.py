"""One query for a job's progress: its row and its records' status counts (an index-only range
of `ix_record_job_status_id`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

PROGRESS_SQL = text(
    "select j.status, j.total, j.started_at, j.ended_at, now(),"
    " c.pending, c.running, c.waiting, c.completed, c.failed, c.cancelled"
    " from job j cross join lateral ("
    "  select count(*) filter (where r.status = 'pending') as pending,"
    "   count(*) filter (where r.status = 'running') as running,"
    "   count(*) filter (where r.status = 'waiting') as waiting,"
    "   count(*) filter (where r.status = 'completed') as completed,"
    "   count(*) filter (where r.status = 'failed') as failed,"
    "   count(*) filter (where r.status = 'cancelled') as cancelled"
    "  from record r where r.job_id = j.id) c"
    " where j.id = :job and j.org_id = :org"
)


@dataclass(frozen=True)
class ProgressRow:
    status: str
    total: int
    started_at: datetime | None
    ended_at: datetime | None
    now: datetime
    pending: int
    running: int
    waiting: int
    completed: int
    failed: int
    cancelled: int

    @property
    def done(self) -> int:
        return self.completed + self.failed + self.cancelled

    @property
    def counted(self) -> int:
        return self.pending + self.running + self.waiting + self.done


async def read_progress(
    conn: AsyncConnection, org_id: uuid.UUID, job_id: uuid.UUID
) -> ProgressRow | None:
    row = (await conn.execute(PROGRESS_SQL, {"job": job_id, "org": org_id})).one_or_none()
    if row is None:
        return None
    status, total, started_at, ended_at, now, *counts = row
    return ProgressRow(str(status), int(total), started_at, ended_at, now, *map(int, counts))
