"""A 2-hour recording through `transcribe`: streamed from the S3 server to Deepgram, heartbeating.

The WAV (8 kHz, 8-bit mono, ~58 MB) is written to disk in pieces and uploaded with a multipart
upload; the Deepgram fake (real SDK, real HTTP) hashes what arrives and answers after a delay,
so the activity is watched mid-way through the pending activity's heartbeat details. The worker
runs in this process: its RSS must not grow by the file's size.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from boto3.s3.transfer import TransferConfig
from httpx import AsyncClient
from temporalio.client import Client
from temporalio.service import RPCError

from cxgear.stack.seaweedfs import EmbeddedSeaweedFS
from tests.builders import signup
from tests.calls_builders import (
    BUCKET,
    call_integrations,
    calls_spinner,
    definition,
    journey_step,
    mono_wav,
    summarizer,
)
from tests.fakes.deepgram_api import FakeDeepgram, running_deepgram
from tests.fakes.openai_api import FakeOpenAI, running_openai
from workflows.contracts import record_workflow_id

RATE = 8000
SECONDS = 2 * 60 * 60
MB = 1024 * 1024
ENDED = ("completed", "partial", "failed", "cancelled")


@pytest.fixture(scope="module")
def deepgram() -> Iterator[FakeDeepgram]:
    with running_deepgram() as fake:
        yield fake


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeOpenAI]:
    with running_openai() as fake:
        yield fake


def write_long_wav(path: Path) -> tuple[int, str]:
    """A 2-hour 8-bit mono tone written a minute at a time; its size and sha256, read back."""
    second = bytes(128 + int(60 * math.sin(2 * math.pi * 400 * i / RATE)) for i in range(RATE))
    with mono_wav(str(path), sampwidth=1, rate=RATE) as wav:
        for _ in range(SECONDS // 60):
            wav.writeframes(second * 60)
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while piece := fh.read(MB):
            digest.update(piece)
            size += len(piece)
    return size, digest.hexdigest()


class PeakRss:
    """Samples this process's RSS every 20 ms in a thread; `growth` is the peak over the start."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.start


async def transcribe_heartbeats(temporal: Client, record_id: int) -> list[dict[str, Any]]:
    """The heartbeat details of the record's pending `transcribe` activity, if it is running."""
    try:
        described = await temporal.get_workflow_handle(record_workflow_id(record_id)).describe()
    except RPCError:
        return []  # not started yet
    found: list[dict[str, Any]] = []
    for pending in described.raw_description.pending_activities:
        if pending.activity_type.name == "transcribe" and pending.heartbeat_details.payloads:
            details = await temporal.data_converter.decode(list(pending.heartbeat_details.payloads))
            found.extend(d for d in details if isinstance(d, dict))
    return found


class TestTwoHourRecording:
    async def test_a_two_hour_wav_is_streamed_to_deepgram_with_progress_heartbeats(
        self,
        client: AsyncClient,
        worker: Client,
        s3_server: EmbeddedSeaweedFS,
        deepgram: FakeDeepgram,
        openai_fake: FakeOpenAI,
        tmp_path: Path,
    ) -> None:
        openai_fake.responder = summarizer
        prefix = f"long-{uuid.uuid4().hex[:8]}"
        wav_path = tmp_path / "two-hours.wav"
        size, sha256 = write_long_wav(wav_path)
        assert size == 44 + SECONDS * RATE  # the RIFF header and one byte a sample
        s3 = s3_server.client()
        s3.upload_file(
            str(wav_path),
            BUCKET,
            f"{prefix}/long.wav",
            Config=TransferConfig(
                multipart_threshold=8 * MB, multipart_chunksize=8 * MB, max_concurrency=2
            ),
        )
        head = s3.head_object(Bucket=BUCKET, Key=f"{prefix}/long.wav")
        assert head["ContentLength"] == size
        assert "-" in head["ETag"]  # a multipart upload's ETag
        turns = [
            (0, "Thanks for calling, this will take a while."),
            (1, "I have a long list of questions."),
            (0, "Take your time."),
        ]
        deepgram.answer_digest(sha256, turns, duration_s=float(SECONDS))

        admin = await signup(client)
        uses = await call_integrations(client, admin, s3_server, prefix, deepgram, openai_fake)
        table, spinner = await calls_spinner(
            client,
            admin,
            rows=["long,Ana,long.wav"],
            spinner_definition=definition(uses.stt["id"], uses.storage["id"], uses.llm["id"]),
        )
        heard_before = len(deepgram.transcriptions)
        # Long enough for two heartbeats of the stt worker (every 5 s) while Deepgram "works".
        deepgram.delay_s = 8.0
        beats: list[dict[str, Any]] = []
        try:
            with PeakRss() as rss:
                r = await client.post(
                    f"/api/v1/spinners/{spinner['id']}/run",
                    json={"tableId": table["id"]},
                    headers=admin.headers,
                )
                assert r.status_code == 201, r.text
                job_id = r.json()["id"]
                record_id: int | None = None
                deadline = time.monotonic() + 180
                while True:
                    job = (await client.get(f"/api/v1/jobs/{job_id}", headers=admin.headers)).json()
                    if job["status"] in ENDED:
                        break
                    assert time.monotonic() < deadline, f"job still running: {job}"
                    if record_id is None:
                        listed = await client.get(
                            f"/api/v1/jobs/{job_id}/records", headers=admin.headers
                        )
                        found = listed.json()["data"] if listed.status_code == 200 else []
                        record_id = found[0]["id"] if found else None
                    if record_id is not None:
                        for beat in await transcribe_heartbeats(worker, record_id):
                            if beat not in beats:
                                beats.append(beat)
                    await asyncio.sleep(0.25)
        finally:
            deepgram.delay_s = 0.0

        assert job["status"] == "completed", job
        records = await client.get(f"/api/v1/jobs/{job_id}/records", headers=admin.headers)
        [record] = records.json()["data"]
        assert record["status"] == "completed", record
        outcomes = record["outcomes"]
        assert outcomes["call_duration_s"] == SECONDS
        assert outcomes["utterance_count"] == 3
        assert outcomes["speaker_count"] == 2
        assert outcomes["no_speech"] is False
        assert outcomes["summary"] == "A call of 3 turns opened by 0."
        listen = await journey_step(client, admin, record["id"], "transcribe")
        assert listen["attempts"] == 1, listen
        assert listen["messages"][0].endswith(f"· 7200.0 s · wav, {size} bytes")

        # Deepgram received exactly the file, once, as a chunked (streamed) body.
        [sent] = deepgram.transcriptions[heard_before:]
        assert sent["audio_bytes"] == size
        assert sent["audio_sha256"] == sha256
        assert sent["headers"].get("transfer-encoding") == "chunked"

        # Progress was visible while it ran: more than one heartbeat, bytes never past the file,
        # and the whole file sent while waiting for Deepgram's answer.
        assert len(beats) > 1, beats
        assert {b["phase"] for b in beats} <= {"starting", "downloading", "transcribing"}
        assert all(0 <= b["bytes"] <= size for b in beats), beats
        assert {"phase": "transcribing", "bytes": size} in beats, beats

        # Streamed through the worker in this process: the file never sat whole in memory.
        assert rss.growth < 40 * MB, (
            f"RSS grew {rss.growth / MB:.1f} MB for a {size / MB:.1f} MB file"
        )
