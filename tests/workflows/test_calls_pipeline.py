"""The call pipeline end to end: recordings in the embedded S3 server (SeaweedFS) or at an https
URL, a spinner `transcribe` → `summarize` → `tag`, the Deepgram and OpenAI fakes through their
real SDKs. Asserts what a user checks: record statuses, outputs and errors, the stored
transcripts, and what the providers received."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from cxgear.stack.seaweedfs import EmbeddedSeaweedFS
from infra.db import create_engine
from infra.settings import Settings
from tests.builders import Account, signup, wait_job
from tests.calls_builders import (
    BUCKET,
    call_integrations,
    calls_spinner,
    definition,
    integration,
    journey_step,
    put_recording,
    s3_storage,
    summarizer,
    tone_wav,
)
from tests.conftest import make_settings
from tests.fakes.deepgram_api import FakeDeepgram, Turns, running_deepgram
from tests.fakes.openai_api import FakeOpenAI, message_text, running_openai
from tests.fakes.signed import FAKE_HOST, FakeRequest, FakeResponse, Ledger, serve


class FileServer:
    """Recordings at plain URLs: GET /<path> answers the bytes put there, else 404."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://{FAKE_HOST}:{self.port}/{path}"

    def handle(self, request: FakeRequest) -> FakeResponse:
        body = self.files.get(request.path.lstrip("/"))
        if request.method != "GET" or body is None:
            return FakeResponse(404, b"not found")
        return FakeResponse(200, body, {"content-type": "audio/wav"})


@pytest.fixture(scope="module")
def files() -> Iterator[FileServer]:
    server = FileServer()
    with serve(server.handle, Ledger()) as (_, port):
        server.port = port
        yield server


@pytest.fixture(scope="module")
def deepgram() -> Iterator[FakeDeepgram]:
    with running_deepgram() as fake:
        yield fake


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeOpenAI]:
    with running_openai() as fake:
        yield fake


@pytest.fixture(scope="module")
def settings(
    database_url: str,
    temporal_server: Any,
    openbao_server: Any,
    files: FileServer,
) -> Settings:
    # Only the file server's port is allowed for recording URLs, like an operator would list it.
    return make_settings(
        database_url=database_url,
        temporal_address=temporal_server.address,
        vault_address=openbao_server.address,
        vault_token=openbao_server.token,
        http_allowed_hosts=[f"{FAKE_HOST}:{files.port}"],
        job_window=50,
        job_batch=25,
    )


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(settings.database_url)
    yield eng
    await eng.dispose()


