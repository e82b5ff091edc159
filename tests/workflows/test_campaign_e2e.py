"""The issue's campaign end to end: 200 contacts through the API on the in-process worker.

log → ai_agent drafts a message (fake OpenAI) → WhatsApp with the draft (fake Twilio), waiting for
a reply → decision on the reply: "later" tags Retry (a retry link starts a child spinner), any
other reply tags Interested; no reply tags No reply. Half the contacts answer through Twilio's
signed inbound webhook, each as soon as its record waits; the rest time out.

Runs on the embedded dev server, not the time-skipping one: the engine hangs there (child starts
with typed search attributes never start and workflow tasks time out). So the durations are real:
a decision on the contact's row gives the contacts who will answer a 10-minute reply window (it
never runs out: each answers as soon as its record waits, however slow the machine) and the
silent half a 3-second one, which does run out; the retry delay is 3s instead of a day.

The same run is the privacy canary: one contact's phone number and every secret handed to the
providers or Vault must appear in no raw Temporal history (read without the codec), no log line
and (the secrets) no API response body. The Vault secret is the bearer token of an api_call step
that looks each contact up in a CRM by phone number (so the number is in a request URL too).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from httpx import AsyncClient
from temporalio.client import Client, WorkflowHistory

from infra.settings import Settings
from tests.activities.test_messaging import (
    INBOUND_URL,
    PUBLIC,
    records,
    twilio_channel,
)
from tests.builders import Account, make_spinner, make_table, project, signup, wait_job
from tests.conftest import make_settings
from tests.fakes.crm_api import FakeCrm
from tests.fakes.openai_api import FakeOpenAI, Messages, message_text, running_openai
from tests.fakes.twilio_api import FakeTwilio, running_twilio
from tests.workflows.history_payloads import payloads_in

ROWS = 200
SENDER = "+15005550040"
# Longer than the test may take: a replier's wait can only end with its reply.
REPLY_WAIT = "10m"
QUIET_WAIT = "3s"
RETRY_DELAY = "3s"
# Row 0 is the canary contact: a number found nowhere else in the table (the rest are
# +1415555xxxx) and a "later" replier, so its record also starts a retry child.
CANARY_ROW = 0
CANARY_PHONE = "+12025550147"
CANARY_OPENAI_KEY = f"sk-canary-{uuid.uuid4().hex}"
CANARY_TWILIO_TOKEN = uuid.uuid4().hex
CANARY_VAULT_VALUE = f"vault-canary-{uuid.uuid4().hex}"
VAULT_NAME = "crm_token"
SECRETS = {
    "OpenAI api key": CANARY_OPENAI_KEY,
    "Twilio auth token": CANARY_TWILIO_TOKEN,
    "Vault secret": CANARY_VAULT_VALUE,
}
# The phone is also looked for without its "+" (form-encoded bodies write it as %2B…).
PHONE_NEEDLES = {"canary phone": CANARY_PHONE, "canary phone digits": CANARY_PHONE[1:]}
NEEDLES = {**SECRETS, **PHONE_NEEDLES}


def phone(i: int) -> str:
    return CANARY_PHONE if i == CANARY_ROW else f"+1415555{i:04d}"


def group(i: int) -> str:
    """later (a quarter), yes (a quarter) or silent (half)."""
    return "silent" if i % 2 else ("later" if i % 4 == 0 else "yes")


def draft_for(name: str) -> str:
    return f"Hello {name}, would a short call this week suit you?"


def draft(messages: Messages) -> str:
    """The fake model's answer: deterministic, addressed to the contact named in the task."""
    match = re.search(r"to (Contact \d+)\.", message_text(messages[-1]))
    assert match, messages
    return draft_for(match[1])


@pytest.fixture(scope="module")
def settings(
    database_url: str, temporal_server: Any, openbao_server: Any, crm: FakeCrm
) -> Settings:
    # Providers sign https://public.example/… while requests arrive at http://testserver/….
    return make_settings(
        database_url=database_url,
        temporal_address=temporal_server.address,
        vault_address=openbao_server.address,
        vault_token=openbao_server.token,
        public_api_url=PUBLIC,
        http_allowed_hosts=[crm.allowed],
        job_window=ROWS,
        job_batch=50,
    )


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeOpenAI]:
    with running_openai(api_key=CANARY_OPENAI_KEY) as fake:
        fake.responder = draft
        yield fake


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    with running_twilio(auth_token=CANARY_TWILIO_TOKEN) as fake:
        yield fake


