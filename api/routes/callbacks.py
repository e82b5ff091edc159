"""Callbacks for records waiting in a `wait_for_callback` step, and the organization's secret
that signs them."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request
from sqlmodel import select

from api.deps import (
    Allow,
    Principal,
    PublicRoute,
    SecretStoreDep,
    SessionDep,
    SettingsDep,
    TemporalDep,
    UowDep,
)
from api.errors import AppError
from api.services.callback_events import EVENT_ID_MAX, record_event
from api.services.callback_secret import (
    AUDIT_NAME,
    rotate_secret,
    secret_status,
    verifying_secrets,
)
from api.services.callbacks import event_id_used_elsewhere, start_callback_supporting
from api.services.throttle import limit_public, org_plan
from infra.callback_signing import CallbackRefused, verify_callback
from models.callback_secret import CallbackSecretCreated, CallbackSecretRotate, CallbackSecretStatus
from models.fields import nested_text_problem, text_problem
from models.record import TERMINAL_RECORD, Record
from models.vault_audit import VaultAction, VaultAuditEntry
from workflows.contracts import SIGNAL_CALLBACK, CallbackSignal, record_workflow_id

log = logging.getLogger(__name__)
router = APIRouter(tags=["callbacks"])

# One answer for an unknown URL and for every signature failure, so the public route tells
# nobody whether a record exists; the reason is logged for the operator.
REFUSED_MESSAGE = (
    "Callback refused: check the callback URL, the webhook-id, webhook-timestamp and"
    " webhook-signature headers, the organization's callback secret, and the clock"
    " (5-minute window)"
)
Token = Annotated[uuid.UUID, Path(description="the record's callback token (from callback_url)")]


@router.post("/public/callbacks/{token}", dependencies=[Depends(PublicRoute())])
async def record_callback(
    token: Token,
    request: Request,
    session: SessionDep,
    uow: UowDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    store: SecretStoreDep,
) -> dict[str, Any]:
    body = await request.body()
    record = (await session.exec(select(Record).where(Record.callback_token == token))).first()
    secrets_ = [] if record is None else await verifying_secrets(store, record.org_id)
    try:
        event_id = verify_callback(secrets_, request.headers, body)
    except CallbackRefused as exc:
        log.info("record callback refused: %s", exc if record is not None else "unknown token")
        raise AppError(REFUSED_MESSAGE, "BAD_SIGNATURE", 403) from None
    assert record is not None and record.id is not None
    record_id = record.id
    # Counted once the signature holds, so unsigned requests cannot use up a sender's allowance.
    plan = await org_plan(session, record.org_id)
    await limit_public(request, settings, f"callback:{record_id}", plan)
    if len(event_id) > EVENT_ID_MAX or text_problem(event_id) is not None:
        raise AppError(
            f"webhook-id must be at most {EVENT_ID_MAX} characters of storable text",
            "VALIDATION_ERROR",
            422,
        )
    try:
        payload = json.loads(body or b"{}")
    except ValueError as exc:
        raise AppError("Callback body must be JSON", "VALIDATION_ERROR", 422) from exc
    if not isinstance(payload, dict):
        payload = {"value": payload}
    if (problem := nested_text_problem(payload)) is not None:
        raise AppError(f"Callback body {problem}", "VALIDATION_ERROR", 422)
    if await event_id_used_elsewhere(
        session, org_id=record.org_id, record_id=record_id, event_id=event_id
    ):
        raise AppError(
            "This webhook-id was already accepted for another record; each event needs its own",
            "EVENT_ID_REUSED",
            409,
        )
    # Supporting spinners start on any accepted event, late ones included; a redelivery retries
    # a start that failed (idempotent by workflow id). They start once the request commits.
    await start_callback_supporting(
        uow,
        engine=request.app.state.engine,
        temporal=temporal,
        settings=settings,
        record=record,
        event_id=event_id,
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


@router.get("/callbacks/secret")
async def callback_secret(
    principal: Annotated[Principal, Allow("vault.read")], store: SecretStoreDep
) -> CallbackSecretStatus:
    """Whether the organization has a record-callback secret, and since when; never the secret."""
    return await secret_status(store, principal.org_id)


@router.post("/callbacks/secret/rotate", status_code=201)
async def rotate_callback_secret(
    principal: Annotated[Principal, Allow("vault.write")],
    session: SessionDep,
    store: SecretStoreDep,
    settings: SettingsDep,
    body: Annotated[CallbackSecretRotate | None, Body()] = None,
) -> CallbackSecretCreated:
    """Create the organization's record-callback secret, or replace it. The answer is the only
    time the secret is shown; the previous one keeps verifying for CXGEAR_CALLBACK_SECRET_OVERLAP
    unless `immediate` is set."""
    immediate = body is not None and body.immediate
    overlap = timedelta(0) if immediate else settings.callback_secret_overlap
    created = await rotate_secret(store, principal.org_id, overlap)
    assert created.version is not None
    session.add(
        VaultAuditEntry(
            org_id=principal.org_id,
            user_id=principal.user.id,
            action=VaultAction.create if created.version == 1 else VaultAction.update,
            name=AUDIT_NAME,
            version=created.version,
        )
    )
    return created
