"""Provider webhooks: signatures against the public URL, one effect per event, STOP and bounces to
the do-not-contact list, late events stored. Providers sign https://public.example/…; the
requests arrive at http://testserver/… (a TLS-terminating proxy in front of the API)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

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
from tests.builders import (
    Account,
    callback_secret,
    post_signed,
    signed_callback,
    signup,
    wait_job,
)
from tests.fakes.sendgrid_api import FakeSendGrid, running_sendgrid
from tests.fakes.signed import SignedRequest
from tests.fakes.twilio_api import FakeTwilio, running_twilio
from tests.fakes.twilio_api import sign as twilio_sign

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
            client, signed_callback(secret, rec["callbackUrl"], {"reply": "yes from sandbox"})
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


def waiting_on(kind: str, channel: str, wait_for: str) -> dict[str, Any]:
    body = {"subject": "Hi", "body": "text"} if kind == "email" else {"body": "hello"}
    return send_then_tag(
        {"type": kind, "channel_id": channel, **body, "wait_for": wait_for, "timeout": "2m"}
    )


async def waiting_record(
    client: AsyncClient, admin: Account, definition: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """(job id, its one record) once the record waits for its provider event."""
    job, _ = await start(client, admin, definition, people_csv(1))
    await until_waiting(client, admin, job, 1)
    (rec,) = await records(client, admin, job)
    return job, rec


async def refused(client: AsyncClient, signed: SignedRequest) -> None:
    status, text = await post(client, signed)
    assert status == 403, text
    assert json.loads(text)["errorCode"] == "SIGNATURE_INVALID"


class TestTwilioAcrossOrganizations:
    """Each org has its own Twilio account (auth token); the webhook URL is shared by all."""

    async def test_status_signed_by_a_wrong_or_anothers_token_or_over_the_internal_url_is_refused(
        self,
        client: AsyncClient,
        worker: Client,
        twilio: FakeTwilio,
        database_url: str,
    ) -> None:
        admin, other = await signup(client), await signup(client)
        with running_twilio() as theirs:
            await twilio_channel(client, other, theirs, sender="+15005550031")
            channel = await twilio_channel(client, admin, twilio, sender="+15005550032")
            job, rec = await waiting_record(client, admin, waiting_on("sms", channel, "delivery"))
            good = twilio.status_callback(sent_id(database_url, rec["id"]), "delivered")
            internal = "http://testserver" + good.path
            for bad in (
                twilio_sign("not-the-auth-token-0123456789abc", good.url, good.form),
                twilio_sign(theirs.auth_token, good.url, good.form),
                # What a proxy forwards to: Twilio never signs that URL.
                twilio_sign(twilio.auth_token, internal, good.form),
            ):
                await refused(client, bad)
        assert events_of(database_url, rec["id"]) == []
        assert (await records(client, admin, job))[0]["status"] == "waiting"
        assert (await post(client, good))[0] == 200
        assert (await wait_job(client, admin, job))["status"] == "completed"
        assert (await records(client, admin, job))[0]["disposition"] == "Delivered"

    async def test_a_number_shared_by_two_orgs_routes_replies_and_stop_by_the_signing_account(
        self,
        client: AsyncClient,
        worker: Client,
        twilio: FakeTwilio,
        database_url: str,
    ) -> None:
        shared, contact = "+15005550033", "+14155550000"
        a, b = await signup(client), await signup(client)
        with running_twilio() as twilio_b:
            job_a, rec_a = await waiting_record(
                client,
                a,
                waiting_on("sms", await twilio_channel(client, a, twilio, sender=shared), "reply"),
            )
            job_b, rec_b = await waiting_record(
                client,
                b,
                waiting_on(
                    "sms", await twilio_channel(client, b, twilio_b, sender=shared), "reply"
                ),
            )
            to_a = twilio.inbound_message(contact, shared, "yes to A", url=INBOUND_URL)
            await refused(
                client, twilio_sign("not-either-auth-token-0123456789", to_a.url, to_a.form)
            )
            # A's message, its status signed by B's account (same number): refused.
            status_a = twilio.status_callback(sent_id(database_url, rec_a["id"]), "delivered")
            await refused(client, twilio_sign(twilio_b.auth_token, status_a.url, status_a.form))
            assert (
                events_of(database_url, rec_a["id"]) == events_of(database_url, rec_b["id"]) == []
            )

            assert (await post(client, to_a))[0] == 200
            assert (await wait_job(client, a, job_a))["status"] == "completed"
            (done_a,) = await records(client, a, job_a)
            assert (done_a["disposition"], done_a["outcomes"]["reply"]) == ("Replied", "yes to A")
            assert events_of(database_url, rec_b["id"]) == []
            assert (await records(client, b, job_b))[0]["status"] == "waiting"

            to_b = twilio_b.inbound_message(contact, shared, "yes to B", url=INBOUND_URL)
            assert (await post(client, to_b))[0] == 200
            assert (await wait_job(client, b, job_b))["status"] == "completed"
            (done_b,) = await records(client, b, job_b)
            assert (done_b["disposition"], done_b["outcomes"]["reply"]) == ("Replied", "yes to B")
            assert (await records(client, a, job_a))[0]["outcomes"]["reply"] == "yes to A"
            assert len(events_of(database_url, rec_a["id"])) == 1

            stop_b = twilio_b.inbound_message(contact, shared, "STOP", url=INBOUND_URL)
            assert (await post(client, stop_b))[0] == 200
        assert dnc(database_url, b.org_id) == [(contact, "stop_keyword")]
        assert dnc(database_url, a.org_id) == []


class TestSendGridAcrossOrganizations:
    async def test_a_batch_mixing_two_orgs_of_one_account_routes_each_event_to_its_own(
        self, client: AsyncClient, worker: Client, sendgrid: FakeSendGrid, database_url: str
    ) -> None:
        """Two orgs on one SendGrid account (one signing key): one batch carries both orgs'
        events; each event reaches only its own org's record and do-not-contact list."""
        a, b = await signup(client), await signup(client)
        job_a, rec_a = await waiting_record(
            client, a, waiting_on("email", await email_channel(client, a, sendgrid), "delivery")
        )
        job_b, rec_b = await waiting_record(
            client, b, waiting_on("email", await email_channel(client, b, sendgrid), "delivery")
        )
        batch = sendgrid.events(
            [
                sendgrid.delivered(sent_id(database_url, rec_a["id"])),
                sendgrid.bounce(sent_id(database_url, rec_b["id"])),
            ],
            url=EVENTS_URL,
        )
        assert (await post(client, batch))[0] == 200
        assert (await wait_job(client, a, job_a))["status"] == "completed"
        assert (await wait_job(client, b, job_b))["status"] == "completed"
        assert (await records(client, a, job_a))[0]["disposition"] == "Delivered"
        assert (await records(client, b, job_b))[0]["disposition"] == "Failed"
        assert (
            len(events_of(database_url, rec_a["id"]))
            == len(events_of(database_url, rec_b["id"]))
            == 1
        )
        # Both orgs mailed person0@example.com; only B's bounced.
        assert dnc(database_url, a.org_id) == []
        assert dnc(database_url, b.org_id) == [("person0@example.com", "bounce")]

    async def test_a_batch_signed_by_another_account_or_mixing_accounts_is_refused(
        self, client: AsyncClient, worker: Client, sendgrid: FakeSendGrid, database_url: str
    ) -> None:
        a, b = await signup(client), await signup(client)
        with running_sendgrid() as theirs:
            job_a, rec_a = await waiting_record(
                client, a, waiting_on("email", await email_channel(client, a, sendgrid), "delivery")
            )
            job_b, rec_b = await waiting_record(
                client, b, waiting_on("email", await email_channel(client, b, theirs), "delivery")
            )
            bounce_a = sendgrid.bounce(sent_id(database_url, rec_a["id"]))
            bounce_b = theirs.bounce(sent_id(database_url, rec_b["id"]))
            for bad in (
                theirs.events([bounce_a], url=EVENTS_URL),  # B's key over A's event
                sendgrid.events([bounce_a, bounce_b], url=EVENTS_URL),
                theirs.events([bounce_a, bounce_b], url=EVENTS_URL),
            ):
                await refused(client, bad)
        assert events_of(database_url, rec_a["id"]) == events_of(database_url, rec_b["id"]) == []
        assert dnc(database_url, a.org_id) == dnc(database_url, b.org_id) == []
        assert (await records(client, a, job_a))[0]["status"] == "waiting"
        assert (await records(client, b, job_b))[0]["status"] == "waiting"
        assert query(
            database_url,
            "select count(*) from send_ledger where org_id in (%s, %s) and status = 'failed'",
            a.org_id,
            b.org_id,
        ) == [(0,)]
