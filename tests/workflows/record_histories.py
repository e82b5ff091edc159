"""Records the histories the replay tests replay: every workflow, every branch the code can take.

Run `python -m tests.workflows.record_histories` after a deliberate workflow change (before the
first release; after it see README "Changing a workflow"): it starts the embedded stack and the
provider fakes, runs small jobs through the API (scenarios run concurrently, about a minute) and
writes the histories, payloads decrypted, to `tests/workflows/histories/*.json`, replacing the
files there. `tests/workflows/test_replay_mutations.py` then checks that a timer slipped into any
branch of the workflows breaks the replay of at least one of them.

Long waits run on a skipped clock (the server's per-execution time skipping) and short timeouts
stand in for long ones, so recording waits only for the job sweep (15 s, twice).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from httpx import ASGITransport, AsyncClient
from temporalio.api.common.v1 import TimeSkippingConfig, WorkflowExecution
from temporalio.api.workflow.v1 import WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import UpdateWorkflowExecutionOptionsRequest
from temporalio.client import Client, ScheduleOverlapPolicy
from temporalio.service import RPCError, RPCStatusCode

from api.app import create_app
from cxgear.stack.scratch import scratch_stack
from infra.settings import Settings
from tests.builders import (
    Account,
    callback_secret,
    contacts_csv,
    make_spinner,
    make_table,
    project,
    run_now,
    signup,
    wait_job,
)
from tests.fakes.crm_api import running_crm
from tests.fakes.openai_api import FakeOpenAI, running_openai
from tests.fakes.signed import FAKE_HOST
from tests.workflows.history_payloads import payloads_in
from tests.workflows.test_steps_and_triggers import callback_spinner, post_callback
from tests.workflows.workers import running_workers
from workflows.contracts import (
    QUERY_CURRENT_STEP,
    SCHEDULED_RUN_WORKFLOW,
    ScheduledRunInput,
    job_workflow_id,
    record_workflow_id,
    schedule_id,
    task_queues,
)

OUT = Path(__file__).parent / "histories"
DEADLINE_S = 60


# --- a loopback endpoint that answers only when told to (a call still in flight) -----------


@dataclass
class HeldCalls:
    """`GET /hold/{key}` answers once `release(key)` is called (or after two minutes)."""

    host: str = "127.0.0.1"
    port: int = 0
    arrived: dict[str, threading.Event] = field(default_factory=dict)
    released: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _events(self, key: str) -> tuple[threading.Event, threading.Event]:
        with self.lock:
            return (
                self.arrived.setdefault(key, threading.Event()),
                self.released.setdefault(key, threading.Event()),
            )

    @property
    def allowed(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, key: str) -> str:
        return f"http://{self.allowed}/hold/{key}"

    async def arrival(self, key: str) -> None:
        arrived, _ = self._events(key)
        assert await asyncio.to_thread(arrived.wait, DEADLINE_S), f"no call reached {key}"

    def release(self, key: str) -> None:
        self._events(key)[1].set()

    def release_all(self) -> None:
        with self.lock:
            for released in self.released.values():
                released.set()


@contextmanager
def held_calls() -> Iterator[HeldCalls]:
    held = HeldCalls()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            arrived, released = held._events(self.path.rsplit("/", 1)[-1])
            arrived.set()
            released.wait(120)
            data = b'{"held": true}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer((held.host, 0), Handler)
    server.daemon_threads = True
    held.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield held
    finally:
        held.release_all()
        server.shutdown()


# --- recording --------------------------------------------------------------------------------


async def save(client: Client, workflow_id: str, name: str, run_id: str | None = None) -> None:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    codec = client.data_converter.payload_codec
    assert codec is not None
    for event in history.events:
        for payload in payloads_in(event):
            payload.CopyFrom((await codec.decode([payload]))[0])
    (OUT / f"{name}.json").write_text(history.to_json() + "\n")


@dataclass
class Rec:
    """What every scenario shares: the Temporal client, the API clients, one organization."""

    temporal: Client
    settings: Settings
    api: AsyncClient
    narrow: AsyncClient  # the same API with a window of one record per job
    admin: Account
    project_id: str
    secret: str
    crm: str
    held: HeldCalls
    openai: FakeOpenAI

    async def table(self, csv_text: str) -> dict[str, Any]:
        return await make_table(
            self.api,
            self.admin,
            project_id=self.project_id,
            csv_text=csv_text,
            name=f"contacts {uuid.uuid4().hex[:6]}",
        )

    async def spinner(self, definition: dict[str, Any]) -> dict[str, Any]:
        return await make_spinner(
            self.api, self.admin, project_id=self.project_id, definition=definition
        )

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await self.api.post(f"/api/v1{path}", json=body, headers=self.admin.headers)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    async def callback_url(self, record_id: int) -> str:
        r = await self.api.get(f"/api/v1/records/{record_id}", headers=self.admin.headers)
        url: str = r.json()["callbackUrl"]
        return url

    async def callback(self, record_id: int, body: dict[str, Any]) -> None:
        ok = await post_callback(
            self.api,
            self.secret,
            await self.callback_url(record_id),
            body,
            event=f"ev-{uuid.uuid4().hex[:8]}",
        )
        assert ok.status_code == 200, ok.text

    async def wait_job(self, job_id: str, *until: str) -> dict[str, Any]:
        return await wait_job(self.api, self.admin, job_id, until=until, timeout=DEADLINE_S)

    async def records(self, job_id: str) -> list[dict[str, Any]]:
        """The job's records once prepared, in row order."""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            r = await self.api.get(
                f"/api/v1/jobs/{job_id}/records?limit=50", headers=self.admin.headers
            )
            if r.json()["data"]:
                return sorted(r.json()["data"], key=lambda rec: int(rec["id"]))
            assert time.monotonic() < deadline, "the job's records were never prepared"
            await asyncio.sleep(0.2)

    async def record(self, record_id: int) -> dict[str, Any]:
        r = await self.api.get(f"/api/v1/records/{record_id}", headers=self.admin.headers)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def reaches(self, record_id: int, step: str, status: str | None = None) -> None:
        """Until the record runs `step` (and, if given, has that status)."""
        handle = self.temporal.get_workflow_handle(record_workflow_id(record_id))
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                current = await handle.query(QUERY_CURRENT_STEP)
            except RPCError as exc:
                # The job has not started the record's workflow yet.
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                current = None
            if current == step and (
                status is None or (await self.record(record_id))["status"] == status
            ):
                return
            assert time.monotonic() < deadline, f"record {record_id} never reached {step} {status}"
            await asyncio.sleep(0.2)

    async def job_status(self, job_id: str, status: str) -> None:
        await self.wait_job(job_id, status)

    async def skip_time(self, workflow_id: str) -> None:
        """Timers of this execution fire as soon as nothing else is in flight."""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                await self.temporal.get_workflow_handle(workflow_id).describe()
                break
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        await self.temporal.workflow_service.update_workflow_execution_options(
            UpdateWorkflowExecutionOptionsRequest(
                namespace=self.temporal.namespace,
                workflow_execution=WorkflowExecution(workflow_id=workflow_id),
                workflow_execution_options=WorkflowExecutionOptions(
                    time_skipping_config=TimeSkippingConfig(enabled=True)
                ),
                update_mask=FieldMask(paths=["time_skipping_config"]),
            )
        )

    async def runs(self, workflow_id: str) -> list[str]:
        """Run ids of a workflow id, oldest first."""
        found = [w async for w in self.temporal.list_workflows(f'WorkflowId = "{workflow_id}"')]
        return [w.run_id for w in sorted(found, key=lambda w: w.start_time)]

    async def result(self, workflow_id: str) -> None:
        await asyncio.wait_for(self.temporal.get_workflow_handle(workflow_id).result(), DEADLINE_S)


