"""Every job source is charged to the organization's monthly `jobs` and `records_spun` meters,
and PLAN_LIMIT stops the next job once the plan's month is spent: Run now, the public trigger,
a schedule and a supporting (retry) child."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, ScheduleHandle, ScheduleOverlapPolicy

from infra.db import create_engine
from infra.settings import Settings
from models.plan import PLAN_LIMITS, Meter, Plan
from store.usage import current_month, monthly_usage
from tests.builders import Account, api_key, make_spinner, run_now, wait_job
from tests.workflows.test_steps_and_triggers import records_of, setup
from tests.workflows.test_supporting_spinners import journey, link, record, wait_record
from workflows.contracts import ScheduledRunResult, schedule_id

TAG = {"steps": [{"id": "t", "type": "tag", "disposition": "ok"}]}
RETRY = {"steps": [{"id": "again", "type": "tag", "disposition": "Retry"}]}
JOBS = PLAN_LIMITS[Plan.trial][Meter.jobs]
RECORDS = PLAN_LIMITS[Plan.trial][Meter.records_spun]


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.database_url, pool_size=2)
    yield engine
    await engine.dispose()


async def meters(db: AsyncEngine, admin: Account) -> tuple[int, int]:
    """(jobs, records spun) this month."""
    async with db.connect() as conn:
        used = await monthly_usage(conn, uuid.UUID(admin.org_id))
    return used.get(Meter.jobs, 0), used.get(Meter.records_spun, 0)


async def spent(db: AsyncEngine, admin: Account, meter: Meter, used: int) -> None:
    """The organization has already used this much of the month (the plan allows hundreds of
    jobs: running them all would only slow the test)."""
    async with db.begin() as conn:
        await conn.execute(
            text(
                "insert into usage_counter (org_id, meter, month, used) values (:o, :m, :mo, :u)"
                " on conflict (org_id, meter, month) do update set used = excluded.used"
            ),
            {"o": admin.org_id, "m": meter.value, "mo": current_month(), "u": used},
        )


async def jobs_of(client: AsyncClient, admin: Account, project_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/projects/{project_id}/jobs", headers=admin.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def refused(r: Any, allowance: str) -> None:
    assert r.status_code == 403, r.text
    assert r.json() == {
        "message": f"Your trial plan allows {allowance} per month",
        "errorCode": "PLAN_LIMIT",
    }


class TestRunNow:
    async def test_run_now_charges_jobs_and_records_and_stops_at_the_limit(
        self, client: AsyncClient, worker: Client, db: AsyncEngine
    ) -> None:
        admin, p, table = await setup(client, 3)
        spinner = await make_spinner(client, admin, project_id=p["id"], definition=TAG)
        assert await meters(db, admin) == (0, 0)
        await wait_job(client, admin, await run_now(client, admin, spinner, table))
        assert await meters(db, admin) == (1, 3)

        await spent(db, admin, Meter.jobs, JOBS - 1)
        last = await run_now(client, admin, spinner, table)  # the month's last job
        assert await meters(db, admin) == (JOBS, 6)
        over = await client.post(
            f"/api/v1/spinners/{spinner['id']}/run",
            json={"tableId": table["id"]},
            headers=admin.headers,
        )
        refused(over, f"{JOBS} jobs")
        assert await meters(db, admin) == (JOBS, 6)
        assert [j["id"] for j in await jobs_of(client, admin, p["id"])][0] == last
        assert len(await jobs_of(client, admin, p["id"])) == 2

        await spent(db, admin, Meter.jobs, 0)
        await spent(db, admin, Meter.records_spun, RECORDS - 2)  # 2 left, 3 rows to run
        over = await client.post(
            f"/api/v1/spinners/{spinner['id']}/run",
            json={"tableId": table["id"]},
            headers=admin.headers,
        )
        refused(over, f"{RECORDS} records spun")
        # Nothing of the refused job stays: neither its job charge nor a job row.
        assert await meters(db, admin) == (0, RECORDS - 2)
        assert len(await jobs_of(client, admin, p["id"])) == 2


class TestPublicTrigger:
    async def test_the_trigger_charges_the_records_it_runs_and_stops_at_the_limit(
        self, client: AsyncClient, worker: Client, db: AsyncEngine
    ) -> None:
        admin, p, table = await setup(client, 5)
        spinner = await make_spinner(client, admin, project_id=p["id"], definition=TAG)
        headers = {"Authorization": f"Bearer {await api_key(client, admin, scopes=['trigger'])}"}
        rows = [r["rowId"] for r in (await records_of_table(client, admin, table["id"]))[:2]]

        async def trigger() -> Any:
            return await client.post(
                f"/api/v1/public/trigger/{spinner['id']}",
                json={"dataTableId": table["id"], "rowIds": rows},
                headers=headers,
            )

        r = await trigger()
        assert r.status_code == 201, r.text
        assert r.json()["counts"]["total"] == 2
        assert await meters(db, admin) == (1, 2)
        await wait_job(client, admin, r.json()["id"])

        await spent(db, admin, Meter.records_spun, RECORDS - 2)
        assert (await trigger()).status_code == 201  # exactly the month's last two records
        assert await meters(db, admin) == (2, RECORDS)
        refused(await trigger(), f"{RECORDS} records spun")
        assert await meters(db, admin) == (2, RECORDS)
        assert len(await jobs_of(client, admin, p["id"])) == 2

        await spent(db, admin, Meter.records_spun, 0)
        await spent(db, admin, Meter.jobs, JOBS)
        refused(await trigger(), f"{JOBS} jobs")
        assert await meters(db, admin) == (JOBS, 0)


async def records_of_table(
    client: AsyncClient, admin: Account, table_id: str
) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/data-tables/{table_id}/rows", headers=admin.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def fire_schedule(worker: Client, handle: ScheduleHandle, firings: int) -> ScheduledRunResult:
    """Triggers the schedule and returns the result of its `firings`-th run."""
    await handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    deadline = time.monotonic() + 30
    while len(actions := (await handle.describe()).info.recent_actions) < firings:
        assert time.monotonic() < deadline, "the schedule did not fire"
        await asyncio.sleep(0.2)
    run = worker.get_workflow_handle(actions[-1].action.workflow_id, result_type=ScheduledRunResult)
    return await run.result()


class TestSchedule:
    async def test_a_firing_is_charged_and_past_the_limit_creates_no_job_and_says_why(
        self, client: AsyncClient, worker: Client, db: AsyncEngine
    ) -> None:
        admin, p, table = await setup(client, 4)
        spinner = await make_spinner(client, admin, project_id=p["id"], definition=TAG)
        r = await client.post(
            f"/api/v1/spinners/{spinner['id']}/schedules",
            json={"tableId": table["id"], "cron": "0 2 * * *", "timezone": "UTC"},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        handle = worker.get_schedule_handle(schedule_id(r.json()["id"]))

        async def fire(firings: int) -> ScheduledRunResult:
            return await fire_schedule(worker, handle, firings)

        first = await fire(1)
        assert first.job_id is not None and first.reason is None
        await wait_job(client, admin, first.job_id)
        assert await meters(db, admin) == (1, 4)

        await spent(db, admin, Meter.jobs, JOBS)
        await asyncio.sleep(1.1)  # firings are named by the second
        skipped = await fire(2)
        assert skipped.job_id is None
        assert (
            skipped.reason == f"skipped: plan limit: Your trial plan allows {JOBS} jobs per month"
        )
        assert await meters(db, admin) == (JOBS, 4)
        assert [j["id"] for j in await jobs_of(client, admin, p["id"])] == [first.job_id]

        await spent(db, admin, Meter.jobs, 0)
        await spent(db, admin, Meter.records_spun, RECORDS - 3)
        await asyncio.sleep(1.1)
        skipped = await fire(3)
        assert skipped.job_id is None
        assert skipped.reason is not None and f"{RECORDS} records spun" in skipped.reason
        # The refused firing's job charge was rolled back with it.
        assert await meters(db, admin) == (0, RECORDS - 3)
        assert len(await jobs_of(client, admin, p["id"])) == 1
        await handle.delete()

    async def test_a_firing_that_finds_no_new_rows_creates_no_job_and_charges_nothing(
        self, client: AsyncClient, worker: Client, db: AsyncEngine
    ) -> None:
        admin, p, table = await setup(client, 3)
        spinner = await make_spinner(client, admin, project_id=p["id"], definition=TAG)
        r = await client.post(
            f"/api/v1/spinners/{spinner['id']}/schedules",
            json={
                "tableId": table["id"],
                "cron": "0 2 * * *",
                "timezone": "UTC",
                "onlyNew": True,
            },
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        handle = worker.get_schedule_handle(schedule_id(r.json()["id"]))
        first = await fire_schedule(worker, handle, 1)
        assert first.job_id is not None
        await wait_job(client, admin, first.job_id)
        assert await meters(db, admin) == (1, 3)
        await asyncio.sleep(1.1)  # firings are named by the second
        empty = await fire_schedule(worker, handle, 2)
        assert empty.job_id is None and empty.reason == "no rows to run"
        assert await meters(db, admin) == (1, 3)
        assert [j["id"] for j in await jobs_of(client, admin, p["id"])] == [first.job_id]
        await handle.delete()


class TestSupportingJob:
    async def test_a_retry_child_is_charged_and_past_the_limit_is_not_started(
        self, client: AsyncClient, worker: Client, db: AsyncEngine
    ) -> None:
        admin, p, table = await setup(client, 1)
        parent = await make_spinner(client, admin, project_id=p["id"], definition=RETRY)
        child = await make_spinner(client, admin, project_id=p["id"], definition=TAG)
        r = await link(
            client, admin, parent, child, kind="retry", condition='disposition == "Retry"'
        )
        assert r.status_code == 201, r.text

        async def parent_record() -> dict[str, Any]:
            job = await wait_job(client, admin, await run_now(client, admin, parent, table))
            (rec,) = await records_of(client, admin, job["id"])
            return rec

        first = await parent_record()
        done = await wait_record(
            client,
            admin,
            first["id"],
            lambda rec: [c["status"] for c in rec["children"]] == ["completed"],
        )
        # The parent's job and record, then the supporting job and its child record.
        assert await meters(db, admin) == (2, 2)
        support = await wait_job(client, admin, done["children"][0]["jobId"])
        assert support["status"] == "completed" and support["trigger"] == "retry"

        # The parent's run takes the month's last job: its retry child's job is refused.
        await spent(db, admin, Meter.jobs, JOBS - 1)
        second = await parent_record()
        steps = await supporting_steps(client, admin, second["id"])
        assert steps == [
            {
                "label": "supporting · plan_limit",
                "messages": [f"retry not started: Your trial plan allows {JOBS} jobs per month"],
            }
        ]
        assert (await record(client, admin, second["id"]))["children"] == []
        assert await meters(db, admin) == (JOBS, 3)
        assert len(await jobs_of(client, admin, p["id"])) == 3  # 2 parents, 1 supporting job

        # Records run out too: the child joins no job and no record is charged.
        await spent(db, admin, Meter.jobs, 0)
        await spent(db, admin, Meter.records_spun, RECORDS - 1)
        third = await parent_record()
        steps = await supporting_steps(client, admin, third["id"])
        assert steps[0]["label"] == "supporting · plan_limit"
        assert f"{RECORDS} records spun" in steps[0]["messages"][0]
        assert (await record(client, admin, third["id"]))["children"] == []
        assert await meters(db, admin) == (1, RECORDS)


async def supporting_steps(
    client: AsyncClient, admin: Account, record_id: int
) -> list[dict[str, Any]]:
    """The parent's journey steps of starting its supporting spinners, once it has them."""
    deadline = time.monotonic() + 30
    while True:
        steps = [
            {"label": s["label"], "messages": s["messages"]}
            for s in (await journey(client, admin, record_id))["steps"]
            if s["type"] == "supporting"
        ]
        if steps:
            return steps
        assert time.monotonic() < deadline, "the parent never tried its retry link"
        await asyncio.sleep(0.3)
