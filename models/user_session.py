from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import EmailStr
from sqlmodel import Field, SQLModel

from models.base import PublicModel, RequestBody, created_field, id_field, org_field, tz_field
from models.organization import OrganizationPublic
from models.user import Password


class SessionEnd(StrEnum):
    logout = "logout"
    replaced = "replaced"
    revoked = "revoked"


class UserSession(SQLModel, table=True):
    __tablename__ = "user_session"

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_field()
    user_id: uuid.UUID = Field(foreign_key="app_user.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True)
    device: str = Field(max_length=300)
    ip: str = Field(max_length=64)
    started_at: datetime = created_field()
    last_active_at: datetime = created_field()
    expires_at: datetime = tz_field()
    ended_at: datetime | None = tz_field()
    end_reason: str | None = Field(default=None, max_length=16)


class SignupBody(RequestBody):
    full_name: str
    organization_name: str
    email: EmailStr
    password: Password


class LoginBody(RequestBody):
    email: EmailStr
    password: Password
    device: str | None = None
    continue_here: bool = False


class PasswordChange(RequestBody):
    current_password: Password
    new_password: Password


class SessionPublic(PublicModel):
    token: str
    expires_at: datetime
    user_id: uuid.UUID
    org_id: uuid.UUID
    must_change_password: bool


class MeUser(PublicModel):
    id: uuid.UUID
    full_name: str
    email: str
    must_change_password: bool


class MePublic(PublicModel):
    """Who the session belongs to, their organization and what they may do."""

    user: MeUser
    organization: OrganizationPublic
    permissions: list[str]
