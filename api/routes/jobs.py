"""Runs and jobs: Run now, the public trigger, job status, pause/resume/cancel, re-drive."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.sse import EventSourceResponse
from pydantic import Field as PydField
from sqlalchemy import text
from sqlmodel import col, select
from temporalio.service import RPCError

from api.deps import (
    Allow,
    KeyPrincipal,
    Principal,
    ProgressDep,
    RequireApiKey,
    SessionDep,
    SettingsDep,
    TemporalDep,
    UowDep,
)
from api.errors import AppError, is_not_found, not_found
from api.number_text import NumberTextRoute
from api.routes.projects import ReadableProject
from api.routes.spinners import spinner_for
from api.services.jobs import create_job, job_counts, job_public, start_job_workflow
from api.services.progress import JobGone, counts_of
from api.services.spinners import run_warnings
from models.base import RequestBody
from models.data_table import DataTable
from models.job import (
    TERMINAL_JOB,
    Job,
    JobPublic,
    JobsPublic,
    JobStatus,
    JobTrigger,
    RedriveRequest,
    RunRequest,
)
from models.job_progress import JobProgressPublic
from models.spinner import Spinner
from workflows.contracts import SIGNAL_CANCEL, SIGNAL_PAUSE, SIGNAL_RESUME, job_workflow_id

router = APIRouter(tags=["jobs"])
Read = Annotated[Principal, Allow("spinners.read")]
Run = Annotated[Principal, Allow("spinners.run")]
TriggerKey = Annotated[KeyPrincipal, Depends(RequireApiKey("trigger"))]


async def job_for(job_id: uuid.UUID, org_id: uuid.UUID, session: SessionDep) -> Job:
    job = await session.get(Job, job_id)
    if job is None or job.org_id != org_id:
        raise not_found("Job")
    return job


async def readable_job(job_id: uuid.UUID, principal: Read, session: SessionDep) -> Job:
    return await job_for(job_id, principal.org_id, session)


async def runnable_job(job_id: uuid.UUID, principal: Run, session: SessionDep) -> Job:
    return await job_for(job_id, principal.org_id, session)


ReadableJob = Annotated[Job, Depends(readable_job)]
RunnableJob = Annotated[Job, Depends(runnable_job)]


async def runnable_spinner(spinner_id: uuid.UUID, principal: Run, session: SessionDep) -> Spinner:
    return await spinner_for(spinner_id, principal, session)


async def table_for(session: SessionDep, table_id: uuid.UUID, org_id: uuid.UUID) -> DataTable:
    table = await session.get(DataTable, table_id)
    if table is None or table.org_id != org_id:
        raise AppError("Data table not found", "NOT_FOUND", 404)
    return table


async def public(session: SessionDep, job: Job) -> JobPublic:
    return job_public(job, (await job_counts(session, [job.id]))[job.id])


async def public_with_warnings(
    session: SessionDep, job: Job, spinner: Spinner, table: DataTable
) -> JobPublic:
    warnings = await run_warnings(session, spinner, table, job.spinner_version_id)
    return (await public(session, job)).model_copy(update={"warnings": warnings})


@router.post("/spinners/{spinner_id}/run", status_code=201)
async def run_now(
    spinner: Annotated[Spinner, Depends(runnable_spinner)],
    body: RunRequest,
    principal: Run,
    uow: UowDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> JobPublic:
    table = await table_for(uow.session, body.table_id, principal.org_id)
    job = await create_job(
        uow,
        org=principal.org,
        spinner=spinner,
        table=table,
        row_ids=body.row_ids,
        trigger=JobTrigger.manual,
        user_id=principal.user.id,
        temporal=temporal,
        settings=settings,
    )
    return await public_with_warnings(uow.session, job, spinner, table)


class TriggerBody(RequestBody):
    data_table_id: uuid.UUID | None = PydField(default=None, alias="dataTableId")
    row_ids: list[int] | None = PydField(
        default=None, alias="rowIds", min_length=1, max_length=10_000
    )
    records: list[dict[str, object]] | None = PydField(default=None, min_length=1, max_length=500)


async def triggerable_spinner(
    spinner_id: uuid.UUID, key: TriggerKey, session: SessionDep
) -> Spinner:
    spinner = await session.get(Spinner, spinner_id)
    if spinner is None or spinner.org_id != key.org_id:
        raise not_found("Spinner")
    return spinner


async def api_trigger(
    spinner: Annotated[Spinner, Depends(triggerable_spinner)],
    key: TriggerKey,
    body: TriggerBody,
    uow: UowDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> JobPublic:
    session = uow.session
    if body.data_table_id is None:
        raise AppError("dataTableId is required", "VALIDATION_ERROR", 422)
    table = await table_for(session, body.data_table_id, key.org_id)
    row_ids = body.row_ids
    if body.records is not None:
        from api.services.ingest import insert_records

        row_ids = await insert_records(session, table, body.records)
    job = await create_job(
        uow,
        org=key.org,
        spinner=spinner,
        table=table,
        row_ids=row_ids,
        trigger=JobTrigger.api,
        user_id=None,
        temporal=temporal,
        settings=settings,
    )
    return await public_with_warnings(session, job, spinner, table)


# Records sent with a trigger are ingested: their numbers keep their JSON text (api.number_text).
router.add_api_route(
    "/public/trigger/{spinner_id}",
    api_trigger,
    methods=["POST"],
    status_code=201,
    route_class_override=NumberTextRoute,
)


@router.get("/projects/{project_id}/jobs")
async def list_jobs(project: ReadableProject, principal: Read, session: SessionDep) -> JobsPublic:
    jobs = (
        await session.exec(
            select(Job)
            .where(Job.project_id == project.id)
            .order_by(col(Job.created_at).desc())
            .limit(200)
        )
    ).all()
    counts = await job_counts(session, [j.id for j in jobs])
    return JobsPublic(data=[job_public(j, counts[j.id]) for j in jobs], count=len(jobs))


@router.get("/jobs/{job_id}")
async def get_job(job: ReadableJob, hub: ProgressDep) -> JobPublic:
    """The job with its counts from the progress snapshot (at most two seconds old while its
    status is unchanged; a job seen ended has its final counts), so viewers share one count."""
    try:
        snapshot = await hub.current(job.org_id, job.id, status=job.status)
    except JobGone as exc:
        raise not_found("Job") from exc
    return job_public(job, counts_of(snapshot))


@router.get("/jobs/{job_id}/progress")
async def job_progress(job: ReadableJob, hub: ProgressDep) -> JobProgressPublic:
    """Counts, rate, ETA and phase from PostgreSQL: one poll per job and second serves every
    viewer, and a snapshot up to two seconds old is answered while it is refreshed."""
    try:
        return await hub.current(job.org_id, job.id)
    except JobGone as exc:
        raise not_found("Job") from exc


@router.get("/jobs/{job_id}/progress/stream", response_class=EventSourceResponse)
async def job_progress_stream(
    job: ReadableJob, hub: ProgressDep
) -> AsyncIterable[JobProgressPublic]:
    """Server-sent progress events (one per poll) until the job ends; one poll per job serves
    every viewer."""
    async for snapshot in hub.watch(job.org_id, job.id):
        yield snapshot


async def _signal(temporal: TemporalDep, job: Job, signal: str) -> None:
    if job.status in TERMINAL_JOB:
        raise AppError(f"The job has already ended ({job.status})", "JOB_ENDED", 409)
    try:
        await temporal.get_workflow_handle(job_workflow_id(str(job.id))).signal(signal)
    except RPCError as exc:
        if not is_not_found(exc):
            raise  # translated by api.errors
        # Its workflow closed before the job's status caught up.
        raise AppError("The job has already ended", "JOB_ENDED", 409) from exc


@router.post("/jobs/{job_id}/pause")
async def pause_job(job: RunnableJob, session: SessionDep, temporal: TemporalDep) -> JobPublic:
    await _signal(temporal, job, SIGNAL_PAUSE)
    return await public(session, job)


@router.post("/jobs/{job_id}/resume")
async def resume_job(job: RunnableJob, session: SessionDep, temporal: TemporalDep) -> JobPublic:
    await _signal(temporal, job, SIGNAL_RESUME)
    return await public(session, job)


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(job: RunnableJob, session: SessionDep, temporal: TemporalDep) -> JobPublic:
    await _signal(temporal, job, SIGNAL_CANCEL)
    return await public(session, job)


@router.post("/jobs/{job_id}/redrive")
async def redrive_job(
    job: RunnableJob,
    body: RedriveRequest,
    uow: UowDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> JobPublic:
    session = uow.session
    if job.status not in TERMINAL_JOB:
        raise AppError("Re-drive failed records once the job has ended", "JOB_RUNNING", 409)
    marker = "failed_step" if body.mode == "failed_step" else "start"
    # The re-driven run writes a new history; its journey is derived afresh when it closes.
    await session.execute(
        text(
            "delete from journey_snapshot where record_id in"
            " (select id from record where job_id = :job and status = 'failed')"
        ),
        {"job": job.id},
    )
    moved = await session.execute(
        text(
            "update record set status = 'pending', error = null, ended_at = null,"
            " current_step = case when :marker = 'start' then null else failed_step end"
            " where job_id = :job and status = 'failed'"
        ),
        {"job": job.id, "marker": marker},
    )
    if not moved.rowcount:  # type: ignore[attr-defined]
        raise AppError("The job has no failed records to re-drive", "NOTHING_TO_REDRIVE", 409)
    job.status = JobStatus.queued
    job.ended_at = None
    session.add(job)
    await session.flush()

    async def start() -> None:
        await start_job_workflow(temporal, settings, job)

    uow.after_commit(start)
    return await public(session, job)
