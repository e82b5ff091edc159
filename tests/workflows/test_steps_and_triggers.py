"""Function and callback steps, the public trigger, schedules, pause/cancel and continue-as-new."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from httpx import AsyncClient
from temporalio.api.common.v1 import TimeSkippingConfig, WorkflowExecution
from temporalio.api.workflow.v1 import WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import UpdateWorkflowExecutionOptionsRequest
from temporalio.client import Client, ScheduleOverlapPolicy

from tests.builders import (
    Account,
    api_key,
    callback_secret,
    contacts_csv,
    make_spinner,
    make_table,
    post_signed,
    project,
    run_now,
    signed_callback,
    signup,
    wait_job,
)
from workflows.contracts import ScheduledRunResult, record_workflow_id


async def setup(client: AsyncClient, rows: int) -> tuple[Account, dict[str, Any], dict[str, Any]]:
    admin = await signup(client)
    p = await project(client, admin)
    table = await make_table(client, admin, project_id=p["id"], csv_text=contacts_csv(rows))
    return admin, p, table


async def records_of(
    client: AsyncClient, admin: Account, job_id: str, **filters: str
) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    r = await client.get(f"/api/v1/jobs/{job_id}/records?limit=500&{query}", headers=admin.headers)
    return list(r.json()["data"])


class TestFunctionStep:
    async def test_outputs_merge_and_console_lines_reach_the_journey(
        self, client: AsyncClient, worker: Client
    ) -> None:
        admin, p, table = await setup(client, 3)
        definition = {
            "steps": [
                {
                    "id": "score",
                    "type": "function",
                    "code": "console.log('scoring', payload.name); return {double: Number(payload.amount) * 2};",
                    "next": "tag",
                },
                {"id": "tag", "type": "tag", "disposition": "Scored {{double}}"},
            ]
        }
        spinner = await make_spinner(client, admin, project_id=p["id"], definition=definition)
        job = await wait_job(client, admin, await run_now(client, admin, spinner, table))
        assert job["status"] == "completed"
        recs = await records_of(client, admin, job["id"])
        assert sorted(r["outcomes"]["double"] for r in recs) == [0, 20, 40]
        assert {r["disposition"] for r in recs} == {"Scored 0", "Scored 20", "Scored 40"}
        journey = (
            await client.get(f"/api/v1/records/{recs[1]['id']}/journey", headers=admin.headers)
        ).json()
        assert journey["steps"][0]["label"] == "function · function_ran"
        assert journey["steps"][0]["messages"] == ["scoring Contact 1"]

    async def test_infinite_loop_fails_the_record_not_the_worker(
        self, client: AsyncClient, worker: Client
    ) -> None:
        admin, p, table = await setup(client, 2)
        definition = {
            "steps": [
                {"id": "spin", "type": "function", "code": "while (true) {}", "timeout_ms": 200}
            ]
        }
        spinner = await make_spinner(client, admin, project_id=p["id"], definition=definition)
        job = await wait_job(client, admin, await run_now(client, admin, spinner, table))
        assert job["status"] == "failed"
        recs = await records_of(client, admin, job["id"])
        assert all("200 ms" in (r["error"] or "") for r in recs), recs


def callback_spinner() -> dict[str, Any]:
    return {
        "steps": [
            {
                "id": "hold",
                "type": "wait_for_callback",
                "timeout": "1h",
                "on_callback": "yes",
                "on_timeout": "no",
            },
            {"id": "yes", "type": "tag", "disposition": "Replied {{callback.answer}}"},
            {"id": "no", "type": "tag", "disposition": "No reply"},
        ]
    }


async def post_callback(
    client: AsyncClient,
    secret: str,
    callback_url: str,
    body: dict[str, Any],
    *,
    event: str,
    tamper: bool = False,
) -> Any:
    signed = signed_callback(secret, callback_url, body, msg_id=event)
    if tamper:
        signed.headers["webhook-signature"] = signed.headers["webhook-signature"][:-4] + "AAA="
    return await post_signed(client, signed)


class TestWaitForCallback:
    async def test_signed_callback_resumes_once_and_bad_signatures_change_nothing(
        self, client: AsyncClient, worker: Client
    ) -> None:
        admin, p, table = await setup(client, 2)
        spinner = await make_spinner(
            client, admin, project_id=p["id"], definition=callback_spinner()
        )
        job_id = await run_now(client, admin, spinner, table)
        job = await wait_job(client, admin, job_id, until=("waiting",))
        assert job["counts"]["waiting"] == 2
        secret = await callback_secret(client, admin)
        rec = (await records_of(client, admin, job_id))[0]
        bad = await post_callback(
            client, secret, rec["callbackUrl"], {"answer": "yes"}, event="e1", tamper=True
        )
        assert bad.status_code == 403
        assert bad.json()["errorCode"] == "BAD_SIGNATURE"
        for _ in range(3):
            ok = await post_callback(
                client, secret, rec["callbackUrl"], {"answer": "yes"}, event="e1"
            )
            assert ok.status_code == 200
        other = (await records_of(client, admin, job_id))[1]
        await post_callback(client, secret, other["callbackUrl"], {"answer": "later"}, event="e2")
        job = await wait_job(client, admin, job_id)
        assert job["status"] == "completed"
        done = {r["id"]: r for r in await records_of(client, admin, job_id)}
        assert done[rec["id"]]["disposition"] == "Replied yes"
        journey = (
            await client.get(f"/api/v1/records/{rec['id']}/journey", headers=admin.headers)
        ).json()
        assert [s["label"] for s in journey["steps"]].count("callback · received") == 1
        waited = next(s for s in journey["steps"] if s["stepId"] == "hold")
        assert waited["label"] == "wait_for_callback · callback_received"
        assert waited["detail"]["next"] == "yes"
        late = await post_callback(
            client, secret, rec["callbackUrl"], {"answer": "again"}, event="e3"
        )
        assert late.status_code == 200
        assert late.json()["late"] is True


class TestPublicTrigger:
    async def test_trigger_key_runs_named_rows_and_appended_records(
        self, client: AsyncClient, worker: Client
    ) -> None:
        admin, p, table = await setup(client, 5)
        spinner = await make_spinner(
            client,
            admin,
            project_id=p["id"],
            definition={"steps": [{"id": "t", "type": "tag", "disposition": "Hi {{name}}"}]},
        )
        key = await api_key(client, admin, scopes=["trigger"])
        headers = {"Authorization": f"Bearer {key}"}
        r = await client.post(
            f"/api/v1/public/trigger/{spinner['id']}",
            json={
                "dataTableId": table["id"],
                "records": [{"name": "Zed", "phone": "+14155550000", "amount": "5", "tz": "UTC"}],
            },
            headers=headers,
        )
        assert r.status_code == 201, r.text
        job = await wait_job(client, admin, r.json()["id"])
        assert job["trigger"] == "api"
        assert [x["disposition"] for x in await records_of(client, admin, job["id"])] == ["Hi Zed"]
        ingest_only = await api_key(client, admin, scopes=["ingest"])
        r = await client.post(
            f"/api/v1/public/trigger/{spinner['id']}",
            json={"dataTableId": table["id"]},
            headers={"Authorization": f"Bearer {ingest_only}"},
        )
        assert r.status_code == 403
        r = await client.post(
            f"/api/v1/public/trigger/{spinner['id']}",
            json={"dataTableId": table["id"]},
            headers=admin.headers,
        )
        assert r.status_code == 401
        assert r.json()["errorCode"] == "API_KEY_REQUIRED"


class TestJobControl:
    async def test_pause_resume_and_cancel(self, client: AsyncClient, worker: Client) -> None:
        admin, p, table = await setup(client, 6)
        spinner = await make_spinner(
            client, admin, project_id=p["id"], definition=callback_spinner()
        )
        job_id = await run_now(client, admin, spinner, table)
        await wait_job(client, admin, job_id, until=("waiting",))
        r = await client.post(f"/api/v1/jobs/{job_id}/pause", headers=admin.headers)
        assert r.status_code == 200
        await wait_job(client, admin, job_id, until=("paused",))
        await client.post(f"/api/v1/jobs/{job_id}/resume", headers=admin.headers)
        await wait_job(client, admin, job_id, until=("waiting", "running"))
        r = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=admin.headers)
        assert r.status_code == 200
        job = await wait_job(client, admin, job_id)
        assert job["status"] == "cancelled"
        assert job["counts"]["cancelled"] == 6
        again = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=admin.headers)
        assert again.status_code == 409


class TestContinueAsNew:
    async def test_small_child_limit_continues_as_new_and_finishes(
        self, client: AsyncClient, worker: Client, settings: Any
    ) -> None:
        from workflows.contracts import job_workflow_id

        admin, p, table = await setup(client, 23)
        spinner = await make_spinner(
            client,
            admin,
            project_id=p["id"],
            definition={"steps": [{"id": "t", "type": "tag", "disposition": "ok"}]},
        )
        original = settings.job_children_per_run
        settings.job_children_per_run = 5
        try:
            job_id = await run_now(client, admin, spinner, table)
        finally:
            settings.job_children_per_run = original
        job = await wait_job(client, admin, job_id)
        assert job["counts"]["completed"] == 23
        runs = [e async for e in worker.list_workflows(f"WorkflowId = '{job_workflow_id(job_id)}'")]
        # 23 records at most 5 children per run: at least 5 runs, all but the last continued.
        assert len(runs) >= 5
        continued = [
            r for r in runs if r.status is not None and r.status.name == "CONTINUED_AS_NEW"
        ]
        assert len(continued) >= 4


class TestSchedules:
    async def test_schedule_fires_and_only_new_rows_run(
        self, client: AsyncClient, worker: Client
    ) -> None:
        admin, p, table = await setup(client, 4)
        spinner = await make_spinner(
            client,
            admin,
            project_id=p["id"],
            definition={"steps": [{"id": "t", "type": "tag", "disposition": "ok"}]},
        )
        r = await client.post(
            f"/api/v1/spinners/{spinner['id']}/schedules",
            json={
                "tableId": table["id"],
                "cron": "0 2 * * *",
                "timezone": "Europe/Paris",
                "onlyNew": True,
            },
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        sched = r.json()
        assert len(sched["nextRuns"]) >= 1
        from workflows.contracts import schedule_id

        handle = worker.get_schedule_handle(schedule_id(sched["id"]))
        await handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
        jobs: list[dict[str, Any]] = []
        for _ in range(100):
            jobs = (
                await client.get(f"/api/v1/projects/{p['id']}/jobs", headers=admin.headers)
            ).json()["data"]
            if jobs and jobs[0]["status"] == "completed":
                break
            await asyncio.sleep(0.2)
        assert jobs[0]["trigger"] == "schedule"
        assert jobs[0]["counts"]["completed"] == 4
        # Temporal names each firing's workflow `{id}-{time to the second}`: a second trigger in
        # the same second would share the first's id and be dropped. Cron firings are minutes
        # apart; only manual triggers can collide, so wait for the next second of the server's
        # record of the first firing rather than a fixed time.
        (first,) = (await handle.describe()).info.recent_actions
        fired = first.scheduled_at.replace(microsecond=0)
        while datetime.now(UTC).replace(microsecond=0) <= fired:
            await asyncio.sleep(0.05)
        await handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
        # Every row was already processed by this spinner: the firing runs and creates no job.
        deadline = time.monotonic() + 30
        while len(actions := (await handle.describe()).info.recent_actions) < 2:
            assert time.monotonic() < deadline, "the schedule did not fire again"
            await asyncio.sleep(0.2)
        second = worker.get_workflow_handle(
            actions[-1].action.workflow_id, result_type=ScheduledRunResult
        )
        result = await second.result()
        assert result.job_id is None and result.reason == "no rows to run"
        jobs = (await client.get(f"/api/v1/projects/{p['id']}/jobs", headers=admin.headers)).json()[
            "data"
        ]
        assert len(jobs) == 1
        r = await client.post(f"/api/v1/schedules/{sched['id']}/pause", headers=admin.headers)
        assert r.json()["paused"] is True
        assert (
            await client.delete(f"/api/v1/schedules/{sched['id']}", headers=admin.headers)
        ).status_code == 204


async def start_day_long_waits(client: AsyncClient, settings: Any) -> tuple[Account, Any, str]:
    """8 records in a window of two; the first five (amounts 0..40) wait a day."""
    admin, p, table = await setup(client, 8)
    definition = {
        "steps": [
            {
                "id": "route",
                "type": "decision",
                "branches": [{"when": "amount < 50", "label": "later", "next": "pause"}],
                "default": "done",
            },
            {"id": "pause", "type": "wait", "duration": "1d", "next": "done"},
            {"id": "done", "type": "tag", "disposition": "Done"},
        ]
    }
    spinner = await make_spinner(client, admin, project_id=p["id"], definition=definition)
    original = settings.job_window
    settings.job_window = 2
    try:
        return admin, table, await run_now(client, admin, spinner, table)
    finally:
        settings.job_window = original


class TestWaitingLeavesTheWindow:
    async def test_day_long_waits_do_not_block_other_records(
        self, client: AsyncClient, worker: Client, settings: Any
    ) -> None:
        admin, table, job_id = await start_day_long_waits(client, settings)
        # The first five records (amounts 0..40) wait a day; with a window of two, the last three
        # can only finish if waiting records leave the window.
        job = await wait_job(client, admin, job_id, until=("waiting",))
        assert job["counts"]["waiting"] == 5
        assert job["counts"]["completed"] == 3
        progress = (
            await client.get(f"/api/v1/jobs/{job_id}/progress", headers=admin.headers)
        ).json()
        assert progress["waiting"] == 5 and progress["active"] == 0
        waiting = await records_of(client, admin, job_id, status="waiting")
        journey = (
            await client.get(f"/api/v1/records/{waiting[0]['id']}/journey", headers=admin.headers)
        ).json()
        assert journey["steps"][-1]["label"] == "wait · waited"
        assert journey["steps"][-1]["detail"]["delayS"] == 86400
        busy = await client.delete(f"/api/v1/data-tables/{table['id']}", headers=admin.headers)
        assert busy.status_code == 409
        assert busy.json()["errorCode"] == "TABLE_IN_USE"
        await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=admin.headers)
        job = await wait_job(client, admin, job_id)
        assert job["status"] == "cancelled"
        assert job["counts"]["cancelled"] == 5 and job["counts"]["completed"] == 3

    async def test_the_day_passes_on_a_time_skipping_clock(
        self, client: AsyncClient, worker: Client, settings: Any
    ) -> None:
        """The embedded server skips time for executions that opt in: a 1-day wait ends at once."""
        admin, table, job_id = await start_day_long_waits(client, settings)
        # On the real clock the five day-long waits leave the window and the other three finish.
        job = await wait_job(client, admin, job_id, until=("waiting",))
        assert (job["counts"]["waiting"], job["counts"]["completed"]) == (5, 3)
        waiting = await records_of(client, admin, job_id, status="waiting")
        # Then the waiting records' clocks skip ahead: nothing else is in flight, so the
        # server jumps to their timers.
        for record in waiting:
            await worker.workflow_service.update_workflow_execution_options(
                UpdateWorkflowExecutionOptionsRequest(
                    namespace=worker.namespace,
                    workflow_execution=WorkflowExecution(
                        workflow_id=record_workflow_id(record["id"])
                    ),
                    workflow_execution_options=WorkflowExecutionOptions(
                        time_skipping_config=TimeSkippingConfig(enabled=True)
                    ),
                    update_mask=FieldMask(paths=["time_skipping_config"]),
                )
            )
        job = await wait_job(client, admin, job_id, timeout=60)
        assert job["status"] == "completed"
        assert job["counts"]["completed"] == 8 and job["counts"]["waiting"] == 0
        journey = (
            await client.get(f"/api/v1/records/{waiting[0]['id']}/journey", headers=admin.headers)
        ).json()
        labels = [s["label"] for s in journey["steps"]]
        assert labels == ["decision · branched", "wait · waited", "timer · fired", "tag · tagged"]
        assert journey["steps"][1]["detail"]["delayS"] == 86400
        # The record's own clock moved a whole day; the wall clock did not.
        timer = journey["steps"][2]
        assert timer["stepId"] == "pause" and timer["durationMs"] >= 86_400_000
