from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import PublicModel, created_field, id_field
from models.plan import Plan


class Organization(SQLModel, table=True):
    id: uuid.UUID = id_field()
    name: str = Field(max_length=200)
    plan: str = Field(default=Plan.trial.value, max_length=32)
    default_timezone: str = Field(default="UTC", max_length=64)
    created_at: datetime = created_field()


class OrganizationPublic(PublicModel):
    id: uuid.UUID
    name: str
    plan: str
    default_timezone: str
    created_at: datetime
