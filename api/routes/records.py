"""Records of jobs: filtered keyset listing, detail, and the journey derived from history."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlmodel import select
from temporalio.service import RPCError

from api.deps import (
    Allow,
    Principal,
    SessionDep,
    SettingsDep,
    TemporalLazyDep,
    in_event_loop,
)
from api.errors import AppError, is_not_found, not_found
from api.routes.jobs import ReadableJob
from api.routes.projects import ReadableProject
from api.services.journey import attempt_counts, derive_journey, store_snapshots
from models.call_analysis.analysed_call import AnalysedCall
from models.fields import Cursor, DbId, SafeStr
from models.journey import JourneyPublic, JourneySnapshot
from models.record import (
    TERMINAL_RECORD,
    Record,
    RecordChild,
    RecordPublic,
    RecordsPublic,
    callback_url,
    outcome_view,
)
from store.records import (
    MIN_SEARCH,
    RecordFilter,
    children_query,
    count_records,
    page_query,
)
from workflows.contracts import record_workflow_id

router = APIRouter(tags=["records"])
Read = Annotated[Principal, Allow("spinners.read")]
MAX_PAGE = 500


async def readable_record(record_id: DbId, principal: Read, session: SessionDep) -> Record:
    record = await session.get(Record, record_id)
    if record is None or record.org_id != principal.org_id:
        raise not_found("Record")
    return record


ReadableRecord = Annotated[Record, Depends(readable_record)]


def record_public(r: Record, public_api_url: str) -> RecordPublic:
    assert r.id is not None
    duration = (
        int((r.ended_at - r.started_at).total_seconds() * 1000)
        if r.ended_at and r.started_at
        else None
    )
    return RecordPublic(
        id=r.id,
        job_id=r.job_id,
        project_id=r.project_id,
        row_id=r.row_id,
        status=r.status,
        disposition=r.disposition,
        metadata=r.metadata_,
        outcomes=outcome_view(r.outcomes),
        error=r.error,
        failed_step=r.failed_step,
        spinner_version=r.spinner_version,
        created_at=r.created_at,
        started_at=r.started_at,
        ended_at=r.ended_at,
        duration_ms=duration,
        parent_record_id=r.parent_record_id,
        callback_url=callback_url(public_api_url, r.callback_token),
    )


async def _page(
    session: SessionDep,
    public_api_url: str,
    f: RecordFilters,
    scope: RecordFilter,
    job_total: int | None = None,
) -> RecordsPublic:
    rows = (await session.exec(page_query(scope, after=f.after, limit=f.limit))).all()
    next_after = rows[-1].id if len(rows) == f.limit else None
    # Counted once, with the first page; later pages keep the figure the client already has.
    counted = (
        await count_records(await session.connection(), scope, job_total=job_total)
        if f.after is None
        else None
    )
    return RecordsPublic(
        data=[record_public(r, public_api_url) for r in rows],
        count=counted.count if counted else None,
        count_estimated=counted.estimated if counted else False,
        next_after=next_after,
    )


Status = Annotated[
    str | None, Query(pattern="^(pending|running|waiting|completed|failed|cancelled)$")
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


@dataclass
class RecordFilters:
    """The query parameters shared by every records listing."""

    status: Status = None
    disposition: Annotated[SafeStr | None, Query(max_length=200)] = None
    q: Annotated[SafeStr | None, Query(min_length=MIN_SEARCH, max_length=200)] = None
    after: Cursor | None = None
    limit: Limit = 100


Filters = Annotated[RecordFilters, Depends(in_event_loop(RecordFilters))]


def _scope(f: RecordFilters, org_id: uuid.UUID, **where: uuid.UUID) -> RecordFilter:
    return RecordFilter(org_id, status=f.status, disposition=f.disposition, q=f.q, **where)


@router.get("/jobs/{job_id}/records")
async def job_records(
    job: ReadableJob, session: SessionDep, settings: SettingsDep, f: Filters
) -> RecordsPublic:
    return await _page(
        session,
        settings.public_api_url,
        f,
        _scope(f, job.org_id, job_id=job.id),
        job_total=job.total,
    )


@router.get("/projects/{project_id}/records")
async def project_records(
    project: ReadableProject,
    principal: Read,
    session: SessionDep,
    settings: SettingsDep,
    f: Filters,
) -> RecordsPublic:
    return await _page(
        session, settings.public_api_url, f, _scope(f, principal.org_id, project_id=project.id)
    )


async def record_children(session: SessionDep, record: Record) -> list[RecordChild]:
    """Supporting records this one started, plus (for a retry chain's root) every attempt."""
    assert record.id is not None
    rows = await session.execute(children_query(record.org_id, record.id))
    return [
        RecordChild(
            record_id=int(r[0]),
            kind="retry" if r[1] is not None else "callback",
            attempt=r[1],
            status=str(r[2]),
            job_id=r[3],
        )
        for r in rows
    ]


@router.get("/records/{record_id}")
async def get_record(
    record: ReadableRecord, session: SessionDep, settings: SettingsDep
) -> RecordPublic:
    public = record_public(record, settings.public_api_url)
    analysed = (
        await session.exec(select(AnalysedCall.id).where(AnalysedCall.record_id == record.id))
    ).first()
    return public.model_copy(
        update={"children": await record_children(session, record), "analysed_call_id": analysed}
    )


@router.get("/records/{record_id}/journey")
async def record_journey(
    record: ReadableRecord, session: SessionDep, temporal: TemporalLazyDep
) -> JourneyPublic:
    assert record.id is not None
    # Children can arrive after the record closed (late callbacks): lineage is always live.
    lineage = {
        "parent_record_id": record.parent_record_id,
        "children": await record_children(session, record),
    }
    snapshot = await session.get(JourneySnapshot, record.id)
    if snapshot is not None:
        stored = JourneyPublic.model_validate(snapshot.journey)  # camelCase, or snake if older
        return stored.model_copy(update={"source": "snapshot", **lineage})
    if record.status == "pending":
        raise AppError("The record has not started yet", "RECORD_PENDING", 409)
    wf_id = record.workflow_id or record_workflow_id(record.id)
    try:
        attempts = await attempt_counts(await session.connection(), [wf_id])
        journey = await derive_journey(await temporal(), wf_id, record.id, attempts.get(wf_id))
    except RPCError as exc:
        if not is_not_found(exc):
            raise  # translated by api.errors
        raise AppError("The record's history is not available", "HISTORY_UNAVAILABLE", 404) from exc
    if record.status in TERMINAL_RECORD and journey.status in TERMINAL_RECORD:
        # Read before the archiver got to it: stored now (the archiver's later write is the same).
        await store_snapshots(await session.connection(), [(record.id, record.org_id, journey)])
    return journey.model_copy(update=lineage)
