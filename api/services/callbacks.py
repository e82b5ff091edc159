"""Generic record callbacks: our own HMAC signature over record id, timestamp and body."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client as TemporalClient

from activities.supporting import SupportingActivities
from api.deps import UnitOfWork
from api.errors import AppError
from infra.settings import Settings
from models.record import Record
from workflows.contracts import task_queues

WINDOW_S = 300
TIMESTAMP_HEADER = "x-cxgear-timestamp"
SIGNATURE_HEADER = "x-cxgear-signature"
EVENT_HEADER = "x-cxgear-event-id"


def org_callback_secret(secret_key: str, org_id: uuid.UUID) -> str:
    return hmac.new(secret_key.encode(), f"callbacks:{org_id}".encode(), hashlib.sha256).hexdigest()


def sign(secret: str, record_id: int, timestamp: int, body: bytes) -> str:
    message = f"{record_id}.{timestamp}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str, record_id: int, timestamp: str | None, signature: str | None, body: bytes
) -> None:
    if not timestamp or not signature:
        raise AppError("Missing callback signature headers", "BAD_SIGNATURE", 403)
    try:
        ts = int(timestamp)
    except ValueError as exc:
        raise AppError("Callback timestamp is not a number", "BAD_SIGNATURE", 403) from exc
    if abs(time.time() - ts) > WINDOW_S:
        raise AppError("Callback timestamp is outside the 5-minute window", "BAD_SIGNATURE", 403)
    if not hmac.compare_digest(sign(secret, record_id, ts, body), signature):
        raise AppError("Callback signature does not match", "BAD_SIGNATURE", 403)


async def start_callback_supporting(
    uow: UnitOfWork,
    *,
    engine: AsyncEngine,
    temporal: TemporalClient,
    settings: Settings,
    record: Record,
    event_id: str,
    payload: dict[str, Any],
) -> None:
    """Start the record's callback-linked supporting spinner, once the request has committed.

    Runs for late events and redeliveries too: the child's row and workflow id are
    deterministic, so a redelivered event finds the first child instead of starting another.
    """
    linked = await uow.session.execute(
        text(
            "select exists (select 1 from spinner_link l join job j on j.spinner_id ="
            " l.parent_spinner_id where j.id = :job and l.kind = 'callback')"
        ),
        {"job": record.job_id},
    )
    if not linked.scalar_one() or record.id is None:
        return
    starter = SupportingActivities(engine, temporal)
    record_id = record.id

    async def start() -> None:
        await starter.start_callback_child(
            record_id, event_id, payload, task_queues(settings.task_queue)
        )

    uow.after_commit(start)
