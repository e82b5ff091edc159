"""Channels: senders built on an integration (Twilio for WhatsApp/SMS/voice, SendGrid for email)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import func
from sqlmodel import col, select

from api.deps import Allow, Principal, SessionDep
from api.errors import AppError, not_found
from api.services.plan_limits import ensure_capacity, register_capacity_meter
from api.services.unique_names import UniqueName
from models.base import utcnow
from models.channel import (
    CHANNEL_INTEGRATION,
    Channel,
    ChannelCreate,
    ChannelKind,
    ChannelPublic,
    ChannelsPublic,
    ChannelUpdate,
    normalize_email,
    normalize_phone,
)
from models.integration import Integration
from models.plan import Meter

router = APIRouter(prefix="/channels", tags=["channels"])
Read = Annotated[Principal, Allow("integrations.read")]
Write = Annotated[Principal, Allow("integrations.write")]
CHANNEL_NAMES = UniqueName(Channel, "A channel", "uq_channel_org_name")

register_capacity_meter(
    Meter.channels,
    lambda org_id: select(func.count()).select_from(Channel).where(Channel.org_id == org_id),
)


async def _in_org(channel_id: uuid.UUID, org_id: uuid.UUID, session: SessionDep) -> Channel:
    channel = await session.get(Channel, channel_id)
    if channel is None or channel.org_id != org_id:
        raise not_found("Channel")
    return channel


async def readable(channel_id: uuid.UUID, principal: Read, session: SessionDep) -> Channel:
    return await _in_org(channel_id, principal.org_id, session)


async def writable(channel_id: uuid.UUID, principal: Write, session: SessionDep) -> Channel:
    return await _in_org(channel_id, principal.org_id, session)


Readable = Annotated[Channel, Depends(readable)]
Writable = Annotated[Channel, Depends(writable)]


def normalized_sender(kind: ChannelKind, sender: str) -> str:
    try:
        return normalize_email(sender) if kind == ChannelKind.email else normalize_phone(sender)
    except ValueError as exc:
        what = "an email address" if kind == ChannelKind.email else "an E.164 phone number"
        raise AppError(
            f"sender must be {what}: {exc}",
            "INVALID_SENDER",
            422,
            [{"field": "sender", "message": str(exc)}],
        ) from None


async def _integration_for(
    session: SessionDep, org_id: uuid.UUID, kind: ChannelKind, integration_id: uuid.UUID
) -> Integration:
    integration = await session.get(Integration, integration_id)
    if integration is None or integration.org_id != org_id:
        raise AppError(
            "integrationId does not name an integration of this organization",
            "INTEGRATION_NOT_FOUND",
            422,
            [{"field": "integrationId", "message": "not found"}],
        )
    needed = CHANNEL_INTEGRATION[kind]
    if integration.kind != needed.value:
        raise AppError(
            f"A {kind.value} channel sends through a {needed.value} integration, "
            f"not {integration.kind}",
            "CHANNEL_INTEGRATION_MISMATCH",
            422,
            [{"field": "integrationId", "message": f"must be a {needed.value} integration"}],
        )
    return integration


def _sender_name(kind: ChannelKind, sender_name: str | None) -> str | None:
    if sender_name is not None and kind != ChannelKind.email:
        raise AppError(
            "senderName applies to email channels only",
            "VALIDATION_ERROR",
            422,
            [{"field": "senderName", "message": "email channels only"}],
        )
    return sender_name


@router.get("")
async def list_channels(principal: Read, session: SessionDep) -> ChannelsPublic:
    rows = (
        await session.exec(
            select(Channel).where(Channel.org_id == principal.org_id).order_by(col(Channel.name))
        )
    ).all()
    return ChannelsPublic(data=[ChannelPublic.model_validate(c) for c in rows], count=len(rows))


@router.post("", status_code=201)
async def create_channel(
    body: ChannelCreate, principal: Write, session: SessionDep
) -> ChannelPublic:
    sender = normalized_sender(body.kind, body.sender)
    sender_name = _sender_name(body.kind, body.sender_name)
    await _integration_for(session, principal.org_id, body.kind, body.integration_id)
    await ensure_capacity(session, principal.org, Meter.channels)
    await CHANNEL_NAMES.ensure_free(session, principal.org_id, body.name, None)
    channel = Channel(
        org_id=principal.org_id,
        integration_id=body.integration_id,
        kind=body.kind.value,
        name=body.name,
        sender=sender,
        sender_name=sender_name,
        sandbox=body.sandbox,
    )
    session.add(channel)
    await CHANNEL_NAMES.flush(session, body.name)
    return ChannelPublic.model_validate(channel)


@router.get("/{channel_id}")
async def get_channel(channel: Readable) -> ChannelPublic:
    return ChannelPublic.model_validate(channel)


@router.patch("/{channel_id}")
async def update_channel(
    body: ChannelUpdate, channel: Writable, session: SessionDep
) -> ChannelPublic:
    kind = ChannelKind(channel.kind)
    if body.sender is not None:
        channel.sender = normalized_sender(kind, body.sender)
    if body.sender_name is not None:
        channel.sender_name = _sender_name(kind, body.sender_name)
    if body.sandbox is not None:
        channel.sandbox = body.sandbox
    if body.name is not None and body.name != channel.name:
        await CHANNEL_NAMES.ensure_free(session, channel.org_id, body.name, channel.id)
        channel.name = body.name
    channel.updated_at = utcnow()
    session.add(channel)
    await CHANNEL_NAMES.flush(session, channel.name)
    return ChannelPublic.model_validate(channel)


@router.delete("/{channel_id}", status_code=204)
async def delete_channel(channel: Writable, session: SessionDep) -> None:
    await session.delete(channel)
