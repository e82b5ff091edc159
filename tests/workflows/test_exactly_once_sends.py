"""Exactly one message per record although the worker is SIGKILLed while the provider holds its
answer, and although the provider's message list lags behind its sends.

A job of one send step runs on a real `cxgear worker` process. The fake provider records a send
and then hangs before answering; the test kills the worker during that hang (the send happened,
the worker never learnt it) and starts a new one. The retried activity finds its `pending` ledger
row and reconciles with the provider's list instead of resending. The fakes' lists show a message
only LIST_LAG seconds after they accepted it, as Twilio's Messages list and SendGrid's Email
Activity are eventually consistent, so the retry (about 20 s after the send: the activity's
timeout) would not find it yet; the worker, told the provider's lag, looks only after it.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient

from infra.providers import ProviderGuard, twilio_client
from infra.settings import Settings
from tests.activities.test_messaging import (
    crm,
    email_channel,
    people_csv,
    send_then_tag,
    settings,
    start,
    twilio_channel,
)
from tests.builders import Account, signup, wait_job
from tests.fakes.sendgrid_api import FakeSendGrid, running_sendgrid
from tests.fakes.signed import FAKE_HOST
from tests.fakes.twilio_api import FakeTwilio, running_twilio
from tests.workflows.test_reliability import kept_logs, start_worker, stop_worker

__all__ = ["crm", "settings"]

# Longer than the time from a send to its retried attempt (the activity's 20 s timeout).
LIST_LAG = 30.0
# What the worker is told: a little more than the fakes' lag.
WORKER_LIST_LAG = "PT35S"
HANG_S = 25.0
TEMPLATE = "HX0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    with running_twilio() as fake:
        fake.list_lag = LIST_LAG
        yield fake


@pytest.fixture(scope="module")
def sendgrid() -> Iterator[FakeSendGrid]:
    with running_sendgrid() as fake:
        fake.list_lag = LIST_LAG
        yield fake


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


@dataclass
class Case:
    """One provider as the kill loop sees it: how many sends it took, how to hang the next."""

    sends: Callable[[], list[dict[str, Any]]]
    hang_next: Callable[[], None]
    hangs: Callable[[], int]
    # Who a send went to, for the once-per-contact count.
    contact: Callable[[dict[str, Any]], str]


async def kill_during_hangs(
    client: AsyncClient,
    admin: Account,
    job: str,
    case: Case,
    *,
    settings: Settings,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    kills: int,
) -> dict[str, Any]:
    logs = [tmp_path / f"worker-{n}.log" for n in range(kills + 1)]
    worker = start_worker(settings, logs[0], CXGEAR_SEND_LIST_LAG=WORKER_LIST_LAG)
    try:
        with kept_logs(request, *logs):
            for kill in range(kills):
                wanted = 20 * (kill + 1)
                await until(lambda: len(case.sends()) >= wanted, 120, "sends started")  # noqa: B023
                # The next send is recorded by the provider, then its answer hangs past our kill.
                case.hang_next()
                await until(lambda: case.hangs() > kill, 120, "a send to hang")  # noqa: B023
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
                worker = start_worker(
                    settings, logs[kill + 1], CXGEAR_SEND_LIST_LAG=WORKER_LIST_LAG
                )
            done = await wait_job(client, admin, job, timeout=240)
            assert done["status"] == "completed", done
            texts = [log.read_text(errors="replace") for log in logs[1:]]
            # Positive controls: each hung send was looked up only after the list's lag, and
            # found there (a kill may catch other sends in flight too: at least one per kill).
            waited = sum(t.count("SendNotSettled: an earlier attempt") for t in texts)
            reconciled = sum(t.count("found the earlier send") for t in texts)
            assert waited >= kills, f"{waited} waits for the list's lag for {kills} kills"
            assert reconciled >= kills, f"{reconciled} reconciliations for {kills} kills"
            return done
    finally:
        stop_worker(worker)


def assert_once_per_contact(sends: list[dict[str, Any]], case: Case, records: int) -> None:
    per_contact = Counter(case.contact(s) for s in sends)
    assert len(per_contact) == records
    assert set(per_contact.values()) == {1}, [to for to, n in per_contact.items() if n > 1]


def twilio_case(twilio: FakeTwilio, sender: str) -> Case:
    mine = lambda: [s for s in twilio.sends if s["from"].removeprefix("whatsapp:") == sender]  # noqa: E731
    return Case(
        sends=mine,
        hang_next=lambda: twilio.hang_after_accept(HANG_S, times=1),
        hangs=lambda: twilio.hangs_started,
        contact=lambda s: str(s["to"]),
    )


class TestFakeListsLag:
    async def test_a_twilio_send_shows_in_the_list_only_after_the_lag(self) -> None:
        """The fake's lag is real: a list right after the send misses it, a fetch finds it."""
        with running_twilio() as fake:
            fake.list_lag = 1.0
            client = await twilio_client(fake.config, fake.creds, guard=ProviderGuard([FAKE_HOST]))

            def listed() -> list[str]:
                return [m.sid for m in client.messages.list(to="+14155550100")]

            sent = client.messages.create(to="+14155550100", from_="+15005550099", body="hi")
            assert listed() == []
            assert client.messages(sent.sid).fetch().sid == sent.sid
            await until(lambda: listed() == [sent.sid], 10, "the send to show in the list")


