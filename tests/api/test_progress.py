"""Job progress is served from PostgreSQL: no Temporal query, one poll per job for every viewer."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text

from api.services.progress import STALE_INTERVALS
from cxgear.stack.ports import free_port
from infra.settings import Settings
from tests.builders import Account, make_spinner, project, signup
from tests.conftest import make_settings

TAG_ONLY = {"steps": [{"id": "done", "type": "tag", "disposition": "Done"}]}


@pytest.fixture(scope="module")
def settings(database_url: str, openbao_server: Any) -> Settings:
    # Nothing listens on this port: any Temporal call from these routes would fail.
    return make_settings(
        database_url=database_url,
        temporal_address=f"127.0.0.1:{free_port()}",
        vault_address=openbao_server.address,
        vault_token=openbao_server.token,
        archive_journeys=False,
    )


async def job_with_records(
    client: AsyncClient, app: FastAPI, *, status: str, records: dict[str, int]
) -> tuple[Account, str]:
    """A job (as the engine leaves it) whose records have the given statuses; (admin, job id)."""
    admin = await signup(client)
    p = await project(client, admin)
    spinner = await make_spinner(client, admin, project_id=p["id"], definition=TAG_ONLY)
    job_id = uuid.uuid4()
    total = sum(records.values())
    async with app.state.engine.begin() as conn:
        await conn.execute(
            text(
                "insert into job (id, org_id, project_id, spinner_id, spinner_version_id,"
                " spinner_version, status, trigger, metadata_fields, only_new, total, created_at,"
                " started_at, ended_at)"
                " select :id, v.org_id, :project, v.spinner_id, v.id, v.version, :status, 'manual',"
                " '[]', false, :total, now() - interval '20 s', now() - interval '20 s',"
                " case when :ended then now() - interval '10 s' end"
                " from spinner_version v where v.spinner_id = :spinner"
            ),
            {
                "id": job_id,
                "project": p["id"],
                "spinner": spinner["id"],
                "status": status,
                "total": total,
                "ended": status in ("completed", "partial", "failed", "cancelled"),
            },
        )
        for record_status, n in records.items():
            await conn.execute(
                text(
                    "insert into record (org_id, job_id, project_id, row_id, status, metadata,"
                    " outcomes, attempts, created_at)"
                    " select j.org_id, j.id, j.project_id, g, :status, '{}', '{}', 0, now()"
                    " from job j, generate_series(1, :n) g where j.id = :job"
                ),
                {"job": job_id, "status": record_status, "n": n},
            )
    return admin, str(job_id)


async def set_status(app: FastAPI, job_id: str, *, job: str, records: str, n: int) -> None:
    async with app.state.engine.begin() as conn:
        await conn.execute(
            text(
                "update record set status = :s where id in"
                " (select id from record where job_id = :j and status <> :s order by id limit :n)"
            ),
            {"s": records, "j": job_id, "n": n},
        )
        await conn.execute(
            text("update job set status = :s where id = :j"), {"s": job, "j": job_id}
        )


class TestProgressFromPostgres:
    async def test_finished_job_answers_while_temporal_is_unreachable(
        self, client: AsyncClient, app: FastAPI
    ) -> None:
        admin, job_id = await job_with_records(
            client, app, status="partial", records={"completed": 7, "failed": 2, "cancelled": 1}
        )
        r = await client.get(f"/api/v1/jobs/{job_id}/progress", headers=admin.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "partial" and body["phase"] == "ended"
        assert (body["total"], body["done"], body["pending"]) == (10, 10, 0)
        assert (body["completed"], body["failed"], body["cancelled"]) == (7, 2, 1)
        # Ten records over the job's ten seconds; nothing is left to estimate.
        assert body["ratePerS"] == pytest.approx(1.0, rel=0.05)
        assert body["etaS"] is None

    async def test_running_job_matches_its_records_and_follows_them(
        self, client: AsyncClient, app: FastAPI
    ) -> None:
        admin, job_id = await job_with_records(
            client,
            app,
            status="running",
            records={"pending": 3, "running": 2, "waiting": 1, "completed": 4},
        )
        url = f"/api/v1/jobs/{job_id}/progress"
        body = (await client.get(url, headers=admin.headers)).json()
        assert body["phase"] == "running" and body["paused"] is False
        assert (body["pending"], body["active"], body["waiting"]) == (3, 2, 1)
        assert (body["completed"], body["started"], body["total"]) == (4, 7, 10)
        assert body["ratePerS"] == pytest.approx(0.2, rel=0.1)  # 4 done in 20 s
        assert body["etaS"] == pytest.approx(30, rel=0.1)  # 6 left at that pace
        job = (await client.get(f"/api/v1/jobs/{job_id}", headers=admin.headers)).json()
        assert job["counts"]["completed"] == body["completed"]

        await set_status(app, job_id, job="paused", records="completed", n=3)
        # Past the stale bound, the answer waits for a fresh poll.
        await asyncio.sleep(STALE_INTERVALS * app.state.progress.interval)
        body = (await client.get(url, headers=admin.headers)).json()
        assert body["phase"] == "paused" and body["paused"] is True
        assert body["completed"] == 7 and body["done"] == 7

    async def test_another_organizations_job_is_not_found(
        self, client: AsyncClient, app: FastAPI
    ) -> None:
        _, job_id = await job_with_records(client, app, status="running", records={"running": 1})
        stranger = await signup(client)
        for path in ("progress", "progress/stream"):
            r = await client.get(f"/api/v1/jobs/{job_id}/{path}", headers=stranger.headers)
            assert r.status_code == 404
            assert r.json()["errorCode"] == "NOT_FOUND"


@pytest.fixture
async def live_url(app: FastAPI) -> AsyncIterator[str]:
    """The same app served by uvicorn on loopback, so SSE streams are real connections."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def read_events(
    base: str, account: Account, job_id: str, events: list[dict[str, Any]], *, until_ended: bool
) -> None:
    async with AsyncClient(base_url=base, timeout=30) as http:
        async with http.stream(
            "GET", f"/api/v1/jobs/{job_id}/progress/stream", headers=account.headers
        ) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if not until_ended and len(events) >= 3:
                        return