Scenario = Callable[[Rec], Awaitable[None]]


async def plain_and_continue_as_new(r: Rec) -> None:
    """A 4-step record; its 3-row job continues as new once (two children per run)."""
    table = await r.table(contacts_csv(3))
    job = await run_now(r.api, r.admin, await r.spinner(four_steps(r.crm)), table)
    await r.wait_job(job)
    first = (await r.records(job))[0]["id"]
    await save(r.temporal, record_workflow_id(first), "record_plain")
    runs = await r.runs(job_workflow_id(job))
    assert len(runs) >= 2, "the job did not continue as new"
    await save(r.temporal, job_workflow_id(job), "job_continue_as_new", runs[0])
    await save(r.temporal, job_workflow_id(job), "job_continued_run", runs[-1])


async def reply_wait(r: Rec) -> None:
    """A wait step, then an SMS on a sandbox channel waiting for its reply, which comes."""
    channel = await sandbox_channel(r, "sms", "+14155550100")
    table = await r.table(contacts_csv(1))
    job = await run_now(r.api, r.admin, await r.spinner(waits_spinner(channel)), table)
    rid = (await r.records(job))[0]["id"]
    await r.reaches(rid, "ask", "waiting")
    await r.callback(rid, {"reply": "yes"})
    await r.wait_job(job)
    await save(r.temporal, record_workflow_id(rid), "record_waits")


