from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import (
    Name,
    PublicModel,
    RequestBody,
    created_field,
    id_field,
    jsonb_field,
    org_field,
)


class Role(SQLModel, table=True):
    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_field()
    name: str = Field(max_length=200)
    permissions: list[str] = jsonb_field(list)
    is_system: bool = False
    extends_id: uuid.UUID | None = Field(default=None, foreign_key="role.id", ondelete="SET NULL")
    created_at: datetime = created_field()


class RoleExtend(RequestBody):
    name: Name
    permissions: list[str] | None = None


class RoleUpdate(RequestBody):
    name: Name | None = None
    permissions: list[str] | None = None


class RolePublic(PublicModel):
    id: uuid.UUID
    name: str
    permissions: list[str]
    is_system: bool
    extends_id: uuid.UUID | None
    created_at: datetime


class RolesPublic(PublicModel):
    data: list[RolePublic]
    count: int
