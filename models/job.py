from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import Field as PydField
from sqlalchemy import Column
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import (
    PublicModel,
    RequestBody,
    created_field,
    id_field,
    jsonb_field,
    org_field,
    tz_field,
)
from models.spinner import IssuePublic


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    waiting = "waiting"
    paused = "paused"
    completed = "completed"
    partial = "partial"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL_JOB = frozenset(
    {JobStatus.completed, JobStatus.partial, JobStatus.failed, JobStatus.cancelled}
)


class JobTrigger(StrEnum):
    manual = "manual"
    api = "api"
    schedule = "schedule"
    redrive = "redrive"
    retry = "retry"
    callback = "callback"


class Job(SQLModel, table=True):
    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_field()
    project_id: uuid.UUID = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    spinner_id: uuid.UUID = Field(foreign_key="spinner.id", index=True, ondelete="CASCADE")
    spinner_version_id: uuid.UUID = Field(foreign_key="spinner_version.id", ondelete="CASCADE")
    spinner_version: int
    table_id: uuid.UUID | None = Field(
        default=None, foreign_key="data_table.id", ondelete="SET NULL"
    )
    status: str = Field(default=JobStatus.queued.value, max_length=16, index=True)
    trigger: str = Field(default=JobTrigger.manual.value, max_length=16)
    metadata_fields: list[str] = jsonb_field(list)
    row_ids: list[int] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    only_new: bool = False
    schedule_firing: str | None = Field(default=None, max_length=300, unique=True)
    total: int = 0
    created_by: uuid.UUID | None = Field(
        default=None, foreign_key="app_user.id", ondelete="SET NULL"
    )
    created_at: datetime = created_field()
    started_at: datetime | None = tz_field()
    ended_at: datetime | None = tz_field()
    # Supporting jobs: one per (parent job, link), created by the first child record.
    parent_job_id: uuid.UUID | None = Field(default=None, foreign_key="job.id", ondelete="SET NULL")
    link_id: uuid.UUID | None = Field(
        default=None, foreign_key="spinner_link.id", ondelete="SET NULL"
    )


class RunRequest(RequestBody):
    table_id: uuid.UUID
    row_ids: list[int] | None = PydField(default=None, min_length=1, max_length=10_000)


class RedriveRequest(RequestBody):
    mode: str = PydField(default="failed_step", pattern="^(failed_step|start)$")


class JobCounts(PublicModel):
    total: int = 0
    pending: int = 0
    running: int = 0
    waiting: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


class JobPublic(PublicModel):
    id: uuid.UUID
    project_id: uuid.UUID
    spinner_id: uuid.UUID
    spinner_version: int
    table_id: uuid.UUID | None
    status: str
    trigger: str
    counts: JobCounts
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    parent_job_id: uuid.UUID | None = None
    # Only in the answer to Run now and the trigger: templates checked against the run's table.
    warnings: list[IssuePublic] = []


class JobsPublic(PublicModel):
    data: list[JobPublic]
    count: int
