from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, Identity, Index, Uuid, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import PublicModel, created_field, jsonb_field, org_field, tz_field


class RecordStatus(StrEnum):
    pending = "pending"
    running = "running"
    waiting = "waiting"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL_RECORD = frozenset({RecordStatus.completed, RecordStatus.failed, RecordStatus.cancelled})

# Keys a step may write for its own bookkeeping; never shown in the outcome view.
INTERNAL_OUTPUT_PREFIX = "_"


class Record(SQLModel, table=True):
    # The engine pages a job's records by status; the records pages' indexes (org first, partial
    # where mostly NULL, a trigram GIN for metadata search) are in the record read-indexes migration.
    __table_args__ = (Index("ix_record_job_status_id", "job_id", "status", "id"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    org_id: uuid.UUID = org_field()
    job_id: uuid.UUID = Field(foreign_key="job.id", ondelete="CASCADE")
    project_id: uuid.UUID = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    row_id: int | None = Field(default=None, sa_type=BigInteger)
    status: str = Field(default=RecordStatus.pending.value, max_length=16)
    # The job's spinner version, copied when the record is written so listings need no join.
    spinner_version: int | None = None
    disposition: str | None = Field(default=None, max_length=200)
    metadata_: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSONB, nullable=False)
    )
    outcomes: dict[str, Any] = jsonb_field(dict)
    error: str | None = None
    failed_step: str | None = Field(default=None, max_length=64)
    current_step: str | None = Field(default=None, max_length=64)
    attempts: int = 0
    created_at: datetime = created_field()
    started_at: datetime | None = tz_field()
    ended_at: datetime | None = tz_field()
    # Supporting (child) records: NULL workflow_id means the plain `rec-{id}`.
    workflow_id: str | None = Field(default=None, max_length=300)
    parent_record_id: int | None = Field(
        default=None, sa_type=BigInteger, foreign_key="record.id", ondelete="SET NULL"
    )
    root_record_id: int | None = Field(
        default=None, sa_type=BigInteger, foreign_key="record.id", ondelete="SET NULL"
    )
    link_id: uuid.UUID | None = Field(
        default=None, foreign_key="spinner_link.id", ondelete="SET NULL"
    )
    link_attempt: int | None = None
    # The record's public callback URL names this random token, never the (sequential) id, so the
    # URL reveals neither whether a record exists nor how many there are.
    callback_token: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        sa_column=Column(
            Uuid, nullable=False, unique=True, server_default=text("gen_random_uuid()")
        ),
    )


class RecordChild(PublicModel):
    """A supporting record started from this one (a retry attempt or a callback)."""

    record_id: int
    kind: str
    attempt: int | None
    status: str
    job_id: uuid.UUID


class RecordPublic(PublicModel):
    id: int
    job_id: uuid.UUID
    project_id: uuid.UUID
    row_id: int | None
    status: str
    disposition: str | None
    metadata: dict[str, Any]
    outcomes: dict[str, Any]
    error: str | None
    failed_step: str | None
    spinner_version: int | None = None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None
    parent_record_id: int | None = None
    children: list[RecordChild] = []
    # The analysed call a call analyzer intake wrote for this record (detail only).
    analysed_call_id: int | None = None
    # Where a sender POSTs this record's signed callbacks (see "Record callbacks" in the README).
    callback_url: str


class RecordsPublic(PublicModel):
    data: list[RecordPublic]
    # Given with the first page only (pages with `after` carry null): exact from the job's
    # stored totals or an index range, or PostgreSQL's estimate past 10,000 (`count_estimated`).
    count: int | None
    count_estimated: bool = False
    next_after: int | None


def callback_url(public_api_url: str, token: uuid.UUID) -> str:
    return f"{public_api_url.rstrip('/')}/api/v1/public/callbacks/{token.hex}"


def outcome_view(outputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in outputs.items() if not k.startswith(INTERNAL_OUTPUT_PREFIX)}
