"""Supporting (child) spinners of a finished record: the activity prepares the next retry child's
record in PostgreSQL and says what to start; the RecordWorkflow starts it as a child workflow."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from store.jobs import roll_up_job
from store.supporting import load_parent, prepare_retry_child
from store.usage import PlanRefused
from workflows.contracts import (
    PrepareSupportingInput,
    SupportingChild,
    SupportingChildren,
    SupportingStart,
    retry_workflow_id,
)

log = logging.getLogger("cxgear.supporting")


class SupportingActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @activity.defn
    async def prepare_supporting(self, inp: PrepareSupportingInput) -> SupportingChildren:
        """Called by a finished record whose spinner has retry links, or that is a child itself.

        Safe to repeat: a second call finds the child record the first one added.
        """
        async with self.engine.begin() as conn:
            parent = await load_parent(conn, inp.record_id)
            if parent is None:
                raise ApplicationError(f"record {inp.record_id} not found", non_retryable=True)
            limited: PlanRefused | None = None
            try:
                child = await prepare_retry_child(conn, parent, workflow_id_of=retry_workflow_id)
            except PlanRefused as exc:
                # Retrying would not help before next month: the parent's journey says why.
                log.warning("record %s: retry child not started: %s", parent.id, exc)
                child, limited = None, exc
            if parent.in_supporting_job:
                await roll_up_job(conn, parent.job_id, ended=False)
        if limited is not None:
            return SupportingChildren(
                "supporting",
                "supporting",
                outcome="plan_limit",
                messages=[f"retry not started: {limited}"],
            )
        if child is None:
            return SupportingChildren("supporting", "supporting", outcome="none")
        return SupportingChildren(
            "supporting",
            "supporting",
            outcome="started",
            outputs={"children": [child.workflow_id]},
            label="retry",
            messages=[f"{child.workflow_id}: {'found' if child.existed else 'prepared'}"],
            children=[
                SupportingChild(
                    child.record_id,
                    child.workflow_id,
                    child.job_id,
                    child.project_id,
                    child.spinner_version_id,
                    child.spinner_version,
                    child.delay_s,
                    SupportingStart("retry", parent.id, child.link_id, attempt=child.attempt),
                )
            ],
        )
