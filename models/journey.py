from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey
from sqlmodel import Field, SQLModel

from models.base import PublicModel, created_field, jsonb_field, org_field, tz_field
from models.record import RecordChild


class JourneySnapshot(SQLModel, table=True):
    """A closed record's journey, kept so it outlives Temporal namespace retention."""

    __tablename__ = "journey_snapshot"

    record_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("record.id", ondelete="CASCADE"), primary_key=True)
    )
    org_id: uuid.UUID = org_field()
    journey: dict[str, Any] = jsonb_field(dict)
    created_at: datetime = created_field()


class JourneyPending(SQLModel, table=True):
    """A closed record whose journey the API's archiver has still to materialise.

    Queued in the transaction that writes the record's end; `due_at` is when to (re)try, so a
    claim is a lease: an archiver that dies leaves the row to be claimed again.
    """

    __tablename__ = "journey_pending"

    record_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("record.id", ondelete="CASCADE"), primary_key=True)
    )
    org_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE")
    workflow_id: str = Field(max_length=300)
    due_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False, index=True)
    tries: int = 0


class ActivityAttempt(SQLModel, table=True):
    """One attempt of an activity; retries are not in workflow history, so the journey reads these."""

    __tablename__ = "activity_attempt"

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True)
    )
    workflow_id: str = Field(max_length=200, index=True)
    activity_id: str = Field(max_length=64)
    activity_type: str = Field(max_length=100)
    attempt: int
    started_at: datetime = created_field()
    ended_at: datetime | None = tz_field()
    error: str | None = None


class JourneyStep(PublicModel):
    step_id: str | None
    type: str
    outcome: str
    label: str
    status: str
    messages: list[str] = []
    attempts: int = 1
    error: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None
    detail: dict[str, Any] = {}


class JourneyPublic(PublicModel):
    record_id: int
    workflow_id: str
    status: str
    steps: list[JourneyStep]
    output: dict[str, Any]
    source: str
    # Supporting spinners: the record that started this one, and the ones this one started.
    parent_record_id: int | None = None
    children: list[RecordChild] = []
