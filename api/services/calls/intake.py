"""What a new call_analyzer project starts with: the "Calls" table, the published "Call intake"
spinner and its nightly schedule over the rows not analysed yet, paused until the project's
call setup names its STT, LLM and storage integrations.

The spinner is ordinary (users may edit and republish it); its steps name no integrations, so
they use the project's call setup.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client as TemporalClient

from api.services.plan_limits import ensure_capacity
from api.services.schedules import temporal_schedule
from api.services.spinners import publish
from infra.settings import Settings
from models.data_table import DataTable
from models.organization import Organization
from models.plan import Meter
from models.project import Project
from models.schedule import SpinnerSchedule
from models.spinner import Spinner
from workflows.contracts import schedule_id

TABLE_NAME: Final = "Calls"
CALL_COLUMNS: Final = ["recording_url", "call_id", "agent", "direction", "started_at", "duration_s"]
SPINNER_NAME: Final = "Call intake"
NIGHTLY_CRON: Final = "0 2 * * *"
INTAKE_DEFINITION: Final[dict[str, Any]] = {
    "steps": [
        {"id": "transcribe", "type": "transcribe", "next": "apply_tags"},
        {"id": "apply_tags", "type": "apply_tags", "next": "qa_score"},
        {"id": "qa_score", "type": "qa_score", "next": "summarize"},
        {"id": "summarize", "type": "summarize", "next": "grade"},
        {"id": "grade", "type": "tag", "disposition": "{{band}}"},
    ]
}


async def seed_call_project(
    session: AsyncSession,
    temporal: TemporalClient,
    settings: Settings,
    project: Project,
    org: Organization,
    user_id: uuid.UUID | None,
) -> None:
    await ensure_capacity(session, org, Meter.data_tables)
    await ensure_capacity(session, org, Meter.main_spinners)
    table = DataTable(
        org_id=project.org_id, project_id=project.id, name=TABLE_NAME, columns=list(CALL_COLUMNS)
    )
    spinner = Spinner(
        org_id=project.org_id,
        project_id=project.id,
        name=SPINNER_NAME,
        description="Transcribes each call, applies the project's tags, scores it with the "
        "current scorecard, summarizes it and sets its band as the disposition.",
        draft=INTAKE_DEFINITION,
    )
    session.add_all([table, spinner])
    await session.flush()
    await publish(session, spinner, user_id)
    sched = SpinnerSchedule(
        org_id=project.org_id,
        spinner_id=spinner.id,
        table_id=table.id,
        cron=NIGHTLY_CRON,
        timezone=project.timezone or "UTC",
        only_unanalysed=True,
        paused=True,
    )
    session.add(sched)
    await session.flush()
    await temporal.create_schedule(schedule_id(str(sched.id)), temporal_schedule(settings, sched))


async def resume_intake(session: AsyncSession, temporal: TemporalClient, project: Project) -> int:
    """Unpauses the project's paused schedules over unanalysed rows (the nightly intake); how
    many. Called when the call setup becomes complete."""
    paused = (
        await session.exec(
            select(SpinnerSchedule)
            .join(Spinner, col(Spinner.id) == col(SpinnerSchedule.spinner_id))
            .where(
                Spinner.project_id == project.id,
                col(SpinnerSchedule.only_unanalysed).is_(True),
                col(SpinnerSchedule.paused).is_(True),
            )
        )
    ).all()
    for sched in paused:
        await temporal.get_schedule_handle(schedule_id(str(sched.id))).unpause(
            note="call setup complete"
        )
        sched.paused = False
        session.add(sched)
    return len(paused)