async def send_outcomes(r: Rec) -> None:
    """One record through every outcome of a send: an email that does not wait, an SMS
    delivered, one failed, one replied after a delivery report, and one whose reply never comes."""
    sms = await sandbox_channel(r, "sms", "+14155550101")
    mail = await sandbox_channel(r, "email", "records@example.com")
    steps = [
        {
            "id": "mail",
            "type": "email",
            "channel_id": mail,
            "to": "lead@example.com",
            "subject": "Hello {{name}}",
            "body": "We wrote to you.",
            "next": "delivered",
        },
        send("delivered", sms, "delivery", on_delivered="failed"),
        send("failed", sms, "delivery", on_failed="replied"),
        send("replied", sms, "reply", on_replied="silent"),
        {**send("silent", sms, "reply", on_no_reply="done"), "timeout": "2s"},
        {"id": "done", "type": "tag", "disposition": "All outcomes"},
    ]
    table = await r.table(contacts_csv(1))
    job = await run_now(r.api, r.admin, await r.spinner({"steps": steps}), table)
    rid = (await r.records(job))[0]["id"]
    await r.reaches(rid, "delivered", "waiting")
    await r.callback(rid, {"status": "delivered"})
    await r.reaches(rid, "failed", "waiting")
    await r.callback(rid, {"status": "failed"})
    await r.reaches(rid, "replied", "waiting")
    await r.callback(rid, {"status": "delivered"})
    await r.callback(rid, {"reply": "yes please"})
    done = await r.wait_job(job)
    assert done["status"] == "completed", done
    record = await r.record(rid)
    assert record["disposition"] == "All outcomes", record
    await save(r.temporal, record_workflow_id(rid), "record_send_outcomes")


async def wait_kinds(r: Rec) -> None:
    """Waits until a metadata date (past: no wait; tomorrow), for a local-time window, and a
    cheap step that fails after them. The record's clock skips ahead."""
    now = datetime.now(UTC)
    opens = now + timedelta(hours=2)
    csv_text = (
        "name,phone,amount,tz,due,next_call\n"
        f"Contact 0,+14155550000,0,Europe/Paris,{(now - timedelta(days=1)).isoformat()},"
        f"{(now + timedelta(days=1)).isoformat()}\n"
    )
    steps = [
        {"id": "due", "type": "wait", "until_field": "due", "next": "window"},
        {
            "id": "window",
            "type": "wait",
            "window": {
                "start": opens.strftime("%H:%M"),
                "end": (opens + timedelta(hours=1)).strftime("%H:%M"),
                "timezone": "UTC",
            },
            "next": "tomorrow",
        },
        {"id": "tomorrow", "type": "wait", "until_field": "next_call", "next": "broken"},
        {"id": "broken", "type": "log", "message": "{{ name | round }}"},
    ]
    table = await r.table(csv_text)
    job = await run_now(r.api, r.admin, await r.spinner({"steps": steps}), table)
    rid = (await r.records(job))[0]["id"]
    await r.skip_time(record_workflow_id(rid))
    await r.wait_job(job)
    record = await r.record(rid)
    assert (record["status"], record["failedStep"]) == ("failed", "broken"), record
    await save(r.temporal, record_workflow_id(rid), "record_wait_kinds")


async def cheap_failure_first(r: Rec) -> None:
    """The record's leading cheap steps fail before anything else runs."""
    steps = [{"id": "broken", "type": "tag", "disposition": "{{ name | round }}"}]
    table = await r.table(contacts_csv(1))
    job = await run_now(r.api, r.admin, await r.spinner({"steps": steps}), table)
    await r.wait_job(job)
    rid = (await r.records(job))[0]["id"]
    assert (await r.record(rid))["status"] == "failed"
    await save(r.temporal, record_workflow_id(rid), "record_cheap_failure")


