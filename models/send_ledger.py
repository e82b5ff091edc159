"""Send ledger: one row per provider side effect, keyed `{workflow_id}:{step_id}`.

The row is committed (status pending) before the provider is called, so a retried or re-run
activity finds it and reconciles with the provider instead of sending twice. Webhooks find the
waiting record through `provider_message_id`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, Identity, Index, UniqueConstraint, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
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


def mask_address(address: str) -> str:
    """A phone number or email address safe for logs and journeys: +44******789, j***@example.com."""
    value = address.strip()
    if value.lower().startswith("whatsapp:"):
        value = value[len("whatsapp:") :]
    if "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if len(value) <= 6:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 6) + value[-3:]


def _table() -> Any:
    return SendLedger.__table__  # type: ignore[attr-defined]


@dataclass
class LedgerRow:
    id: int
    org_id: uuid.UUID
    key: str
    record_id: int
    step_id: str
    channel_id: uuid.UUID
    provider: str
    to_address: str
    provider_message_id: str | None
    status: str
    created_at: datetime


def _row(mapping: Any) -> LedgerRow:
    return LedgerRow(**{f.name: mapping[f.name] for f in fields(LedgerRow)})


async def find_send(conn: AsyncConnection | AsyncSession, key: str) -> LedgerRow | None:
    result = await conn.execute(select(_table()).where(_table().c.key == key))
    found = result.mappings().first()
    return None if found is None else _row(found)


async def claim_send(
    engine: AsyncEngine,
    *,
    org_id: uuid.UUID,
    key: str,
    record_id: int,
    step_id: str,
    channel_id: uuid.UUID,
    provider: str,
    to_address: str,
    status: SendStatus = SendStatus.pending,
    provider_message_id: str | None = None,
) -> tuple[LedgerRow, bool]:
    """Insert the ledger row in its own committed transaction; (row, True) if this call created it.

    Committed before any provider call so a crash between the call and our bookkeeping leaves a
    `pending` row the next attempt reconciles instead of sending again.
    """
    now = datetime.now(UTC)
    stmt = (
        insert(_table())
        .values(
            org_id=org_id,
            key=key,
            record_id=record_id,
            step_id=step_id,
            channel_id=channel_id,
            provider=provider,
            to_address=to_address,
            provider_message_id=provider_message_id,
            status=status.value,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(constraint="uq_send_ledger_key")
        .returning(*_table().c)
    )
    async with engine.begin() as conn:
        created = (await conn.execute(stmt)).mappings().first()
        if created is not None:
            return _row(created), True
        existing = await find_send(conn, key)
    if existing is None:  # pragma: no cover - the conflicting row cannot vanish (no deletes)
        raise RuntimeError("send ledger row vanished")
    return existing, False


async def mark_send(
    engine: AsyncEngine, key: str, status: SendStatus, provider_message_id: str | None = None
) -> None:
    values: dict[str, Any] = {"status": status.value, "updated_at": datetime.now(UTC)}
    if provider_message_id is not None:
        values["provider_message_id"] = provider_message_id
    async with engine.begin() as conn:
        await conn.execute(update(_table()).where(_table().c.key == key).values(**values))


async def claimed_message_ids(engine: AsyncEngine, ids: list[str], key: str) -> set[str]:
    """Which of these provider message ids a ledger row other than `key` already owns."""
    if not ids:
        return set()
    table = _table()
    async with engine.connect() as conn:
        result = await conn.execute(
            select(table.c.provider_message_id).where(
                table.c.provider_message_id.in_(ids), table.c.key != key
            )
        )
        return {str(r[0]) for r in result}
