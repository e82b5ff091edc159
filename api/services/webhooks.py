"""Provider webhooks: find the send through the ledger, verify the provider's signature with the
owning integration's key, record the event once, and signal the waiting record.

Every effect is keyed by the provider's event id (api/services/callback_events.py), so a
provider redelivering the same event ten times has one effect; a record that has already closed
gets its event stored as late instead of an error (providers retry on 5xx).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client as TemporalClient

from api.errors import AppError
from api.services.callback_events import Recorded, record_event
from infra.providers import sendgrid_signature_valid, twilio_signature_valid
from infra.vault import SecretNotFound, SecretStore
from models.channel import WHATSAPP_PREFIX, Channel, normalize_address, normalize_phone
from models.do_not_contact import DoNotContactReason, add_to_do_not_contact
from models.integration import Integration, IntegrationKind
from models.record import TERMINAL_RECORD, Record
from models.send_ledger import SendLedger, SendStatus, workflow_id_of
from workflows.contracts import FAILED_STATUSES, SIGNAL_PROVIDER_EVENT, ProviderEvent

STOP_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
SENDGRID_WINDOW_S = 300
SENDGRID_SIGNATURE = "x-twilio-email-event-webhook-signature"
SENDGRID_TIMESTAMP = "x-twilio-email-event-webhook-timestamp"
TWILIO_SIGNATURE = "x-twilio-signature"
SENDGRID_BOUNCES = frozenset({"bounce", "dropped"})
SENDGRID_UNSUBSCRIBES = frozenset({"unsubscribe", "group_unsubscribe", "spamreport"})
SENDGRID_STATUSES = frozenset({"delivered", "open", "click", "deferred"}) | SENDGRID_BOUNCES


def invalid_signature(why: str) -> AppError:
    return AppError(f"Webhook signature invalid: {why}", "SIGNATURE_INVALID", 403)


def _t(model: type[Any]) -> Any:
    return model.__table__


@dataclass
class Owner:
    """A ledger row with the channel and integration that sent it."""

    ledger: dict[str, Any]
    channel: dict[str, Any]
    integration: dict[str, Any]


async def _owner_where(session: AsyncSession, *conditions: Any) -> list[Owner]:
    ledger, channel, integration = _t(SendLedger), _t(Channel), _t(Integration)
    rows = (
        (
            await session.execute(
                select(
                    ledger,
                    *[c.label(f"ch_{c.name}") for c in channel.c],
                    *[c.label(f"in_{c.name}") for c in integration.c],
                )
                .join(channel, channel.c.id == ledger.c.channel_id)
                .join(integration, integration.c.id == channel.c.integration_id)
                .where(*conditions)
                .order_by(ledger.c.id.desc())
                .limit(20)
            )
        )
        .mappings()
        .all()
    )
    out = []
    for row in rows:
        out.append(
            Owner(
                {c.name: row[c.name] for c in ledger.c},
                {c.name: row[f"ch_{c.name}"] for c in channel.c},
                {c.name: row[f"in_{c.name}"] for c in integration.c},
            )
        )
    return out


def parse_form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def public_url(public_api_url: str, path: str, query: str) -> str:
    """The URL the provider signed: ours as the public sees it, not as the proxy forwarded it."""
    return public_api_url.rstrip("/") + path + (f"?{query}" if query else "")


@dataclass
class TwilioRequest:
    """What every Twilio webhook is checked against: the URL Twilio signed, its form, the signature."""

    url: str
    form: dict[str, str]
    signature: str

    @property
    def message_sid(self) -> str:
        return self.form.get("MessageSid") or self.form.get("SmsSid") or ""


async def _signed_by(secrets: SecretStore, integration: dict[str, Any], req: TwilioRequest) -> bool:
    """Whether this Twilio integration's auth token signed the request."""
    if integration["kind"] != IntegrationKind.twilio:
        return False
    try:
        creds = await secrets.read_credentials(integration["org_id"], integration["id"])
    except SecretNotFound:
        return False
    token = creds.get("auth_token")
    if not token:  # an empty key would let anyone sign
        return False
    return twilio_signature_valid(token, req.url, req.form, req.signature)


