"""Who a call record belongs to, and which integrations its steps use: the step's own, else
the project's call setup (`PUT /projects/{id}/call-setup`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.calls.targets import permanent
from models.call_analysis.setup import ProjectCallSetup, stored_setup

CALL_PROJECT = "call_analyzer"
SETUP_FIELDS = {
    "stt": "stt_integration_id",
    "storage": "storage_integration_id",
    "llm": "llm_integration_id",
}
SETUP_WORDS = {"stt": "speech-to-text", "storage": "storage", "llm": "LLM"}


@dataclass(frozen=True)
class CallRecord:
    org_id: uuid.UUID
    project_id: uuid.UUID
    job_id: uuid.UUID | None
    project_type: str
    setup: ProjectCallSetup

    @property
    def call_project(self) -> bool:
        return self.project_type == CALL_PROJECT

    def integration(self, step: dict[str, Any], what: str, *, required: bool = True) -> str | None:
        """The step's `<what>_integration_id`, else the setup's. In a call_analyzer project a
        step that names none needs a complete setup; elsewhere it needs its own id."""
        field = SETUP_FIELDS[what]
        own = step.get(field)
        if own:
            return str(own)
        if self.call_project:
            missing = [
                SETUP_WORDS[k] for k, f in SETUP_FIELDS.items() if not getattr(self.setup, f)
            ]
            if missing:
                raise permanent(
                    f"step {step['id']}: the project's call setup is incomplete (no "
                    f"{', no '.join(missing)} integration chosen); complete it with "
                    f"PUT /api/v1/projects/{self.project_id}/call-setup or name the "
                    "integrations in the step",
                    "CallSetupIncomplete",
                )
            return str(getattr(self.setup, field))
        if required:
            raise permanent(
                f"step {step['id']}: no {SETUP_WORDS[what]} integration chosen "
                f"({field.replace('_', ' ')})",
                "IntegrationNotFound",
            )
        return None


async def call_record(engine: AsyncEngine, record_id: int) -> CallRecord:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "select r.org_id, r.project_id, r.job_id, p.type, s.settings from record r"
                    " join project p on p.id = r.project_id"
                    " left join call_setup s on s.project_id = r.project_id where r.id = :id"
                ),
                {"id": record_id},
            )
        ).first()
    if row is None:
        raise permanent(f"record {record_id} not found", "RecordNotFound")
    return CallRecord(
        org_id=row.org_id,
        project_id=row.project_id,
        job_id=row.job_id,
        project_type=str(row.type),
        setup=stored_setup(row.settings),
    )
