"""Send ledger: one row per provider side effect, keyed `{workflow_id}:{step_id}`.

The row is committed (status pending) before the provider is called, so a retried or re-run
activity finds it and reconciles with the provider instead of sending twice. Webhooks find the
waiting record through `provider_message_id`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Identity, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import created_field, org_field


class SendStatus(StrEnum):
    pending = "pending"
    accepted = "accepted"
    failed = "failed"
    skipped = "skipped"


class SendProvider(StrEnum):
    twilio = "twilio"
    sendgrid = "sendgrid"
    sandbox = "sandbox"


class SendLedger(SQLModel, table=True):
    __tablename__ = "send_ledger"
    __table_args__ = (
        UniqueConstraint("key", name="uq_send_ledger_key"),
        # Inbound replies: the latest accepted send to an address on a channel.
        Index("ix_send_ledger_channel_to", "channel_id", "to_address", "id"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=False), primary_key=True, nullable=False),
    )
    org_id: uuid.UUID = org_field()
    key: str = Field(max_length=300)
    record_id: int = Field(sa_type=BigInteger)
    step_id: str = Field(max_length=100)
    channel_id: uuid.UUID
    provider: str = Field(max_length=16)
    to_address: str = Field(max_length=320)
    provider_message_id: str | None = Field(default=None, max_length=200, index=True)
    status: str = Field(default=SendStatus.pending.value, max_length=16)
    created_at: datetime = created_field()
    updated_at: datetime = created_field()


def ledger_key(workflow_id: str, step_id: str) -> str:
    return f"{workflow_id}:{step_id}"


def workflow_id_of(key: str) -> str:
    """The workflow id part of a ledger key (step ids never contain ':')."""
    return key.rsplit(":", 1)[0]
