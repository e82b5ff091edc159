"""One archive round at a time: a record whose workflow is still open waits for it to close, a
history that stays missing is given up with a warning, and nothing is stored for either."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.services.journey_archive import NOT_FOUND_TRIES, ArchiveRound, archive_due
from infra.db import create_engine
from infra.settings import Settings
from tests.builders import start_job, wait_job
from tests.workflows.test_steps_and_triggers import callback_spinner


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    # The rounds are driven by the test alone.
    return settings.model_copy(update={"archive_journeys": False})


class TestArchiveRounds:
    async def test_open_and_missing_histories_wait_then_a_lost_one_is_dropped(
        self, client: AsyncClient, worker: Client, settings: Settings
    ) -> None:
        admin, job_id = await start_job(client, callback_spinner(), 2)
        await wait_job(client, admin, job_id, until=("waiting",))
        engine = create_engine(settings.database_url)

        async def temporal() -> Client:
            return worker

        open_id, lost_id = await _ids(
            engine, "select id from record where job_id = :job order by id", job_id
        )
        try:
            # Queued as if closed: one whose workflow is still waiting, one with no history.
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "insert into journey_pending (record_id, org_id, workflow_id, due_at)"
                        " select id, org_id, :wf, now() from record where id = :id"
                    ),
                    [
                        {"id": open_id, "wf": f"rec-{open_id}"},
                        {"id": lost_id, "wf": f"rec-{lost_id}-never-started"},
                    ],
                )
            seen = []
            for _ in range(NOT_FOUND_TRIES):
                seen.append(await _only(engine, temporal, [open_id, lost_id]))
            assert [(s.archived, s.deferred, s.dropped) for s in seen] == [(0, 2, 0)] * (
                NOT_FOUND_TRIES - 1
            ) + [(0, 1, 1)]
            left = await _ids(
                engine,
                "select record_id from journey_pending p join record r on r.id = p.record_id"
                " where r.job_id = :job",
                job_id,
            )
            assert left == [open_id]
            stored = await _ids(
                engine,
                "select record_id from journey_snapshot s join record r on r.id = s.record_id"
                " where r.job_id = :job",
                job_id,
            )
            assert stored == []
        finally:
            async with engine.begin() as conn:
                await conn.execute(
                    text("delete from journey_pending where record_id = :id"), {"id": open_id}
                )
            await engine.dispose()
            # Not left waiting on the shared server, where the next module's records reuse ids.
            for wf_id in (f"job-{job_id}", f"rec-{open_id}", f"rec-{lost_id}"):
                await worker.get_workflow_handle(wf_id).terminate("test over")


async def _ids(engine: AsyncEngine, sql: str, job_id: str) -> list[int]:
    async with engine.connect() as conn:
        return [int(row[0]) for row in await conn.execute(text(sql), {"job": job_id})]


async def _only(engine: AsyncEngine, temporal: Any, ids: list[int]) -> ArchiveRound:
    """One archive round over these rows, whatever their backoff says."""
    async with engine.begin() as conn:
        await conn.execute(
            text("update journey_pending set due_at = now() where record_id = any(:ids)"),
            {"ids": ids},
        )
    return await archive_due(engine, temporal)
