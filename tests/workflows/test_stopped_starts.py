"""A record stopped before its plan is loaded (cancelled while starting, or its start failing) still
ends with exactly one terminal status in PostgreSQL, and its journey is queued for archiving."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient
from sqlalchemy import text
from temporalio.client import Client

from infra.db import create_engine
from infra.settings import TASK_QUEUES, Settings
from tests.builders import start_job, wait_job
from tests.workflows.test_steps_and_triggers import callback_spinner
from tests.workflows.workers import running_workers
from workflows.contracts import RecordInput, RecordResult, TaskQueues
from workflows.record_workflow import RecordWorkflow


async def _parked_records(
    client: AsyncClient, worker: Client, settings: Settings, n: int
) -> tuple[str, str, list[int]]:
    """Records that exist (with their job) but no workflow runs for: (job, version, ids)."""
    admin, job_id = await start_job(client, callback_spinner(), n)
    await wait_job(client, admin, job_id, until=("waiting",))
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            version = (
                await conn.execute(
                    text("select spinner_version_id from job where id = :id"), {"id": job_id}
                )
            ).scalar_one()
            ids = [
                int(i)
                for (i,) in await conn.execute(
                    text("select id from record where job_id = :id order by id"), {"id": job_id}
                )
            ]
    finally:
        await engine.dispose()
    for wf_id in (f"job-{job_id}", *(f"rec-{i}" for i in ids)):
        await worker.get_workflow_handle(wf_id).terminate("parked for the test")
    return job_id, str(version), ids


async def _row(settings: Settings, record_id: int) -> Any:
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            return (
                await conn.execute(
                    text(
                        "select r.status, r.error, r.ended_at is not null as ended,"
                        " exists (select 1 from journey_pending p where p.record_id = r.id)"
                        " as queued from record r where r.id = :id"
                    ),
                    {"id": record_id},
                )
            ).one()
    finally:
        await engine.dispose()


class TestStoppedStarts:
    async def test_cancelled_before_its_first_task_and_a_failing_start_both_end(
        self, client: AsyncClient, worker: Client, settings: Settings
    ) -> None:
        job_id, version, (cancelled_id, failing_id) = await _parked_records(
            client, worker, settings, 2
        )
        # Queues no worker polls yet: the cancel request is in the record's first workflow task.
        prefix = f"s{uuid.uuid4().hex[:8]}"
        queues = TaskQueues(**{name: f"{prefix}-{name}" for name in TASK_QUEUES})
        cancelled = await worker.start_workflow(
            RecordWorkflow.run,
            RecordInput(cancelled_id, job_id, "", version, queues),
            id=f"rec-{cancelled_id}-{prefix}",
            task_queue=queues.main,
        )
        await cancelled.cancel()
        # A start that cannot load its plan (the version is gone) fails the record, not the run.
        failing = await worker.start_workflow(
            RecordWorkflow.run,
            RecordInput(failing_id, job_id, "", str(uuid.uuid4()), queues),
            id=f"rec-{failing_id}-{prefix}",
            task_queue=queues.main,
        )
        async with running_workers(settings.model_copy(update={"task_queue_prefix": prefix})):
            stopped: RecordResult = await cancelled.result()
            broken: RecordResult = await failing.result()
        assert stopped.status == "cancelled"
        assert broken.status == "failed" and "not found" in (broken.error or "")

        row = await _row(settings, cancelled_id)
        assert (row.status, row.ended, row.queued) == ("cancelled", True, True)
        row = await _row(settings, failing_id)
        assert (row.status, row.ended, row.queued) == ("failed", True, True)
        assert "not found" in row.error
