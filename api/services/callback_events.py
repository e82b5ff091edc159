"""Storing an event for a record once, and signalling the record while it still runs.

Shared by our own record callbacks and the provider webhooks. `callback_event` is unique per
(record, event id), so a redelivered event has one effect; an event for a record that has
closed — before our read, or between the read and the signal — is kept as late, not an error
(senders retry on 5xx).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.service import RPCError

from api.errors import is_not_found

EVENT_ID_MAX = 200


@dataclass
class Recorded:
    duplicate: bool
    late: bool


async def record_event(
    session: AsyncSession,
    *,
    org_id: Any,
    record_id: int,
    event_id: str,
    payload: dict[str, Any],
    late: bool,
    signal: Callable[[], Awaitable[None]] | None,
) -> Recorded:
    event_id = event_id[:EVENT_ID_MAX]
    inserted = await session.execute(
        text(
            "insert into callback_event (org_id, record_id, event_id, payload, late, received_at)"
            " values (:org, :rec, :ev, cast(:payload as jsonb), :late, now())"
            " on conflict (record_id, event_id) do nothing returning id"
        ),
        {
            "org": org_id,
            "rec": record_id,
            "ev": event_id,
            "payload": json.dumps(payload),
            "late": late,
        },
    )
    if inserted.first() is None:
        return Recorded(duplicate=True, late=late)
    if late or signal is None:
        return Recorded(duplicate=False, late=late)
    try:
        await signal()
    except RPCError as exc:
        # Any other failure is a 503 (api.errors) that rolls this insert back, so the sender's
        # retry is processed afresh instead of the event being filed as late for a live record.
        if not is_not_found(exc):
            raise
        await session.execute(
            text("update callback_event set late = true where record_id = :r and event_id = :e"),
            {"r": record_id, "e": event_id},
        )
        return Recorded(duplicate=False, late=True)
    return Recorded(duplicate=False, late=False)
