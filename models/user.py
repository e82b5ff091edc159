from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import EmailStr, StringConstraints
from sqlalchemy import Column, ForeignKey, Uuid
from sqlmodel import Field, SQLModel

from models.base import Name, PublicModel, RequestBody, created_field, id_field, org_field


class UserStatus(StrEnum):
    active = "active"
    disabled = "disabled"


Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class User(SQLModel, table=True):
    __tablename__ = "app_user"

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_field()
    full_name: str = Field(max_length=200)
    email: str = Field(max_length=320, unique=True)
    password_hash: str
    status: str = Field(default=UserStatus.active.value, max_length=16)
    must_change_password: bool = False
    created_at: datetime = created_field()


class UserRole(SQLModel, table=True):
    __tablename__ = "user_role"

    user_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True)
    )
    role_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("role.id", ondelete="CASCADE"), primary_key=True)
    )


class UserInvite(RequestBody):
    full_name: Name
    email: EmailStr
    temporary_password: Password
    role_ids: list[uuid.UUID]


class UserUpdate(RequestBody):
    full_name: Name | None = None
    role_ids: list[uuid.UUID] | None = None


class RoleRef(PublicModel):
    id: uuid.UUID
    name: str


class UserPublic(PublicModel):
    id: uuid.UUID
    full_name: str
    email: str
    status: str
    roles: list[RoleRef]
    presence: str
    device: str | None
    ip: str | None
    last_active_at: datetime | None
    created_at: datetime


class UsersPublic(PublicModel):
    data: list[UserPublic]
    count: int