async def function_and_ai(r: Rec) -> None:
    """A function step, then an ai_agent whose first answer fits no label and is corrected."""
    llm = await r.post(
        "/integrations",
        {
            "kind": "openai",
            "name": "llm",
            "config": {"base_url": r.openai.base_url, "default_model": "gpt-4o-mini"},
            "credentials": r.openai.creds,
        },
    )
    steps = [
        {
            "id": "score",
            "type": "function",
            "code": "return {double: Number(payload.amount) * 2};",
            "next": "classify",
        },
        {
            "id": "classify",
            "type": "ai_agent",
            "integration_id": llm["id"],
            "role": "You sort leads.",
            "task": "Lead {{name}} scored {{double}}. Interested?",
            "mode": "classification",
            "labels": ["Interested", "Not interested"],
            "output": "intent",
            "timeout_s": 30,
            "next": "tag",
        },
        {"id": "tag", "type": "tag", "disposition": "AI {{intent}}"},
    ]
    r.openai.script("Maybe they would like a call some day", "Interested")
    table = await r.table(contacts_csv(1))
    job = await run_now(r.api, r.admin, await r.spinner({"steps": steps}), table)
    await r.wait_job(job)
    rid = (await r.records(job))[0]["id"]
    record = await r.record(rid)
    assert record["disposition"] == "AI Interested", record
    await save(r.temporal, record_workflow_id(rid), "record_function_ai")


async def callback_and_children(r: Rec) -> None:
    """A wait for a signed callback whose event starts a callback child; a record that starts
    its delayed retry child; and a callback wait that times out."""
    table = await r.table(contacts_csv(1))
    child = await r.spinner(
        {"steps": [{"id": "t", "type": "tag", "disposition": "Child {{callback.answer}}"}]}
    )
    waits = await r.spinner(callback_spinner())
    await r.post(
        f"/spinners/{waits['id']}/links",
        {"childSpinnerId": child["id"], "kind": "callback", "event": "escalate"},
    )
    job = await run_now(r.api, r.admin, waits, table)
    await r.wait_job(job, "waiting")
    rid = (await r.records(job))[0]["id"]
    ok = await post_callback(
        r.api,
        r.secret,
        await r.callback_url(rid),
        {"event": "escalate", "answer": "yes"},
        event="e1",
    )
    assert ok.status_code == 200, ok.text
    await r.result(record_workflow_id(rid))
    await r.result(f"rec-{rid}-cb-e1")
    await r.wait_job(job)
    await save(r.temporal, record_workflow_id(rid), "record_callback")
    await save(r.temporal, f"rec-{rid}-cb-e1", "record_callback_child")
    await save(r.temporal, job_workflow_id(job), "job_waiting_records")

    parent = await r.spinner({"steps": [{"id": "again", "type": "tag", "disposition": "Retry"}]})
    await r.post(
        f"/spinners/{parent['id']}/links",
        {
            "childSpinnerId": child["id"],
            "kind": "retry",
            "condition": 'disposition == "Retry"',
            "delay": "1s",
            "maxAttempts": 1,
        },
    )
    job = await run_now(r.api, r.admin, parent, table)
    await r.wait_job(job)
    rid = (await r.records(job))[0]["id"]
    await r.result(f"rec-{rid}-retry-1")
    await save(r.temporal, record_workflow_id(rid), "record_retry_parent")
    await save(r.temporal, f"rec-{rid}-retry-1", "record_retry_child")

    quiet = callback_spinner()
    quiet["steps"][0]["timeout"] = "1s"
    job = await run_now(r.api, r.admin, await r.spinner(quiet), table)
    await r.wait_job(job)
    rid = (await r.records(job))[0]["id"]
    assert (await r.record(rid))["disposition"] == "No reply"
    await save(r.temporal, record_workflow_id(rid), "record_callback_timeout")


async def failure_and_redrive(r: Rec) -> None:
    """A step that fails starts a retry child; the re-driven record finds that child started."""
    child = await r.spinner({"steps": [{"id": "t", "type": "tag", "disposition": "Retried"}]})
    failing = await r.spinner(
        {
            "steps": [
                {"id": "call", "type": "api_call", "method": "GET", "url": f"http://{r.crm}/fail"}
            ]
        }
    )
    await r.post(
        f"/spinners/{failing['id']}/links",
        {
            "childSpinnerId": child["id"],
            "kind": "retry",
            "condition": 'context.status == "failed"',
            "maxAttempts": 1,
        },
    )
    table = await r.table(contacts_csv(1))
    job = await run_now(r.api, r.admin, failing, table)
    assert (await r.wait_job(job))["status"] == "failed"
    rid = (await r.records(job))[0]["id"]
    await r.result(f"rec-{rid}-retry-1")
    await save(r.temporal, record_workflow_id(rid), "record_failed")
    await r.post(f"/jobs/{job}/redrive", {})
    deadline = time.monotonic() + DEADLINE_S
    while len(await r.runs(record_workflow_id(rid))) < 2:
        assert time.monotonic() < deadline, "the re-driven record never ran"
        await asyncio.sleep(0.2)
    await r.result(record_workflow_id(rid))
    assert (await r.wait_job(job))["status"] == "failed"
    await save(r.temporal, record_workflow_id(rid), "record_redriven")
    await save(r.temporal, job_workflow_id(job), "job_redriven")