async def run_calls(
    client: AsyncClient, admin: Account, spinner_definition: dict[str, Any], rows: list[str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """One job over rows `call_id,agent,recording_url`; the records by call id."""
    table, spinner = await calls_spinner(
        client, admin, rows=rows, spinner_definition=spinner_definition
    )
    r = await client.post(
        f"/api/v1/spinners/{spinner['id']}/run",
        json={"tableId": table["id"]},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    job = await wait_job(client, admin, r.json()["id"], timeout=120)
    records = await client.get(f"/api/v1/jobs/{job['id']}/records?limit=500", headers=admin.headers)
    assert records.status_code == 200, records.text
    return job, {rec["metadata"]["call_id"]: rec for rec in records.json()["data"]}


async def transcript(engine: AsyncEngine, record_id: int) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("select * from call_transcript where record_id = :id"), {"id": record_id}
            )
        ).first()
    return None if row is None else dict(row._mapping)


class TestDeepgramFromStorage:
    async def test_recordings_in_s3_and_at_urls_are_transcribed_stored_and_summarized(
        self,
        client: AsyncClient,
        worker: Client,
        s3_server: EmbeddedSeaweedFS,
        files: FileServer,
        deepgram: FakeDeepgram,
        openai_fake: FakeOpenAI,
        engine: AsyncEngine,
    ) -> None:
        openai_fake.responder = summarizer
        prefix = f"calls-{uuid.uuid4().hex[:8]}"
        s3 = s3_server.client()
        audio = {f"c{i}": tone_wav(300 + 50 * i, 1.0 + i / 4) for i in range(4)}
        conversations: dict[str, Turns] = {
            "c0": [(0, "Thanks for calling, this is Ana."), (1, "Hi, my parcel is late.")],
            "c1": [(0, "Good morning."), (1, "I want to cancel."), (0, "Sorry to hear that.")],
            "c2": [(1, "Hello?"), (0, "Hello, how can I help?")],
            "c3": [(0, "Welcome back."), (1, "Thanks, I need an invoice.")],
        }
        for call, body in audio.items():
            deepgram.answer(body, conversations[call])
        for call in ("c0", "c1", "c2"):
            put_recording(s3, prefix, f"{call}.wav", audio[call])
        files.files[f"{prefix}/c3.wav"] = audio["c3"]

        admin = await signup(client)
        uses = await call_integrations(client, admin, s3_server, prefix, deepgram, openai_fake)
        assert uses.storage["isMock"] is False
        assert s3_server.keys.secret_key not in str(uses.storage)
        rows = [
            f"c0,Ana,s3://{BUCKET}/{prefix}/c0.wav",
            "c1,Ben,c1.wav",  # a key under the integration's prefix
            f"c2,Cy,s3://{BUCKET}/{prefix}/c2.wav",
            f"c3,Di,{files.url(f'{prefix}/c3.wav')}",
        ]
        job, records = await run_calls(
            client, admin, definition(uses.stt["id"], uses.storage["id"], uses.llm["id"]), rows
        )

        assert job["status"] == "completed", job
        for call, turns in conversations.items():
            record = records[call]
            assert record["status"] == "completed", record
            outputs = record["outcomes"]
            assert outputs["utterance_count"] == len(turns)
            assert outputs["speaker_count"] == len({speaker for speaker, _ in turns})
            assert outputs["word_count"] == sum(len(t.split()) for _, t in turns)
            assert outputs["no_speech"] is False
            assert outputs["call_duration_s"] > 0
            opener = turns[0][0]
            assert outputs["summary"] == f"A call of {len(turns)} turns opened by {opener}."
            assert outputs["tags"] == ["analysed"]
            # The utterances live in PostgreSQL, not in the record's outputs.
            assert "utterances" not in outputs
            stored = await transcript(engine, record["id"])
            assert stored is not None
            assert stored["provider"] == "deepgram"
            assert [(u["speaker"], u["transcript"]) for u in stored["utterances"]] == [
                (str(speaker), said) for speaker, said in turns
            ]
            assert all(u["end"] > u["start"] >= 0 for u in stored["utterances"])

        # Deepgram got each recording's exact bytes, streamed, diarized with utterances.
        sent = {entry["audio_bytes"] for entry in deepgram.transcriptions}
        assert {len(body) for body in audio.values()} <= sent
        for entry in deepgram.transcriptions[-4:]:
            assert entry["params"]["diarize"] == "true"
            assert entry["params"]["utterances"] == "true"
            assert entry["headers"].get("transfer-encoding") == "chunked"
        # The model read the transcript with speakers and timestamps, and the step's prompt.
        asked = openai_fake.completions[-4:]
        assert len(asked) == 4
        ana = [c for c in asked if "with Ana" in message_text(c["messages"][0])]
        assert len(ana) == 1
        assert "[00:00] 0: Thanks for calling, this is Ana." in message_text(ana[0]["messages"][1])

        listen = await journey_step(client, admin, records["c0"]["id"], "transcribe")
        assert listen["messages"][0].startswith("2 utterances · 2 speakers · ")
        assert not any("parcel" in m for m in listen["messages"])


class TestBadRecordings:
    async def test_each_bad_recording_ends_its_record_with_a_clear_reason(
        self,
        client: AsyncClient,
        worker: Client,
        s3_server: EmbeddedSeaweedFS,
        files: FileServer,
        deepgram: FakeDeepgram,
        openai_fake: FakeOpenAI,
        engine: AsyncEngine,
    ) -> None:
        openai_fake.responder = summarizer
        prefix = f"bad-{uuid.uuid4().hex[:8]}"
        s3 = s3_server.client()
        silence = tone_wav(0, 2.0)
        deepgram.answer(silence, [])
        put_recording(s3, prefix, "empty.wav", b"")
        put_recording(s3, prefix, "notes.wav", b"%PDF-1.7 this is not audio at all")
        put_recording(s3, prefix, "silence.wav", silence)
        admin = await signup(client)
        uses = await call_integrations(client, admin, s3_server, prefix, deepgram, openai_fake)
        asked_before = len(openai_fake.completions)
        heard_before = len(deepgram.transcriptions)
        rows = [
            f"missing,Ana,s3://{BUCKET}/{prefix}/nowhere.wav",
            "empty,Ben,empty.wav",
            "pdf,Cy,notes.wav",
            "silent,Di,silence.wav",
            f"gone,Ed,{files.url(f'{prefix}/gone.wav')}",
            # Not an allowed host: the api_call address rules refuse loopback.
            "internal,Flo,http://127.0.0.1:9/secret.wav",
            "elsewhere,Gus,s3://another-bucket/x.wav",
        ]
        job, records = await run_calls(
            client, admin, definition(uses.stt["id"], uses.storage["id"], uses.llm["id"]), rows
        )
        assert job["status"] == "partial", job

        expected_errors = {
            "missing": f"recording s3://{BUCKET}/{prefix}/nowhere.wav not found in storage (404)",
            "empty": f"recording s3://{BUCKET}/{prefix}/empty.wav is empty (0 bytes)",
            "pdf": "is not in a supported audio format (WAV, MP3, OGG, FLAC, M4A/MP4 or WebM)",
            "gone": "not found (HTTP 404)",
            "internal": "refusing to connect to 127.0.0.1",
            "elsewhere": f"is not in the storage integration's bucket '{BUCKET}'",
        }
        for call, error in expected_errors.items():
            record = records[call]
            assert record["status"] == "failed", record
            assert record["failedStep"] == "listen"
            assert error in (record["error"] or ""), record["error"]
            assert await transcript(engine, record["id"]) is None
            # Non-retryable: one attempt, then the record ends.
            step = await journey_step(client, admin, record["id"], "transcribe")
            assert step["attempts"] == 1, step

        silent = records["silent"]
        assert silent["status"] == "completed", silent
        assert silent["outcomes"]["no_speech"] is True
        assert silent["outcomes"]["utterance_count"] == 0
        assert silent["outcomes"]["call_duration_s"] == 0
        assert silent["outcomes"]["summary"] == ""
        stored = await transcript(engine, silent["id"])
        assert stored is not None and stored["utterances"] == []
        digest = await journey_step(client, admin, silent["id"], "summarize")
        assert digest["outcome"] == "no_speech"
        # Only the silent call reached Deepgram; no call reached the model.
        assert len(deepgram.transcriptions) == heard_before + 1
        assert len(openai_fake.completions) == asked_before


class TestMockStt:
    async def test_the_mock_reads_the_transcript_beside_the_recording_and_says_it_is_a_mock(
        self,
        client: AsyncClient,
        worker: Client,
        s3_server: EmbeddedSeaweedFS,
        deepgram: FakeDeepgram,
        engine: AsyncEngine,
    ) -> None:
        prefix = f"mock-{uuid.uuid4().hex[:8]}"
        s3 = s3_server.client()
        for call in ("t", "j", "none"):
            put_recording(s3, prefix, f"{call}.wav", tone_wav(440, 8.0))
        put_recording(
            s3,
            prefix,
            "t.txt",
            b"agent: Hello, you are through to billing.\n\ncustomer: My bill is wrong.\n",
        )
        put_recording(
            s3,
            prefix,
            "j.json",
            b'{"utterances": [{"speaker": 1, "start": 0.5, "end": 2.0, "confidence": 0.9,'
            b' "transcript": "Hi there."}]}',
        )
        admin = await signup(client)
        stt = await integration(client, admin, {"kind": "mock_stt"})
        assert stt["isMock"] is True
        assert "mock" in stt["label"].lower()
        storage = await integration(client, admin, s3_storage(s3_server, prefix))
        llm = await integration(client, admin, {"kind": "mock"})
        heard_before = len(deepgram.transcriptions)
        job, records = await run_calls(
            client,
            admin,
            definition(stt["id"], storage["id"], llm["id"]),
            ["t,Ana,t.wav", "j,Ben,j.wav", "none,Cy,none.wav"],
        )
        assert job["status"] == "partial", job

        text_call = records["t"]
        assert text_call["status"] == "completed", text_call
        assert text_call["outcomes"]["utterance_count"] == 2
        assert text_call["outcomes"]["speaker_count"] == 2
        # The WAV is 8 s long, longer than the mock's timing of the two lines (4.6 s).
        assert text_call["outcomes"]["call_duration_s"] == 8.0
        assert text_call["outcomes"]["summary"].startswith("[mock] ")
        stored = await transcript(engine, text_call["id"])
        assert stored is not None and stored["provider"] == "mock_stt"
        assert [(u["speaker"], u["transcript"]) for u in stored["utterances"]] == [
            ("agent", "Hello, you are through to billing."),
            ("customer", "My bill is wrong."),
        ]
        listen = await journey_step(client, admin, text_call["id"], "transcribe")
        assert any('"stt_mock": true' in m and "t.txt" in m for m in listen["messages"])

        json_call = await transcript(engine, records["j"]["id"])
        assert json_call is not None
        assert json_call["utterances"] == [
            {"speaker": "1", "start": 0.5, "end": 2.0, "confidence": 0.9, "transcript": "Hi there."}
        ]

        none = records["none"]
        assert none["status"] == "failed"
        assert "mock speech-to-text found no transcript beside the recording" in none["error"]
        assert len(deepgram.transcriptions) == heard_before