async def _record(
    session: AsyncSession,
    temporal: TemporalClient,
    *,
    owner: dict[str, Any],
    event_id: str,
    payload: dict[str, Any],
    signal: ProviderEvent | None,
) -> Recorded:
    """Store the event once for the send's record; signal its workflow if it is still running."""
    record_id = int(owner["record_id"])
    status = (
        await session.execute(select(_t(Record).c.status).where(_t(Record).c.id == record_id))
    ).scalar_one_or_none()

    async def send_signal() -> None:
        assert signal is not None
        await temporal.get_workflow_handle(workflow_id_of(owner["key"])).signal(
            SIGNAL_PROVIDER_EVENT, signal
        )

    return await record_event(
        session,
        org_id=owner["org_id"],
        record_id=record_id,
        event_id=event_id,
        payload=payload,
        late=status is None or status in TERMINAL_RECORD,
        signal=send_signal if signal is not None else None,
    )


async def _set_ledger_status(session: AsyncSession, ledger_id: int, status: SendStatus) -> None:
    ledger = _t(SendLedger)
    await session.execute(update(ledger).where(ledger.c.id == ledger_id).values(status=status))


# --- Twilio -------------------------------------------------------------------------------------


async def twilio_status(
    session: AsyncSession, temporal: TemporalClient, secrets: SecretStore, req: TwilioRequest
) -> None:
    sid, form = req.message_sid, req.form
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    if not sid or not req.signature:
        raise invalid_signature("missing X-Twilio-Signature or MessageSid")
    owners = await _owner_where(session, _t(SendLedger).c.provider_message_id == sid)
    if not owners:
        raise invalid_signature("unknown message")
    owner = owners[0]
    if not await _signed_by(secrets, owner.integration, req):
        raise invalid_signature("does not match")
    if not status:
        return
    if status in FAILED_STATUSES:
        await _set_ledger_status(session, owner.ledger["id"], SendStatus.failed)
    await _record(
        session,
        temporal,
        owner=owner.ledger,
        event_id=f"twilio:{sid}:{status}",
        payload={"provider": "twilio", "status": status, "message_sid": sid},
        signal=ProviderEvent(f"twilio:{sid}:{status}", owner.ledger["step_id"], "status", status),
    )


def _phone(value: str) -> str | None:
    raw = value.strip()
    if raw.lower().startswith(WHATSAPP_PREFIX):
        raw = raw[len(WHATSAPP_PREFIX) :]
    try:
        return normalize_phone(raw)
    except ValueError:
        return None


async def twilio_inbound(
    session: AsyncSession, temporal: TemporalClient, secrets: SecretStore, req: TwilioRequest
) -> str:
    """Handle an inbound message; returns what happened ("stop", "reply", "late", "duplicate"…)."""
    form = req.form
    if not req.signature:
        raise invalid_signature("missing X-Twilio-Signature")
    to, sender = _phone(form.get("To", "")), _phone(form.get("From", ""))
    if to is None or sender is None:
        raise invalid_signature("unknown number")
    kind = "whatsapp" if form.get("To", "").lower().startswith(WHATSAPP_PREFIX) else "sms"
    channel, integration = _t(Channel), _t(Integration)
    candidates = (
        await session.execute(
            select(
                channel.c.id.label("channel_id"), channel.c.name.label("channel_name"), integration
            )
            .join(integration, integration.c.id == channel.c.integration_id)
            .where(channel.c.sender == to, channel.c.kind == kind)
        )
    ).mappings()
    owned: dict[str, Any] | None = None
    # The same number may be a channel in several orgs; the signing auth token says whose it is.
    for candidate in candidates.all():
        if await _signed_by(secrets, dict(candidate), req):
            owned = dict(candidate)
            break
    if owned is None:
        raise invalid_signature("does not match")
    org_id: uuid.UUID = owned["org_id"]
    body = form.get("Body", "")
    if body.strip().upper() in STOP_KEYWORDS:
        await add_to_do_not_contact(
            session,
            org_id,
            sender,
            DoNotContactReason.stop_keyword,
            source=f"STOP reply to channel {owned['channel_name']}",
        )
        return "stop"
    ledger, record = _t(SendLedger), _t(Record)
    sends = await _owner_where(
        session,
        ledger.c.channel_id == owned["channel_id"],
        ledger.c.to_address == sender,
        ledger.c.status == SendStatus.accepted,
    )
    if not sends:
        return "unmatched"
    statuses: dict[int, str] = dict(
        (
            await session.execute(
                select(record.c.id, record.c.status).where(
                    record.c.id.in_([s.ledger["record_id"] for s in sends])
                )
            )
        ).all()
    )
    # The newest send whose record is still open (waiting, or about to wait) gets the reply;
    # otherwise it is kept as a late event of the newest send's record.
    target = next(
        (s for s in sends if statuses.get(s.ledger["record_id"]) not in TERMINAL_RECORD),
        sends[0],
    )
    sid = req.message_sid
    recorded = await _record(
        session,
        temporal,
        owner=target.ledger,
        event_id=f"twilio:{sid}",
        payload={"provider": "twilio", "reply": body, "message_sid": sid},
        signal=ProviderEvent(f"twilio:{sid}", target.ledger["step_id"], "reply", body=body),
    )
    if recorded.duplicate:
        return "duplicate"
    return "late" if recorded.late else "reply"


