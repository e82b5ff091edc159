"""Records JobWorkflow/RecordWorkflow histories of today's code for the replay tests.

Run `python -m tests.workflows.record_histories SUFFIX` after a deliberate workflow change: it
starts the embedded stack, runs a small job through the API (a 4-step spinner and a
wait-for-callback spinner answered by a signed callback), and writes the histories, payloads
decrypted, to `tests/workflows/histories/*_SUFFIX.json`. Keep the older files: they guard the
`workflow.patched()` branches of the histories already running in deployments.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from httpx import ASGITransport, AsyncClient
from temporalio.client import Client

from api.app import create_app
from api.services.callbacks import sign
from cxgear.stack.scratch import scratch_stack
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
from tests.fakes.crm_api import running_crm
from tests.workflows.history_payloads import payloads_in
from tests.workflows.test_steps_and_triggers import callback_spinner
from tests.workflows.workers import running_workers
from workflows.contracts import job_workflow_id, record_workflow_id

OUT = Path(__file__).parent / "histories"


async def save(client: Client, workflow_id: str, name: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    codec = client.data_converter.payload_codec
    assert codec is not None
    for event in history.events:
        for payload in payloads_in(event):
            payload.CopyFrom((await codec.decode([payload]))[0])
    (OUT / f"{name}.json").write_text(history.to_json() + "\n")


async def record(settings: Settings, suffix: str) -> None:
    async with running_workers(settings) as client:
        await run_jobs(client, settings, suffix)


async def run_jobs(client: Client, settings: Settings, suffix: str) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://rec") as c:
            admin = await signup(c)
            p = await project(c, admin)
            table = await make_table(c, admin, project_id=p["id"], csv_text=contacts_csv(3))
            crm = settings.http_allowed_hosts[0]
            plain = await make_spinner(c, admin, project_id=p["id"], definition=four_steps(crm))
            job = await run_now(c, admin, plain, table)
            await wait_job(c, admin, job)
            first = await first_record(c, admin, job)
            await save(client, job_workflow_id(job), f"job_workflow_{suffix}")
            await save(client, record_workflow_id(first), f"record_workflow_{suffix}")
            waits = await make_spinner(c, admin, project_id=p["id"], definition=callback_spinner())
            job = await run_now(c, admin, waits, table)
            await wait_job(c, admin, job, until=("waiting",))
            rid = await first_record(c, admin, job)
            secret = (await c.get("/api/v1/callback-secret", headers=admin.headers)).json()
            raw, ts = b'{"answer": "yes"}', int(time.time())
            await c.post(
                f"/api/v1/public/callbacks/{rid}",
                content=raw,
                headers={
                    "content-type": "application/json",
                    "x-cxgear-timestamp": str(ts),
                    "x-cxgear-signature": sign(secret["secret"], rid, ts, raw),
                    "x-cxgear-event-id": "e1",
                },
            )
            await wait_job(c, admin, job, until=("completed", "waiting"), timeout=5)
            await asyncio.sleep(2)
            await save(client, record_workflow_id(rid), f"record_workflow_callback_{suffix}")
            await c.post(f"/api/v1/jobs/{job}/cancel", headers=admin.headers)
            await wait_job(c, admin, job)


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


async def first_record(c: AsyncClient, admin: Any, job_id: str) -> int:
    r = await c.get(f"/api/v1/jobs/{job_id}/records?limit=1", headers=admin.headers)
    return int(r.json()["data"][0]["id"])


def main(suffix: str) -> None:
    with tempfile.TemporaryDirectory(prefix="cxgear-histories-") as tmp, running_crm() as crm:
        stack_ctx = scratch_stack(
            Path(tmp), durable_temporal=False, http_allowed_hosts=[crm.allowed]
        )
        with stack_ctx as stack:
            asyncio.run(record(stack.settings, suffix))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "v2")
