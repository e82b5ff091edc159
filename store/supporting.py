"""Supporting (child) spinners in PostgreSQL: the child record, in its own job, prepared before
its workflow is started (retry children by their parent RecordWorkflow, callback children by
the API with signal-with-start).

Preparing is idempotent: the child record's row is unique by workflow id (and by (root record,
link, attempt) for retries), and workflow ids are deterministic (`rec-{root}-retry-{n}`,
`rec-{record}-cb-{event}`), so a repeated trigger (an activity retry, a redelivered callback)
finds the first child instead of adding a second one. Workflow ids come from the caller
(`workflows.contracts`), which this layer does not import.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from models.spinner_language.expressions import ExpressionError, compile_expression
from models.spinner_link import delay_seconds
from store.jobs import ChildRecord, NewJob, NoPublishedVersion, create_job
from store.usage import PlanRefused

log = logging.getLogger("cxgear.supporting")

RetryId = Callable[[int, int], str]


@dataclass
class LinkRow:
    id: uuid.UUID
    child_spinner_id: uuid.UUID
    kind: str
    condition: str | None
    delay: str | None
    max_attempts: int
    event: str | None


@dataclass
class ParentRow:
    id: int
    org_id: uuid.UUID
    project_id: uuid.UUID
    job_id: uuid.UUID
    row_id: int | None
    status: str
    metadata: dict[str, Any]
    outcomes: dict[str, Any]
    workflow_id: str | None
    root_record_id: int | None
    link_id: uuid.UUID | None
    link_attempt: int | None
    spinner_id: uuid.UUID
    in_supporting_job: bool


@dataclass
class ChildStart:
    """A child record that exists in Postgres and whose workflow must be running."""

    record_id: int
    workflow_id: str
    job_id: str
    project_id: str
    spinner_version_id: str
    spinner_version: int
    delay_s: float
    existed: bool
    # Why it starts: "retry" (attempt set) or "callback" (event id set).
    kind: str
    parent_record_id: int
    link_id: str
    attempt: int | None = None
    event_id: str | None = None


_LINK_COLUMNS = "id, child_spinner_id, kind, condition, delay, max_attempts, event"


async def load_parent(conn: AsyncConnection, record_id: int) -> ParentRow | None:
    row = (
        await conn.execute(
            text(
                "select r.id, r.org_id, r.project_id, r.job_id, r.row_id, r.status, r.metadata,"
                " r.outcomes, r.workflow_id, r.root_record_id, r.link_id, r.link_attempt,"
                " j.spinner_id, j.parent_job_id is not null from record r"
                " join job j on j.id = r.job_id where r.id = :id"
            ),
            {"id": record_id},
        )
    ).first()
    if row is None:
        return None
    return ParentRow(
        int(row[0]),
        row[1],
        row[2],
        row[3],
        row[4],
        str(row[5]),
        dict(row[6] or {}),
        dict(row[7] or {}),
        row[8],
        row[9],
        row[10],
        row[11],
        row[12],
        bool(row[13]),
    )


async def links_of(conn: AsyncConnection, spinner_id: uuid.UUID, kind: str) -> list[LinkRow]:
    rows = await conn.execute(
        text(
            f"select {_LINK_COLUMNS} from spinner_link where parent_spinner_id = :s and kind = :k"
            # Event-specific callback links win over catch-all ones; then the oldest link.
            " order by (event is null), created_at, id"
        ),
        {"s": spinner_id, "k": kind},
    )
    return [LinkRow(*r) for r in rows]


async def link_by_id(conn: AsyncConnection, link_id: uuid.UUID) -> LinkRow | None:
    row = (
        await conn.execute(
            text(f"select {_LINK_COLUMNS} from spinner_link where id = :id"), {"id": link_id}
        )
    ).first()
    return LinkRow(*row) if row is not None else None


def condition_matches(link: LinkRow, parent: ParentRow, attempt: int) -> bool:
    if not link.condition:
        return False
    context = {"status": parent.status, "attempt": attempt, "recordId": str(parent.id)}
    try:
        return compile_expression(link.condition).evaluate(
            parent.metadata, parent.outcomes, context
        )
    except ExpressionError as exc:
        log.warning("link %s has an invalid condition: %s", link.id, exc)
        return False


async def ensure_child(
    conn: AsyncConnection,
    *,
    parent: ParentRow,
    link: LinkRow,
    workflow_id: str,
    root_record_id: int,
    attempt: int | None,
    metadata: dict[str, Any],
    kind: str,
    event_id: str | None = None,
) -> ChildStart:
    """The child record, in the link's supporting job under the parent's job (created, pinned
    to the child spinner's latest version, by its first record), charged to the plan.

    Raises NoPublishedVersion, and PlanRefused when the month's jobs or records are spent.
    """
    delay_s = delay_seconds(link.delay)
    new = NewJob(
        org_id=parent.org_id,
        project_id=parent.project_id,
        spinner_id=link.child_spinner_id,
        trigger=link.kind,
        parent_job_id=parent.job_id,
        link_id=link.id,
    )
    child = ChildRecord(
        workflow_id=workflow_id,
        parent_record_id=parent.id,
        root_record_id=root_record_id,
        row_id=parent.row_id,
        metadata=metadata,
        attempt=attempt,
        waiting=delay_s > 0,
    )
    job = await create_job(conn, new, child)
    if job.record_id is None:
        raise RuntimeError(f"supporting record {workflow_id} was not written")
    return ChildStart(
        job.record_id,
        workflow_id,
        str(job.id),
        str(job.project_id),
        str(job.spinner_version_id),
        job.spinner_version,
        delay_s,
        not job.record_created,
        kind,
        parent.id,
        str(link.id),
        attempt,
        event_id,
    )


async def prepare_retry_child(
    conn: AsyncConnection, parent: ParentRow, *, workflow_id_of: RetryId
) -> ChildStart | None:
    """The next retry child of a finished record, if one of its links asks for it.

    Raises PlanRefused when the plan does not allow it this month."""
    if parent.link_attempt is not None:
        # A retry child only continues its own chain (attempt n+1 of the same link), so
        # links between spinners can never ping-pong forever.
        chained = await link_by_id(conn, parent.link_id) if parent.link_id else None
        if chained is None or parent.root_record_id is None:
            return None
        link, attempt, root = chained, parent.link_attempt + 1, parent.root_record_id
        if attempt > link.max_attempts or not condition_matches(link, parent, attempt - 1):
            return None
        # Attempt n+1 joins the job of attempt n (store.jobs finds it from the parent's job).
    else:
        matching = [
            candidate
            for candidate in await links_of(conn, parent.spinner_id, "retry")
            if candidate.max_attempts >= 1 and condition_matches(candidate, parent, 0)
        ]
        if not matching:
            return None
        # One chain per record (its ids are rec-{root}-retry-{n}): the oldest matching link.
        link, attempt, root = matching[0], 1, parent.id
    try:
        return await ensure_child(
            conn,
            parent=parent,
            link=link,
            workflow_id=workflow_id_of(root, attempt),
            root_record_id=root,
            attempt=attempt,
            metadata=parent.metadata,
            kind="retry",
        )
    except NoPublishedVersion:
        log.warning("link %s: child spinner has no published version", link.id)
        return None


async def prepare_callback_child(
    engine: AsyncEngine, record_id: int, event_id: str, payload: dict[str, Any], workflow_id: str
) -> ChildStart | None:
    """The child of an accepted callback for a record whose spinner has a matching callback
    link (None when no link matches)."""
    async with engine.begin() as conn:
        parent = await load_parent(conn, record_id)
        if parent is None:
            return None
        event = payload.get("event")
        links = [
            link
            for link in await links_of(conn, parent.spinner_id, "callback")
            if link.event is None or link.event == event
        ]
        if not links:
            return None
        link = links[0]  # one child per event: its id is rec-{record}-cb-{event}
        try:
            return await ensure_child(
                conn,
                parent=parent,
                link=link,
                workflow_id=workflow_id,
                root_record_id=record_id,
                attempt=None,
                # The child sees the callback that started it as `callback.*`.
                metadata={**parent.metadata, "callback": payload},
                kind="callback",
                event_id=event_id,
            )
        except NoPublishedVersion:
            log.warning("link %s: child spinner has no published version", link.id)
            return None
        except PlanRefused as exc:
            log.warning("record %s: callback child not started: %s", record_id, exc)
            return None
