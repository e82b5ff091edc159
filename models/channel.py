"""Channels: a sender on an integration (a Twilio number for WhatsApp, SMS or voice; a SendGrid
sender for email). Also the one definition of the E.164 phone and email address types."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, StringConstraints
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import Name, PublicModel, RequestBody, created_field, id_field, org_field
from models.integration import IntegrationKind

WHATSAPP_PREFIX = "whatsapp:"


def normalize_phone(value: str) -> str:
    """An international number in E.164 (`+14155550100`); spaces, dashes and `whatsapp:` allowed."""
    raw = value.strip()
    if raw.lower().startswith(WHATSAPP_PREFIX):
        raw = raw[len(WHATSAPP_PREFIX) :].strip()
    if not raw.startswith("+"):
        raise ValueError("phone numbers must be in international format starting with +")
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise ValueError(f"{value!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: str) -> str:
    """A deliverable-looking address, lower-cased so look-ups (do-not-contact) match exactly."""
    try:
        # No DNS: validation must not depend on the network or be slow.
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return result.normalized.lower()


def normalize_address(value: str) -> str:
    """A phone number (E.164) or an email address (lower-cased), whichever `value` is."""
    return normalize_email(value) if "@" in value else normalize_phone(value)


E164 = Annotated[str, StringConstraints(max_length=40), AfterValidator(normalize_phone)]
EmailAddress = Annotated[str, StringConstraints(max_length=320), AfterValidator(normalize_email)]
ContactAddress = Annotated[
    str, StringConstraints(min_length=1, max_length=320), AfterValidator(normalize_address)
]


class ChannelKind(StrEnum):
    whatsapp = "whatsapp"
    sms = "sms"
    voice = "voice"
    email = "email"


# Which integration kind each channel kind sends through.
CHANNEL_INTEGRATION: dict[ChannelKind, IntegrationKind] = {
    ChannelKind.whatsapp: IntegrationKind.twilio,
    ChannelKind.sms: IntegrationKind.twilio,
    ChannelKind.voice: IntegrationKind.twilio,
    ChannelKind.email: IntegrationKind.sendgrid,
}


class Channel(SQLModel, table=True):
    __tablename__ = "channel"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_channel_org_name"),)

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_field()
    # RESTRICT backs the API's INTEGRATION_IN_USE refusal: an integration never vanishes under
    # a channel.
    integration_id: uuid.UUID = Field(foreign_key="integration.id", index=True, ondelete="RESTRICT")
    kind: str = Field(max_length=16)
    name: str = Field(max_length=200)
    sender: str = Field(max_length=320)
    sender_name: str | None = Field(default=None, max_length=200)
    # Sends are recorded as outcomes but no provider is called.
    sandbox: bool = False
    created_at: datetime = created_field()
    updated_at: datetime = created_field()


SenderName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ChannelCreate(RequestBody):
    kind: ChannelKind
    name: Name
    integration_id: uuid.UUID
    # E.164 for whatsapp/sms/voice, an email address for email (checked against the kind).
    sender: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
    sender_name: SenderName | None = None
    sandbox: bool = False


class ChannelUpdate(RequestBody):
    name: Name | None = None
    sender: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
        | None
    ) = None
    sender_name: SenderName | None = None
    sandbox: bool | None = None


class ChannelPublic(PublicModel):
    id: uuid.UUID
    kind: str
    name: str
    integration_id: uuid.UUID
    sender: str
    sender_name: str | None
    sandbox: bool
    created_at: datetime
    updated_at: datetime


class ChannelsPublic(PublicModel):
    data: list[ChannelPublic]
    count: int
