"""LlmActivities.ai_agent in Temporal's ActivityEnvironment, against the fake OpenAI API, a real
database and Vault (the integration is created through the API, the record row with SQL)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.llm import LlmActivities
from activities.plans import PlanCache, StepRun
from infra.db import create_engine
from infra.providers import ProviderGuard
from infra.settings import Settings
from infra.vault import SecretStore
from models.spinner_language.steps import AiAgentStep
from tests.builders import Account, contacts_csv, make_spinner, make_table, project, signup
from tests.fakes.openai_api import FakeOpenAI, echo, message_text, running_openai
from tests.fakes.signed import FAKE_HOST
from workflows.contracts import StepResult

ROLE = "You qualify sales leads for {{context.projectId}}."
TASK = "Lead {{name}} owes {{amount}}."


@dataclass
class World:
    """One organization with a job to hang records on, and its LLM integrations."""

    settings: Settings
    client: AsyncClient
    admin: Account
    project_id: str
    job_id: str
    openai_id: str
    mock_id: str

    def record(self, metadata: dict[str, Any]) -> int:
        with psycopg.connect(self.settings.database_url.replace("+psycopg", "")) as conn:
            row = conn.execute(
                "insert into record (org_id, job_id, project_id, status, metadata, outcomes,"
                " attempts, created_at) values (%s, %s, %s, 'running', %s::jsonb, '{}'::jsonb,"
                " 0, now()) returning id",
                (self.admin.org_id, self.job_id, self.project_id, json.dumps(metadata)),
            ).fetchone()
        assert row is not None
        return int(row[0])

    async def integration(
        self,
        kind: str,
        *,
        config: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        account: Account | None = None,
    ) -> str:
        body: dict[str, Any] = {"kind": kind, "name": f"{kind} {uuid.uuid4().hex[:6]}"}
        if config is not None:
            body["config"] = config
        if credentials is not None:
            body["credentials"] = credentials
        r = await self.client.post(
            "/api/v1/integrations", json=body, headers=(account or self.admin).headers
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with running_openai() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_fake(fake: FakeOpenAI) -> Iterator[FakeOpenAI]:
    fake.responder = echo
    fake.replies.clear()
    fake.failures.clear()
    fake.ledger.clear()
    yield fake


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    db = create_engine(settings.database_url)
    yield db
    await db.dispose()


@pytest.fixture(scope="module")
async def world(app: FastAPI, settings: Settings, fake: FakeOpenAI) -> AsyncIterator[World]:
    transport = ASGITransport(app=app, client=("203.0.113.10", 40000))
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        admin = await signup(client)
        p = await project(client, admin)
        table = await make_table(client, admin, project_id=p["id"], csv_text=contacts_csv(1))
        spinner = await make_spinner(
            client,
            admin,
            project_id=p["id"],
            definition={"steps": [{"id": "t", "type": "tag", "disposition": "x"}]},
        )
        # The job only gives records a parent; no worker polls this module's queues.
        r = await client.post(
            f"/api/v1/spinners/{spinner['id']}/run",
            json={"tableId": table["id"]},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        w = World(settings, client, admin, p["id"], r.json()["id"], "", "")
        w.openai_id = await w.integration(
            "openai",
            config={"base_url": fake.base_url, "default_model": "gpt-4o-mini"},
            credentials=fake.creds,
        )
        w.mock_id = await w.integration("mock")
        yield w


def plans(engine: AsyncEngine, settings: Settings) -> PlanCache:
    return PlanCache(engine, public_api_url=settings.public_api_url)


@pytest.fixture(scope="module")
def llm(engine: AsyncEngine, settings: Settings) -> LlmActivities:
    return LlmActivities(
        engine,
        SecretStore(settings),
        plans=plans(engine, settings),
        provider_guard=ProviderGuard(settings.provider_allowed_hosts),
    )


def step(integration_id: str, **settings: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": "ask",
        "type": "ai_agent",
        "integration_id": integration_id,
        "role": ROLE,
        "task": TASK,
        "next": "after",
    }
    fields.update(settings)
    return AiAgentStep(**fields).model_dump(mode="json")


def step_run(
    world: World, config: dict[str, Any], metadata: dict[str, Any] | None = None
) -> StepRun:
    metadata = metadata if metadata is not None else {"name": "Ada Lovelace", "amount": "120"}
    record_id = world.record(metadata)
    return StepRun(
        f"rec-{record_id}",
        world.job_id,
        record_id,
        config,
        metadata,
        {},
        {"projectId": world.project_id, "jobId": world.job_id, "recordId": record_id},
    )


async def ai_agent(llm: LlmActivities, run: StepRun) -> StepResult:
    # The activity body behind ai_agent, given the step directly instead of through the plan cache.
    result: StepResult = await ActivityEnvironment().run(llm.agent, run)
    return result


async def failure(llm: LlmActivities, run: StepRun) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await ai_agent(llm, run)
    return caught.value


class TestModes:
    async def test_text_renders_role_and_task_and_stores_the_reply(
        self, llm: LlmActivities, world: World, fake: FakeOpenAI
    ) -> None:
        fake.script("Ada looks like a strong lead.")
        run = step_run(world, step(world.openai_id, temperature=0.7))
        result = await ai_agent(llm, run)
        assert result.outcome == "ai_responded"
        assert result.outputs == {"ai_response": "Ada looks like a strong lead."}
        assert result.next == "after"
        [call] = fake.completions
        assert call["model"] == "gpt-4o-mini"
        assert call["temperature"] == 0.7
        system, user = call["messages"]
        assert system == {
            "role": "system",
            "content": f"You qualify sales leads for {world.project_id}.",
        }
        assert user == {"role": "user", "content": "Lead Ada Lovelace owes 120."}
        assert "response_format" not in call["request"]
        # Model and token count only: no prompt text or personal data in the journey messages.
        [message] = result.messages
        assert message.startswith("model gpt-4o-mini · ") and message.endswith(" tokens")
        assert "Ada" not in message

    async def test_step_model_and_custom_output_name(
        self, llm: LlmActivities, world: World, fake: FakeOpenAI
    ) -> None:
        fake.script("Hello Ada")
        run = step_run(world, step(world.openai_id, model="gpt-4.1", output="greeting"))
        result = await ai_agent(llm, run)
        assert result.outputs == {"greeting": "Hello Ada"}
        assert fake.completions[0]["model"] == "gpt-4.1"
        assert result.messages[0].startswith("model gpt-4.1 · ")

    async def test_key_value_asks_for_a_json_object_and_keeps_the_listed_keys(
        self, llm: LlmActivities, world: World, fake: FakeOpenAI
    ) -> None:
        fake.script('```json\n{"intent": "buy", "budget": 120, "extra": "ignored"}\n```')
        run = step_run(world, step(world.openai_id, mode="key_value", keys=["intent", "budget"]))
        result = await ai_agent(llm, run)
        assert result.outputs == {"intent": "buy", "budget": 120}
        [call] = fake.completions
        assert call["request"]["response_format"] == {"type": "json_object"}
        system = message_text(call["messages"][0])
        assert '"intent", "budget"' in system and "JSON object" in system

    async def test_classification_returns_the_canonical_label(
        self, llm: LlmActivities, world: World, fake: FakeOpenAI
    ) -> None:
        fake.script("  not interested.  ")
        labels = ["Interested", "Not interested", "Callback"]
        run = step_run(
            world, step(world.openai_id, mode="classification", labels=labels, output="intent")
        )
        result = await ai_agent(llm, run)
        assert result.outputs == {"intent": "Not interested"}
        system = message_text(fake.completions[0]["messages"][0])
        assert all(f"- {label}" in system for label in labels)

    async def test_list_from_a_json_array(
        self, llm: LlmActivities, world: World, fake: FakeOpenAI
    ) -> None:
        fake.script('["call Monday", "send pricing"]')
        run = step_run(world, step(world.openai_id, mode="list", output="actions"))
        result = await ai_agent(llm, run)
        assert result.outputs == {"actions": ["call Monday", "send pricing"]}

    async def test_list_falls_back_to_one_item_per_line(
        self, llm: LlmActivities, world: World, fake: FakeOpenAI
    ) -> None:
        fake.script("- call Monday\n- send pricing\n\n3. follow up")
        run = step_run(world, step(world.openai_id, mode="list"))
        result = await ai_agent(llm, run)
        assert result.outputs == {"ai_response": ["call Monday", "send pricing", "follow up"]}
        assert len(fake.completions) == 1


class TestCorrectiveRetry:
    async def test_a_misfit_is_corrected_once(
        self, llm: LlmActivities, world: World, fake: FakeOpenAI
    ) -> None:
        fake.script("I would say they are probably interested", "Interested")
        labels = ["Interested", "Not interested"]
        run = step_run(world, step(world.openai_id, mode="classification", labels=labels))
        result = await ai_agent(llm, run)
        assert result.outputs == {"ai_response": "Interested"}
        first, second = fake.completions
        assert len(second["messages"]) == 4
        assert second["messages"][2] == {
            "role": "assistant",
            "content": "I would say they are probably interested",
        }
        correction = message_text(second["messages"][3])
        assert second["messages"][3]["role"] == "user"
        assert "Interested, Not interested" in correction
        assert "2 calls" in result.messages[0]

    async def test_missing_keys_are_a_misfit(
        self, llm: LlmActivities, world: World, fake: FakeOpenAI
    ) -> None:
        fake.script('{"intent": "buy"}', '{"intent": "buy", "budget": null}')
        run = step_run(world, step(world.openai_id, mode="key_value", keys=["intent", "budget"]))
        result = await ai_agent(llm, run)
        assert result.outputs == {"intent": "buy", "budget": None}
        assert "budget" in message_text(fake.completions[1]["messages"][3])

    async def test_two_misfits_fail_with_a_clear_non_retryable_error(
        self, llm: LlmActivities, world: World, fake: FakeOpenAI
    ) -> None:
        rambling = "Well, " + "it depends on many things " * 20
        fake.script("not json at all", rambling)
        run = step_run(world, step(world.openai_id, mode="key_value", keys=["intent", "budget"]))
        err = await failure(llm, run)
        assert err.type == "AiOutputMismatch"
        assert err.non_retryable
        assert "expected a JSON object with the keys intent, budget" in err.message
        assert "got 'Well, it depends on many things" in err.message
        # A short excerpt only, not the whole answer.
        got = err.message.split("; got ", 1)[1]
        assert len(got) <= 202 and got.endswith("…'")
        assert len(fake.completions) == 2

    async def test_empty_list_answer_twice_is_a_mismatch(
        self, llm: LlmActivities, world: World, fake: FakeOpenAI
    ) -> None:
        fake.script("", '["unterminated"')
        run = step_run(world, step(world.openai_id, mode="list"))
        err = await failure(llm, run)
        assert err.type == "AiOutputMismatch" and err.non_retryable
        assert "expected a JSON array of strings" in err.message
        assert "got '[\"unterminated\"'" in err.message


class TestProviderErrors:
    async def test_refused_key_is_permanent_and_names_no_key_material(
        self, llm: LlmActivities, world: World, fake: FakeOpenAI
    ) -> None:
        wrong = "sk-wrong-" + uuid.uuid4().hex
        bad = await world.integration(
            "openai", config={"base_url": fake.base_url}, credentials={"api_key": wrong}
        )
        err = await failure(llm, step_run(world, step(bad)))
        assert err.non_retryable
        assert "401" in err.message and "API key" in err.message
        assert wrong[:6] not in err.message and "sk-" not in err.message
        assert err.__cause__ is None
        assert fake.completions == []

    async def test_rate_limit_is_retryable_and_honours_retry_after(
        self, llm: LlmActivities, world: World, fake: FakeOpenAI
    ) -> None:
        fake.fail_next(1, status=429, retry_after=7)
        err = await failure(llm, step_run(world, step(world.openai_id)))
        assert not err.non_retryable
        assert err.next_retry_delay == timedelta(seconds=7)
        assert "429" in err.message

    async def test_server_error_is_retryable(
        self, llm: LlmActivities, world: World, fake: FakeOpenAI
    ) -> None:
        fake.fail_next(1, status=503)
        err = await failure(llm, step_run(world, step(world.openai_id)))
        assert not err.non_retryable
        assert err.next_retry_delay is None
        fake.script("fine now")
        result = await ai_agent(llm, step_run(world, step(world.openai_id)))
        assert result.outputs == {"ai_response": "fine now"}

    async def test_unreachable_provider_is_retryable(
        self, llm: LlmActivities, world: World, fake: FakeOpenAI
    ) -> None:
        down = await world.integration(
            "openai", config={"base_url": f"http://{FAKE_HOST}:9/v1"}, credentials=fake.creds
        )
        err = await failure(llm, step_run(world, step(down, timeout_s=5)))
        assert not err.non_retryable
        assert "could not reach" in err.message

    async def test_vault_down_is_retryable(
        self, engine: AsyncEngine, settings: Settings, world: World, fake: FakeOpenAI
    ) -> None:
        broken = settings.model_copy(update={"vault_address": "http://127.0.0.1:9"})
        llm = LlmActivities(
            engine,
            SecretStore(broken, timeout=1),
            plans=plans(engine, settings),
            provider_guard=ProviderGuard([FAKE_HOST]),
        )
        err = await failure(llm, step_run(world, step(world.openai_id)))
        assert err.type == "VaultUnavailable"
        assert not err.non_retryable
        assert fake.completions == []


class TestIntegrationLookup:
    async def test_another_organizations_integration_is_not_found(
        self, llm: LlmActivities, world: World, fake: FakeOpenAI
    ) -> None:
        other = await signup(world.client)
        theirs = await world.integration(
            "openai", config={"base_url": fake.base_url}, credentials=fake.creds, account=other
        )
        err = await failure(llm, step_run(world, step(theirs)))
        assert err.non_retryable
        assert f"integration {theirs} not found" in err.message
        assert fake.completions == []

    async def test_unknown_id_is_not_found(self, llm: LlmActivities, world: World) -> None:
        err = await failure(llm, step_run(world, step(str(uuid.uuid4()))))
        assert err.non_retryable and "not found" in err.message

    async def test_a_non_llm_integration_is_refused(self, llm: LlmActivities, world: World) -> None:
        twilio = await world.integration(
            "twilio", credentials={"account_sid": "AC" + "0" * 32, "auth_token": "t0ken"}
        )
        err = await failure(llm, step_run(world, step(twilio)))
        assert err.non_retryable
        assert "twilio integration, not an LLM" in err.message


class TestMockLlm:
    @pytest.mark.parametrize(
        ("settings_", "check"),
        [
            ({}, lambda out: out["ai_response"].startswith("[mock] ")),
            (
                {"mode": "key_value", "keys": ["intent", "budget"]},
                lambda out: (
                    set(out) == {"intent", "budget"}
                    and all(isinstance(v, str) and v for v in out.values())
                ),
            ),
            (
                {"mode": "classification", "labels": ["Hot", "Cold", "Warm"]},
                lambda out: out["ai_response"] in {"Hot", "Cold", "Warm"},
            ),
            (
                {"mode": "list"},
                lambda out: (
                    len(out["ai_response"]) == 3
                    and all(isinstance(x, str) for x in out["ai_response"])
                ),
            ),
        ],
        ids=["text", "key_value", "classification", "list"],
    )
    async def test_each_mode_fits_is_deterministic_and_calls_no_provider(
        self,
        llm: LlmActivities,
        world: World,
        fake: FakeOpenAI,
        settings_: dict[str, Any],
        check: Any,
    ) -> None:
        config = step(world.mock_id, **settings_)
        first = await ai_agent(llm, step_run(world, config))
        again = await ai_agent(llm, step_run(world, config))
        assert check(first.outputs), first.outputs
        assert first.outputs == again.outputs
        assert first.outcome == "ai_responded"
        assert first.messages[0].startswith("model mock · ")
        assert any('"ai_mock": true' in m for m in first.messages)
        assert fake.ledger.requests_snapshot() == []

    async def test_different_records_get_different_answers(
        self, llm: LlmActivities, world: World
    ) -> None:
        config = step(world.mock_id)
        ada = await ai_agent(llm, step_run(world, config, {"name": "Ada", "amount": "1"}))
        bob = await ai_agent(llm, step_run(world, config, {"name": "Bob", "amount": "2"}))
        assert ada.outputs != bob.outputs
        assert "Lead Ada owes 1." in ada.outputs["ai_response"]