# --- SendGrid -----------------------------------------------------------------------------------


async def sendgrid_events(
    session: AsyncSession,
    temporal: TemporalClient,
    *,
    body: bytes,
    signature: str,
    timestamp: str,
) -> dict[str, int]:
    if not signature or not timestamp:
        raise invalid_signature("missing signature headers")
    try:
        stamp = int(timestamp)
    except ValueError:
        raise invalid_signature("timestamp is not a number") from None
    if abs(time.time() - stamp) > SENDGRID_WINDOW_S:
        raise invalid_signature("timestamp outside the 5-minute window")
    try:
        events = json.loads(body)
    except ValueError:
        raise invalid_signature("body is not JSON") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise invalid_signature("body is not a list of events")

    ledger = _t(SendLedger)
    owners: list[Owner | None] = []
    for event in events:
        key = event.get("cx_key")
        message_id = str(event.get("sg_message_id") or "").split(".", 1)[0]
        found: list[Owner] = []
        if isinstance(key, str) and key:
            found = await _owner_where(session, ledger.c.key == key)
        if not found and message_id:
            found = await _owner_where(session, ledger.c.provider_message_id == message_id)
        owners.append(found[0] if found and found[0].integration["kind"] == "sendgrid" else None)
    keys = {
        str((o.integration["config"] or {}).get("event_public_key") or "")
        for o in owners
        if o is not None
    }
    # One batch is signed once: every event in it must belong to integrations with one key.
    if len(keys) != 1 or not next(iter(keys)):
        raise invalid_signature("no single verification key for this batch")
    if not sendgrid_signature_valid(next(iter(keys)), body, signature, timestamp):
        raise invalid_signature("does not match")

    counts = {"processed": 0, "duplicates": 0, "late": 0, "unmatched": 0}
    for event, owner in zip(events, owners, strict=True):
        event_id = str(event.get("sg_event_id") or "")
        kind = str(event.get("event") or "")
        if owner is None or not event_id:
            counts["unmatched"] += 1
            continue
        signal = None
        if kind in SENDGRID_STATUSES:
            signal = ProviderEvent(f"sendgrid:{event_id}", owner.ledger["step_id"], "status", kind)
        recorded = await _record(
            session,
            temporal,
            owner=owner.ledger,
            event_id=f"sendgrid:{event_id}",
            payload={"provider": "sendgrid", "event": kind},
            signal=signal,
        )
        if recorded.duplicate:
            counts["duplicates"] += 1
            continue
        counts["late" if recorded.late else "processed"] += 1
        address = str(event.get("email") or owner.ledger["to_address"])
        if kind in SENDGRID_BOUNCES:
            await _set_ledger_status(session, owner.ledger["id"], SendStatus.failed)
            await _block(session, owner, address, DoNotContactReason.bounce, f"SendGrid {kind}")
        elif kind in SENDGRID_UNSUBSCRIBES:
            await _block(
                session, owner, address, DoNotContactReason.unsubscribe, f"SendGrid {kind}"
            )
    return counts


async def _block(
    session: AsyncSession, owner: Owner, address: str, reason: DoNotContactReason, source: str
) -> None:
    try:
        normalize_address(address)
    except ValueError:
        address = owner.ledger["to_address"]
    await add_to_do_not_contact(session, owner.ledger["org_id"], address, reason, source=source)
