from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field as PydField
from sqlmodel import Field, SQLModel

from models.base import PublicModel, RequestBody, created_field, id_field, org_field
from models.spinner import IssuePublic


class SpinnerSchedule(SQLModel, table=True):
    """Our record of a Temporal Schedule that runs a spinner over a table on a cron."""

    __tablename__ = "spinner_schedule"

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_field()
    spinner_id: uuid.UUID = Field(foreign_key="spinner.id", index=True, ondelete="CASCADE")
    table_id: uuid.UUID = Field(foreign_key="data_table.id", ondelete="CASCADE")
    cron: str = Field(max_length=100)
    timezone: str = Field(default="UTC", max_length=64)
    only_new: bool = False
    # Only rows with no analysed call yet (a call_analyzer project's nightly intake).
    only_unanalysed: bool = False
    paused: bool = False
    created_at: datetime = created_field()


class ScheduleCreate(RequestBody):
    table_id: uuid.UUID
    cron: str = PydField(min_length=9, max_length=100)
    timezone: str = "UTC"
    only_new: bool = False


class SchedulePublic(PublicModel):
    id: uuid.UUID
    spinner_id: uuid.UUID
    table_id: uuid.UUID
    cron: str
    timezone: str
    only_new: bool
    only_unanalysed: bool
    paused: bool
    created_at: datetime
    next_runs: list[datetime] = []
    # Only in the answer to its creation: templates checked against the schedule's table.
    warnings: list[IssuePublic] = []


class SchedulesPublic(PublicModel):
    data: list[SchedulePublic]
    count: int
