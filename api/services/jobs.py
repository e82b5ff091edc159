"""Creating jobs and driving their JobWorkflows (started only after the request commits)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client as TemporalClient
from temporalio.common import WorkflowIDReusePolicy

from api.deps import UnitOfWork
from api.errors import AppError
from api.services.data_tables import ACTIVE_JOB_CHECKS
from api.services.plan_limits import plan_limit_error
from api.services.spinners import latest_version
from infra.settings import Settings
from models.data_table import DataTable
from models.job import Job, JobCounts, JobPublic, JobTrigger
from models.organization import Organization
from models.spinner import Spinner, SpinnerKind
from store import jobs as store_jobs
from store.jobs import NewJob, TableRows, Version
from store.usage import PlanRefused
from workflows.contracts import JOB_WORKFLOW, JobInput, job_workflow_id, task_queues


def job_input(settings: Settings, job: Job) -> JobInput:
    return JobInput(
        job_id=str(job.id),
        project_id=str(job.project_id),
        spinner_version_id=str(job.spinner_version_id),
        spinner_version=job.spinner_version,
        queues=task_queues(settings.task_queue),
        window=settings.job_window,
        batch=settings.job_batch,
        children_per_run=settings.job_children_per_run,
    )


async def start_job_workflow(temporal: TemporalClient, settings: Settings, job: Job) -> None:
    await temporal.start_workflow(
        JOB_WORKFLOW,
        job_input(settings, job),
        id=job_workflow_id(str(job.id)),
        task_queue=settings.task_queue("main"),
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )


async def create_job(
    uow: UnitOfWork,
    *,
    org: Organization,
    spinner: Spinner,
    table: DataTable,
    row_ids: list[int] | None,
    trigger: JobTrigger,
    user_id: uuid.UUID | None,
    temporal: TemporalClient,
    settings: Settings,
    only_new: bool = False,
) -> Job:
    session = uow.session
    if spinner.kind != SpinnerKind.main:
        raise AppError(
            "Supporting spinners start from their parent, not by a run", "NOT_RUNNABLE", 409
        )
    if await is_supporting(session, spinner.id):
        raise AppError(
            "This spinner supports another one: it starts from its parent's links, not by a run",
            "SUPPORTING_SPINNER",
            409,
        )
    if table.project_id != spinner.project_id:
        raise AppError("The data table belongs to another project", "VALIDATION_ERROR", 422)
    if not table.columns:
        raise AppError("The data table is empty; import a CSV first", "TABLE_EMPTY", 409)
    version = await latest_version(session, spinner)
    rows = await count_rows(session, table.id, row_ids)
    if row_ids is not None and rows != len(set(row_ids)):
        raise AppError("Some row ids are not in this table", "VALIDATION_ERROR", 422)
    new = NewJob(
        org_id=org.id,
        project_id=spinner.project_id,
        spinner_id=spinner.id,
        trigger=trigger.value,
        table_id=table.id,
        metadata_fields=list(table.metadata_fields or []),
        version=Version(version.id, version.version),
        created_by=user_id,
    )
    try:
        created = await store_jobs.create_job(
            await session.connection(), new, TableRows(row_ids, only_new)
        )
    except PlanRefused as exc:
        raise plan_limit_error(exc) from exc
    job = await session.get(Job, created.id)
    if job is None:
        raise RuntimeError(f"job {created.id} vanished in its own transaction")

    async def start() -> None:
        await start_job_workflow(temporal, settings, job)

    uow.after_commit(start)
    return job


async def is_supporting(session: AsyncSession, spinner_id: uuid.UUID) -> bool:
    stmt = text("select exists (select 1 from spinner_link where child_spinner_id = :s)")
    return bool((await session.execute(stmt, {"s": spinner_id})).scalar_one())


async def count_rows(session: AsyncSession, table_id: uuid.UUID, row_ids: list[int] | None) -> int:
    if row_ids is None:
        stmt = text("select count(*) from data_row where table_id = :t")
        return int((await session.execute(stmt, {"t": table_id})).scalar_one())
    stmt = text("select count(*) from data_row where table_id = :t and row_id = any(:ids)")
    return int(
        (await session.execute(stmt, {"t": table_id, "ids": list(set(row_ids))})).scalar_one()
    )


async def job_counts(session: AsyncSession, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, JobCounts]:
    if not job_ids:
        return {}
    rows = await session.execute(
        text(
            "select job_id, status, count(*) from record where job_id = any(:ids) group by job_id, status"
        ),
        {"ids": job_ids},
    )
    out: dict[uuid.UUID, JobCounts] = {jid: JobCounts() for jid in job_ids}
    for job_id, status, n in rows:
        setattr(out[job_id], status, int(n))
    return out


def job_public(job: Job, counts: JobCounts) -> JobPublic:
    counts = counts.model_copy(update={"total": max(job.total, sum_counts(counts))})
    duration = None
    if job.started_at:
        end = job.ended_at or datetime.now(UTC)
        duration = (end - job.started_at).total_seconds()
    return JobPublic(
        id=job.id,
        project_id=job.project_id,
        spinner_id=job.spinner_id,
        spinner_version=job.spinner_version,
        table_id=job.table_id,
        status=job.status,
        trigger=job.trigger,
        counts=counts,
        created_at=job.created_at,
        started_at=job.started_at,
        ended_at=job.ended_at,
        duration_s=duration,
        parent_job_id=job.parent_job_id,
    )


def sum_counts(c: JobCounts) -> int:
    return c.pending + c.running + c.waiting + c.completed + c.failed + c.cancelled


async def table_has_running_job(session: AsyncSession, table_id: uuid.UUID) -> bool:
    running = await session.exec(
        select(func.count())
        .select_from(Job)
        .where(
            Job.table_id == table_id,
            col(Job.status).in_(["queued", "running", "waiting", "paused"]),
        )
    )
    return bool(running.one())


ACTIVE_JOB_CHECKS.append(table_has_running_job)
