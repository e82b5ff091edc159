"""Records one history per workflow shape of today's code for the replay tests.

Run `python -m tests.workflows.record_histories` after a deliberate workflow change (before the
first release; after it see README "Changing a workflow"): it starts the embedded stack, runs
small jobs through the API and writes the histories, payloads decrypted, to
`tests/workflows/histories/*.json`, replacing the files there:

- record_plain: a 4-step record (cheap steps batched, one HTTP call);
- record_waits: a wait step, then an SMS (sandbox channel) waiting for its reply;
- record_callback: a wait for a signed callback, whose event also starts a callback child;
- record_callback_child: that child, started by the API with signal-with-start;
- record_retry_parent / record_retry_child: a record that starts its retry child as a child
  workflow, and the child with its delay;
- job_continue_as_new: the first run of a job that continues as new;
- scheduled_run: a schedule firing that creates a job and starts its JobWorkflow.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from httpx import ASGITransport, AsyncClient
from temporalio.client import Client, ScheduleOverlapPolicy

from api.app import create_app
from cxgear.stack.scratch import scratch_stack
from infra.settings import Settings
from tests.builders import (
    Account,
    contacts_csv,
    make_spinner,
    make_table,
    project,
    run_now,
    signup,
    wait_job,
)
from tests.fakes.crm_api import running_crm
from tests.workflows.history_payloads import payloads_in
from tests.workflows.test_steps_and_triggers import callback_spinner, post_callback
from tests.workflows.workers import running_workers
from workflows.contracts import (
    QUERY_CURRENT_STEP,
    SCHEDULED_RUN_WORKFLOW,
    job_workflow_id,
    record_workflow_id,
    schedule_id,
)

OUT = Path(__file__).parent / "histories"


async def save(client: Client, workflow_id: str, name: str, run_id: str | None = None) -> None:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    codec = client.data_converter.payload_codec
    assert codec is not None
    for event in history.events:
        for payload in payloads_in(event):
            payload.CopyFrom((await codec.decode([payload]))[0])
    (OUT / f"{name}.json").write_text(history.to_json() + "\n")


async def record(settings: Settings) -> None:
    for old in OUT.glob("*.json"):
        old.unlink()
    async with running_workers(settings) as client:
        await run_jobs(client, settings)


async def run_jobs(client: Client, settings: Settings) -> None:
    # Two children per run: a 3-row job continues as new once.
    app = create_app(settings.model_copy(update={"job_children_per_run": 2}))
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://rec") as c:
            admin = await signup(c)
            p = await project(c, admin)
            table = await make_table(c, admin, project_id=p["id"], csv_text=contacts_csv(3))
            secret = (await c.get("/api/v1/callback-secret", headers=admin.headers)).json()
            crm = settings.http_allowed_hosts[0]

            plain = await make_spinner(c, admin, project_id=p["id"], definition=four_steps(crm))
            job = await run_now(c, admin, plain, table)
            await wait_job(c, admin, job)
            await save(
                client, record_workflow_id(await first_record(c, admin, job)), "record_plain"
            )
            await save(
                client, job_workflow_id(job), "job_continue_as_new", await first_run(client, job)
            )

            await record_waits(client, c, admin, p, table, secret["secret"])
            await record_supporting(client, c, admin, p, table, secret["secret"])
            await record_scheduled(client, c, admin, p, table)


async def record_waits(
    client: Client,
    c: AsyncClient,
    admin: Account,
    p: dict[str, Any],
    table: dict[str, Any],
    secret: str,
) -> None:
    twilio = await c.post(
        "/api/v1/integrations",
        json={
            "kind": "twilio",
            "name": "tw",
            "credentials": {"account_sid": "AC1", "auth_token": "t"},
        },
        headers=admin.headers,
    )
    sms = await c.post(
        "/api/v1/channels",
        json={
            "kind": "sms",
            "name": "sandbox sms",
            "integrationId": twilio.json()["id"],
            "sender": "+14155550100",
            "sandbox": True,
        },
        headers=admin.headers,
    )
    assert sms.status_code == 201, sms.text
    spinner = await make_spinner(
        c, admin, project_id=p["id"], definition=waits_spinner(sms.json()["id"])
    )
    job = await run_now(c, admin, spinner, table)
    rid = await first_record(c, admin, job)
    handle = client.get_workflow_handle(record_workflow_id(rid))
    deadline = time.monotonic() + 30
    while await handle.query(QUERY_CURRENT_STEP) != "ask":
        assert time.monotonic() < deadline, "the record never reached its SMS"
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)  # the send has gone out and the record waits for the reply
    ok = await post_callback(c, secret, rid, {"reply": "yes"}, event="reply-1")
    assert ok.status_code == 200, ok.text
    await handle.result()
    await save(client, record_workflow_id(rid), "record_waits")
    await c.post(f"/api/v1/jobs/{job}/cancel", headers=admin.headers)
    await wait_job(c, admin, job)


async def record_supporting(
    client: Client,
    c: AsyncClient,
    admin: Account,
    p: dict[str, Any],
    table: dict[str, Any],
    secret: str,
) -> None:
    child = await make_spinner(
        c,
        admin,
        project_id=p["id"],
        definition={
            "steps": [{"id": "t", "type": "tag", "disposition": "Child {{callback.answer}}"}]
        },
    )
    # A wait for a callback whose "escalate" event also starts a callback child.
    waits = await make_spinner(c, admin, project_id=p["id"], definition=callback_spinner())
    r = await c.post(
        f"/api/v1/spinners/{waits['id']}/links",
        json={"childSpinnerId": child["id"], "kind": "callback", "event": "escalate"},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    job = await run_now(c, admin, waits, table)
    await wait_job(c, admin, job, until=("waiting",))
    rid = await first_record(c, admin, job)
    ok = await post_callback(c, secret, rid, {"event": "escalate", "answer": "yes"}, event="e1")
    assert ok.status_code == 200, ok.text
    await client.get_workflow_handle(record_workflow_id(rid)).result()
    await client.get_workflow_handle(f"rec-{rid}-cb-e1").result()
    await save(client, record_workflow_id(rid), "record_callback")
    await save(client, f"rec-{rid}-cb-e1", "record_callback_child")
    await c.post(f"/api/v1/jobs/{job}/cancel", headers=admin.headers)
    await wait_job(c, admin, job)

    # A record that starts its retry child (after a delay) as a child workflow.
    parent = await make_spinner(
        c,
        admin,
        project_id=p["id"],
        definition={"steps": [{"id": "again", "type": "tag", "disposition": "Retry"}]},
    )
    r = await c.post(
        f"/api/v1/spinners/{parent['id']}/links",
        json={
            "childSpinnerId": child["id"],
            "kind": "retry",
            "condition": 'disposition == "Retry"',
            "delay": "1s",
            "maxAttempts": 1,
        },
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    job = await run_now(c, admin, parent, table)
    await wait_job(c, admin, job)
    rid = await first_record(c, admin, job)
    await client.get_workflow_handle(f"rec-{rid}-retry-1").result()
    await save(client, record_workflow_id(rid), "record_retry_parent")
    await save(client, f"rec-{rid}-retry-1", "record_retry_child")


async def record_scheduled(
    client: Client, c: AsyncClient, admin: Account, p: dict[str, Any], table: dict[str, Any]
) -> None:
    spinner = await make_spinner(
        c,
        admin,
        project_id=p["id"],
        definition={"steps": [{"id": "t", "type": "tag", "disposition": "ok"}]},
    )
    r = await c.post(
        f"/api/v1/spinners/{spinner['id']}/schedules",
        json={"tableId": table["id"], "cron": "0 2 * * *", "timezone": "UTC"},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    sched = r.json()
    await client.get_schedule_handle(schedule_id(sched["id"])).trigger(
        overlap=ScheduleOverlapPolicy.ALLOW_ALL
    )
    deadline = time.monotonic() + 30
    while True:
        runs = [
            w
            async for w in client.list_workflows(f'WorkflowType = "{SCHEDULED_RUN_WORKFLOW}"')
            if w.status is not None and w.status.name == "COMPLETED"
        ]
        if runs:
            break
        assert time.monotonic() < deadline, "the schedule never ran"
        await asyncio.sleep(0.5)
    await save(client, runs[0].id, "scheduled_run", runs[0].run_id)
    await c.delete(f"/api/v1/schedules/{sched['id']}", headers=admin.headers)


def four_steps(crm: str) -> dict[str, Any]:
    return {
        "steps": [
            {"id": "hello", "type": "log", "message": "Calling {{name}}", "next": "route"},
            {
                "id": "route",
                "type": "decision",
                "branches": [{"when": "amount >= 10", "label": "big", "next": "tag"}],
                "default": "tag",
            },
            {"id": "tag", "type": "tag", "disposition": "Done", "next": "call"},
            {"id": "call", "type": "api_call", "method": "GET", "url": f"http://{crm}/c/1"},
        ]
    }


def waits_spinner(channel_id: str) -> dict[str, Any]:
    return {
        "steps": [
            {"id": "pause", "type": "wait", "duration": "1s", "next": "ask"},
            {
                "id": "ask",
                "type": "sms",
                "channel_id": channel_id,
                "body": "Hi {{name}}, still interested?",
                "wait_for": "reply",
                "timeout": "1h",
                "on_replied": "yes",
                "on_no_reply": "no",
            },
            {"id": "yes", "type": "tag", "disposition": "Replied {{reply}}"},
            {"id": "no", "type": "tag", "disposition": "No reply"},
        ]
    }


async def first_record(c: AsyncClient, admin: Any, job_id: str) -> int:
    deadline = time.monotonic() + 30
    while True:
        r = await c.get(f"/api/v1/jobs/{job_id}/records?limit=1", headers=admin.headers)
        if r.json()["data"]:
            return int(r.json()["data"][0]["id"])
        assert time.monotonic() < deadline, "the job's records were never prepared"
        await asyncio.sleep(0.2)


async def first_run(client: Client, job_id: str) -> str:
    runs = [w async for w in client.list_workflows(f'WorkflowId = "{job_workflow_id(job_id)}"')]
    assert len(runs) >= 2, "the job did not continue as new"
    return min(runs, key=lambda w: w.start_time).run_id


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cxgear-histories-") as tmp, running_crm() as crm:
        stack_ctx = scratch_stack(
            Path(tmp), durable_temporal=False, http_allowed_hosts=[crm.allowed]
        )
        with stack_ctx as stack:
            asyncio.run(record(stack.settings))


if __name__ == "__main__":
    main()