async def cancel(r: Rec) -> None:
    """A job cancelled while one record waits for a callback and another is inside an HTTP call."""
    steps = [
        {
            "id": "route",
            "type": "decision",
            "branches": [{"when": "amount >= 10", "label": "call", "next": "call"}],
            "default": "hold",
        },
        {**held_call(r, "cancel"), "id": "call"},
        {**callback_spinner()["steps"][0], "id": "hold"},
        {"id": "yes", "type": "tag", "disposition": "Replied"},
        {"id": "no", "type": "tag", "disposition": "No reply"},
    ]
    table = await r.table(contacts_csv(2))
    job = await run_now(r.api, r.admin, await r.spinner({"steps": steps}), table)
    waiting, calling = (rec["id"] for rec in await r.records(job))
    await r.reaches(waiting, "hold", "waiting")
    await r.held.arrival("cancel")
    await r.post(f"/jobs/{job}/cancel", {})
    assert (await r.wait_job(job))["status"] == "cancelled"
    await r.result(record_workflow_id(waiting))
    await r.result(record_workflow_id(calling))
    assert (await r.record(calling))["status"] == "cancelled"
    await save(r.temporal, job_workflow_id(job), "job_cancelled")
    await save(r.temporal, record_workflow_id(waiting), "record_cancelled_waiting")
    await save(r.temporal, record_workflow_id(calling), "record_cancelled_in_call")


async def pause_sweep_resume(r: Rec) -> None:
    """A window of one: paused while its record is inside a call, the job sweeps that record;
    once it finished, it sweeps nothing; resumed, it runs the second record."""
    steps = [
        {
            "id": "route",
            "type": "decision",
            "branches": [{"when": "amount >= 10", "label": "quick", "next": "done"}],
            "default": "call",
        },
        {**held_call(r, "pause"), "id": "call", "next": "done"},
        {"id": "done", "type": "tag", "disposition": "Done"},
    ]
    table = await r.table(contacts_csv(2))
    spinner = await r.spinner({"steps": steps})
    job = await run_now(r.narrow, r.admin, spinner, table)
    await r.held.arrival("pause")
    await r.post(f"/jobs/{job}/pause", {})
    await r.job_status(job, "paused")
    # Quiet for longer than SWEEP_AFTER: the job sweeps its record still inside the call.
    await asyncio.sleep(17)
    r.held.release("pause")
    first = (await r.records(job))[0]["id"]
    await r.result(record_workflow_id(first))
    # And once more, with nothing in flight: that sweep has nothing to look at.
    await asyncio.sleep(17)
    await r.post(f"/jobs/{job}/resume", {})
    assert (await r.wait_job(job))["status"] == "completed"
    await save(r.temporal, job_workflow_id(job), "job_pause_sweep_resume")


async def scheduled(r: Rec) -> None:
    """A schedule firing that creates a job; and one that finds its schedule deleted."""
    spinner = await r.spinner({"steps": [{"id": "t", "type": "tag", "disposition": "ok"}]})
    table = await r.table(contacts_csv(1))
    sched = await r.post(
        f"/spinners/{spinner['id']}/schedules",
        {"tableId": table["id"], "cron": "0 2 * * *", "timezone": "UTC"},
    )
    await r.temporal.get_schedule_handle(schedule_id(sched["id"])).trigger(
        overlap=ScheduleOverlapPolicy.ALLOW_ALL
    )
    deadline = time.monotonic() + DEADLINE_S
    query = f'WorkflowType = "{SCHEDULED_RUN_WORKFLOW}" AND WorkflowId STARTS_WITH "{schedule_id(sched["id"])}"'
    while True:
        runs = [
            w
            async for w in r.temporal.list_workflows(query)
            if w.status is not None and w.status.name == "COMPLETED"
        ]
        if runs:
            break
        assert time.monotonic() < deadline, "the schedule never ran"
        await asyncio.sleep(0.5)
    await save(r.temporal, runs[0].id, "scheduled_run", runs[0].run_id)
    gone = await r.api.delete(f"/api/v1/schedules/{sched['id']}", headers=r.admin.headers)
    assert gone.status_code in (200, 204), gone.text
    # A firing that was already on its way when the schedule was deleted.
    late = await r.temporal.start_workflow(
        SCHEDULED_RUN_WORKFLOW,
        ScheduledRunInput(sched["id"], task_queues(r.settings.task_queue)),
        id=f"{schedule_id(sched['id'])}-late",
        task_queue=r.settings.task_queue("main"),
    )
    await late.result()
    await save(r.temporal, late.id, "scheduled_run_skipped")