class TestExactlyOnce:
    async def test_sms_under_sigkill_during_a_hung_answer_is_sent_once(
        self,
        client: AsyncClient,
        settings: Settings,
        twilio: FakeTwilio,
        tmp_path: Path,
        request: pytest.FixtureRequest,
    ) -> None:
        records, sender = 300, "+15005550040"
        admin = await signup(client)
        channel = await twilio_channel(client, admin, twilio, sender=sender)
        job, _ = await start(
            client,
            admin,
            send_then_tag({"type": "sms", "channel_id": channel, "body": "Hi {{name}}"}),
            people_csv(records),
        )
        case = twilio_case(twilio, sender)
        done = await kill_during_hangs(
            client, admin, job, case, settings=settings, tmp_path=tmp_path, request=request, kills=3
        )
        assert done["counts"]["completed"] == records
        assert twilio.hangs_started == 3
        assert_once_per_contact(case.sends(), case, records)

    async def test_whatsapp_template_under_sigkill_is_sent_once(
        self,
        client: AsyncClient,
        settings: Settings,
        twilio: FakeTwilio,
        tmp_path: Path,
        request: pytest.FixtureRequest,
    ) -> None:
        """A template send is reconciled by contact and sender (the list shows no content sid)."""
        records, sender = 60, "+15005550041"
        admin = await signup(client)
        channel = await twilio_channel(client, admin, twilio, kind="whatsapp", sender=sender)
        step = {
            "type": "whatsapp",
            "channel_id": channel,
            "template_sid": TEMPLATE,
            "template_variables": {"1": "{{name}}"},
        }
        job, _ = await start(client, admin, send_then_tag(step), people_csv(records))
        hangs_before = twilio.hangs_started
        case = twilio_case(twilio, sender)
        case.hangs = lambda: twilio.hangs_started - hangs_before
        done = await kill_during_hangs(
            client, admin, job, case, settings=settings, tmp_path=tmp_path, request=request, kills=1
        )
        assert done["counts"]["completed"] == records
        sends = case.sends()
        assert {s["content_sid"] for s in sends} == {TEMPLATE}
        assert_once_per_contact(sends, case, records)

    async def test_email_under_sigkill_during_a_hung_answer_is_sent_once(
        self,
        client: AsyncClient,
        settings: Settings,
        sendgrid: FakeSendGrid,
        tmp_path: Path,
        request: pytest.FixtureRequest,
    ) -> None:
        records = 60
        admin = await signup(client)
        channel = await email_channel(client, admin, sendgrid)
        step = {"type": "email", "channel_id": channel, "subject": "Hi", "body": "{{name}}"}
        job, _ = await start(client, admin, send_then_tag(step), people_csv(records))

        case = Case(
            sends=lambda: [s for s in sendgrid.sends if s["custom_args"].get("cx_key")],
            hang_next=lambda: sendgrid.hang_after_accept(HANG_S, times=1),
            hangs=lambda: sendgrid.hangs_started,
            contact=lambda s: str(s["custom_args"]["cx_key"]),
        )
        done = await kill_during_hangs(
            client, admin, job, case, settings=settings, tmp_path=tmp_path, request=request, kills=1
        )
        assert done["counts"]["completed"] == records
        recs = (
            await client.get(f"/api/v1/jobs/{job}/records?limit=500", headers=admin.headers)
        ).json()["data"]
        keys = {f"rec-{r['id']}:send" for r in recs}
        sends = [s for s in sendgrid.sends if s["custom_args"].get("cx_key") in keys]
        assert Counter(s["custom_args"]["cx_key"] for s in sends) == Counter(dict.fromkeys(keys, 1))
        assert sorted(s["to"][0] for s in sends) == sorted(
            f"person{i}@example.com" for i in range(records)
        )