def csv_rows() -> str:
    return "name,phone,answers\n" + "".join(
        f"Contact {i},{phone(i)},{'no' if group(i) == 'silent' else 'yes'}\n" for i in range(ROWS)
    )


def ask(step_id: str, channel: str, timeout: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "whatsapp",
        "channel_id": channel,
        "body": "{{draft}}",
        "wait_for": "reply",
        "timeout": timeout,
        "on_replied": "route",
        "on_no_reply": "silent",
    }


def main_definition(llm: str, channel: str, crm: FakeCrm) -> dict[str, Any]:
    return {
        "steps": [
            {"id": "hello", "type": "log", "message": "drafting for {{name}}", "next": "lookup"},
            {
                "id": "lookup",
                "type": "api_call",
                "method": "GET",
                "url": crm.base_url + "/contacts/{{phone}}",
                "bearer_secret": VAULT_NAME,
                "outputs": {"tier": "contact.tier"},
                "next": "write",
            },
            {
                "id": "write",
                "type": "ai_agent",
                "integration_id": llm,
                "role": "You write short, friendly WhatsApp messages for a sales team.",
                "task": "Draft a first message to {{name}}.",
                "mode": "text",
                "output": "draft",
                "timeout_s": 30,
                "next": "window",
            },
            {
                "id": "window",
                "type": "decision",
                "branches": [{"when": 'answers == "no"', "label": "quiet", "next": "ask_quiet"}],
                "default": "ask",
            },
            ask("ask", channel, REPLY_WAIT),
            ask("ask_quiet", channel, QUIET_WAIT),
            {
                "id": "route",
                "type": "decision",
                "branches": [{"when": 'reply == "later"', "label": "later", "next": "retry"}],
                "default": "interested",
            },
            {"id": "retry", "type": "tag", "disposition": "Retry"},
            {"id": "interested", "type": "tag", "disposition": "Interested"},
            {"id": "silent", "type": "tag", "disposition": "No reply"},
        ]
    }


RETRY_CHILD = {
    "steps": [
        {"id": "again", "type": "log", "message": "retrying {{name}}", "next": "mark"},
        {"id": "mark", "type": "tag", "disposition": "Retried"},
    ]
}


@dataclass
class Campaign:
    admin: Account
    job_id: str
    child_spinner_id: str
    integration_ids: list[str]