SCENARIOS: list[Scenario] = [
    plain_and_continue_as_new,
    reply_wait,
    send_outcomes,
    wait_kinds,
    cheap_failure_first,
    function_and_ai,
    callback_and_children,
    failure_and_redrive,
    cancel,
    pause_sweep_resume,
    scheduled,
]


# --- definitions ------------------------------------------------------------------------------


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
                **send("ask", channel_id, "reply", on_replied="yes", on_no_reply="no"),
                "body": "Hi {{name}}, still interested?",
            },
            {"id": "yes", "type": "tag", "disposition": "Replied {{reply}}"},
            {"id": "no", "type": "tag", "disposition": "No reply"},
        ]
    }


def held_call(r: Rec, key: str) -> dict[str, Any]:
    return {"type": "api_call", "method": "GET", "url": r.held.url(key), "timeout_s": 120}


def send(step_id: str, channel_id: str, wait_for: str, **targets: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "sms",
        "channel_id": channel_id,
        "body": f"Message {step_id}",
        "wait_for": wait_for,
        "timeout": "1h",
        **targets,
    }


async def sandbox_channel(r: Rec, kind: str, sender: str) -> str:
    provider = "sendgrid" if kind == "email" else "twilio"
    credentials = (
        {"api_key": "SG.sandbox"} if kind == "email" else {"account_sid": "AC1", "auth_token": "t"}
    )
    integration = await r.post(
        "/integrations",
        {
            "kind": provider,
            "name": f"{provider} {uuid.uuid4().hex[:6]}",
            "credentials": credentials,
        },
    )
    channel = await r.post(
        "/channels",
        {
            "kind": kind,
            "name": f"sandbox {kind} {uuid.uuid4().hex[:6]}",
            "integrationId": integration["id"],
            "sender": sender,
            "sandbox": True,
        },
    )
    return str(channel["id"])


# --- entry point ------------------------------------------------------------------------------


async def record(settings: Settings, held: HeldCalls, openai: FakeOpenAI) -> None:
    for old in OUT.glob("*.json"):
        old.unlink()
    # Two children per run: a 3-row job continues as new once.
    app = create_app(settings.model_copy(update={"job_children_per_run": 2}))
    narrow_app = create_app(settings.model_copy(update={"job_window": 1}))
    async with (
        running_workers(settings) as temporal,
        app.router.lifespan_context(app),
        narrow_app.router.lifespan_context(narrow_app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://rec") as api,
        AsyncClient(transport=ASGITransport(app=narrow_app), base_url="http://rec") as narrow,
    ):
        admin = await signup(api)
        p = await project(api, admin)
        secret = await callback_secret(api, admin)
        rec = Rec(
            temporal,
            settings,
            api,
            narrow,
            admin,
            p["id"],
            secret,
            settings.http_allowed_hosts[0],
            held,
            openai,
        )
        outcomes = await asyncio.gather(
            *(scenario(rec) for scenario in SCENARIOS), return_exceptions=True
        )
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:
            raise BaseExceptionGroup("some scenarios failed to record", failed)
    written = sorted(OUT.glob("*.json"))
    size = sum(f.stat().st_size for f in written)
    # The recorder's one report: what it wrote (it runs as a script, not in the product).
    print(json.dumps({"histories": len(written), "bytes": size}))  # noqa: T201


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="cxgear-histories-") as tmp,
        running_crm() as crm,
        running_openai() as openai,
        held_calls() as held,
    ):
        stack_ctx = scratch_stack(
            Path(tmp),
            durable_temporal=False,
            http_allowed_hosts=[crm.allowed, held.allowed],
            provider_allowed_hosts=[FAKE_HOST],
        )
        with stack_ctx as stack:
            asyncio.run(record(stack.settings, held, openai))


if __name__ == "__main__":
    main()
