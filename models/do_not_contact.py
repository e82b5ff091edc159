"""Do-not-contact list: addresses (E.164 phone or lower-cased email) no step may message.

The two query helpers live here rather than in api/services because the messaging activities
and the provider webhooks call them too, and those never import the api package.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field as PydField
from sqlalchemy import BigInteger, Column, Identity, UniqueConstraint, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import Field, SQLModel

from models.base import PublicModel, RequestBody, created_field
from models.channel import ContactAddress, normalize_address


class DoNotContactReason(StrEnum):
    stop_keyword = "stop_keyword"
    unsubscribe = "unsubscribe"
    bounce = "bounce"
    manual = "manual"


class DoNotContact(SQLModel, table=True):
    __tablename__ = "do_not_contact"
    # The unique index also serves every "is this address blocked?" look-up before a send.
    __table_args__ = (UniqueConstraint("org_id", "address", name="uq_do_not_contact_org_address"),)

    # A sequence id gives the listing a stable keyset order (newest first).
    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=False), primary_key=True, nullable=False),
    )
    org_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE")
    address: str = Field(max_length=320)
    reason: str = Field(max_length=32)
    # Where it came from: "STOP reply to channel …", "SendGrid bounce", the admin's email…
    source: str = Field(default="", max_length=500)
    created_at: datetime = created_field()


class DoNotContactCreate(RequestBody):
    address: ContactAddress
    source: str = PydField(default="", max_length=500)


class DoNotContactRemove(RequestBody):
    address: ContactAddress


class DoNotContactPublic(PublicModel):
    address: str
    reason: str
    source: str
    created_at: datetime


class DoNotContactsPublic(PublicModel):
    data: list[DoNotContactPublic]
    count: int
    # Pass as `before` to get the next (older) page; None on the last page.
    next_before: int | None


def _table() -> Any:
    return DoNotContact.__table__  # type: ignore[attr-defined]


async def add_to_do_not_contact(
    session: AsyncSession | AsyncConnection,
    org_id: uuid.UUID,
    address: str,
    reason: DoNotContactReason | str,
    source: str = "",
) -> bool:
    """Block `address` (normalised here); True if newly added. Repeats (a second STOP) are no-ops.

    Raises ValueError when `address` is neither a phone number nor an email address.
    """
    stmt = (
        insert(_table())
        .values(
            org_id=org_id,
            address=normalize_address(address),
            reason=DoNotContactReason(reason).value,
            source=source[:500],
        )
        .on_conflict_do_nothing(constraint="uq_do_not_contact_org_address")
        .returning(_table().c.id)
    )
    result = await session.execute(stmt)
    return result.first() is not None


async def is_do_not_contact(
    session: AsyncSession | AsyncConnection, org_id: uuid.UUID, address: str
) -> bool:
    """True when the organization must not message `address`; an unparsable address is not listed."""
    try:
        normalized = normalize_address(address)
    except ValueError:
        return False
    table = _table()
    stmt = select(literal(1)).where(table.c.org_id == org_id, table.c.address == normalized)
    result = await session.execute(stmt)
    return result.first() is not None
