"""Reading recordings: formats told by their first bytes, and a large object from the real S3
server streamed to disk chunk by chunk with progress reported as it goes."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.calls.recordings import CHUNK, RecordingStore, locate
from activities.calls.steps import Heartbeat
from activities.calls.targets import Target
from cxgear.stack.seaweedfs import EmbeddedSeaweedFS
from infra.http_guard import AddressGuard
from infra.providers import ProviderGuard
from models.call_analysis.audio import audio_format
from tests.fakes.signed import FAKE_HOST


class TestAudioFormat:
    @pytest.mark.parametrize(
        ("head", "expected"),
        [
            (b"RIFF\x24\x08\x00\x00WAVEfmt ", "wav"),
            (b"ID3\x04\x00\x00\x00\x00\x00\x00", "mp3"),
            (b"\xff\xfb\x90\x64\x00\x00", "mp3"),
            (b"OggS\x00\x02\x00\x00", "ogg"),
            (b"fLaC\x00\x00\x00\x22", "flac"),
            (b"\x00\x00\x00\x20ftypM4A \x00\x00", "mp4"),
            (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "webm"),
        ],
    )
    def test_accepted_formats_are_recognised(self, head: bytes, expected: str) -> None:
        assert audio_format(head) == expected

    @pytest.mark.parametrize(
        "head",
        [
            b"%PDF-1.7\n",
            b"RIFF\x00\x00\x00\x00AVI LIST",
            b"<html><body>",
            b"\xff\xe1",
            b"",
            b"PK\x03\x04",
        ],
    )
    def test_other_files_are_refused(self, head: bytes) -> None:
        assert audio_format(head) is None


def storage(s3: EmbeddedSeaweedFS, prefix: str) -> Target:
    return Target(
        uuid.uuid4(),
        uuid.uuid4(),
        "s3",
        {
            "endpoint_url": s3.endpoint_url.replace("127.0.0.1", FAKE_HOST),
            "bucket": "recordings",
            "prefix": prefix,
        },
    )


class TestStreamedDownload:
    async def test_a_large_recording_is_streamed_to_disk_with_progress(
        self, s3_server: EmbeddedSeaweedFS, tmp_path: Path
    ) -> None:
        prefix = f"big-{uuid.uuid4().hex[:8]}"
        # 40 MB of "audio": a WAV header, then data.
        size = 40 * 1024 * 1024
        body = b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(range(256)) * (size // 256 - 1)
        # In parts, as a real client sends an object this size.
        s3_server.client().upload_fileobj(io.BytesIO(body), "recordings", f"{prefix}/long.wav")
        target = storage(s3_server, prefix)
        store = RecordingStore(
            "listen",
            target,
            {
                "access_key_id": s3_server.keys.access_key,
                "secret_access_key": s3_server.keys.secret_key,
            },
            provider_guard=ProviderGuard([FAKE_HOST]),
            http_guard=AddressGuard(),
        )
        reported: list[int] = []

        async def progress(done: int) -> None:
            reported.append(done)

        got = await store.download(locate("long.wav", target, "listen"), tmp_path / "rec", progress)
        assert got.size == len(body) and got.format == "wav"
        assert hashlib.sha256(got.path.read_bytes()).digest() == hashlib.sha256(body).digest()
        # One report per chunk read, never more than a chunk at a time, ending at the full size.
        assert len(reported) >= len(body) // CHUNK
        assert reported == sorted(reported) and reported[-1] == len(body)
        assert max(b - a for a, b in zip([0, *reported], reported, strict=False)) <= CHUNK

    async def test_wrong_keys_are_a_clear_permanent_error(
        self, s3_server: EmbeddedSeaweedFS, tmp_path: Path
    ) -> None:
        target = storage(s3_server, "")
        store = RecordingStore(
            "listen",
            target,
            {"access_key_id": s3_server.keys.access_key, "secret_access_key": "wrong"},
            provider_guard=ProviderGuard([FAKE_HOST]),
            http_guard=AddressGuard(),
        )

        async def progress(done: int) -> None:
            return None

        with pytest.raises(ApplicationError) as caught:
            await store.download(locate("x.wav", target, "listen"), tmp_path / "r", progress)
        assert caught.value.non_retryable
        assert "check the storage integration's keys" in caught.value.message
        assert "wrong" not in caught.value.message

    async def test_an_endpoint_on_a_private_address_is_refused_before_any_request(
        self, tmp_path: Path
    ) -> None:
        target = Target(
            uuid.uuid4(),
            uuid.uuid4(),
            "s3",
            {"endpoint_url": "http://169.254.169.254", "bucket": "recordings", "prefix": ""},
        )
        store = RecordingStore(
            "listen",
            target,
            {"access_key_id": "a", "secret_access_key": "b"},
            provider_guard=ProviderGuard(),
            http_guard=AddressGuard(),
        )

        async def progress(done: int) -> None:
            return None

        with pytest.raises(ApplicationError) as caught:
            await store.download(locate("x.wav", target, "listen"), tmp_path / "r", progress)
        assert caught.value.non_retryable
        assert "169.254.169.254" in caught.value.message


class TestHeartbeat:
    async def test_progress_and_silent_waits_both_heartbeat(self) -> None:
        beats: list[Any] = []
        env = ActivityEnvironment()
        env.on_heartbeat = lambda *details: beats.append(details[0])

        async def long_transcription() -> None:
            async with Heartbeat().ticking(every_s=0.05) as beat:
                beat.enter("downloading")
                await beat.progress(CHUNK)
                beat.enter("transcribing")
                # The provider takes its time: nothing is reported, the ticker still beats.
                await asyncio.sleep(0.3)

        await env.run(long_transcription)
        assert beats[:3] == [
            {"phase": "downloading", "bytes": 0},
            {"phase": "downloading", "bytes": CHUNK},
            {"phase": "transcribing", "bytes": 0},
        ]
        assert beats[3:].count({"phase": "transcribing", "bytes": 0}) >= 3
