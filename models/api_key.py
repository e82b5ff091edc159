from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import Field as PydField
from sqlmodel import Field, SQLModel

from models.base import (
    Name,
    PublicModel,
    RequestBody,
    created_field,
    id_field,
    jsonb_field,
    org_field,
    tz_field,
)


class ApiScope(StrEnum):
    ingest = "ingest"
    trigger = "trigger"


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_field()
    name: str = Field(max_length=200)
    prefix: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True)
    scopes: list[str] = jsonb_field(list)
    created_by: uuid.UUID | None = Field(
        default=None, foreign_key="app_user.id", ondelete="SET NULL"
    )
    created_at: datetime = created_field()
    last_used_at: datetime | None = tz_field()
    revoked_at: datetime | None = tz_field()


class ApiKeyCreate(RequestBody):
    name: Name
    scopes: list[ApiScope] = PydField(min_length=1)


class ApiKeyPublic(PublicModel):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    secret: str


class ApiKeysPublic(PublicModel):
    data: list[ApiKeyPublic]
    count: int
