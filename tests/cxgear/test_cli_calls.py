"""`cxgear calls analyse` against a live API, SeaweedFS and an in-process worker, and the
recording upload route it uses (`POST /projects/{id}/recordings`)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from httpx import AsyncClient
from temporalio.client import Client
from typer.testing import CliRunner

from cxgear.cli import app as cli
from cxgear.stack.seaweedfs import EmbeddedSeaweedFS
from infra.settings import Settings
from tests.api.test_data_tables import live_api
from tests.builders import Account, make_spinner, make_table, project, signup
from tests.calls_builders import (
    BUCKET,
    call_integrations,
    definition,
    integration,
    noise_wav,
    summarizer,
    tone_wav,
)
from tests.conftest import make_settings
from tests.fakes.deepgram_api import FakeDeepgram, running_deepgram
from tests.fakes.openai_api import FakeOpenAI, running_openai
from tests.workflows.workers import running_workers

runner = CliRunner()


# Small enough to pass cheaply in a test, above one 8 MiB S3 part so multipart uploads happen.
MAX_RECORDING = 12 * 1024 * 1024


@pytest.fixture(scope="module")
def settings(database_url: str, temporal_server: Any, openbao_server: Any) -> Settings:
    return make_settings(
        database_url=database_url,
        temporal_address=temporal_server.address,
        vault_address=openbao_server.address,
        vault_token=openbao_server.token,
        max_recording_bytes=MAX_RECORDING,
    )


@pytest.fixture(scope="module")
async def worker(settings: Settings) -> AsyncIterator[Client]:
    async with running_workers(settings) as client:
        yield client


@pytest.fixture(scope="module")
def api_url(settings: Settings) -> Iterator[str]:
    with live_api(settings) as url:
        yield url


@pytest.fixture(scope="module")
def deepgram() -> Iterator[FakeDeepgram]:
    with running_deepgram() as fake:
        yield fake


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeOpenAI]:
    with running_openai() as fake:
        yield fake


async def cx(api_url: str, account: Account, *args: str, terminal: bool = False) -> tuple[int, str]:
    env = {"CXGEAR_API_URL": api_url, "CXGEAR_TOKEN": account.token, "COLUMNS": "200"}
    # rich draws its progress bars only on a terminal; TTY_COMPATIBLE=1 says stderr is one.
    env["TTY_COMPATIBLE"] = "1" if terminal else "0"
    # In a thread: the in-process worker shares this event loop and must keep running meanwhile.
    result = await asyncio.to_thread(runner.invoke, cli, ["calls", *args], env=env)
    return result.exit_code, result.output


class CallProject:
    def __init__(self, account: Account, project: dict[str, Any], prefix: str) -> None:
        self.account, self.project, self.prefix = account, project, prefix
        self.table: dict[str, Any] = {}
        self.spinner: dict[str, Any] = {}
        # Rows the table had before the test (a table gets its columns from a CSV with a row).
        self.existing: set[int] = set()

    @property
    def id(self) -> str:
        return str(self.project["id"])


async def intake_setup(
    client: AsyncClient,
    admin: Account,
    s3: EmbeddedSeaweedFS,
    deepgram: FakeDeepgram,
    openai_fake: FakeOpenAI,
) -> CallProject:
    """A call_analyzer project with its setup, a "Calls" table and a "Call intake" spinner.

    The table and spinner are made here only until project creation seeds them; then this keeps
    the seeded ones."""
    p = await project(client, admin, type="call_analyzer")
    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    uses = await call_integrations(client, admin, s3, prefix, deepgram, openai_fake)
    r = await client.put(
        f"/api/v1/projects/{p['id']}/call-setup",
        json={
            "sttIntegrationId": uses.stt["id"],
            "llmIntegrationId": uses.llm["id"],
            "storageIntegrationId": uses.storage["id"],
        },
        headers=admin.headers,
    )
    assert r.status_code == 200, r.text
    found = CallProject(admin, p, prefix)
    tables = (
        await client.get(f"/api/v1/projects/{p['id']}/data-tables", headers=admin.headers)
    ).json()["data"]
    found.table = next((t for t in tables if t["name"] == "Calls"), None) or await make_table(
        client,
        admin,
        project_id=p["id"],
        name="Calls",
        csv_text="recording_url,call_id,agent,direction,started_at,duration_s\n,example,,,,\n",
    )
    found.existing = {r["rowId"] for r in await rows(client, admin, found.table["id"])}
    spinners = (
        await client.get(f"/api/v1/projects/{p['id']}/spinners", headers=admin.headers)
    ).json()["data"]
    found.spinner = next(
        (s for s in spinners if s["name"] == "Call intake"), None
    ) or await make_spinner(
        client,
        admin,
        project_id=p["id"],
        name="Call intake",
        definition=definition(uses.stt["id"], uses.storage["id"], uses.llm["id"]),
    )
    return found


def objects(s3: EmbeddedSeaweedFS, prefix: str) -> dict[str, bytes]:
    client = s3.client()
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/").get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def pending_uploads(s3: EmbeddedSeaweedFS, prefix: str) -> list[Any]:
    return list(
        s3.client().list_multipart_uploads(Bucket=BUCKET, Prefix=f"{prefix}/").get("Uploads", [])
    )


async def rows(client: AsyncClient, admin: Account, table_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/data-tables/{table_id}/rows?limit=500", headers=admin.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def new_rows(client: AsyncClient, calls: CallProject) -> list[dict[str, Any]]:
    found = await rows(client, calls.account, calls.table["id"])
    return [r for r in found if r["rowId"] not in calls.existing]


@pytest.fixture
async def calls(
    client: AsyncClient,
    s3_server: EmbeddedSeaweedFS,
    deepgram: FakeDeepgram,
    openai_fake: FakeOpenAI,
) -> CallProject:
    admin = await signup(client)
    return await intake_setup(client, admin, s3_server, deepgram, openai_fake)


class TestAnalyseCommand:
    async def test_uploads_appends_rows_and_runs_the_intake_on_them(
        self,
        client: AsyncClient,
        worker: Client,
        api_url: str,
        s3_server: EmbeddedSeaweedFS,
        deepgram: FakeDeepgram,
        openai_fake: FakeOpenAI,
        calls: CallProject,
        tmp_path: Path,
    ) -> None:
        openai_fake.responder = summarizer
        admin = calls.account
        audio = {f"call-{i}": tone_wav(350 + 40 * i, 0.5 + i / 2) for i in range(3)}
        for i, body in enumerate(audio.values()):
            deepgram.answer(body, [(0, f"Hello, this is call {i}."), (1, "Thanks, bye.")])
        files = []
        for call, body in audio.items():
            files.append(tmp_path / f"{call}.wav")
            files[-1].write_bytes(body)

        code, output = await cx(
            api_url, admin, "analyse", *map(str, files), "-p", calls.id, "--agent", "Ana", "--wait"
        )

        assert code == 0, output
        # Not a terminal: no bars, a line per file.
        uploaded = [line for line in output.splitlines() if line.startswith("uploaded ")]
        assert [line.split()[1] for line in uploaded] == [f"{call}.wav" for call in audio]
        assert "recording(s)" not in output
        assert "job completed: 3 completed, 0 failed, 0 cancelled of 3" in output
        assert f"/api/v1/projects/{calls.id}/analysed-calls" in output
        # Each recording is in the bucket, byte for byte, under the storage integration's prefix.
        stored = objects(s3_server, calls.prefix)
        assert sorted(stored.values()) == sorted(audio.values())
        table_rows = await new_rows(client, calls)
        assert len(table_rows) == 3
        by_call = {r["data"]["call_id"]: r["data"] for r in table_rows}
        assert set(by_call) == set(audio)
        for call, row in by_call.items():
            assert row["agent"] == "Ana" and row["direction"] == ""
            url = urlsplit(row["recording_url"])
            assert url.scheme == "s3" and url.netloc == BUCKET
            assert stored[url.path.lstrip("/")] == audio[call]
        # The job ran the intake over exactly these rows, through transcription and summary.
        jobs = (
            await client.get(f"/api/v1/projects/{calls.id}/jobs", headers=admin.headers)
        ).json()["data"]
        assert len(jobs) == 1 and jobs[0]["spinnerId"] == calls.spinner["id"]
        records = (
            await client.get(f"/api/v1/jobs/{jobs[0]['id']}/records", headers=admin.headers)
        ).json()["data"]
        assert {r["metadata"]["call_id"] for r in records} == set(audio)
        for record in records:
            assert record["status"] == "completed", record
            assert record["outcomes"]["utterance_count"] == 2
            assert record["outcomes"]["summary"] == "A call of 2 turns opened by 0."

    async def test_on_a_terminal_bars_show_the_bytes_per_file_and_in_total(
        self,
        client: AsyncClient,
        worker: Client,
        api_url: str,
        s3_server: EmbeddedSeaweedFS,
        calls: CallProject,
        tmp_path: Path,
    ) -> None:
        files = [tmp_path / "first.wav", tmp_path / "second.wav"]
        files[0].write_bytes(noise_wav(150_000))
        files[1].write_bytes(noise_wav(250_000))
        code, output = await cx(
            api_url, calls.account, "analyse", *map(str, files), "-p", calls.id, terminal=True
        )
        assert code == 0, output
        # The bars' last state: each file and the total, sent in full.
        assert re.search(r"2 recording\(s\).*400\.\d/400\.\d kB", output), output
        assert re.search(r"first\.wav.*150\.\d/150\.\d kB", output), output
        assert re.search(r"second\.wav.*250\.\d/250\.\d kB", output), output
        assert "uploaded first.wav (150.0 kB) → s3://" in output
        assert re.search(r"job \S+ started: Call intake over 2 call\(s\)", output)
        assert len(objects(s3_server, calls.prefix)) == 2

    async def test_a_missing_or_non_audio_file_uploads_nothing(
        self,
        client: AsyncClient,
        api_url: str,
        s3_server: EmbeddedSeaweedFS,
        calls: CallProject,
        tmp_path: Path,
    ) -> None:
        good = tmp_path / "good.wav"
        good.write_bytes(tone_wav(440, 0.2))
        notes = tmp_path / "notes.wav"
        notes.write_bytes(b"%PDF-1.7 minutes of the meeting")
        empty = tmp_path / "empty.mp3"
        empty.write_bytes(b"")
        missing = tmp_path / "gone.wav"

        code, output = await cx(
            api_url,
            calls.account,
            "analyse",
            str(good),
            str(missing),
            str(notes),
            str(empty),
            "-p",
            calls.id,
        )

        assert code == 2, output
        line = " ".join(output.split())
        assert line.startswith("nothing uploaded:")
        assert "gone.wav: No such file or directory" in line
        assert "notes.wav: not a supported audio file (WAV, MP3" in line
        assert "empty.mp3: is empty" in line
        assert objects(s3_server, calls.prefix) == {}
        assert await new_rows(client, calls) == []

    async def test_an_oversized_recording_is_refused_and_leaves_nothing(
        self,
        client: AsyncClient,
        api_url: str,
        s3_server: EmbeddedSeaweedFS,
        calls: CallProject,
        tmp_path: Path,
    ) -> None:
        big = tmp_path / "long-call.wav"
        big.write_bytes(noise_wav(MAX_RECORDING + 1000))
        assert big.stat().st_size > MAX_RECORDING

        code, output = await cx(api_url, calls.account, "analyse", str(big), "-p", calls.id)

        assert code == 1, output
        assert f"PAYLOAD_TOO_LARGE: Request body is larger than {MAX_RECORDING} bytes" in output
        assert objects(s3_server, calls.prefix) == {}
        assert await new_rows(client, calls) == []
        jobs = (
            await client.get(f"/api/v1/projects/{calls.id}/jobs", headers=calls.account.headers)
        ).json()["data"]
        assert jobs == []

    async def test_a_project_without_intake_is_explained(
        self, client: AsyncClient, api_url: str, tmp_path: Path
    ) -> None:
        admin = await signup(client)
        p = await project(client, admin, type="call_analyzer")
        wav = tmp_path / "a.wav"
        wav.write_bytes(tone_wav(440, 0.1))
        code, output = await cx(api_url, admin, "analyse", str(wav), "-p", p["name"])
        assert code == 2, output
        assert "names no storage integration" in output


def upload(
    client: AsyncClient, account: Account, project_id: str, body: Any, name: str = "c.wav"
) -> Any:
    return client.post(
        f"/api/v1/projects/{project_id}/recordings",
        params={"name": name},
        content=body,
        headers={**account.headers, "Content-Type": "application/octet-stream"},
    )


async def in_chunks(body: bytes) -> AsyncIterator[bytes]:
    """The body as a stream of 1 MiB pieces: sent without a length, like a large upload."""
    for start in range(0, len(body), 1 << 20):
        yield body[start : start + (1 << 20)]


class TestUploadRoute:
    async def test_a_multipart_sized_recording_is_stored_byte_for_byte(
        self, client: AsyncClient, s3_server: EmbeddedSeaweedFS, calls: CallProject
    ) -> None:
        body = noise_wav(9 * 1024 * 1024)  # above one 8 MiB part
        assert 8 * 1024 * 1024 < len(body) < MAX_RECORDING
        r = await upload(client, calls.account, calls.id, in_chunks(body), "../../etc/Big Call.wav")
        assert r.status_code == 201, r.text
        stored = r.json()
        assert stored["size"] == len(body) and stored["format"] == "wav"
        assert stored["key"].startswith(f"{calls.prefix}/")
        assert stored["key"].endswith("/Big_Call.wav")
        assert stored["recordingUrl"] == f"s3://{BUCKET}/{stored['key']}"
        assert objects(s3_server, calls.prefix) == {stored["key"]: body}
        assert s3_server.keys.secret_key not in r.text

    async def test_bad_bodies_get_a_clear_error_and_store_nothing(
        self, client: AsyncClient, s3_server: EmbeddedSeaweedFS, calls: CallProject
    ) -> None:
        admin = calls.account
        r = await upload(client, admin, calls.id, b"MZ\x90\x00 a program, not a call")
        assert r.status_code == 415, r.text
        assert r.json()["errorCode"] == "UNSUPPORTED_AUDIO"
        assert "WAV, MP3, OGG, FLAC, M4A/MP4 or WebM" in r.json()["message"]
        r = await upload(client, admin, calls.id, b"")
        assert (r.status_code, r.json()["errorCode"]) == (422, "RECORDING_EMPTY")
        r = await upload(client, admin, calls.id, tone_wav(440, 0.1), name="../..")
        assert (r.status_code, r.json()["errorCode"]) == (422, "VALIDATION_ERROR")

        # Streamed without a length: the limit is found mid-body, after a part was sent.
        big = noise_wav(MAX_RECORDING + 1024 * 1024)
        r = await upload(client, admin, calls.id, in_chunks(big))
        assert (r.status_code, r.json()["errorCode"]) == (413, "PAYLOAD_TOO_LARGE")
        assert objects(s3_server, calls.prefix) == {}
        assert pending_uploads(s3_server, calls.prefix) == []

    async def test_projects_that_cannot_take_recordings(
        self,
        client: AsyncClient,
        s3_server: EmbeddedSeaweedFS,
        calls: CallProject,
    ) -> None:
        wav = tone_wav(440, 0.1)
        other = await signup(client)
        r = await upload(client, other, calls.id, wav)
        assert (r.status_code, r.json()["errorCode"]) == (404, "NOT_FOUND")
        outreach = await project(client, other)
        r = await upload(client, other, outreach["id"], wav)
        assert (r.status_code, r.json()["errorCode"]) == (409, "PROJECT_TYPE")
        bare = await project(client, other, type="call_analyzer")
        r = await upload(client, other, bare["id"], wav)
        assert (r.status_code, r.json()["errorCode"]) == (409, "STORAGE_NOT_SET")
        https = await integration(client, other, {"kind": "https", "config": {}})
        r = await client.put(
            f"/api/v1/projects/{bare['id']}/call-setup",
            json={"storageIntegrationId": https["id"]},
            headers=other.headers,
        )
        assert r.status_code == 200, r.text
        r = await upload(client, other, bare["id"], wav)
        assert (r.status_code, r.json()["errorCode"]) == (409, "STORAGE_KIND")
        assert objects(s3_server, calls.prefix) == {}


class TestAppendRows:
    async def test_rows_come_back_with_their_ids_and_must_match_the_columns(
        self, client: AsyncClient, calls: CallProject
    ) -> None:
        admin, table = calls.account, calls.table
        blank = dict.fromkeys(
            ["recording_url", "call_id", "agent", "direction", "started_at", "duration_s"], ""
        )
        records = [{**blank, "call_id": "a"}, {**blank, "call_id": "b", "duration_s": 0}]
        # Numbers keep the text they were sent as, like the public ingest.
        sent = json.dumps({"records": records}).replace('"duration_s": 0', '"duration_s": 1.50')
        r = await client.post(
            f"/api/v1/data-tables/{table['id']}/rows",
            content=sent,
            headers={**admin.headers, "Content-Type": "application/json"},
        )
        assert r.status_code == 201, r.text
        added = r.json()
        assert added["inserted"] == 2 and len(added["rowIds"]) == 2
        stored = {row["rowId"]: row["data"] for row in await new_rows(client, calls)}
        assert stored[added["rowIds"][1]]["call_id"] == "b"
        assert stored[added["rowIds"][1]]["duration_s"] == "1.50"
        r = await client.post(
            f"/api/v1/data-tables/{table['id']}/rows",
            json={"records": [{"call_id": "c"}]},
            headers=admin.headers,
        )
        assert r.status_code == 422, r.text
        assert len(await new_rows(client, calls)) == 2
        other = await signup(client)
        r = await client.post(
            f"/api/v1/data-tables/{table['id']}/rows",
            json={"records": [blank]},
            headers=other.headers,
        )
        assert (r.status_code, r.json()["errorCode"]) == (404, "NOT_FOUND")