async def start_campaign(
    client: AsyncClient, openai_fake: FakeOpenAI, twilio: FakeTwilio, crm: FakeCrm
) -> Campaign:
    """Integrations, channel, Vault secret, table, both spinners and the retry link; then run."""
    admin = await signup(client)
    llm = await created(
        client,
        admin,
        "/api/v1/integrations",
        {
            "kind": "openai",
            "name": "drafts",
            "config": {"base_url": openai_fake.base_url, "default_model": "gpt-4o-mini"},
            "credentials": openai_fake.creds,
        },
    )
    channel_id = await twilio_channel(client, admin, twilio, kind="whatsapp", sender=SENDER)
    channel = await get(client, admin, f"/api/v1/channels/{channel_id}")
    r = await client.put(
        f"/api/v1/vault/secrets/{VAULT_NAME}",
        json={"value": CANARY_VAULT_VALUE},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    p = await project(client, admin)
    table = await make_table(client, admin, project_id=p["id"], csv_text=csv_rows())
    child = await make_spinner(client, admin, project_id=p["id"], definition=RETRY_CHILD)
    main = await make_spinner(
        client, admin, project_id=p["id"], definition=main_definition(llm, channel_id, crm)
    )
    await created(
        client,
        admin,
        f"/api/v1/spinners/{main['id']}/links",
        {
            "childSpinnerId": child["id"],
            "kind": "retry",
            "condition": 'disposition == "Retry"',
            "delay": RETRY_DELAY,
            "maxAttempts": 1,
        },
    )
    job_id = await created(
        client, admin, f"/api/v1/spinners/{main['id']}/run", {"tableId": table["id"]}
    )
    return Campaign(admin, job_id, str(child["id"]), [llm, str(channel["integrationId"])])


async def created(client: AsyncClient, admin: Account, path: str, body: dict[str, Any]) -> str:
    r = await client.post(path, json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def get(client: AsyncClient, admin: Account, path: str) -> dict[str, Any]:
    r = await client.get(path, headers=admin.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def labels(journey: dict[str, Any]) -> list[str]:
    return [str(step["label"]) for step in journey["steps"]]


async def poll(
    client: AsyncClient, admin: Account, path: str, ready: Any, *, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = await get(client, admin, path)
        if ready(body):
            return body
        assert time.monotonic() < deadline, f"{path} never got ready: {body}"
        await asyncio.sleep(0.5)


async def reply_once_waiting(
    client: AsyncClient, admin: Account, job_id: str, twilio: FakeTwilio
) -> list[httpx.Response]:
    """Each replying contact answers as soon as its record waits for the reply.

    Polls the waiting records (a condition, not a clock): the repliers' window is longer than
    the test, so however slowly the sends go out, no replier times out before its answer.
    """
    pending = {i for i in range(ROWS) if group(i) != "silent"}
    answers: list[httpx.Response] = []
    deadline = time.monotonic() + 90
    while pending:
        # Only the waiting records: the worker shares this event loop, so polling stays cheap.
        waiting = await get(
            client, admin, f"/api/v1/jobs/{job_id}/records?status=waiting&limit=500"
        )
        rows = {int(r["metadata"]["name"].removeprefix("Contact ")) for r in waiting["data"]}
        ready = sorted(pending & rows)
        signed = [
            twilio.inbound_message(
                f"whatsapp:{phone(i)}", f"whatsapp:{SENDER}", group(i), url=INBOUND_URL
            )
            for i in ready
        ]
        answers += await asyncio.gather(
            *(client.post(x.path, content=x.body, headers=x.headers) for x in signed)
        )
        pending -= set(ready)
        assert time.monotonic() < deadline, f"never seen waiting: {sorted(pending)}"
        await asyncio.sleep(0.5)
    return answers


# --- privacy helpers -------------------------------------------------------------------------


async def raw_histories(plain: Client, workflow_id: str, since: str) -> list[WorkflowHistory]:
    """Every run of `workflow_id` this test started (a job continues as new), read without the
    codec. Record ids restart in each test module's database while the Temporal server is shared,
    so `rec-1` of an earlier module is a different, older workflow run."""
    query = f"WorkflowId = '{workflow_id}' AND StartTime >= '{since}'"
    runs = [w.run_id async for w in plain.list_workflows(query)]
    assert runs, f"no workflow {workflow_id}"
    return [await plain.get_workflow_handle(workflow_id, run_id=r).fetch_history() for r in runs]


def leaks(text: str | bytes, needles: dict[str, str]) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode()
    return [what for what, value in needles.items() if value.encode() in data]


async def no_plaintext_in_histories(
    settings: Settings,
    worker: Client,
    workflow_ids: list[str],
    *,
    canary_ids: set[str],
    since: str,
) -> None:
    """No canary in the raw history bytes or JSON, read with a plain client (no codec)."""
    plain = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    codec = worker.data_converter.payload_codec
    assert codec is not None
    for workflow_id in workflow_ids:
        for history in await raw_histories(plain, workflow_id, since):
            raw = b"".join(event.SerializeToString() for event in history.events)
            assert b"Workflow" in raw  # the check reads real history bytes
            assert leaks(raw, NEEDLES) == [], workflow_id
            assert leaks(history.to_json(), NEEDLES) == [], workflow_id
            if workflow_id in canary_ids:
                # …while the codec reads the canary's number back: it did go through history.
                sealed = [p for event in history.events for p in payloads_in(event)]
                opened = b"".join(p.data for p in await codec.decode(sealed))
                assert CANARY_PHONE.encode() in opened, workflow_id


def log_text(record: logging.LogRecord) -> str:
    """What any handler could write for the record: message, exception, stack and extras."""
    return "\n".join(
        [record.getMessage(), record.exc_text or "", record.stack_info or "", repr(vars(record))]
    )


class TestCampaign:
    async def test_two_hundred_contacts_branch_retry_and_leak_nothing(
        self,
        client: AsyncClient,
        worker: Client,
        settings: Settings,
        openai_fake: FakeOpenAI,
        twilio: FakeTwilio,
        crm: FakeCrm,
        caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str],
        temporal_server: Any,
    ) -> None:
        since = datetime.now(UTC).isoformat()
        caplog.set_level(logging.DEBUG)
        server_log_from = temporal_server.log_file.stat().st_size
        bodies: list[tuple[str, str]] = []

        async def keep(response: httpx.Response) -> None:
            await response.aread()
            bodies.append((f"{response.request.method} {response.request.url}", response.text))

        client.event_hooks = {"request": [], "response": [keep]}

        campaign = await start_campaign(client, openai_fake, twilio, crm)
        admin, job_id = campaign.admin, campaign.job_id

        # Half the contacts reply through the signed inbound webhook; the rest time out.
        answers = await reply_once_waiting(client, admin, job_id, twilio)
        assert len(answers) == ROWS // 2
        assert {a.status_code for a in answers} == {200}
        assert {a.headers["content-type"] for a in answers} == {"text/xml; charset=utf-8"}

        job = await wait_job(client, admin, job_id, timeout=90)
        assert job["status"] == "completed", job
        assert job["counts"]["total"] == ROWS
        assert job["counts"]["completed"] == ROWS

        # --- dispositions and outcomes per group ------------------------------------------------
        recs = await records(client, admin, job_id)
        assert len(recs) == ROWS
        by_name = {rec["metadata"]["name"]: rec for rec in recs}
        expected = {"later": "Retry", "yes": "Interested", "silent": "No reply"}
        for i in range(ROWS):
            rec = by_name[f"Contact {i}"]
            assert rec["status"] == "completed", rec
            assert rec["disposition"] == expected[group(i)], rec
            assert rec["outcomes"]["draft"] == draft_for(f"Contact {i}")
            assert rec["outcomes"]["tier"] == "gold"
            if group(i) == "silent":
                assert "reply" not in rec["outcomes"]
            else:
                assert rec["outcomes"]["reply"] == group(i)
                assert rec["outcomes"]["message_status"] == "replied"

        # --- journeys: one record per group -----------------------------------------------------
        first = {
            g: by_name[f"Contact {min(i for i in range(ROWS) if group(i) == g)}"] for g in expected
        }
        journeys = {
            g: await get(client, admin, f"/api/v1/records/{rec['id']}/journey")
            for g, rec in first.items()
        }
        sent = [
            "log · logged",
            "api_call · api_called",
            "ai_agent · ai_responded",
            "decision · branched",
            "whatsapp · sent",
        ]
        answered = ["provider_event · received", "whatsapp · replied", "decision · branched"]
        assert labels(journeys["later"]) == [
            *sent,
            *answered,
            "tag · tagged",
            "supporting · started",
        ]
        assert labels(journeys["yes"]) == [*sent, *answered, "tag · tagged", "supporting · none"]
        assert labels(journeys["silent"]) == [
            *sent,
            "timer · fired",
            "whatsapp · no_reply",
            "tag · tagged",
            "supporting · none",
        ]
        for g, rec in first.items():
            ai = next(s for s in journeys[g]["steps"] if s["type"] == "ai_agent")
            assert ai["detail"]["outputs"] == {"draft": draft_for(rec["metadata"]["name"])}

        # --- retry children: one per "later" record, in their own job ----------------------------
        canary = first["later"]
        assert canary["metadata"]["phone"] == CANARY_PHONE
        root = await poll(
            client,
            admin,
            f"/api/v1/records/{canary['id']}",
            lambda rec: len(rec["children"]) == 1 and rec["children"][0]["status"] == "completed",
        )
        [retry] = root["children"]
        assert (retry["kind"], retry["attempt"]) == ("retry", 1)
        assert retry["jobId"] != job_id
        later_ids = {rec["id"] for rec in recs if rec["disposition"] == "Retry"}
        support = await poll(
            client,
            admin,
            f"/api/v1/jobs/{retry['jobId']}",
            lambda j: j["counts"]["completed"] == len(later_ids) and j["status"] == "completed",
        )
        assert support["trigger"] == "retry"
        assert support["spinnerId"] == campaign.child_spinner_id
        assert support["parentJobId"] == job_id
        assert support["counts"]["total"] == len(later_ids) == ROWS // 4
        kids = await records(client, admin, support["id"])
        assert sorted(k["parentRecordId"] for k in kids) == sorted(later_ids)
        assert {(k["status"], k["disposition"]) for k in kids} == {("completed", "Retried")}
        assert [c["recordId"] for c in journeys["later"]["children"]] == [retry["recordId"]]
        child = await get(client, admin, f"/api/v1/records/{retry['recordId']}/journey")
        assert child["parentRecordId"] == canary["id"]
        assert child["workflowId"] == f"rec-{canary['id']}-retry-1"
        assert labels(child) == [
            "started_by · retry",
            "timer · fired",  # the retry delay
            "log · logged",
            "tag · tagged",
            "supporting · none",  # max_attempts 1
        ]

        # --- provider ledgers: one WhatsApp per contact, one completion per record -------------
        sends: dict[str, list[dict[str, Any]]] = {}
        for message in twilio.sends:
            sends.setdefault(message["to"], []).append(message)
        assert {to: len(s) for to, s in sends.items()} == {
            f"whatsapp:{phone(i)}": 1 for i in range(ROWS)
        }
        for i in range(ROWS):
            [message] = sends[f"whatsapp:{phone(i)}"]
            assert message["from"] == f"whatsapp:{SENDER}"
            assert message["body"] == draft_for(f"Contact {i}")
        completions = openai_fake.completions
        asked = sorted(message_text(c["messages"][-1]) for c in completions)
        assert asked == sorted(f"Draft a first message to Contact {i}." for i in range(ROWS))
        assert {c["headers"]["authorization"] for c in completions} == {
            f"Bearer {CANARY_OPENAI_KEY}"
        }

        looked_up = [x for x in crm.ledger.requests if x["path"].startswith("/contacts/")]
        assert sorted(x["path"] for x in looked_up) == sorted(
            f"/contacts/{phone(i)}" for i in range(ROWS)
        )
        assert {x["headers"].get("Authorization") for x in looked_up} == {
            f"Bearer {CANARY_VAULT_VALUE}"
        }

        # --- privacy canary ------------------------------------------------------------------------
        # A few more API reads that would show a leaked credential: integrations (and their
        # connection tests, which call the fakes with the stored secrets), channels, Vault.
        for integration_id in campaign.integration_ids:
            await get(client, admin, f"/api/v1/integrations/{integration_id}")
            r = await client.post(
                f"/api/v1/integrations/{integration_id}/test", headers=admin.headers
            )
            assert r.status_code == 200, r.text
        await get(client, admin, "/api/v1/integrations")
        await get(client, admin, "/api/v1/channels")
        listed = await get(client, admin, "/api/v1/vault/secrets")
        assert VAULT_NAME in {x["name"] for x in listed["data"]}

        sampled = [canary["id"]] + [
            r["id"]
            for g in expected
            for r in [x for x in recs if x["disposition"] == expected[g]][:5]
        ]
        await no_plaintext_in_histories(
            settings,
            worker,
            [f"job-{job_id}", *(f"rec-{i}" for i in dict.fromkeys(sampled)), child["workflowId"]],
            # The canary's own history carries its number (its SMS result, encrypted); its retry
            # child's does not: metadata stays in the workers' plan cache, out of history.
            canary_ids={f"rec-{canary['id']}"},
            since=since,
        )

        leaked_logs = [
            (rec.name, rec.levelname, what, rec.getMessage()[:300])
            for rec in caplog.records
            for what in leaks(log_text(rec), NEEDLES)
        ]
        assert leaked_logs == []
        assert any(rec.name.startswith("temporalio.") for rec in caplog.records)
        out, err = capfd.readouterr()  # Temporal Core (Rust) logs straight to stderr
        assert leaks(out + err, NEEDLES) == []
        with open(temporal_server.log_file, "rb") as server_log:
            server_log.seek(server_log_from)
            assert leaks(server_log.read(), NEEDLES) == []

        # Contact numbers are legitimately in the records API (metadata): secrets only here.
        # Every reply webhook's answer and every API answer above was kept (how many polls the
        # waits took varies, so only the webhooks are counted exactly).
        replies = [call for call, _ in bodies if "/webhooks/twilio/" in call]
        assert len(replies) >= ROWS // 2
        assert len(bodies) > len(replies)
        assert [(call, what) for call, body in bodies for what in leaks(body, SECRETS)] == []
