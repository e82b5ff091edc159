"""Callbacks for records waiting in a `wait_for_callback` step."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

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
from api.services.callback_events import EVENT_ID_MAX, record_event
from api.services.callbacks import (
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    org_callback_secret,
    start_callback_supporting,
    verify,
)
from api.services.throttle import limit_public, org_plan
from models.fields import DbId, nested_text_problem
from models.record import TERMINAL_RECORD, Record
from workflows.contracts import SIGNAL_CALLBACK, CallbackSignal, record_workflow_id

router = APIRouter(tags=["callbacks"])


@router.post("/public/callbacks/{record_id}", dependencies=[Depends(PublicRoute())])
async def record_callback(
    record_id: DbId,
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
    # Counted once the signature holds: a record id is guessable, and unsigned requests must not
    # use up a genuine sender's allowance.
    plan = await org_plan(session, record.org_id)
    await limit_public(request, settings, f"callback:{record_id}", plan)
    try:
        payload = json.loads(body or b"{}")
    except ValueError as exc:
        raise AppError("Callback body must be JSON", "VALIDATION_ERROR", 422) from exc
    if not isinstance(payload, dict):
        payload = {"value": payload}
    if (problem := nested_text_problem(payload)) is not None:
        raise AppError(f"Callback body {problem}", "VALIDATION_ERROR", 422)
    event_id = request.headers.get(EVENT_HEADER) or hashlib.sha256(body).hexdigest()
    # Supporting spinners start on any accepted event, late ones included; a redelivery retries
    # a start that failed (idempotent by workflow id). They start once the request commits.
    await start_callback_supporting(
        uow,
        engine=request.app.state.engine,
        temporal=temporal,
        settings=settings,
        record=record,
        event_id=event_id[:EVENT_ID_MAX],
        payload=payload,
    )

    async def signal() -> None:
        wf_id = record.workflow_id or record_workflow_id(record_id)
        await temporal.get_workflow_handle(wf_id).signal(
            SIGNAL_CALLBACK, CallbackSignal(event_id, payload)
        )

    recorded = await record_event(
        session,
        org_id=record.org_id,
        record_id=record_id,
        event_id=event_id,
        payload=payload,
        late=record.status in TERMINAL_RECORD,
        signal=signal,
    )
    if recorded.duplicate:
        return {"ok": True, "duplicate": True}
    return {"ok": True, "late": recorded.late}


@router.get("/callback-secret")
async def callback_secret(
    principal: Annotated[Principal, Allow("spinners.write")], settings: SettingsDep
) -> dict[str, str]:
    """The organization's signing secret for record callbacks (HMAC-SHA256, see the docs)."""
    return {"secret": org_callback_secret(settings.secret_key.get_secret_value(), principal.org_id)}
