"""The Call Analyzer's intake end to end on the real servers: a call_analyzer project created
through the API (its Calls table, Call intake spinner and paused nightly schedule), its setup
(SeaweedFS storage, the Deepgram fake, the OpenAI fake), tags of the four kinds and a scorecard
with a bundle; 50 generated WAVs in the bucket analysed by firing the nightly schedule. Asserts
what a user checks: analysed calls (tags with evidence, scores, bands, summaries), schedules,
records, analytics, the plan meter and what the providers received."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow

from cxgear.stack.seaweedfs import EmbeddedSeaweedFS
from infra.db import create_engine
from infra.settings import Settings
from store.usage import current_month
from tests.builders import Account, signup, wait_job
from tests.calls_builders import call_integrations, put_recording, tone_wav
from tests.fakes.deepgram_api import FakeDeepgram, Turns, running_deepgram
from tests.fakes.openai_api import FakeOpenAI, Messages, message_text, running_openai
from workflows.contracts import ScheduledRunResult, schedule_id

CALLS = 50
TAGS: list[dict[str, Any]] = [
    {"kind": "metadata", "name": "inbound", "condition": 'direction == "inbound"'},
    {"kind": "bag_of_words", "name": "apology", "phrases": ["sorry"], "speaker": "0"},
    {"kind": "genai", "name": "resolved", "question": "Did the agent resolve the problem?"},
    {
        "kind": "genai",
        "name": "reason",
        "question": "What product did the customer call about?",
        "mode": "extract",
    },
    {"kind": "derived", "name": "recovered", "condition": "apology and resolved"},
]
CARD: dict[str, Any] = {
    "name": "Support QA",
    "questions": [
        {"id": "sorry", "text": "Apologised", "points": 40, "condition": "apology"},
        {"id": "fix", "text": "Fixed the problem", "bundleId": "resolution"},
        {"id": "close", "text": "Closed the case", "bundleId": "resolution"},
    ],
    "bundles": [
        {"id": "resolution", "name": "Resolution", "condition": "resolved", "points": 60},
    ],
}
# By conversation kind: (apology, resolved) → points of 100 and band (good ≥ 80, fair ≥ 60).
KINDS = {
    0: (True, True, 100, "good"),
    1: (True, False, 40, "poor"),
    2: (False, True, 60, "fair"),
    3: (False, False, 0, "poor"),
}


def conversation(i: int) -> Turns:
    apology, resolved, _, _ = KINDS[i % 4]
    turns: Turns = [(0, f"Thanks for calling, this is agent {i}."), (1, "My router is broken.")]
    if apology:
        turns.append((0, "I am so sorry about that."))
    turns.append((0, "I issued a refund today." if resolved else "Please call back tomorrow."))
    return turns


def model(messages: Messages) -> str:
    """Answers like a model: GenAI tag groups in JSON from the transcript, else a summary."""
    system, user = message_text(messages[0]), message_text(messages[1])
    lines = re.findall(r"^\[(\d+)\] speaker \S+ @[\d.]+s: (.*)$", user, re.MULTILINE)
    if system.startswith("You review customer service calls"):
        refund = [(int(i), said) for i, said in lines if "refund" in said]
        router = [(int(i), said) for i, said in lines if "router" in said]
        answers: dict[str, Any] = {
            "resolved": {
                "answer": bool(refund),
                "utterance": refund[0][0] if refund else None,
                "quote": "issued a refund" if refund else None,
            },
            "reason": {
                "answer": bool(router),
                "value": "router" if router else None,
                "utterance": router[0][0] if router else None,
                "quote": "router" if router else None,
            },
        }
        return json.dumps({"answers": answers})
    turns = [line for line in user.splitlines() if line.startswith("[")]
    return f"Summary of {len(turns)} turns."


@pytest.fixture(scope="module")
def deepgram() -> Iterator[FakeDeepgram]:
    with running_deepgram() as fake:
        yield fake


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeOpenAI]:
    with running_openai() as fake:
        fake.responder = model
        yield fake


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(settings.database_url)
    yield eng
    await eng.dispose()


def url(project_id: str, tail: str) -> str:
    return f"/api/v1/projects/{project_id}/{tail}"


@dataclass
class CallProject:
    admin: Account
    id: str
    table_id: str
    spinner_id: str
    schedule: dict[str, Any]
    prefix: str


async def new_call_project(client: AsyncClient) -> CallProject:
    admin = await signup(client)
    r = await client.post(
        "/api/v1/projects",
        json={"name": f"Calls {uuid.uuid4().hex[:6]}", "type": "call_analyzer"},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    project_id = r.json()["id"]
    tables = (await client.get(url(project_id, "data-tables"), headers=admin.headers)).json()
    [table] = tables["data"]
    assert table["name"] == "Calls"
    assert table["columns"] == [
        "recording_url",
        "call_id",
        "agent",
        "direction",
        "started_at",
        "duration_s",
    ]
    spinners = (await client.get(url(project_id, "spinners"), headers=admin.headers)).json()
    [spinner] = spinners["data"]
    assert spinner["name"] == "Call intake" and spinner["latestVersion"] == 1
    assert [s["type"] for s in spinner["draft"]["steps"]] == [
        "transcribe",
        "apply_tags",
        "qa_score",
        "summarize",
        "tag",
    ]
    r = await client.get(f"/api/v1/spinners/{spinner['id']}/schedules", headers=admin.headers)
    [schedule] = r.json()["data"]
    assert (schedule["cron"], schedule["timezone"]) == ("0 2 * * *", "UTC")
    assert schedule["onlyUnanalysed"] is True and schedule["paused"] is True
    return CallProject(
        admin, project_id, table["id"], spinner["id"], schedule, f"intake-{uuid.uuid4().hex[:8]}"
    )


async def configure(
    client: AsyncClient,
    cp: CallProject,
    s3_server: EmbeddedSeaweedFS,
    deepgram: FakeDeepgram,
    openai_fake: FakeOpenAI,
) -> None:
    admin = cp.admin
    uses = await call_integrations(client, admin, s3_server, cp.prefix, deepgram, openai_fake)
    for tag in TAGS:
        r = await client.post(url(cp.id, "call-tags"), json=tag, headers=admin.headers)
        assert r.status_code == 201, r.text
    r = await client.post(url(cp.id, "scorecards"), json=CARD, headers=admin.headers)
    assert r.status_code == 201, r.text
    # Two of three integrations: still incomplete, the nightly schedule stays paused.
    partial = {"sttIntegrationId": uses.stt["id"], "llmIntegrationId": uses.llm["id"]}
    r = await client.put(url(cp.id, "call-setup"), json=partial, headers=admin.headers)
    assert r.status_code == 200 and r.json()["complete"] is False, r.text
    assert (await schedule_of(client, cp))["paused"] is True
    r = await client.put(
        url(cp.id, "call-setup"),
        json={**partial, "storageIntegrationId": uses.storage["id"]},
        headers=admin.headers,
    )
    assert r.status_code == 200 and r.json()["complete"] is True, r.text
    assert (await schedule_of(client, cp))["paused"] is False


async def schedule_of(client: AsyncClient, cp: CallProject) -> dict[str, Any]:
    r = await client.get(f"/api/v1/spinners/{cp.spinner_id}/schedules", headers=cp.admin.headers)
    assert r.status_code == 200, r.text
    return dict(r.json()["data"][0])


async def add_rows(client: AsyncClient, cp: CallProject, rows: list[str]) -> None:
    csv_text = "recording_url,call_id,agent,direction,started_at,duration_s\n" + "\n".join(rows)
    r = await client.post(
        f"/api/v1/data-tables/{cp.table_id}/append",
        files={"file": ("rows.csv", (csv_text + "\n").encode(), "text/csv")},
        headers=cp.admin.headers,
    )
    assert r.status_code in (200, 201), r.text


async def fire(worker: Client, cp: CallProject) -> str | None:
    """Fires the nightly schedule now; the job it made (None: it found no rows)."""
    handle = worker.get_schedule_handle(schedule_id(cp.schedule["id"]))
    before = len((await handle.describe()).info.recent_actions)
    await handle.trigger()
    for _ in range(300):
        actions = (await handle.describe()).info.recent_actions
        if len(actions) > before:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the schedule did not fire")
    action = actions[-1].action
    assert isinstance(action, ScheduleActionExecutionStartWorkflow)
    run = worker.get_workflow_handle(action.workflow_id, result_type=ScheduledRunResult)
    result = await run.result()
    return result.job_id


async def analysed_calls(engine: AsyncEngine, project_id: str) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("select * from analysed_call where project_id = :p"), {"p": project_id}
        )
        return {str(r.call_id): dict(r._mapping) for r in rows}


class TestNightlyIntake:
    async def test_fifty_recordings_are_analysed_once_by_the_nightly_schedule(
        self,
        client: AsyncClient,
        worker: Client,
        s3_server: EmbeddedSeaweedFS,
        deepgram: FakeDeepgram,
        openai_fake: FakeOpenAI,
        engine: AsyncEngine,
    ) -> None:
        cp = await new_call_project(client)
        await configure(client, cp, s3_server, deepgram, openai_fake)
        s3 = s3_server.client()
        rows = []
        for i in range(CALLS):
            audio = tone_wav(200 + 13 * i, 0.25)
            deepgram.answer(audio, conversation(i))
            put_recording(s3, cp.prefix, f"c{i}.wav", audio)
            direction = "inbound" if i % 2 == 0 else "outbound"
            agent = f"agent{i % 3}"
            rows.append(
                f"c{i}.wav,c{i},{agent},{direction},2026-12-01T10:{i:02d}:00+00:00,{30 + i}"
            )
        await add_rows(client, cp, rows)
        heard, asked = len(deepgram.transcriptions), len(openai_fake.completions)

        job_id = await fire(worker, cp)
        assert job_id is not None
        job = await wait_job(client, cp.admin, job_id, timeout=300)
        assert job["status"] == "completed", job
        assert job["counts"]["total"] == CALLS

        calls = await analysed_calls(engine, cp.id)
        assert len(calls) == CALLS
        # A record links to the analysed call its intake wrote, and the call back to the record.
        one = calls["c0"]
        record = await client.get(f"/api/v1/records/{one['record_id']}", headers=cp.admin.headers)
        assert record.status_code == 200, record.text
        assert record.json()["analysedCallId"] == one["id"]
        detail = await client.get(f"/api/v1/analysed-calls/{one['id']}", headers=cp.admin.headers)
        assert detail.status_code == 200, detail.text
        for i in range(CALLS):
            apology, resolved, points, band = KINDS[i % 4]
            got = calls[f"c{i}"]
            tags = got["tags"]
            assert tags["inbound"]["hit"] is (i % 2 == 0)
            assert tags["apology"]["hit"] is apology
            assert tags["resolved"]["hit"] is resolved
            assert tags["recovered"]["hit"] is (apology and resolved)
            assert tags["reason"]["value"] == "router"
            if apology:
                [evidence] = tags["apology"]["evidence"]
                assert evidence["quote"] == "I am so sorry about that."
                assert evidence["utteranceIndex"] == 2
            if resolved:
                [evidence] = tags["resolved"]["evidence"]
                assert evidence["quote"] == "issued a refund"
                assert evidence["utteranceIndex"] == (3 if apology else 2)
            assert (got["score"], got["max_score"], got["band"]) == (points, 100, band)
            assert got["final_band"] == band
            assert got["summary"] == f"Summary of {len(conversation(i))} turns."
            assert got["agent"] == f"agent{i % 3}" and got["duration_s"] == 30 + i
            assert [u["text"] for u in got["transcript"]] == [t for _, t in conversation(i)]
            assert got["scorecard_snapshot"]["name"] == "Support QA"
            assert got["stt_ms"] is not None and got["llm_ms"] is not None

        # One STT request per call, and per call one model call for the one GenAI group plus
        # one for the summary.
        assert len(deepgram.transcriptions) == heard + CALLS
        assert len(openai_fake.completions) == asked + 2 * CALLS
        records = await client.get(
            f"/api/v1/jobs/{job_id}/records?limit=500", headers=cp.admin.headers
        )
        by_call = {r["metadata"]["call_id"]: r for r in records.json()["data"]}
        # The band is the record's disposition; the history holds figures, not the transcript.
        first = by_call["c0"]
        assert first["outcomes"]["band"] == "good" and first["outcomes"]["score"] == 100
        assert first["outcomes"]["hit_tags"] == [
            "apology",
            "inbound",
            "reason",
            "recovered",
            "resolved",
        ]
        assert "sorry" not in json.dumps(first["outcomes"])
        assert by_call["c1"]["disposition"] == "poor"

        # The second firing finds nothing new: no job, nothing asked of the providers.
        assert await fire(worker, cp) is None
        assert len(deepgram.transcriptions) == heard + CALLS
        assert len(await analysed_calls(engine, cp.id)) == CALLS
        async with engine.connect() as conn:
            used = (
                await conn.execute(
                    text(
                        "select used from usage_counter u join project p on p.org_id = u.org_id"
                        " where p.id = :p and meter = 'call_analyses' and month = :m"
                    ),
                    {"p": cp.id, "m": current_month()},
                )
            ).scalar_one()
        assert used == CALLS

        # A new scorecard version changes nothing already analysed.
        cards = (await client.get(url(cp.id, "scorecards"), headers=cp.admin.headers)).json()
        card_id = cards["data"][0]["id"]
        stricter = {**CARD, "bundles": [{**CARD["bundles"][0], "points": 10}]}
        r = await client.post(
            f"/api/v1/scorecards/{card_id}/versions", json=stricter, headers=cp.admin.headers
        )
        assert r.status_code == 201, r.text
        after = await analysed_calls(engine, cp.id)
        assert {c: (a["score"], a["band"]) for c, a in after.items()} == {
            c: (a["score"], a["band"]) for c, a in calls.items()
        }

        # An override changes the analytics, keeping the original beside it.
        async def analytics() -> dict[str, Any]:
            r = await client.get(
                url(cp.id, "call-analytics"), params={"days": 90}, headers=cp.admin.headers
            )
            assert r.status_code == 200, r.text
            return dict(r.json())

        before = await analytics()
        assert before["calls"] == CALLS
        assert before["bands"] == {"good": 13, "fair": 12, "poor": 25}
        r = await client.post(
            f"/api/v1/analysed-calls/{calls['c3']['id']}/overrides",
            json={"questionId": "resolution", "points": 60, "reason": "Resolved by email later"},
            headers=cp.admin.headers,
        )
        assert r.status_code == 201, r.text
        moved = await analytics()
        assert moved["bands"] == {"good": 13, "fair": 13, "poor": 24}
        assert moved["averagePercent"] > before["averagePercent"]
        overridden = (await analysed_calls(engine, cp.id))["c3"]
        assert (overridden["score"], overridden["band"]) == (0, "poor")
        assert (overridden["final_score"], overridden["final_band"]) == (60, "fair")


class TestBadInput:
    async def test_bad_recordings_end_clearly_and_silence_is_a_no_speech_analysis(
        self,
        client: AsyncClient,
        worker: Client,
        s3_server: EmbeddedSeaweedFS,
        deepgram: FakeDeepgram,
        openai_fake: FakeOpenAI,
        engine: AsyncEngine,
    ) -> None:
        cp = await new_call_project(client)
        await configure(client, cp, s3_server, deepgram, openai_fake)
        s3 = s3_server.client()
        silence = tone_wav(0, 1.5)
        deepgram.answer(silence, [])
        put_recording(s3, cp.prefix, "empty.wav", b"")
        put_recording(s3, cp.prefix, "notes.wav", b"%PDF-1.7 not audio")
        put_recording(s3, cp.prefix, "silence.wav", silence)
        await add_rows(
            client,
            cp,
            [
                "nowhere.wav,missing,ann,inbound,,",
                "notes.wav,pdf,ann,inbound,,",
                "empty.wav,empty,ann,inbound,,",
                "silence.wav,silent,ann,inbound,,",
            ],
        )
        asked = len(openai_fake.completions)
        job_id = await fire(worker, cp)
        assert job_id is not None
        job = await wait_job(client, cp.admin, job_id, timeout=120)
        assert job["status"] == "partial", job
        records = await client.get(
            f"/api/v1/jobs/{job_id}/records?limit=500", headers=cp.admin.headers
        )
        by_call = {r["metadata"]["call_id"]: r for r in records.json()["data"]}
        expected = {
            "missing": "not found in storage (404)",
            "pdf": "is not in a supported audio format",
            "empty": "is empty (0 bytes)",
        }
        for call, error in expected.items():
            record = by_call[call]
            assert record["status"] == "failed" and record["failedStep"] == "transcribe", record
            assert error in record["error"], record["error"]

        silent = by_call["silent"]
        assert silent["status"] == "completed", silent
        assert silent["disposition"] == "no_speech"
        calls = await analysed_calls(engine, cp.id)
        assert set(calls) == {"silent"}
        quiet = calls["silent"]
        assert quiet["transcript"] == [] and quiet["summary"] == ""
        assert quiet["score"] is None and quiet["band"] is None
        # Metadata tags still hold; nothing was asked of the model.
        assert quiet["tags"]["inbound"]["hit"] is True
        assert quiet["tags"]["resolved"]["hit"] is False
        assert len(openai_fake.completions) == asked
        # Failed rows have no analysed call: the next night takes them again.
        assert await fire(worker, cp) is not None

    async def test_an_incomplete_setup_fails_the_record_clearly(
        self, client: AsyncClient, worker: Client
    ) -> None:
        cp = await new_call_project(client)
        await add_rows(client, cp, ["x.wav,c1,ann,inbound,,"])
        r = await client.post(
            f"/api/v1/spinners/{cp.spinner_id}/run",
            json={"tableId": cp.table_id},
            headers=cp.admin.headers,
        )
        assert r.status_code == 201, r.text
        job = await wait_job(client, cp.admin, r.json()["id"], timeout=60)
        records = await client.get(f"/api/v1/jobs/{job['id']}/records", headers=cp.admin.headers)
        [record] = records.json()["data"]
        assert record["status"] == "failed"
        assert "the project's call setup is incomplete" in record["error"], record["error"]
        assert "no speech-to-text, no storage, no LLM integration chosen" in record["error"]


class TestPlanMeter:
    async def test_call_analyses_past_the_plan_fail_with_plan_limit(
        self,
        client: AsyncClient,
        worker: Client,
        s3_server: EmbeddedSeaweedFS,
        deepgram: FakeDeepgram,
        openai_fake: FakeOpenAI,
        engine: AsyncEngine,
    ) -> None:
        cp = await new_call_project(client)
        await configure(client, cp, s3_server, deepgram, openai_fake)
        s3 = s3_server.client()
        rows = []
        for i in range(3):
            audio = tone_wav(3000 + 17 * i, 0.2)
            deepgram.answer(audio, conversation(i))
            put_recording(s3, cp.prefix, f"m{i}.wav", audio)
            rows.append(f"m{i}.wav,m{i},ann,inbound,,")
        await add_rows(client, cp, rows)
        # A trial organization (500 call analyses a month) that has used 498.
        async with engine.begin() as conn:
            org = (
                await conn.execute(text("select org_id from project where id = :p"), {"p": cp.id})
            ).scalar_one()
            await conn.execute(
                text("update organization set plan = 'trial' where id = :o"), {"o": org}
            )
            await conn.execute(
                text(
                    "insert into usage_counter (org_id, meter, month, used)"
                    " values (:o, 'call_analyses', :m, 498)"
                ),
                {"o": org, "m": current_month()},
            )
        heard = len(deepgram.transcriptions)
        job_id = await fire(worker, cp)
        assert job_id is not None
        job = await wait_job(client, cp.admin, job_id, timeout=120)
        records = await client.get(f"/api/v1/jobs/{job_id}/records", headers=cp.admin.headers)
        statuses = sorted(r["status"] for r in records.json()["data"])
        assert statuses == ["completed", "completed", "failed"], job
        [refused] = [r for r in records.json()["data"] if r["status"] == "failed"]
        assert "trial plan allows 500 call analyses per month" in refused["error"]
        assert len(await analysed_calls(engine, cp.id)) == 2
        # Charged once per analysed call, never past the plan.
        assert len(deepgram.transcriptions) <= heard + 3
        async with engine.connect() as conn:
            used = (
                await conn.execute(
                    text(
                        "select used from usage_counter where org_id = :o"
                        " and meter = 'call_analyses' and month = :m"
                    ),
                    {"o": org, "m": current_month()},
                )
            ).scalar_one()
        assert used == 500
