"""The ai_agent step end to end: spinner through the API, in-process worker, fake OpenAI provider."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
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
from tests.fakes.openai_api import FakeOpenAI, Messages, message_text, running_openai

LABELS = ["Interested", "Not interested", "Callback"]
# Contact 5's first answer rambles and is corrected; Contact 7 never answers with a label.
CORRECTED, HOPELESS = "Contact 5", "Contact 7"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with running_openai() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_fake(fake: FakeOpenAI) -> Iterator[FakeOpenAI]:
    fake.replies.clear()
    fake.failures.clear()
    fake.ledger.clear()
    yield fake


def classify(messages: Messages) -> str:
    """Answers by content, like a model would: the amount owed decides the label."""
    task = message_text(messages[1])
    corrective = len(messages) > 2
    if HOPELESS in task:
        return "Hard to say without more context about this person" + "." * 300
    if CORRECTED in task and not corrective:
        return "I think they might want a call back later"
    match = re.search(r"owes (\d+)", task)
    assert match, task
    amount = int(match.group(1))
    if amount >= 60:
        return "Interested."
    if amount <= 20:
        return " not interested "
    return "callback"


def definition(integration_id: str) -> dict[str, Any]:
    return {
        "steps": [
            {"id": "greet", "type": "log", "message": "classifying {{name}}", "next": "classify"},
            {
                "id": "classify",
                "type": "ai_agent",
                "integration_id": integration_id,
                "role": "You sort leads for a collections team.",
                "task": "Lead {{name}} owes {{amount}}. How interested are they?",
                "mode": "classification",
                "labels": LABELS,
                "output": "intent",
                "timeout_s": 30,
                "next": "route",
            },
            {
                "id": "route",
                "type": "decision",
                "branches": [
                    {"when": 'intent == "Interested"', "label": "hot", "next": "hot"},
                    {"when": 'intent == "Not interested"', "label": "cold", "next": "cold"},
                ],
                "default": "later",
            },
            {"id": "hot", "type": "tag", "disposition": "Hot lead", "tags": ["ai"]},
            {"id": "cold", "type": "tag", "disposition": "Closed", "tags": ["ai"]},
            {"id": "later", "type": "tag", "disposition": "Call back", "tags": ["ai"]},
        ]
    }


async def integration(client: AsyncClient, admin: Account, body: dict[str, Any]) -> str:
    r = await client.post(
        "/api/v1/integrations",
        json={"name": f"llm {uuid.uuid4().hex[:6]}", **body},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def run_spinner(
    client: AsyncClient, admin: Account, integration_id: str, rows: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    p = await project(client, admin)
    table = await make_table(client, admin, project_id=p["id"], csv_text=contacts_csv(rows))
    spinner = await make_spinner(
        client, admin, project_id=p["id"], definition=definition(integration_id)
    )
    r = await client.post(
        f"/api/v1/spinners/{spinner['id']}/run",
        json={"tableId": table["id"]},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    job = await wait_job(client, admin, r.json()["id"])
    records = await client.get(f"/api/v1/jobs/{job['id']}/records?limit=500", headers=admin.headers)
    return job, list(records.json()["data"])


async def journey(client: AsyncClient, admin: Account, record_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/v1/records/{record_id}/journey", headers=admin.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def ai_step(steps: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = [s for s in steps if s["type"] == "ai_agent"]
    return found


class TestClassificationSpinner:
    async def test_labels_route_records_and_a_misfit_fails_clearly(
        self, client: AsyncClient, worker: Client, fake: FakeOpenAI
    ) -> None:
        fake.responder = classify
        admin = await signup(client)
        llm = await integration(
            client,
            admin,
            {
                "kind": "openai",
                "config": {"base_url": fake.base_url, "default_model": "gpt-4o-mini"},
                "credentials": fake.creds,
            },
        )
        job, records = await run_spinner(client, admin, llm, 10)
        assert job["status"] == "partial"
        by_name = {r["metadata"]["name"]: r for r in records}
        expected = {
            **{f"Contact {i}": ("Closed", "Not interested") for i in (0, 1, 2)},
            **{f"Contact {i}": ("Call back", "Callback") for i in (3, 4, 5)},
            **{f"Contact {i}": ("Hot lead", "Interested") for i in (6, 8, 9)},
        }
        for name, (disposition, intent) in expected.items():
            record = by_name[name]
            assert record["status"] == "completed", record
            assert record["disposition"] == disposition
            assert record["outcomes"]["intent"] == intent
            assert record["outcomes"]["tags"] == ["ai"]
        hopeless = by_name[HOPELESS]
        assert hopeless["status"] == "failed"
        assert hopeless["failedStep"] == "classify"
        assert hopeless["disposition"] is None
        assert "expected exactly one of the labels Interested, Not interested, Callback" in (
            hopeless["error"] or ""
        )
        # Every record asked once; the two misfits asked once more with a corrective message.
        completions = fake.completions
        assert len(completions) == 12
        assert sum(len(c["messages"]) == 4 for c in completions) == 2

        hot = await journey(client, admin, by_name["Contact 8"]["id"])
        labels = [s["label"] for s in hot["steps"]]
        assert labels == [
            "log · logged",
            "ai_agent · ai_responded",
            "decision · branched",
            "tag · tagged",
        ]
        step = ai_step(hot["steps"])
        assert step["detail"]["outputs"] == {"intent": "Interested"}
        assert step["messages"][0].startswith("model gpt-4o-mini · ")
        assert not any("Contact 8" in m for m in step["messages"])
        assert hot["output"]["intent"] == "Interested"

        corrected = ai_step((await journey(client, admin, by_name[CORRECTED]["id"]))["steps"])
        assert corrected["detail"]["outputs"] == {"intent": "Callback"}
        assert "2 calls" in corrected["messages"][0]

        failed = await journey(client, admin, hopeless["id"])
        assert failed["status"] == "failed"
        step = ai_step(failed["steps"])
        assert step["status"] == "failed"
        assert step["attempts"] == 1
        assert "did not fit classification mode" in step["error"]
        assert "got 'Hard to say without more context" in step["error"]
        assert len(step["error"]) < 500
        assert [s["type"] for s in failed["steps"]] == ["log", "ai_agent"]

    async def test_rate_limit_is_retried_by_temporal(
        self, client: AsyncClient, worker: Client, fake: FakeOpenAI
    ) -> None:
        fake.responder = classify
        fake.fail_next(1, status=429, retry_after=1)
        admin = await signup(client)
        llm = await integration(
            client,
            admin,
            {"kind": "openai", "config": {"base_url": fake.base_url}, "credentials": fake.creds},
        )
        job, records = await run_spinner(client, admin, llm, 1)
        assert job["status"] == "completed"
        [record] = records
        assert record["disposition"] == "Closed"
        step = ai_step((await journey(client, admin, record["id"]))["steps"])
        assert step["outcome"] == "ai_responded"
        assert step["attempts"] == 2
        assert len(fake.completions) == 1

    async def test_mock_integration_answers_without_a_provider(
        self, client: AsyncClient, worker: Client, fake: FakeOpenAI
    ) -> None:
        admin = await signup(client)
        mock = await integration(client, admin, {"kind": "mock"})
        job, records = await run_spinner(client, admin, mock, 4)
        assert job["status"] == "completed"
        assert all(r["outcomes"]["intent"] in LABELS for r in records)
        assert all(r["disposition"] in {"Hot lead", "Closed", "Call back"} for r in records)
        step = ai_step((await journey(client, admin, records[0]["id"]))["steps"])
        assert any('"ai_mock": true' in m for m in step["messages"])
        assert fake.ledger.requests_snapshot() == []
