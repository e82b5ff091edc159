"""Jobs: the one way a job comes to exist (plan meters, the job row and its records, in one
transaction) and the one roll-up of a job's status from its records.

Every source goes through `create_job`: Run now and the public trigger (the API), scheduled
runs and supporting (child) records (the activities). Each charges the organization's monthly
`jobs` meter once per job and its `records_spun` meter once per record, so no source escapes
the plan.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from models.plan import Meter
from store.usage import consume_monthly, org_plan

ACTIVE_RECORD = ("pending", "running", "waiting")


class NoPublishedVersion(Exception):
    """The spinner has never been published, so there is nothing to run."""


class NoRows(Exception):
    """A run that asked to skip when empty found no rows to take."""


@dataclass(frozen=True)
class Version:
    id: uuid.UUID
    number: int


@dataclass(frozen=True)
class TableRows:
    """A run over a data table: its records are a snapshot of these rows (all when None),
    holding the job's metadata fields only."""

    row_ids: list[int] | None = None
    # Only rows that no earlier job of the same spinner has taken.
    only_new: bool = False
    # No rows: create no job and charge nothing (raise NoRows) — a schedule's firing.
    skip_if_empty: bool = False
    # Only rows that have no analysed call in the project yet (the Call Analyzer's intake).
    only_unanalysed: bool = False


@dataclass(frozen=True)
class ChildRecord:
    """One supporting record, started by its parent record through a link."""

    workflow_id: str
    parent_record_id: int
    root_record_id: int
    row_id: int | None
    metadata: dict[str, Any]
    attempt: int | None  # retry links count attempts; callback links do not
    waiting: bool  # a delayed child waits durably before its first step


@dataclass(frozen=True)
class NewJob:
    org_id: uuid.UUID
    project_id: uuid.UUID
    spinner_id: uuid.UUID
    trigger: str
    table_id: uuid.UUID | None = None
    metadata_fields: list[str] = field(default_factory=list)
    version: Version | None = None  # None: the spinner's latest published version
    created_by: uuid.UUID | None = None
    # A scheduled firing makes at most one job, however often its activity is retried.
    schedule_firing: str | None = None
    # A supporting job: one per (parent job, link), holding the link's child records. Its table
    # and metadata fields are the parent job's.
    parent_job_id: uuid.UUID | None = None
    link_id: uuid.UUID | None = None


@dataclass(frozen=True)
class CreatedJob:
    id: uuid.UUID
    project_id: uuid.UUID
    spinner_version_id: uuid.UUID
    spinner_version: int
    created: bool  # False: the firing's or the link's job already existed
    total: int = 0
    record_id: int | None = None  # the child record of a supporting job
    record_created: bool = False


@dataclass(frozen=True)
class JobTally:
    status: str
    total: int
    completed: int
    failed: int
    cancelled: int


_JOB_COLUMNS = "id, project_id, spinner_version_id, spinner_version, total"


async def latest_version(conn: AsyncConnection, spinner_id: uuid.UUID) -> Version | None:
    row = (
        await conn.execute(
            text(
                "select id, version from spinner_version where spinner_id = :s"
                " order by version desc limit 1"
            ),
            {"s": spinner_id},
        )
    ).first()
    return Version(row[0], int(row[1])) if row is not None else None


async def create_job(
    conn: AsyncConnection, new: NewJob, records: TableRows | ChildRecord
) -> CreatedJob:
    """Charges the plan and writes the job with its records, or writes nothing at all.

    Raises PlanLimitReached (store.usage) when the month's jobs or records would pass the
    organization's plan, NoPublishedVersion when the spinner has none, NoRows when the rows
    asked for are none and the caller wants no empty job. It runs in a savepoint,
    so a refusal leaves the caller's transaction as it was and usable.
    """
    async with conn.begin_nested():
        plan = await org_plan(conn, new.org_id)
        job = await _existing_job(conn, new)
        if job is None:
            job = await _insert_job(conn, new, records)
            if job.created:
                await consume_monthly(conn, new.org_id, plan, Meter.jobs)
        if isinstance(records, TableRows):
            if not job.created:  # a retried firing: its records were written with its job
                return job
            total = await _snapshot_rows(conn, new, job, records)
            if total == 0 and records.skip_if_empty:
                raise NoRows  # the savepoint takes the job and its charge back
            await consume_monthly(conn, new.org_id, plan, Meter.records_spun, total)
            return _with(job, total=total)
        record_id, inserted = await _insert_child(conn, new, job, records)
        if inserted:
            await consume_monthly(conn, new.org_id, plan, Meter.records_spun)
            await conn.execute(
                text(
                    "update job set total = (select count(*) from record where job_id = :j),"
                    " status = 'running', ended_at = null where id = :j"
                ),
                {"j": job.id},
            )
        return _with(job, record_id=record_id, record_created=inserted)


