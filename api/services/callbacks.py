"""Record callbacks: starting the callback-linked supporting spinner of an accepted event.

The signature scheme is in infra.callback_signing, the per-organization secret in
api.services.callback_secret.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from temporalio.client import Client as TemporalClient
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import UnitOfWork
from infra.settings import Settings
from models.record import Record
from store.supporting import ChildStart, prepare_callback_child
from workflows.contracts import (
    RECORD_WORKFLOW,
    SIGNAL_STARTED_BY,
    RecordInput,
    SupportingStart,
    callback_workflow_id,
    record_search_attributes,
    task_queues,
)


async def event_id_used_elsewhere(
    session: AsyncSession, *, org_id: uuid.UUID, record_id: int, event_id: str
) -> bool:
    """Whether this organization already accepted `event_id` for another record.

    A `webhook-id` names one event of the sender; the signature does not cover the URL, so this is
    what recognises a signed request replayed at another record's callback URL.
    """
    found = await session.execute(
        text(
            "select exists (select 1 from callback_event where org_id = :org and event_id = :ev"
            " and record_id <> :rec)"
        ),
        {"org": org_id, "ev": event_id, "rec": record_id},
    )
    return bool(found.scalar_one())


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
    record_id = record.id

    async def start() -> None:
        child = await prepare_callback_child(
            engine, record_id, event_id, payload, callback_workflow_id(record_id, event_id)
        )
        if child is not None:
            await start_callback_child(temporal, settings, child)

    uow.after_commit(start)


async def start_callback_child(
    temporal: TemporalClient, settings: Settings, child: ChildStart
) -> bool:
    """Signal-with-start the child's RecordWorkflow; False when it already exists.

    The start signal puts "started by" in the child's history. A child that exists already is
    left alone, so a redelivered event adds no second signal to it.
    """
    if child.existed and await _exists(temporal, child.workflow_id):
        return False
    started_by = SupportingStart(
        "callback", child.parent_record_id, child.link_id, event_id=child.event_id
    )
    try:
        await temporal.start_workflow(
            RECORD_WORKFLOW,
            RecordInput(
                child.record_id,
                child.job_id,
                "",
                child.spinner_version_id,
                task_queues(settings.task_queue),
                delay_s=child.delay_s,
            ),
            id=child.workflow_id,
            task_queue=settings.task_queue("main"),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            start_signal=SIGNAL_STARTED_BY,
            start_signal_args=[started_by],
            search_attributes=record_search_attributes(
                child.job_id,
                child.project_id,
                child.spinner_version,
                status="waiting" if child.delay_s > 0 else "running",
            ),
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


async def _exists(temporal: TemporalClient, workflow_id: str) -> bool:
    try:
        await temporal.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True
