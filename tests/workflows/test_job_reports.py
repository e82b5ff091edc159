"""Records report to their job by a signal their activities send without waiting; when reports
never arrive, the job finds its records' ends in PostgreSQL and still finishes with right counts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.engine_db import EngineDbActivities
from activities.plans import PlanCache
from infra.db import create_engine
from infra.settings import Settings
from tests.builders import (
    contacts_csv,
    make_spinner,
    make_table,
    project,
    run_now,
    signup,
    wait_job,
)
from tests.workflows.workers import running_workers
from workflows.contracts import RecordFinished, RecordPhase, SweepInput
from workflows.job_workflow import SWEEP_AFTER

SPINNER = {
    "steps": [
        {"id": "route", "type": "decision", "branches": [], "default": "done"},
        {"id": "done", "type": "tag", "disposition": "Done"},
    ]
}


@pytest.fixture(scope="module")
async def worker(settings: Settings) -> AsyncIterator[Client]:
    """A worker whose reports would only leave after an hour: the job never hears them."""
    async with running_workers(settings, report_linger_s=3600) as client:
        yield client


class TestLostReports:
    async def test_the_job_sweeps_its_records_and_finishes(
        self, client: AsyncClient, worker: Client, settings: Settings
    ) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        table = await make_table(client, admin, project_id=p["id"], csv_text=contacts_csv(5))
        spinner = await make_spinner(client, admin, project_id=p["id"], definition=SPINNER)
        began = time.monotonic()
        job_id = await run_now(client, admin, spinner, table)
        job = await wait_job(client, admin, job_id, timeout=90)
        assert job["status"] == "completed"
        assert job["counts"]["completed"] == 5 and job["counts"]["total"] == 5
        # Only a sweep could have told the job: no report left this worker.
        assert time.monotonic() - began >= SWEEP_AFTER.total_seconds()

        # What a sweep reports, record by record, against what the job believes.
        engine = create_engine(settings.database_url)
        try:
            ids = await _record_ids(engine, job_id)
            statuses = ["completed", "failed", "waiting", "running", "cancelled"]
            async with engine.begin() as conn:
                for rid, status in zip(ids, statuses, strict=True):
                    await conn.execute(
                        text("update record set status = :s where id = :id"),
                        {"s": status, "id": rid},
                    )
            plans = PlanCache(engine, public_api_url=settings.public_api_url)
            db = EngineDbActivities(engine, plans=plans)
            # The job believes the first three active and the last two waiting.
            found = await ActivityEnvironment().run(
                db.sweep_records, SweepInput(job_id, ids[:3], ids[3:])
            )
        finally:
            await engine.dispose()
        assert sorted(found.finished, key=lambda f: f.record_id) == [
            RecordFinished(ids[0], "completed"),
            RecordFinished(ids[1], "failed"),
            RecordFinished(ids[4], "cancelled"),
        ]
        assert sorted(found.phases, key=lambda x: x.record_id) == [
            RecordPhase(ids[2], "waiting"),
            RecordPhase(ids[3], "active"),
        ]


async def _record_ids(engine: Any, job_id: str) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("select id from record where job_id = :j order by id"), {"j": job_id}
        )
        return [int(r[0]) for r in rows]
