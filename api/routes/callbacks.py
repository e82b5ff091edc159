"""Callbacks for records waiting in a `wait_for_callback` step."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import text
from temporalio.service import RPCError

from api.deps import (
    Allow,
    Principal,
    PublicRoute,
    SessionDep,
    SettingsDep,
    TemporalDep,
    UowDep,
)
from api.errors import AppError, not_found
from api.services.callbacks import (
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    org_callback_secret,
    start_callback_supporting,
    verify,
)
from models.record import TERMINAL_RECORD, Record
from workflows.contracts import SIGNAL_CALLBACK, CallbackSignal, record_workflow_id

router = APIRouter(tags=["callbacks"])


@router.post("/public/callbacks/{record_id}", dependencies=[Depends(PublicRoute())])
async def record_callback(
    record_id: int,
    request: Request,
    session: SessionDep,
    uow: UowDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> dict[str, Any]:
    body = await request.body()
    record = await session.get(Record, record_id)
    if record is None:
        raise not_found("Record")
    secret = org_callback_secret(settings.secret_key.get_secret_value(), record.org_id)
    verify(
        secret,
        record_id,
        request.headers.get(TIMESTAMP_HEADER),
        request.headers.get(SIGNATURE_HEADER),
        body,
    )
    try:
        payload = json.loads(body or b"{}")
    except ValueError as exc:
        raise AppError("Callback body must be JSON", "VALIDATION_ERROR", 422) from exc
    if not isinstance(payload, dict):
        payload = {"value": payload}
    event_id = request.headers.get(EVENT_HEADER) or hashlib.sha256(body).hexdigest()
    late = record.status in TERMINAL_RECORD
    inserted = await session.execute(
        text(
            "insert into callback_event (org_id, record_id, event_id, payload, late, received_at)"
            " values (:org, :rec, :ev, cast(:payload as jsonb), :late, now())"
            " on conflict (record_id, event_id) do nothing returning id"
        ),
        {
            "org": record.org_id,
            "rec": record_id,
            "ev": event_id[:200],
            "payload": json.dumps(payload),
            "late": late,
        },
    )
    duplicate = inserted.first() is None
    # Supporting spinners start on any accepted event, late ones included; a redelivery retries
    # a start that failed (idempotent by workflow id).
    await start_callback_supporting(
        uow,
        engine=request.app.state.engine,
        temporal=temporal,
        settings=settings,
        record=record,
        event_id=event_id[:200],
        payload=payload,
    )
    if duplicate:
        return {"ok": True, "duplicate": True}
    if not late:
        try:
            wf_id = record.workflow_id or record_workflow_id(record_id)
            await temporal.get_workflow_handle(wf_id).signal(
                SIGNAL_CALLBACK, CallbackSignal(event_id, payload)
            )
        except RPCError:
            # The record closed between our read and the signal: keep the event as late.
            await session.execute(
                text(
                    "update callback_event set late = true where record_id = :r and event_id = :e"
                ),
                {"r": record_id, "e": event_id[:200]},
            )
            late = True
    return {"ok": True, "late": late}


@router.get("/callback-secret")
async def callback_secret(
    principal: Annotated[Principal, Allow("spinners.write")], settings: SettingsDep
) -> dict[str, str]:
    """The organization's signing secret for record callbacks (HMAC-SHA256, see the docs)."""
    return {"secret": org_callback_secret(settings.secret_key.get_secret_value(), principal.org_id)}