def _with(job: CreatedJob, **changes: Any) -> CreatedJob:
    return CreatedJob(**{**job.__dict__, **changes})


def _job(row: Any, *, created: bool) -> CreatedJob:
    return CreatedJob(row[0], row[1], row[2], int(row[3]), created, total=int(row[4]))


async def job_of_firing(conn: AsyncConnection, firing: str) -> CreatedJob | None:
    """The job a scheduled firing already created, if any."""
    return await _locked_job(conn, "schedule_firing = :f", {"f": firing})


async def _existing_job(conn: AsyncConnection, new: NewJob) -> CreatedJob | None:
    """The firing's job, or the link's supporting job, locked so its status is not rolled up
    while a record is being added."""
    if new.schedule_firing is not None:
        return await job_of_firing(conn, new.schedule_firing)
    if new.parent_job_id is None or new.link_id is None:
        return None
    # A retry child continues its chain in the job of the attempt before it, which is this
    # link's supporting job itself.
    return await _locked_job(
        conn,
        "link_id = :link and (parent_job_id = :pj or id = :pj) order by (id = :pj) desc",
        {"pj": new.parent_job_id, "link": new.link_id},
    )


async def _locked_job(
    conn: AsyncConnection, where: str, params: dict[str, Any]
) -> CreatedJob | None:
    row = (
        await conn.execute(
            text(f"select {_JOB_COLUMNS} from job where {where} limit 1 for update"), params
        )
    ).first()
    return _job(row, created=False) if row is not None else None


async def _insert_job(
    conn: AsyncConnection, new: NewJob, records: TableRows | ChildRecord
) -> CreatedJob:
    version = new.version or await latest_version(conn, new.spinner_id)
    if version is None:
        raise NoPublishedVersion(f"spinner {new.spinner_id} has no published version")
    table_id, fields = new.table_id, new.metadata_fields
    if new.parent_job_id is not None:
        parent = (
            await conn.execute(
                text("select table_id, metadata_fields from job where id = :pj"),
                {"pj": new.parent_job_id},
            )
        ).one()
        table_id, fields = parent[0], list(parent[1] or [])
    table = isinstance(records, TableRows)
    row = (
        await conn.execute(
            text(
                "insert into job (id, org_id, project_id, spinner_id, spinner_version_id,"
                " spinner_version, table_id, status, trigger, metadata_fields, row_ids, only_new,"
                " total, created_by, created_at, started_at, schedule_firing, parent_job_id,"
                " link_id) values (gen_random_uuid(), :org, :project, :spinner, :vid, :v,"
                " :table, :status, :trigger, cast(:fields as jsonb), cast(:row_ids as jsonb),"
                " :only_new, 0, :by, now(), case when :table_job then null else now() end,"
                " :firing, :pj, :link)"
                f" on conflict do nothing returning {_JOB_COLUMNS}"
            ),
            {
                "org": new.org_id,
                "project": new.project_id,
                "spinner": new.spinner_id,
                "vid": version.id,
                "v": version.number,
                "table": table_id,
                # A table's job waits for its JobWorkflow; a supporting job runs as its first
                # record starts.
                "status": "queued" if table else "running",
                "trigger": new.trigger,
                "fields": json.dumps(fields),
                "row_ids": _row_ids_json(records),
                "only_new": records.only_new if isinstance(records, TableRows) else False,
                "by": new.created_by,
                "table_job": table,
                "firing": new.schedule_firing,
                "pj": new.parent_job_id,
                "link": new.link_id,
            },
        )
    ).first()
    if row is not None:
        return _job(row, created=True)
    # Another transaction created the same firing's or link's job first.
    existing = await _existing_job(conn, new)
    if existing is None:
        raise RuntimeError("a conflicting job vanished")
    return existing


def _row_ids_json(records: TableRows | ChildRecord) -> str | None:
    if not isinstance(records, TableRows) or records.row_ids is None:
        return None
    return json.dumps(sorted(set(records.row_ids)))


