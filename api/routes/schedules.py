"""Cron schedules of a spinner, kept as Temporal Schedules (`sched-{id}`)."""

from __future__ import annotations

import uuid
from typing import Annotated
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends
from sqlmodel import col, select
from temporalio.client import ScheduleHandle
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Allow, Principal, SessionDep, SettingsDep, TemporalDep, UowDep
from api.errors import AppError, is_not_found, not_found
from api.routes.jobs import runnable_spinner, table_for
from api.routes.spinners import ReadableSpinner
from api.services.schedules import temporal_schedule
from api.services.spinners import run_warnings
from models.schedule import ScheduleCreate, SchedulePublic, SchedulesPublic, SpinnerSchedule
from models.spinner import Spinner
from workflows.contracts import schedule_id

router = APIRouter(tags=["schedules"])
RunP = Annotated[Principal, Allow("spinners.run")]


async def schedule_for(
    schedule_uuid: uuid.UUID, principal: RunP, session: SessionDep
) -> SpinnerSchedule:
    sched = await session.get(SpinnerSchedule, schedule_uuid)
    if sched is None or sched.org_id != principal.org_id:
        raise not_found("Schedule")
    return sched


ScheduleDep = Annotated[SpinnerSchedule, Depends(schedule_for)]


async def public(temporal: TemporalDep, sched: SpinnerSchedule) -> SchedulePublic:
    out = SchedulePublic.model_validate(sched)
    try:
        desc = await temporal.get_schedule_handle(schedule_id(str(sched.id))).describe()
        out.next_runs = list(desc.info.next_action_times[:5])
    except RPCError as exc:
        if not is_not_found(exc):
            raise  # translated by api.errors
        out.next_runs = []  # not (or no longer) in Temporal: nothing will run
    return out


@router.post("/spinners/{spinner_id}/schedules", status_code=201)
async def create_schedule(
    spinner: Annotated[Spinner, Depends(runnable_spinner)],
    body: ScheduleCreate,
    principal: RunP,
    uow: UowDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> SchedulePublic:
    if body.timezone not in available_timezones():
        raise AppError(f"Unknown time zone '{body.timezone}'", "VALIDATION_ERROR", 422)
    if len(body.cron.split()) != 5:
        raise AppError(
            "cron must have five fields: minute hour day month weekday", "VALIDATION_ERROR", 422
        )
    table = await table_for(uow.session, body.table_id, principal.org_id)
    if table.project_id != spinner.project_id:
        raise AppError("The data table belongs to another project", "VALIDATION_ERROR", 422)
    sched = SpinnerSchedule(
        org_id=principal.org_id,
        spinner_id=spinner.id,
        table_id=table.id,
        cron=body.cron,
        timezone=body.timezone,
        only_new=body.only_new,
    )
    uow.session.add(sched)
    await uow.session.flush()
    try:
        # Created inside the request so a bad cron is refused before anything is committed.
        await temporal.create_schedule(
            schedule_id(str(sched.id)), temporal_schedule(settings, sched)
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.INVALID_ARGUMENT:
            raise  # translated by api.errors
        raise AppError(
            f"Temporal refused the schedule: {exc.message}", "VALIDATION_ERROR", 422
        ) from exc
    out = await public(temporal, sched)
    out.warnings = await run_warnings(uow.session, spinner, table)
    return out


@router.get("/spinners/{spinner_id}/schedules")
async def list_schedules(
    spinner: ReadableSpinner,
    session: SessionDep,
    temporal: TemporalDep,
) -> SchedulesPublic:
    rows = (
        await session.exec(
            select(SpinnerSchedule)
            .where(SpinnerSchedule.spinner_id == spinner.id)
            .order_by(col(SpinnerSchedule.created_at))
        )
    ).all()
    return SchedulesPublic(data=[await public(temporal, s) for s in rows], count=len(rows))


def handle(temporal: TemporalDep, sched: SpinnerSchedule) -> ScheduleHandle:
    return temporal.get_schedule_handle(schedule_id(str(sched.id)))


@router.post("/schedules/{schedule_uuid}/pause")
async def pause_schedule(
    sched: ScheduleDep, session: SessionDep, temporal: TemporalDep
) -> SchedulePublic:
    await handle(temporal, sched).pause(note="paused from CXGear")
    sched.paused = True
    session.add(sched)
    return await public(temporal, sched)


@router.post("/schedules/{schedule_uuid}/resume")
async def resume_schedule(
    sched: ScheduleDep, session: SessionDep, temporal: TemporalDep
) -> SchedulePublic:
    await handle(temporal, sched).unpause(note="resumed from CXGear")
    sched.paused = False
    session.add(sched)
    return await public(temporal, sched)


@router.delete("/schedules/{schedule_uuid}", status_code=204)
async def delete_schedule(sched: ScheduleDep, session: SessionDep, temporal: TemporalDep) -> None:
    try:
        await handle(temporal, sched).delete()
    except RPCError as exc:
        if not is_not_found(exc):
            raise  # translated by api.errors
        # already gone in Temporal; removing our row is what matters
    await session.delete(sched)
