"""An SMS campaign through the API: 20 contacts, half reply through Twilio's signed inbound
webhook, the rest time out; each branch tags the record, and each contact got exactly one SMS."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from httpx import AsyncClient
from temporalio.client import Client

from tests.activities.test_messaging import (
    INBOUND_URL,
    crm,
    people_csv,
    records,
    send_then_tag,
    settings,
    start,
    twilio_channel,
    until_waiting,
    worker,
)
from tests.builders import signup, wait_job
from tests.fakes.twilio_api import FakeTwilio, running_twilio

__all__ = ["crm", "settings", "worker"]

ROWS = 20
SENDER = "+15005550030"


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    with running_twilio() as fake:
        yield fake


class TestSmsCampaign:
    async def test_replies_and_timeouts_branch_and_each_contact_gets_one_sms(
        self, client: AsyncClient, worker: Client, twilio: FakeTwilio
    ) -> None:
        admin = await signup(client)
        channel = await twilio_channel(client, admin, twilio, sender=SENDER)
        job, _ = await start(
            client,
            admin,
            send_then_tag(
                {
                    "type": "sms",
                    "channel_id": channel,
                    "body": "Hi {{name}}, can we call you? Reply YES",
                    "wait_for": "reply",
                    "timeout": "30s",
                }
            ),
            people_csv(ROWS),
        )
        await until_waiting(client, admin, job, ROWS)
        replies = [
            twilio.inbound_message(f"+1415555{i:04d}", SENDER, f"Yes {i}", url=INBOUND_URL)
            for i in range(0, ROWS, 2)
        ]
        answers = await asyncio.gather(
            *(client.post(r.path, content=r.body, headers=r.headers) for r in replies)
        )
        assert {a.status_code for a in answers} == {200}
        assert {a.headers["content-type"] for a in answers} == {"text/xml; charset=utf-8"}

        done = await wait_job(client, admin, job, timeout=90)
        assert done["status"] == "completed"
        assert done["counts"]["completed"] == ROWS
        recs = await records(client, admin, job)
        for i, rec in enumerate(recs):
            if i % 2 == 0:
                assert rec["disposition"] == "Replied"
                assert rec["outcomes"]["reply"] == f"Yes {i}"
                assert rec["outcomes"]["message_status"] == "replied"
            else:
                assert rec["disposition"] == "No reply"
                assert "reply" not in rec["outcomes"]
        per_contact: dict[str, int] = {}
        for sent in twilio.sends:
            if sent["from"] == SENDER:
                per_contact[sent["to"]] = per_contact.get(sent["to"], 0) + 1
        assert per_contact == {f"+1415555{i:04d}": 1 for i in range(ROWS)}

        journey = (
            await client.get(f"/api/v1/records/{recs[0]['id']}/journey", headers=admin.headers)
        ).json()
        labels = [step["label"] for step in journey["steps"]]
        assert any(label.startswith("sms · sent") for label in labels), labels
        assert any("replied" in label for label in labels), labels
        assert "can we call you" not in repr(journey)
