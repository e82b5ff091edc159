from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import PublicModel


class UsageCounter(SQLModel, table=True):
    """Monthly meters, one row per organization, meter and month (YYYY-MM)."""

    __tablename__ = "usage_counter"

    org_id: uuid.UUID = Field(foreign_key="organization.id", primary_key=True, ondelete="CASCADE")
    meter: str = Field(primary_key=True, max_length=32)
    month: str = Field(primary_key=True, max_length=7)
    used: int = 0


class MeterUsage(PublicModel):
    meter: str
    # Monthly meters count this calendar month (UTC) and reset on the 1st; the others count
    # what exists now (projects, users, API keys…).
    monthly: bool
    used: int
    limit: int
    remaining: int
    unlimited: bool


class UsagePublic(PublicModel):
    plan: str
    # When the monthly meters start again from zero (the 1st of next month, 00:00 UTC).
    resets_at: datetime
    meters: list[MeterUsage]
