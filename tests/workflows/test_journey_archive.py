"""Closed records' journeys are materialised into PostgreSQL without anyone reading them, so they
outlive the workflow histories they were derived from."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.app import create_app
from cxgear.stack.ports import free_port
from infra.db import create_engine
from infra.settings import Settings
from tests.builders import start_job, wait_job
from tests.fakes.crm_api import FakeCrm
from tests.workflows.test_engine import four_steps


async def _scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def _drained(engine: AsyncEngine, job_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while await _scalar(
        engine,
        "select count(*) from journey_pending p join record r on r.id = p.record_id"
        " where r.job_id = :job",
        job=job_id,
    ):
        assert time.monotonic() < deadline, "journeys still queued"
        await asyncio.sleep(0.2)


@asynccontextmanager
async def api_without_temporal(settings: Settings) -> AsyncIterator[AsyncClient]:
    """The API pointed at a Temporal that is not there: only what PostgreSQL holds is served."""
    app = create_app(
        settings.model_copy(
            update={"temporal_address": f"127.0.0.1:{free_port()}", "archive_journeys": False}
        )
    )
    async with app.router.lifespan_context(app):
        async with AsyncClient(
            transport=ASGITransport(app=app), base_url="http://testserver"
        ) as client:
            yield client


class TestJourneyArchive:
    async def test_journeys_are_archived_at_close_and_outlive_history(
        self, client: AsyncClient, worker: Client, settings: Settings, crm: FakeCrm
    ) -> None:
        admin, job_id = await start_job(client, four_steps(crm), 12)
        assert (await wait_job(client, admin, job_id, timeout=90))["status"] == "completed"
        engine = create_engine(settings.database_url)
        try:
            await _drained(engine, job_id)
            # Nobody has read a journey: the API's background archiver stored all twelve.
            stored = await _scalar(
                engine,
                "select count(*) from journey_snapshot s join record r on r.id = s.record_id"
                " where r.job_id = :job and jsonb_array_length(s.journey -> 'steps') = 4",
                job=job_id,
            )
            assert stored == 12
        finally:
            await engine.dispose()

        records = (
            await client.get(f"/api/v1/jobs/{job_id}/records?limit=2", headers=admin.headers)
        ).json()["data"]
        rid, other = records[0]["id"], records[1]["id"]
        await _forget_journey(settings, other)
        # As after namespace retention: the record's history cannot be read.
        async with api_without_temporal(settings) as cut_off:
            journey = (
                await cut_off.get(f"/api/v1/records/{rid}/journey", headers=admin.headers)
            ).json()
            # Without its snapshot, a journey needs Temporal: a clear 503, not a crash.
            r = await cut_off.get(f"/api/v1/records/{other}/journey", headers=admin.headers)
            assert r.status_code == 503
            assert r.json()["errorCode"] == "TEMPORAL_UNAVAILABLE"
        assert journey["source"] == "snapshot"
        assert [s["label"] for s in journey["steps"]] == [
            "log · logged",
            "decision · branched",
            "tag · tagged",
            "api_call · api_called",
        ]
        assert journey["steps"][0]["messages"][0].startswith("Calling Contact")
        assert journey["output"]["disposition"] in ("Big", "Small")

        # Neither a snapshot nor a history (retention ran out before any archiving): a clear 404.
        await _forget_journey(settings, other, workflow_id=f"rec-{other}-expired")
        r = await client.get(f"/api/v1/records/{other}/journey", headers=admin.headers)
        assert r.status_code == 404
        assert r.json()["errorCode"] == "HISTORY_UNAVAILABLE"


async def _forget_journey(settings: Settings, record_id: int, *, workflow_id: str = "") -> None:
    """Drops the record's snapshot (and, given one, points it at a workflow that never ran)."""
    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("delete from journey_snapshot where record_id = :id"), {"id": record_id}
            )
            if workflow_id:
                await conn.execute(
                    text("update record set workflow_id = :wf where id = :id"),
                    {"wf": workflow_id, "id": record_id},
                )
    finally:
        await engine.dispose()
