from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from models.base import Name, PublicModel, RequestBody, created_field, id_field, org_field


class ProjectType(StrEnum):
    outreach = "outreach"
    call_analyzer = "call_analyzer"


class Project(SQLModel, table=True):
    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_field()
    name: str = Field(max_length=200)
    type: str = Field(max_length=32)
    timezone: str = Field(default="UTC", max_length=64)
    created_at: datetime = created_field()


class ProjectCreate(RequestBody):
    name: Name
    type: ProjectType
    timezone: str = "UTC"


class ProjectUpdate(RequestBody):
    name: Name | None = None
    timezone: str | None = None


class ProjectPublic(PublicModel):
    id: uuid.UUID
    name: str
    type: str
    timezone: str
    created_at: datetime


class ProjectsPublic(PublicModel):
    data: list[ProjectPublic]
    count: int
