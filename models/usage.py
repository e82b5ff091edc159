from __future__ import annotations

import uuid

from sqlmodel import Field, SQLModel


class UsageCounter(SQLModel, table=True):
    """Monthly meters, one row per organization, meter and month (YYYY-MM)."""

    __tablename__ = "usage_counter"

    org_id: uuid.UUID = Field(foreign_key="organization.id", primary_key=True, ondelete="CASCADE")
    meter: str = Field(primary_key=True, max_length=32)
    month: str = Field(primary_key=True, max_length=7)
    used: int = 0
