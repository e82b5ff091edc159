"""A step whose integration points at a non-allow-listed loopback port fails clearly, calling nothing.

The worker runs with the module's settings, which allow-list only the provider fakes' host name;
the integrations here name 127.0.0.1 instead, with a listener on the port that counts connections.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from httpx import AsyncClient
from temporalio.client import Client

from tests.builders import (
    Account,
    contacts_csv,
    make_spinner,
    make_table,
    project,
    signup,
    wait_job,
)
from tests.fakes.listener import listening


async def integration(
    client: AsyncClient, admin: Account, kind: str, config: dict[str, Any], creds: dict[str, str]
) -> str:
    r = await client.post(
        "/api/v1/integrations",
        json={
            "kind": kind,
            "name": f"{kind} {uuid.uuid4().hex[:6]}",
            "config": config,
            "credentials": creds,
        },
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def run_one(
    client: AsyncClient, admin: Account, step: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    p = await project(client, admin)
    table = await make_table(client, admin, project_id=p["id"], csv_text=contacts_csv(1))
    definition = {
        "steps": [
            {**step, "id": "call", "next": "done"},
            {"id": "done", "type": "log", "message": "sent"},
        ]
    }
    spinner = await make_spinner(client, admin, project_id=p["id"], definition=definition)
    r = await client.post(
        f"/api/v1/spinners/{spinner['id']}/run",
        json={"tableId": table["id"]},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    job = await wait_job(client, admin, r.json()["id"])
    records = await client.get(f"/api/v1/jobs/{job['id']}/records", headers=admin.headers)
    [record] = records.json()["data"]
    return job, record


def ledger_rows(database_url: str, org_id: str) -> int:
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        row = conn.execute(
            "select count(*) from send_ledger where org_id = %s", (org_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def assert_refused(record: dict[str, Any], key: str) -> None:
    assert record["status"] == "failed", record
    assert record["failedStep"] == "call"
    error = record["error"] or ""
    assert f"{key}: refusing to connect to 127.0.0.1" in error
    assert "loopback" in error and "CXGEAR_PROVIDER_ALLOWED_HOSTS" in error


class TestProviderBaseUrlGuard:
    async def test_ai_agent_step_is_refused_without_a_call(
        self, client: AsyncClient, worker: Client
    ) -> None:
        admin = await signup(client)
        with listening() as listener:
            llm = await integration(
                client,
                admin,
                "openai",
                {"base_url": f"http://127.0.0.1:{listener.port}/v1"},
                {"api_key": "sk-never-sent"},
            )
            job, record = await run_one(
                client,
                admin,
                {"type": "ai_agent", "integration_id": llm, "role": "r", "task": "t"},
            )
            assert listener.connections() == 0
        assert job["status"] == "failed"
        assert_refused(record, "base_url")

    async def test_sms_step_is_refused_before_its_ledger_row(
        self, client: AsyncClient, worker: Client, database_url: str
    ) -> None:
        admin = await signup(client)
        with listening() as listener:
            twilio = await integration(
                client,
                admin,
                "twilio",
                {"api_base_url": f"http://127.0.0.1:{listener.port}"},
                {"account_sid": "AC" + "1" * 32, "auth_token": "never-sent"},
            )
            channel = await client.post(
                "/api/v1/channels",
                json={
                    "kind": "sms",
                    "name": f"sms {uuid.uuid4().hex[:6]}",
                    "integrationId": twilio,
                    "sender": "+14155550100",
                },
                headers=admin.headers,
            )
            assert channel.status_code == 201, channel.text
            _, record = await run_one(
                client,
                admin,
                {"type": "sms", "channel_id": channel.json()["id"], "body": "hello"},
            )
            assert listener.connections() == 0
        assert_refused(record, "api_base_url")
        assert ledger_rows(database_url, admin.org_id) == 0