async def _snapshot_rows(
    conn: AsyncConnection, new: NewJob, job: CreatedJob, rows: TableRows
) -> int:
    """The job's records, one per selected row, holding the metadata fields only (all columns
    when the table declares none)."""
    projection = (
        "(select coalesce(jsonb_object_agg(key, value), '{}'::jsonb)"
        " from jsonb_each(d.data) where key = any(cast(:fields as text[])))"
        if new.metadata_fields
        else "d.data"
    )
    where = ["d.table_id = :table"]
    if rows.row_ids is not None:
        where.append("d.row_id = any(cast(:row_ids as bigint[]))")
    if rows.only_new:
        where.append(
            "not exists (select 1 from record r join job j on j.id = r.job_id"
            " where j.spinner_id = :spinner and r.row_id = d.row_id and r.job_id <> :job)"
        )
    if rows.only_unanalysed:
        # Driven from the project's analysed calls (indexed by org and project), not per row.
        where.append(
            "d.row_id not in (select r.row_id from analysed_call a join record r on"
            " r.id = a.record_id where a.org_id = :org and a.project_id = :project"
            " and r.row_id is not null)"
        )
    inserted = await conn.execute(
        text(
            "insert into record (org_id, job_id, project_id, row_id, status, metadata, outcomes,"
            " attempts, created_at, spinner_version) select :org, :job, :project, d.row_id,"
            f" 'pending', {projection}, '{{}}'::jsonb, 0, now(), :version from data_row d"
            f" where {' and '.join(where)} order by d.row_id"
        ),
        {
            "org": new.org_id,
            "job": job.id,
            "version": job.spinner_version,
            "project": new.project_id,
            "table": new.table_id,
            "fields": list(new.metadata_fields),
            "row_ids": sorted(set(rows.row_ids or [])),
            "spinner": new.spinner_id,
        },
    )
    total = int(inserted.rowcount)
    await conn.execute(text("update job set total = :t where id = :j"), {"t": total, "j": job.id})
    return total


async def _insert_child(
    conn: AsyncConnection, new: NewJob, job: CreatedJob, child: ChildRecord
) -> tuple[int, bool]:
    """(record id, inserted): a repeated start finds the child its first start wrote."""
    inserted = (
        await conn.execute(
            text(
                "insert into record (org_id, job_id, project_id, row_id, status, metadata, outcomes,"
                " attempts, created_at, workflow_id, parent_record_id, root_record_id, link_id,"
                " link_attempt, spinner_version) values (:org, :job, :project, :row, :status,"
                " cast(:metadata as jsonb), '{}'::jsonb, 0, now(), :wf, :parent, :root, :link,"
                " :attempt, :version) on conflict do nothing returning id"
            ),
            {
                "org": new.org_id,
                "job": job.id,
                "version": job.spinner_version,
                "project": new.project_id,
                "row": child.row_id,
                "status": "waiting" if child.waiting else "pending",
                "metadata": json.dumps(child.metadata, default=str),
                "wf": child.workflow_id,
                "parent": child.parent_record_id,
                "root": child.root_record_id,
                "link": new.link_id,
                "attempt": child.attempt,
            },
        )
    ).scalar()
    if inserted is not None:
        return int(inserted), True
    found = (
        await conn.execute(
            text("select id from record where workflow_id = :wf"), {"wf": child.workflow_id}
        )
    ).scalar()
    if found is None:
        raise LookupError(f"supporting record {child.workflow_id} conflicts with another")
    return int(found), False


async def roll_up_job(
    conn: AsyncConnection, job_id: uuid.UUID | str, *, ended: bool, cancelled: bool = False
) -> JobTally:
    """A job's status and counts from its records, so they always equal the records' own.

    `ended`: the job's JobWorkflow has returned, so the job is over whatever its records say.
    A supporting job has no JobWorkflow: it runs while any of its records is active.
    """
    await conn.execute(text("select id from job where id = :j for update"), {"j": job_id})
    rows = await conn.execute(
        text("select status, count(*) from record where job_id = :j group by status"),
        {"j": job_id},
    )
    counts = {str(s): int(n) for s, n in rows}
    total = sum(counts.values())
    done, failed, dropped = (counts.get(k, 0) for k in ("completed", "failed", "cancelled"))
    if cancelled:
        status = "cancelled"
    elif not ended and any(counts.get(s, 0) for s in ACTIVE_RECORD):
        status = "running"
    elif failed == 0 and dropped == 0:
        status = "completed"
    elif done == 0 and failed > 0:
        status = "failed"
    else:
        status = "partial"
    await conn.execute(
        text(
            "update job set status = :s, total = :t, ended_at = case when :running"
            " then null else coalesce(ended_at, now()) end where id = :j"
        ),
        {"s": status, "t": total, "j": job_id, "running": status == "running"},
    )
    return JobTally(status, total, done, failed, dropped)
