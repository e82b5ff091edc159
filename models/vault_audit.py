"""Vault audit: who created, updated or deleted which organization secret. Never the value."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import Field as PydField
from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from models.base import PublicModel, RequestBody, created_field, id_field

SECRET_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"
MAX_SECRET_CHARS = 64 * 1024


class VaultAction(StrEnum):
    create = "create"
    update = "update"
    delete = "delete"


class VaultAuditEntry(SQLModel, table=True):
    __tablename__ = "vault_audit"
    # Listing newest first per organization, and "who last touched this name" for the masked list.
    __table_args__ = (
        Index("ix_vault_audit_org_created", "org_id", "created_at"),
        Index("ix_vault_audit_org_name_created", "org_id", "name", "created_at"),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE")
    user_id: uuid.UUID | None = Field(default=None, foreign_key="app_user.id", ondelete="SET NULL")
    action: str = Field(max_length=16)
    name: str = Field(max_length=100)
    version: int
    created_at: datetime = created_field()


class SecretWrite(RequestBody):
    value: str = PydField(min_length=1, max_length=MAX_SECRET_CHARS)
    # None writes unconditionally; 0 means "only if it does not exist yet"; n means "only if the
    # current version is n" (Vault KV v2 check-and-set).
    cas: int | None = PydField(default=None, ge=0)


class SecretPublic(PublicModel):
    name: str
    version: int
    updated_at: datetime | None
    updated_by: uuid.UUID | None


class SecretsPublic(PublicModel):
    data: list[SecretPublic]
    count: int


class VaultAuditPublic(PublicModel):
    id: uuid.UUID
    user_id: uuid.UUID | None
    action: str
    name: str
    version: int
    created_at: datetime


class VaultAuditsPublic(PublicModel):
    data: list[VaultAuditPublic]
    count: int
