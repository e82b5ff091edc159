"""Speech to text for a downloaded recording: Deepgram pre-recorded, or the mock that reads a
transcript file stored beside the recording.

Deepgram gets the file streamed from disk in chunks (the SDK sends an async iterator as a
chunked body), diarized, with utterances. Transcripts can hold personal data: they go to the
database, never to logs, errors or workflow history.
"""

from __future__ import annotations

import json
import re
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
from deepgram.core.api_error import ApiError
from pydantic import TypeAdapter, ValidationError
from temporalio.exceptions import ApplicationError

from activities.calls.recordings import CHUNK, Downloaded
from activities.calls.targets import permanent
from infra.providers import ProviderGuard, ProviderUrlBlocked, deepgram_client
from models.call_transcript import Utterance

DEEPGRAM_MODEL: Final = "nova-3"
# The mock times each word like a brisk speaker, so durations and timestamps look plausible.
MOCK_WORD_S: Final = 0.4
MOCK_GAP_S: Final = 0.6
RETRYABLE_STATUSES: Final = frozenset({408, 429})
_LINE = re.compile(r"^\s*([^:]{1,64}?)\s*:\s*(.*)$")

Progress = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class Transcript:
    provider: str
    duration_s: float
    utterances: list[Utterance]
    request_id: str | None = None

    @property
    def has_speech(self) -> bool:
        return any(u.transcript.strip() for u in self.utterances)

    @property
    def words(self) -> int:
        return sum(len(u.transcript.split()) for u in self.utterances)

    @property
    def speakers(self) -> int:
        return len({u.speaker for u in self.utterances if u.transcript.strip()})


# --- the mock -----------------------------------------------------------------------------------


def wav_duration(path: Path) -> float | None:
    try:
        with wave.open(str(path), "rb") as wav:
            rate = wav.getframerate()
            return wav.getnframes() / rate if rate else None
    except (wave.Error, EOFError, OSError):
        return None


def parse_mock_text(text: str, where: str, step_id: str) -> list[Utterance]:
    """`speaker: words` per line (blank lines skipped), timed at a steady speaking pace."""
    utterances: list[Utterance] = []
    clock = 0.0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise permanent(
                f'step {step_id}: mock transcript {where} line {number} is not "speaker: words"',
                "MockTranscriptInvalid",
            )
        speaker, words = match.group(1), match.group(2).strip()
        length = max(1, len(words.split())) * MOCK_WORD_S
        utterances.append(
            Utterance(
                speaker=speaker,
                start=round(clock, 2),
                end=round(clock + length, 2),
                confidence=1.0,
                transcript=words,
            )
        )
        clock += length + MOCK_GAP_S
    return utterances


_UTTERANCES = TypeAdapter(list[Utterance])


def parse_mock_json(raw: bytes, where: str, step_id: str) -> list[Utterance]:
    """`{"utterances": [{speaker, start, end, confidence?, transcript}, …]}` or just the list."""
    try:
        data = json.loads(raw)
        if isinstance(data, dict):
            data = data.get("utterances")
        for item in data if isinstance(data, list) else []:
            if isinstance(item, dict) and "speaker" in item:
                item["speaker"] = str(item["speaker"])
        return _UTTERANCES.validate_python(data)
    except (ValueError, ValidationError):
        raise permanent(
            f"step {step_id}: mock transcript {where} is not a JSON list of utterances "
            "(speaker, start, end, transcript)",
            "MockTranscriptInvalid",
        ) from None


def mock_transcript(utterances: list[Utterance], recording: Downloaded) -> Transcript:
    ends = max((u.end for u in utterances), default=0.0)
    duration = wav_duration(recording.path) if recording.format == "wav" else None
    return Transcript("mock_stt", round(max(duration or 0.0, ends), 3), utterances)


# --- Deepgram -----------------------------------------------------------------------------------


async def file_chunks(path: Path, progress: Progress) -> AsyncIterator[bytes]:
    sent = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            sent += len(chunk)
            yield chunk
            await progress(sent)


async def deepgram_transcribe(
    config: dict[str, Any],
    creds: dict[str, Any],
    recording: Downloaded,
    *,
    guard: ProviderGuard,
    step_id: str,
    language: str | None,
    progress: Progress,
) -> Transcript:
    try:
        client = await deepgram_client(config, creds, guard=guard)
    except ProviderUrlBlocked as exc:
        raise permanent(f"step {step_id}: {exc}", "ProviderUrlBlocked") from None
    except ValueError as exc:
        raise permanent(
            f"step {step_id}: the Deepgram integration is misconfigured: {exc}",
            "IntegrationConfig",
        ) from None
    try:
        result = await client.listen.v1.media.transcribe_file(
            request=file_chunks(recording.path, progress),
            model=DEEPGRAM_MODEL,
            diarize=True,
            utterances=True,
            punctuate=True,
            smart_format=True,
            language=language,
            # The body is a stream read once: the SDK's own retry would resend it empty.
            # Temporal retries the activity instead, streaming the file again.
            request_options={"max_retries": 0},
        )
    except ApiError as exc:
        raise deepgram_error(exc, step_id) from None
    except httpx.TimeoutException:
        raise ApplicationError(f"step {step_id}: Deepgram timed out", type="SttTimeout") from None
    except httpx.HTTPError as exc:
        raise ApplicationError(
            f"step {step_id}: could not reach Deepgram ({type(exc).__name__})",
            type="SttUnreachable",
        ) from None
    results = getattr(result, "results", None)
    metadata = getattr(result, "metadata", None)
    if results is None:
        raise permanent(
            f"step {step_id}: Deepgram accepted the audio without a transcript (callback mode?)",
            "SttNoResult",
        )
    utterances = [
        Utterance(
            speaker=str(item.speaker if item.speaker is not None else 0),
            start=float(item.start or 0.0),
            end=float(item.end or 0.0),
            confidence=item.confidence,
            transcript=(item.transcript or "").strip(),
        )
        for item in results.utterances or []
    ]
    duration = float(getattr(metadata, "duration", None) or 0.0)
    request_id = getattr(metadata, "request_id", None)
    return Transcript("deepgram", duration, utterances, str(request_id) if request_id else None)


def deepgram_error(exc: ApiError, step_id: str) -> ApplicationError:
    status = exc.status_code or 0
    where = f"step {step_id}: Deepgram"
    if status in (401, 403):
        return permanent(
            f"{where} refused the integration's API key (HTTP {status}); update its credentials",
            "SttUnauthorized",
        )
    if status == 400:
        return permanent(
            f"{where} could not process the recording (HTTP 400): corrupt or unsupported audio",
            "SttBadAudio",
        )
    if status in RETRYABLE_STATUSES or status >= 500:
        return ApplicationError(f"{where} failed with HTTP {status}; will retry", type="SttHttp")
    return permanent(f"{where} rejected the request (HTTP {status})", "SttRejected")
