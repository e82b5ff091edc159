"""Provider webhooks: signatures against the public URL, one effect per event, STOP and bounces to
the do-not-contact list, late events stored. Providers sign https://public.example/…; the
requests arrive at http://testserver/… (a TLS-terminating proxy in front of the API)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from httpx import AsyncClient
from temporalio.client import Client

from tests.activities.test_messaging import (
    EVENTS_URL,
    INBOUND_URL,
    crm,
    email_channel,
    people_csv,
    query,
    records,
    run_on,
    send_then_tag,
    settings,
    start,
    twilio_channel,
    until_waiting,
    worker,
)
from tests.builders import callback_secret, post_signed, signed_callback, signup, wait_job
from tests.fakes.sendgrid_api import FakeSendGrid, running_sendgrid
from tests.fakes.signed import SignedRequest
from tests.fakes.twilio_api import FakeTwilio, running_twilio

__all__ = ["crm", "settings", "worker"]


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    with running_twilio() as fake:
        yield fake


@pytest.fixture(scope="module")
def sendgrid() -> Iterator[FakeSendGrid]:
    with running_sendgrid() as fake:
        yield fake


async def post(client: AsyncClient, signed: SignedRequest) -> tuple[int, str]:
    r = await client.post(signed.path, content=signed.body, headers=signed.headers)
    return r.status_code, r.text


def sent_id(database_url: str, record_id: int, step: str = "send") -> str:
    rows = query(
        database_url,
        "select provider_message_id from send_ledger where key = %s",
        f"rec-{record_id}:{step}",
    )
    return str(rows[0][0])


def events_of(database_url: str, record_id: int) -> list[tuple[str, bool]]:
    return [
        (str(r[0]), bool(r[1]))
        for r in query(
            database_url,
            "select event_id, late from callback_event where record_id = %s order by id",
            record_id,
        )
    ]


def dnc(database_url: str, org_id: str) -> list[tuple[str, str]]:
    return [
        (str(r[0]), str(r[1]))
        for r in query(
            database_url,
            "select address, reason from do_not_contact where org_id = %s order by id",
            org_id,
        )
    ]


class TestTwilioStatus:
    async def test_signed_status_settles_once_and_bad_signatures_change_nothing(
        self, client: AsyncClient, worker: Client, twilio: FakeTwilio, database_url: str
    ) -> None:
        admin = await signup(client)
        channel = await twilio_channel(client, admin, twilio, sender="+15005550020")
        job, _ = await start(
            client,
            admin,
            send_then_tag(
                {
                    "type": "sms",
                    "channel_id": channel,
                    "body": "hello",
                    "wait_for": "delivery",
                    "timeout": "2m",
                }
            ),
            people_csv(2),
        )
        await until_waiting(client, admin, job, 2)
        first, second = await records(client, admin, job)
        delivered = twilio.status_callback(sent_id(database_url, first["id"]), "delivered")
        assert delivered.url.startswith("https://public.example/api/v1/webhooks/twilio/status")
        for _ in range(10):
            status, text = await post(client, delivered)
            assert (status, text) == (200, '<?xml version="1.0" encoding="UTF-8"?><Response/>')

        sid = sent_id(database_url, second["id"])
        failed = twilio.status_callback(sid, "undelivered")
        missing = SignedRequest(
            failed.url,
            {k: v for k, v in failed.headers.items() if k != "x-twilio-signature"},
            failed.body,
            failed.form,
        )
        for bad in (missing, failed.tampered(MessageStatus="delivered"), failed.tampered()):
            status, text = await post(client, bad)
            assert status == 403, text
            assert json.loads(text)["errorCode"] == "SIGNATURE_INVALID"
        assert events_of(database_url, second["id"]) == []
        assert (await records(client, admin, job))[1]["status"] == "waiting"
        assert (await post(client, failed))[0] == 200

        done = await wait_job(client, admin, job)
        assert done["status"] == "completed"
        first, second = await records(client, admin, job)
        assert first["disposition"] == "Delivered"
        assert second["disposition"] == "Failed"
        assert first["outcomes"]["message_status"] == "delivered"
        first_sid = sent_id(database_url, first["id"])
        assert events_of(database_url, first["id"]) == [(f"twilio:{first_sid}:delivered", False)]
        assert query(
            database_url,
            "select status from send_ledger where provider_message_id = %s",
            sid,
        ) == [("failed",)]

        # The record has closed: a later status is stored as late and answered 200.
        late = twilio.status_callback(first_sid, "read")
        assert (await post(client, late))[0] == 200
        assert events_of(database_url, first["id"])[-1] == (
            f"twilio:{first_sid}:read",
            True,
        )


class TestTwilioInbound:
    async def test_stop_blocks_the_contact_and_a_later_send_is_skipped(
        self, client: AsyncClient, worker: Client, twilio: FakeTwilio, database_url: str
    ) -> None:
        admin = await signup(client)
        sender = "+15005550021"
        channel = await twilio_channel(client, admin, twilio, sender=sender)
        definition = send_then_tag({"type": "sms", "channel_id": channel, "body": "promo"})
        first_job, table = await start(client, admin, definition, people_csv(2))
        await wait_job(client, admin, first_job)
        stop = twilio.inbound_message("+14155550000", sender, "  Stop ", url=INBOUND_URL)
        tampered = stop.tampered(From="+14155550001")
        status, text = await post(client, tampered)
        assert status == 403 and "SIGNATURE_INVALID" in text
        for _ in range(10):
            assert (await post(client, stop))[0] == 200
        assert dnc(database_url, admin.org_id) == [("+14155550000", "stop_keyword")]

        project_id = query(database_url, "select project_id from data_table where id = %s", table)
        job = await run_on(client, admin, str(project_id[0][0]), definition, table)
        assert (await wait_job(client, admin, job))["status"] == "completed"
        stopped, other = await records(client, admin, job)
        assert stopped["disposition"] == "Opted out"
        assert other["disposition"] == "Sent"
        to_stopped = [s for s in twilio.sends if s["from"] == sender and s["to"] == "+14155550000"]
        assert len(to_stopped) == 1  # the first job's only
        assert query(
            database_url,
            "select status, provider_message_id from send_ledger where key = %s",
            f"rec-{stopped['id']}:send",
        ) == [("skipped", None)]


class TestSendGrid:
    async def test_events_bounce_unsubscribe_dedupe_and_signature(
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
                    "subject": "Hi",
                    "body": "text",
                    "wait_for": "delivery",
                    "timeout": "2m",
                }
            ),
            people_csv(3),
        )
        await until_waiting(client, admin, job, 3)
        recs = await records(client, admin, job)
        ids = [sent_id(database_url, r["id"]) for r in recs]
        batch = sendgrid.events(
            [
                sendgrid.delivered(ids[0]),
                sendgrid.bounce(ids[1]),
                sendgrid.delivered(ids[2]),
                sendgrid.unsubscribe(ids[2]),
            ],
            url=EVENTS_URL,
        )
        stale = sendgrid.events(
            [sendgrid.bounce(ids[0])], url=EVENTS_URL, timestamp=int(time.time()) - 600
        )
        for bad in (stale, batch.tampered()):
            status, text = await post(client, bad)
            assert status == 403 and "SIGNATURE_INVALID" in text
        assert dnc(database_url, admin.org_id) == []
        for _ in range(10):
            assert (await post(client, batch))[0] == 200
        done = await wait_job(client, admin, job)
        assert done["status"] == "completed"
        recs = await records(client, admin, job)
        assert [r["disposition"] for r in recs] == ["Delivered", "Failed", "Delivered"]
        assert sorted(dnc(database_url, admin.org_id)) == [
            ("person1@example.com", "bounce"),
            ("person2@example.com", "unsubscribe"),
        ]
        assert len(events_of(database_url, recs[2]["id"])) == 2


class TestSandbox:
    async def test_sandbox_channel_calls_no_provider_and_takes_a_simulated_reply(
        self, client: AsyncClient, worker: Client, twilio: FakeTwilio, database_url: str
    ) -> None:
        admin = await signup(client)
        sender = "+15005550022"
        channel = await twilio_channel(client, admin, twilio, sender=sender, sandbox=True)
        job, _ = await start(
            client,
            admin,
            send_then_tag(
                {
                    "type": "sms",
                    "channel_id": channel,
                    "body": "hi",
                    "wait_for": "reply",
                    "timeout": "2m",
                }
            ),
            people_csv(1),
        )
        await until_waiting(client, admin, job, 1)
        (rec,) = await records(client, admin, job)
        assert sent_id(database_url, rec["id"]).startswith("sandbox-")
        secret = await callback_secret(client, admin)
        r = await post_signed(
            client, signed_callback(secret, rec["callback_url"], {"reply": "yes from sandbox"})
        )
        assert r.status_code == 200, r.text
        assert (await wait_job(client, admin, job))["status"] == "completed"
        (rec,) = await records(client, admin, job)
        assert rec["disposition"] == "Replied"
        assert rec["outcomes"]["reply"] == "yes from sandbox"
        assert [s for s in twilio.sends if s["from"] == sender] == []
        assert query(
            database_url,
            "select provider, status from send_ledger where org_id = %s",
            admin.org_id,
        ) == [("sandbox", "accepted")]
