from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import created_field, jsonb_field, org_field


class CallbackEvent(SQLModel, table=True):
    """Every accepted callback, deduplicated by (record, event id); late ones are kept too."""

    __tablename__ = "callback_event"
    # By (organization, event id) too: a record callback's `webhook-id` names one event of the
    # organization, whichever record's URL it was sent to.
    __table_args__ = (
        UniqueConstraint("record_id", "event_id"),
        Index("ix_callback_event_org_event", "org_id", "event_id"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True)
    )
    org_id: uuid.UUID = org_field()
    record_id: int = Field(sa_type=BigInteger, index=True)
    event_id: str = Field(max_length=200)
    payload: dict[str, Any] = jsonb_field(dict)
    late: bool = False
    received_at: datetime = created_field()