class TestSharedPoll:
    async def test_while_a_refresh_is_held_up_viewers_get_the_last_snapshot(
        self, client: AsyncClient, app: FastAPI
    ) -> None:
        admin, job_id = await job_with_records(
            client, app, status="running", records={"running": 2}
        )
        hub = app.state.progress
        hub.interval = 2.0
        url = f"/api/v1/jobs/{job_id}/progress"
        assert (await client.get(url, headers=admin.headers)).status_code == 200
        async with app.state.engine.connect() as blocker:
            # The count behind a refresh waits for this lock: a database too busy to answer.
            await blocker.execute(text("lock table record in access exclusive mode"))
            await asyncio.sleep(hub.interval)
            stale = await asyncio.wait_for(client.get(url, headers=admin.headers), 5)
            await asyncio.sleep(STALE_INTERVALS * hub.interval)
            # Past the stale bound, but the refresh is still on its way: no queueing behind it.
            held = await asyncio.wait_for(client.get(url, headers=admin.headers), 5)
            assert stale.status_code == held.status_code == 200
            assert held.json()["asOf"] == stale.json()["asOf"]
            await blocker.rollback()

    async def test_a_stale_snapshot_is_served_while_one_refresh_runs(
        self, client: AsyncClient, app: FastAPI
    ) -> None:
        # No viewer waits behind the count of a large job: within the stale bound the answer is
        # the last snapshot, and one refresh runs behind it for everybody.
        admin, job_id = await job_with_records(
            client, app, status="running", records={"running": 2}
        )
        hub = app.state.progress
        hub.interval = 3.0
        url = f"/api/v1/jobs/{job_id}/progress"
        first = (await client.get(url, headers=admin.headers)).json()
        assert first["completed"] == 0
        await set_status(app, job_id, job="running", records="completed", n=2)
        await asyncio.sleep(hub.interval)
        polls = hub.polls
        async with app.state.engine.connect() as blocker:
            # The refresh's count waits for this lock, so it cannot land between the answers:
            # each of them is the old snapshot because no viewer waited for the refresh.
            await blocker.execute(text("lock table record in access exclusive mode"))
            answers = await asyncio.wait_for(
                asyncio.gather(*(client.get(url, headers=admin.headers) for _ in range(5))), 10
            )
            assert [a.json()["completed"] for a in answers] == [0] * 5
            for _ in range(200):
                if hub.polls > polls:
                    break
                await asyncio.sleep(0.01)
            assert hub.polls == polls + 1
            await blocker.rollback()
        deadline = time.monotonic() + 5
        while (await client.get(url, headers=admin.headers)).json()["completed"] != 2:
            assert time.monotonic() < deadline, "the refresh never landed"
            await asyncio.sleep(0.05)
        assert hub.polls == polls + 1

    async def test_job_detail_counts_share_the_snapshot_and_an_ended_job_has_its_final_counts(
        self, client: AsyncClient, app: FastAPI
    ) -> None:
        admin, job_id = await job_with_records(
            client, app, status="running", records={"running": 3}
        )
        hub = app.state.progress
        hub.interval = 30.0
        url = f"/api/v1/jobs/{job_id}"
        first = (await client.get(url, headers=admin.headers)).json()
        assert first["counts"]["running"] == 3 and first["counts"]["total"] == 3
        polls = hub.polls
        await set_status(app, job_id, job="running", records="completed", n=1)
        answers = await asyncio.gather(*(client.get(url, headers=admin.headers) for _ in range(5)))
        # No count per request: while the status is unchanged, viewers share the last snapshot.
        assert [a.json()["counts"]["completed"] for a in answers] == [0] * 5
        assert hub.polls == polls
        await set_status(app, job_id, job="completed", records="completed", n=2)
        ended = (await client.get(url, headers=admin.headers)).json()
        # A job seen ended is never shown with the counts of its running days.
        assert ended["status"] == "completed"
        assert (ended["counts"]["completed"], ended["counts"]["running"]) == (3, 0)
        progress = (await client.get(f"{url}/progress", headers=admin.headers)).json()
        assert progress["phase"] == "ended" and progress["completed"] == 3
        hub.interval = 1.0

    async def test_concurrent_viewers_share_one_poll_per_interval(
        self, client: AsyncClient, app: FastAPI, live_url: str
    ) -> None:
        admin, job_id = await job_with_records(
            client, app, status="running", records={"running": 5, "completed": 5}
        )
        hub = app.state.progress
        hub.interval = 0.25
        viewers = 8
        streams: list[list[dict[str, Any]]] = [[] for _ in range(viewers)]
        polls_before, started = hub.polls, time.monotonic()
        tasks = [
            asyncio.create_task(read_events(live_url, admin, job_id, s, until_ended=True))
            for s in streams
        ]
        while min(len(s) for s in streams) < 4:
            await asyncio.sleep(0.05)
        await set_status(app, job_id, job="completed", records="completed", n=5)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        elapsed = time.monotonic() - started
        polls = hub.polls - polls_before
        # One poll per interval for all eight viewers (plus the first and the last one).
        assert polls <= elapsed / hub.interval + 2, (polls, elapsed)
        assert polls < viewers * 4
        for events in streams:
            assert events[-1]["phase"] == "ended"
            assert events[-1]["completed"] == 10 and events[-1]["active"] == 0
            assert all(e["jobId"] == job_id for e in events)

    async def test_poller_stops_when_the_last_viewer_leaves(
        self, client: AsyncClient, app: FastAPI, live_url: str
    ) -> None:
        admin, job_id = await job_with_records(
            client, app, status="running", records={"running": 2}
        )
        hub = app.state.progress
        hub.interval = 0.1
        first: list[dict[str, Any]] = []
        second: list[dict[str, Any]] = []
        await asyncio.gather(
            read_events(live_url, admin, job_id, first, until_ended=False),
            read_events(live_url, admin, job_id, second, until_ended=False),
        )
        assert len(first) == len(second) == 3
        await asyncio.sleep(0.5)  # the server notices both disconnects
        settled = hub.polls
        await asyncio.sleep(10 * hub.interval)
        assert hub.polls == settled
