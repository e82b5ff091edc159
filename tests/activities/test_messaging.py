"""send_message / send_email through the engine: exactly one provider send per record and step.

Runs spinners through the API on the in-process worker; the providers are the loopback fakes.
The helpers here are shared by tests/api/test_webhooks.py and tests/workflows/test_messaging_flow.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from httpx import AsyncClient
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.email import EmailActivities
from activities.messaging import MessagingActivities
from activities.plans import PlanCache, StepRun
from infra.db import create_engine
from infra.providers import ProviderGuard
from infra.settings import Settings
from infra.vault import SecretStore
from tests.builders import Account, make_spinner, make_table, project, signup, wait_job
from tests.conftest import make_settings
from tests.fakes.crm_api import FakeCrm
from tests.fakes.sendgrid_api import FakeSendGrid, running_sendgrid
from tests.fakes.twilio_api import FakeTwilio, running_twilio
from tests.workflows.conftest import crm, worker

__all__ = ["crm", "worker"]

PUBLIC = "https://public.example"
STATUS_URL = f"{PUBLIC}/api/v1/webhooks/twilio/status"
INBOUND_URL = f"{PUBLIC}/api/v1/webhooks/twilio/inbound"
EVENTS_URL = f"{PUBLIC}/api/v1/webhooks/sendgrid/events"
SENDER = "+15005550006"


@pytest.fixture(scope="module")
def settings(
    database_url: str, temporal_server: Any, openbao_server: Any, crm: FakeCrm
) -> Settings:
    # The API sits behind a TLS-terminating proxy: providers sign https://public.example/…,
    # while requests arrive at http://testserver/….
    return make_settings(
        database_url=database_url,
        temporal_address=temporal_server.address,
        vault_address=openbao_server.address,
        vault_token=openbao_server.token,
        http_allowed_hosts=[crm.allowed],
        public_api_url=PUBLIC,
    )


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    with running_twilio() as fake:
        yield fake


@pytest.fixture(scope="module")
def sendgrid() -> Iterator[FakeSendGrid]:
    with running_sendgrid() as fake:
        yield fake


def people_csv(n: int, *, bad: dict[int, str] | None = None) -> str:
    lines = ["name,phone,email"]
    for i in range(n):
        phone = (bad or {}).get(i, f"+1415555{i:04d}")
        lines.append(f"Person {i},{phone},person{i}@example.com")
    return "\n".join(lines) + "\n"


async def twilio_channel(
    client: AsyncClient,
    admin: Account,
    fake: FakeTwilio,
    *,
    kind: str = "sms",
    sender: str = SENDER,
    sandbox: bool = False,
) -> str:
    r = await client.post(
        "/api/v1/integrations",
        json={
            "kind": "twilio",
            "name": f"twilio {uuid.uuid4().hex[:6]}",
            "config": fake.config,
            "credentials": fake.creds,
        },
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/channels",
        json={
            "kind": kind,
            "name": f"{kind} {uuid.uuid4().hex[:6]}",
            "integrationId": r.json()["id"],
            "sender": sender,
            "sandbox": sandbox,
        },
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def email_channel(client: AsyncClient, admin: Account, fake: FakeSendGrid) -> str:
    r = await client.post(
        "/api/v1/integrations",
        json={
            "kind": "sendgrid",
            "name": f"sendgrid {uuid.uuid4().hex[:6]}",
            "config": {**fake.config, "event_public_key": fake.public_key_b64},
            "credentials": fake.creds,
        },
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/channels",
        json={
            "kind": "email",
            "name": f"email {uuid.uuid4().hex[:6]}",
            "integrationId": r.json()["id"],
            "sender": "hello@cx.example.com",
            "senderName": "CX Team",
        },
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def send_then_tag(send: dict[str, Any]) -> dict[str, Any]:
    """One send step branching to a tag per outcome."""
    outcomes = {
        "on_replied": "Replied",
        "on_delivered": "Delivered",
        "on_failed": "Failed",
        "on_no_reply": "No reply",
    }
    step = {"id": "send", **send}
    tags = []
    if step.get("wait_for", "none") == "none":
        step["next"] = "done"
        tags.append({"id": "done", "type": "tag", "disposition": "Sent"})
    else:
        for field, disposition in outcomes.items():
            if field == "on_replied" and step["wait_for"] != "reply":
                continue
            if field == "on_delivered" and step["wait_for"] != "delivery":
                continue
            target = field.removeprefix("on_")
            step[field] = target
            tags.append({"id": target, "type": "tag", "disposition": disposition})
    return {"steps": [step, *tags]}


async def start(
    client: AsyncClient, admin: Account, definition: dict[str, Any], csv_text: str
) -> tuple[str, str]:
    """(job id, table id) of a job running `definition` over `csv_text`."""
    p = await project(client, admin)
    table = await make_table(client, admin, project_id=p["id"], csv_text=csv_text)
    job = await run_on(client, admin, p["id"], definition, table["id"])
    return job, str(table["id"])


async def run_on(
    client: AsyncClient, admin: Account, project_id: str, definition: dict[str, Any], table: str
) -> str:
    spinner = await make_spinner(client, admin, project_id=project_id, definition=definition)
    r = await client.post(
        f"/api/v1/spinners/{spinner['id']}/run", json={"tableId": table}, headers=admin.headers
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def records(client: AsyncClient, admin: Account, job_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/jobs/{job_id}/records?limit=500", headers=admin.headers)
    assert r.status_code == 200, r.text
    return sorted(r.json()["data"], key=lambda rec: rec["id"])


async def until_waiting(client: AsyncClient, admin: Account, job_id: str, n: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        recs = await records(client, admin, job_id)
        if sum(r["status"] == "waiting" for r in recs) >= n:
            return
        assert time.monotonic() < deadline, recs
        await asyncio.sleep(0.2)


def sends_to(fake: FakeTwilio, to: str, sender: str) -> list[dict[str, Any]]:
    return [s for s in fake.sends if s["to"] == to and s["from"] == sender]


def query(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        return list(conn.execute(sql, params).fetchall())


def ledger_rows(database_url: str, org_id: str) -> list[tuple[Any, ...]]:
    return query(
        database_url,
        "select step_id, provider, to_address, provider_message_id, status from send_ledger"
        " where org_id = %s order by id",
        org_id,
    )


class TestSms:
    async def test_one_send_per_record_with_status_callback_on_the_public_url(
        self, client: AsyncClient, worker: Client, twilio: FakeTwilio, database_url: str
    ) -> None:
        admin = await signup(client)
        channel = await twilio_channel(client, admin, twilio)
        body = "Hi {{name}}, your order shipped"
        job, _ = await start(
            client,
            admin,
            send_then_tag({"type": "sms", "channel_id": channel, "body": body}),
            people_csv(3),
        )
        assert (await wait_job(client, admin, job))["status"] == "completed"
        recs = await records(client, admin, job)
        assert [r["disposition"] for r in recs] == ["Sent"] * 3
        for i, rec in enumerate(recs):
            (sent,) = sends_to(twilio, f"+1415555{i:04d}", SENDER)
            assert sent["from"] == SENDER
            assert sent["body"] == f"Hi Person {i}, your order shipped"
            assert sent["status_callback"] == STATUS_URL
            assert rec["outcomes"]["message_id"] == sent["sid"]
            assert rec["outcomes"]["message_status"] == "queued"
        rows = ledger_rows(database_url, admin.org_id)
        assert [(r[1], r[4]) for r in rows] == [("twilio", "accepted")] * 3
        journey = (
            await client.get(f"/api/v1/records/{recs[0]['id']}/journey", headers=admin.headers)
        ).json()
        text = repr(journey)
        assert "+14******000" in text
        assert "+14155550000" not in text
        assert "order shipped" not in text

    async def test_provider_5xx_is_retried_and_sends_once(
        self, client: AsyncClient, worker: Client, twilio: FakeTwilio
    ) -> None:
        admin = await signup(client)
        channel = await twilio_channel(client, admin, twilio, sender="+15005550007")
        twilio.fail_next(2, status=503)
        job, _ = await start(
            client,
            admin,
            send_then_tag({"type": "sms", "channel_id": channel, "body": "retry me"}),
            people_csv(1),
        )
        assert (await wait_job(client, admin, job))["status"] == "completed"
        assert len([s for s in twilio.sends if s["from"] == "+15005550007"]) == 1

    async def test_provider_4xx_fails_the_record_without_retry(
        self, client: AsyncClient, worker: Client, twilio: FakeTwilio, database_url: str
    ) -> None:
        admin = await signup(client)
        channel = await twilio_channel(client, admin, twilio, sender="+15005550008")
        twilio.fail_next(1, status=400)
        job, _ = await start(
            client,
            admin,
            send_then_tag({"type": "sms", "channel_id": channel, "body": "nope"}),
            people_csv(1),
        )
        await wait_job(client, admin, job)
        (rec,) = await records(client, admin, job)
        assert rec["status"] == "failed"
        assert "HTTP 400" in rec["error"]
        assert [s for s in twilio.sends if s["from"] == "+15005550008"] == []
        assert [r[4] for r in ledger_rows(database_url, admin.org_id)] == ["failed"]

    async def test_invalid_number_fails_with_a_masked_number(
        self, client: AsyncClient, worker: Client, twilio: FakeTwilio
    ) -> None:
        admin = await signup(client)
        channel = await twilio_channel(client, admin, twilio, sender="+15005550009")
        job, _ = await start(
            client,
            admin,
            send_then_tag({"type": "sms", "channel_id": channel, "body": "x"}),
            people_csv(1, bad={0: "+4477009123456789"}),
        )
        await wait_job(client, admin, job)
        (rec,) = await records(client, admin, job)
        assert rec["status"] == "failed"
        assert "+44" in rec["error"] and "789" in rec["error"]
        assert "+4477009123456789" not in rec["error"]
        assert [s for s in twilio.sends if s["from"] == "+15005550009"] == []

    async def test_another_orgs_channel_cannot_be_published_and_sends_nothing(
        self, client: AsyncClient, worker: Client, twilio: FakeTwilio
    ) -> None:
        owner = await signup(client)
        channel = await twilio_channel(client, owner, twilio, sender="+15005550010")
        other = await signup(client)
        p = await project(client, other)
        spinner = await make_spinner(
            client,
            other,
            project_id=p["id"],
            definition=send_then_tag({"type": "sms", "channel_id": channel, "body": "x"}),
            publish=False,
        )
        r = await client.post(f"/api/v1/spinners/{spinner['id']}/publish", headers=other.headers)
        assert r.status_code == 422, r.text
        assert r.json()["errorCode"] == "VALIDATION_ERROR"
        assert r.json()["details"][0]["path"] == "steps[0].channel_id"
        assert f"no channel '{channel}' in this organization" in r.json()["message"]
        r = await client.post(
            f"/api/v1/spinners/{spinner['id']}/run",
            json={
                "tableId": (
                    await make_table(client, other, project_id=p["id"], csv_text=people_csv(1))
                )["id"]
            },
            headers=other.headers,
        )
        assert r.status_code == 409, r.text
        assert [s for s in twilio.sends if s["from"] == "+15005550010"] == []

    async def test_a_hung_answer_after_accept_is_reconciled_not_resent(
        self, client: AsyncClient, worker: Client, twilio: FakeTwilio, database_url: str
    ) -> None:
        admin = await signup(client)
        channel = await twilio_channel(client, admin, twilio, sender="+15005550011")
        # Longer than the activity's 20 s: the attempt times out after Twilio took the message.
        twilio.hang_after_accept(23, times=1)
        job, _ = await start(
            client,
            admin,
            send_then_tag({"type": "sms", "channel_id": channel, "body": "only once"}),
            people_csv(1),
        )
        assert (await wait_job(client, admin, job, timeout=90))["status"] == "completed"
        (sent,) = [s for s in twilio.sends if s["from"] == "+15005550011"]
        (rec,) = await records(client, admin, job)
        assert rec["outcomes"]["message_id"] == sent["sid"]
        assert [r[3:] for r in ledger_rows(database_url, admin.org_id)] == [
            (sent["sid"], "accepted")
        ]


class TestWhatsApp:
    async def test_template_with_content_variables_and_prefixed_numbers(
        self, client: AsyncClient, worker: Client, twilio: FakeTwilio
    ) -> None:
        admin = await signup(client)
        channel = await twilio_channel(
            client, admin, twilio, kind="whatsapp", sender="+15005550012"
        )
        job, _ = await start(
            client,
            admin,
            send_then_tag(
                {
                    "type": "whatsapp",
                    "channel_id": channel,
                    "template_sid": "HX0123456789abcdef0123456789abcdef",
                    "template_variables": {"1": "{{name}}"},
                }
            ),
            people_csv(1),
        )
        assert (await wait_job(client, admin, job))["status"] == "completed"
        (sent,) = [s for s in twilio.sends if s["from"] == "whatsapp:+15005550012"]
        assert sent["to"] == "whatsapp:+14155550000"
        assert sent["content_sid"] == "HX0123456789abcdef0123456789abcdef"
        assert sent["content_variables"] == {"1": "Person 0"}

    async def test_sms_step_on_a_whatsapp_channel_fails(
        self, client: AsyncClient, worker: Client, twilio: FakeTwilio
    ) -> None:
        admin = await signup(client)
        channel = await twilio_channel(
            client, admin, twilio, kind="whatsapp", sender="+15005550013"
        )
        job, _ = await start(
            client,
            admin,
            send_then_tag({"type": "sms", "channel_id": channel, "body": "x"}),
            people_csv(1),
        )
        await wait_job(client, admin, job)
        (rec,) = await records(client, admin, job)
        assert rec["status"] == "failed"
        assert "whatsapp channel" in rec["error"]


class TestEmail:
    async def test_email_carries_the_ledger_key_and_sender(
        self, client: AsyncClient, worker: Client, sendgrid: FakeSendGrid, database_url: str
    ) -> None:
        admin = await signup(client)
        channel = await email_channel(client, admin, sendgrid)
        job, _ = await start(
            client,
            admin,
            send_then_tag(
                {
                    "type": "email",
                    "channel_id": channel,
                    "subject": "Hello {{name}}",
                    "body": "Your code is 42",
                }
            ),
            people_csv(2),
        )
        assert (await wait_job(client, admin, job))["status"] == "completed"
        recs = await records(client, admin, job)
        for i, rec in enumerate(recs):
            key = f"rec-{rec['id']}:send"
            (sent,) = [m for m in sendgrid.sends if m["custom_args"].get("cx_key") == key]
            assert sent["subject"] == f"Hello Person {i}"
            assert sent["request"]["from"] == {"email": "hello@cx.example.com", "name": "CX Team"}
            assert sent["custom_args"] == {
                "cx_key": f"rec-{rec['id']}:send",
                "record_id": str(rec["id"]),
            }
            assert rec["outcomes"]["message_id"] == sent["message_id"]
            assert rec["outcomes"]["message_status"] == "accepted"

    async def test_a_pending_row_is_reconciled_not_resent(
        self,
        client: AsyncClient,
        worker: Client,
        sendgrid: FakeSendGrid,
        twilio: FakeTwilio,
        settings: Settings,
        database_url: str,
    ) -> None:
        """A dead attempt leaves the row pending after the provider took the message: the next
        attempt finds the message at the provider (Twilio Messages list / SendGrid activity
        search) and sends nothing."""
        admin = await signup(client)
        mail_channel = await email_channel(client, admin, sendgrid)
        sms_channel = await twilio_channel(client, admin, twilio, sender="+15005550014")
        mail = {"type": "email", "channel_id": mail_channel, "subject": "Hi", "body": "once"}
        sms = {"type": "sms", "channel_id": sms_channel, "body": "once"}
        definition = send_then_tag(mail)
        definition["steps"][0]["next"] = "sms"
        definition["steps"].insert(1, {"id": "sms", **sms, "next": "done"})
        job, _ = await start(client, admin, definition, people_csv(1))
        assert (await wait_job(client, admin, job))["status"] == "completed"
        (rec,) = await records(client, admin, job)
        before = dict(
            query(
                database_url,
                "select step_id, provider_message_id from send_ledger where org_id = %s",
                admin.org_id,
            )
        )
        query(
            database_url,
            "update send_ledger set status = 'pending' where org_id = %s returning id",
            admin.org_id,
        )
        engine = create_engine(settings.database_url)
        secrets = SecretStore(settings)
        guard = ProviderGuard(settings.provider_allowed_hosts)
        plans = PlanCache(engine, public_api_url=PUBLIC)
        # The fakes list a message the moment they accept it: no lag to wait out.
        kw: dict[str, Any] = {"public_api_url": PUBLIC, "plans": plans, "provider_guard": guard}
        email_acts = EmailActivities(engine, secrets, **kw, list_lag=timedelta(0))
        sms_acts = MessagingActivities(engine, secrets, **kw, list_lag=timedelta(0))
        try:
            for step, fn in (
                # The activity bodies, given the step directly instead of through the plan cache.
                ({"id": "send", **mail}, email_acts.send),
                ({"id": "sms", **sms}, sms_acts.send),
            ):
                run = StepRun(f"rec-{rec['id']}", job, rec["id"], step, rec["metadata"], {}, {})
                again = await ActivityEnvironment().run(fn, run)
                assert again.outcome == "sent"
                assert again.outputs["message_id"] == before[step["id"]]
        finally:
            await engine.dispose()
        key = f"rec-{rec['id']}:send"
        assert len([m for m in sendgrid.sends if m["custom_args"].get("cx_key") == key]) == 1
        assert len([m for m in twilio.sends if m["from"] == "+15005550014"]) == 1
        assert {r[4] for r in ledger_rows(database_url, admin.org_id)} == {"accepted"}
