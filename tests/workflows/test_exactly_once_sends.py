"""Exactly one SMS per record although the worker is SIGKILLed while Twilio holds its answer.

A 500-record job of one sms step runs on a real `cxgear worker` process. Three times, the fake
Twilio records a send and then hangs before answering; the test kills the worker during that
hang (the send happened, the worker never learnt it) and starts a new one. The retried
activities find their `pending` ledger rows and reconcile with Twilio instead of resending.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from httpx import AsyncClient

from infra.settings import Settings
from tests.activities.test_messaging import (
    crm,
    people_csv,
    send_then_tag,
    settings,
    start,
    twilio_channel,
)
from tests.builders import signup, wait_job
from tests.fakes.twilio_api import FakeTwilio, running_twilio
from tests.workflows.test_reliability import start_worker

__all__ = ["crm", "settings"]

RECORDS = 500
KILLS = 3
SENDER = "+15005550040"


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    with running_twilio() as fake:
        yield fake


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


class TestExactlyOnce:
    async def test_sigkill_during_a_hung_provider_answer_never_sends_twice(
        self, client: AsyncClient, settings: Settings, twilio: FakeTwilio
    ) -> None:
        worker = start_worker(settings)
        try:
            admin = await signup(client)
            channel = await twilio_channel(client, admin, twilio, sender=SENDER)
            job, _ = await start(
                client,
                admin,
                send_then_tag({"type": "sms", "channel_id": channel, "body": "Hi {{name}}"}),
                people_csv(RECORDS),
            )
            for kill in range(KILLS):
                wanted = 20 * (kill + 1)
                await until(lambda: len(twilio.sends) >= wanted, 60, "sends started")  # noqa: B023
                # The next send is recorded by Twilio, then its answer hangs past our kill.
                twilio.hang_after_accept(25, times=1)
                await until(lambda: twilio.hangs_started > kill, 60, "a send to hang")  # noqa: B023
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
                worker = start_worker(settings)
            done = await wait_job(client, admin, job, timeout=180)
        finally:
            worker.send_signal(signal.SIGINT)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
        assert done["status"] == "completed", done
        assert done["counts"]["completed"] == RECORDS
        assert twilio.hangs_started == KILLS
        per_contact = Counter(s["to"] for s in twilio.sends if s["from"] == SENDER)
        assert len(per_contact) == RECORDS
        assert set(per_contact.values()) == {1}, [to for to, n in per_contact.items() if n > 1]
