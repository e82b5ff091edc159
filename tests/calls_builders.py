"""Builders for the call pipeline's tests: recordings as WAV bytes and in the S3 bucket, the three
integrations a call intake uses (Deepgram, S3 storage, OpenAI), and a calls table with a
`transcribe` → `summarize` → `tag` spinner over it."""

from __future__ import annotations

import io
import math
import os
import struct
import uuid
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from httpx import AsyncClient

from cxgear.stack.seaweedfs import EmbeddedSeaweedFS
from tests.builders import Account, make_spinner, make_table, project
from tests.fakes.deepgram_api import FakeDeepgram
from tests.fakes.openai_api import FakeOpenAI, Messages, message_text
from tests.fakes.signed import FAKE_HOST

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "recordings"


@contextmanager
def mono_wav(
    target: str | IO[bytes], *, sampwidth: int = 2, rate: int = 8000
) -> Iterator[wave.Wave_write]:
    """A mono WAV writer with its header set; the caller writes the frames."""
    with wave.open(target, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(sampwidth)
        wav.setframerate(rate)
        yield wav


def tone_wav(freq: float, seconds: float, *, rate: int = 8000) -> bytes:
    """A mono 16-bit WAV of a sine tone (0 Hz: silence)."""
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / rate)))
        for i in range(int(rate * seconds))
    )
    out = io.BytesIO()
    with mono_wav(out, rate=rate) as wav:
        wav.writeframes(frames)
    return out.getvalue()


def noise_wav(nbytes: int) -> bytes:
    """A mono 16-bit 8 kHz WAV of about `nbytes` of random samples (quick to make when large)."""
    out = io.BytesIO()
    with mono_wav(out) as wav:
        wav.writeframes(os.urandom(nbytes // 2 * 2))
    return out.getvalue()


def put_recording(s3: S3Client, prefix: str, name: str, body: bytes) -> None:
    """Puts `body` in the recordings bucket as `<prefix>/<name>`."""
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{name}", Body=body)


async def integration(client: AsyncClient, admin: Account, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(
        "/api/v1/integrations",
        json={"name": f"{body['kind']} {uuid.uuid4().hex[:6]}", **body},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def s3_storage(s3: EmbeddedSeaweedFS, prefix: str) -> dict[str, Any]:
    return {
        "kind": "s3",
        # By name: the provider allow-list of the tests names the loopback fakes' host.
        "config": {
            "endpoint_url": s3.endpoint_url.replace("127.0.0.1", FAKE_HOST),
            "bucket": BUCKET,
            "prefix": prefix,
        },
        "credentials": {
            "access_key_id": s3.keys.access_key,
            "secret_access_key": s3.keys.secret_key,
        },
    }


@dataclass
class CallIntegrations:
    stt: dict[str, Any]
    storage: dict[str, Any]
    llm: dict[str, Any]


async def call_integrations(
    client: AsyncClient,
    admin: Account,
    s3: EmbeddedSeaweedFS,
    prefix: str,
    deepgram: FakeDeepgram,
    openai_fake: FakeOpenAI,
) -> CallIntegrations:
    """The Deepgram fake, the S3 bucket under `prefix` and the OpenAI fake as integrations."""
    stt = await integration(
        client,
        admin,
        {"kind": "deepgram", "config": deepgram.config, "credentials": deepgram.creds},
    )
    storage = await integration(client, admin, s3_storage(s3, prefix))
    llm = await integration(
        client,
        admin,
        {"kind": "openai", "config": openai_fake.config, "credentials": openai_fake.creds},
    )
    return CallIntegrations(stt, storage, llm)


def definition(stt: str, storage: str, llm: str) -> dict[str, Any]:
    return {
        "steps": [
            {
                "id": "listen",
                "type": "transcribe",
                "stt_integration_id": stt,
                "storage_integration_id": storage,
                "next": "digest",
            },
            {
                "id": "digest",
                "type": "summarize",
                "llm_integration_id": llm,
                "prompt": "Summarize the call with {{agent}} in one sentence.",
                "next": "done",
            },
            {"id": "done", "type": "tag", "tags": ["analysed"]},
        ]
    }


def summarizer(messages: Messages) -> str:
    """Answers like a model would: counts the transcript's lines and names the first speaker."""
    lines = [line for line in message_text(messages[1]).splitlines() if line.startswith("[")]
    first = lines[0].split("] ", 1)[1].split(":", 1)[0]
    return f"A call of {len(lines)} turns opened by {first}."


async def calls_spinner(
    client: AsyncClient, admin: Account, *, rows: list[str], spinner_definition: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new project's table "calls" of rows `call_id,agent,recording_url` and a spinner."""
    p = await project(client, admin)
    csv_text = "call_id,agent,recording_url\n" + "\n".join(rows) + "\n"
    table = await make_table(client, admin, project_id=p["id"], csv_text=csv_text, name="calls")
    spinner = await make_spinner(client, admin, project_id=p["id"], definition=spinner_definition)
    return table, spinner


async def journey_step(
    client: AsyncClient, admin: Account, record_id: int, step_type: str
) -> dict[str, Any]:
    r = await client.get(f"/api/v1/records/{record_id}/journey", headers=admin.headers)
    assert r.status_code == 200, r.text
    [found] = [s for s in r.json()["steps"] if s["type"] == step_type]
    return dict(found)
