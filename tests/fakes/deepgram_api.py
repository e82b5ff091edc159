"""A loopback fake of Deepgram's pre-recorded listen API; keeps a ledger of transcriptions asked for.

    with running_deepgram() as fake:
        fake.script([(0, "Hello, thanks for calling."), (1, "Hi, I want to cancel.")])
        client = await deepgram_client(fake.config, fake.creds, guard=guard)
        result = await client.listen.v1.media.transcribe_url(url=..., diarize=True, utterances=True)

A transcript is a list of turns `(speaker, text)`; a transcript registered for the exact
audio bytes (`answer(audio, turns)`) wins, then scripted transcripts in order, then
`default_turns`. An empty list of turns is a call with no speech. Words are timed 0.3 s each with 0.5 s between turns.
Audio is hashed as it arrives and not kept (`answer_digest` registers a file too large to hold:
its sha256, turns and the duration to report); `delay_s` holds each answer back, as a real
transcription of a long call takes a while.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.signed import FakeRequest, FakeResponse, Ledger, json_response, serve

Turns = list[tuple[int, str]]

DEFAULT_TURNS: Turns = [
    (0, "Thank you for calling CXGear, how can I help you today?"),
    (1, "Hi, I would like to update my delivery address."),
    (0, "Sure, I can help with that."),
]

_MODEL_UUID = "1ed36bac-f71c-4f3f-a31f-02fd6525c489"
_WORD_S = 0.3
_GAP_S = 0.5


def _truthy(value: str | None) -> bool:
    return (value or "").lower() == "true"


def _bare(word: str) -> str:
    return "".join(ch for ch in word if ch.isalnum() or ch in "'-").lower()


# Audio bodies are hashed and counted as they arrive; only small (JSON) bodies are kept.
KEEP_BODY_UP_TO = 1024 * 1024


def build_response(
    turns: Turns, params: dict[str, str], sha256: str, duration_s: float | None = None
) -> dict[str, Any]:
    """A Deepgram ListenV1Response for `turns` shaped by the query `params`."""
    punctuate = _truthy(params.get("punctuate")) or _truthy(params.get("smart_format"))
    diarize = _truthy(params.get("diarize"))
    words: list[dict[str, Any]] = []
    utterances: list[dict[str, Any]] = []
    clock = 0.0
    for speaker, text in turns:
        turn_words: list[dict[str, Any]] = []
        for raw in text.split():
            word: dict[str, Any] = {
                "word": _bare(raw),
                "start": round(clock, 2),
                "end": round(clock + _WORD_S - 0.02, 2),
                "confidence": 0.98,
            }
            if punctuate:
                word["punctuated_word"] = raw
            if diarize:
                word["speaker"] = speaker
                word["speaker_confidence"] = 0.9
            turn_words.append(word)
            clock += _WORD_S
        if turn_words:
            utterances.append(
                {
                    "start": turn_words[0]["start"],
                    "end": turn_words[-1]["end"],
                    "confidence": 0.98,
                    "channel": 0,
                    "transcript": text if punctuate else " ".join(w["word"] for w in turn_words),
                    "words": turn_words,
                    "speaker": speaker,
                    "id": str(uuid.uuid4()),
                }
            )
        words.extend(turn_words)
        clock += _GAP_S
    transcript = " ".join(u["transcript"] for u in utterances)
    model = params.get("model") or "nova-3"
    results: dict[str, Any] = {
        "channels": [
            {
                "alternatives": [
                    {"transcript": transcript, "confidence": 0.98 if words else 0.0, "words": words}
                ]
            }
        ]
    }
    if _truthy(params.get("utterances")):
        results["utterances"] = utterances
    return {
        "metadata": {
            "transaction_key": "deprecated",
            "request_id": str(uuid.uuid4()),
            "sha256": sha256,
            "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "duration": duration_s
            if duration_s is not None
            else round(max(clock - _GAP_S, 0.0), 3),
            "channels": 1,
            "models": [_MODEL_UUID],
            "model_info": {
                _MODEL_UUID: {"name": f"general-{model}", "version": "2025-01-01.0", "arch": model}
            },
        },
        "results": results,
    }


@dataclass
class FakeDeepgram:
    host: str
    port: int
    api_key: str
    ledger: Ledger
    default_turns: Turns = field(default_factory=lambda: list(DEFAULT_TURNS))
    transcripts: deque[Turns] = field(default_factory=deque)
    by_audio: dict[str, Turns] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    delay_s: float = 0.0
    failures: deque[int] = field(default_factory=deque)
    project_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config(self) -> dict[str, str]:
        """Connection config for `infra.providers.deepgram_client`."""
        return {"base_url": self.base_url}

    @property
    def creds(self) -> dict[str, str]:
        return {"api_key": self.api_key}

    @property
    def transcriptions(self) -> list[dict[str, Any]]:
        return self.ledger.snapshot()

    def script(self, *transcripts: Turns) -> None:
        """Queue transcripts (each a list of `(speaker, text)` turns) answered in order."""
        with self.lock:
            self.transcripts.extend(transcripts)

    def answer(self, audio: bytes, turns: Turns) -> None:
        """Transcribe exactly these audio bytes as `turns`, whatever the order of requests."""
        with self.lock:
            self.by_audio[hashlib.sha256(audio).hexdigest()] = turns

    def answer_digest(self, sha256: str, turns: Turns, *, duration_s: float | None = None) -> None:
        """`answer` for audio known by its sha256 (too large to hold), reporting `duration_s`."""
        with self.lock:
            self.by_audio[sha256] = turns
            if duration_s is not None:
                self.durations[sha256] = duration_s

    def fail_next(self, n: int = 1, *, status: int = 500) -> None:
        """Answer the next `n` listen requests with `status` without recording them."""
        with self.lock:
            self.failures.extend([status] * n)

    def handle(self, request: FakeRequest) -> FakeResponse:
        if request.headers.get("authorization") != f"Token {self.api_key}":
            return json_response(
                401,
                {
                    "err_code": "INVALID_AUTH",
                    "err_msg": "Invalid credentials.",
                    "request_id": str(uuid.uuid4()),
                },
            )
        if request.method == "GET" and request.path == "/v1/projects":
            return json_response(
                200, {"projects": [{"project_id": self.project_id, "name": "CXGear fake project"}]}
            )
        if request.method == "POST" and request.path == "/v1/listen":
            return self._listen(request)
        return json_response(
            404, {"err_code": "NOT_FOUND", "err_msg": "Not found.", "request_id": str(uuid.uuid4())}
        )

    def _listen(self, request: FakeRequest) -> FakeResponse:
        params = request.query_one()
        content_type = request.headers.get("content-type", "")
        url: str | None = None
        if content_type.startswith("application/json"):
            try:
                body = request.json()
            except ValueError:
                body = None
            url = body.get("url") if isinstance(body, dict) else None
            if not url:
                return json_response(
                    400,
                    {
                        "err_code": "Bad Request",
                        "err_msg": 'Bad Request: failed to process JSON body; expected {"url": …}',
                        "request_id": str(uuid.uuid4()),
                    },
                )
            sha256, size = hashlib.sha256(url.encode()).hexdigest(), None
        else:
            if not request.body_size:
                return json_response(
                    400,
                    {
                        "err_code": "Bad Request",
                        "err_msg": "Bad Request: failed to process audio: corrupt or unsupported data",
                        "request_id": str(uuid.uuid4()),
                    },
                )
            sha256, size = request.body_sha256, request.body_size
        if self.delay_s:
            time.sleep(self.delay_s)
        with self.lock:
            if self.failures:
                status = self.failures.popleft()
                return json_response(
                    status,
                    {
                        "err_code": "INTERNAL_SERVER_ERROR",
                        "err_msg": "Internal error.",
                        "request_id": str(uuid.uuid4()),
                    },
                )
            known = self.by_audio.get(sha256)
            duration = self.durations.get(sha256)
            if known is not None:
                turns = list(known)
            elif self.transcripts:
                turns = self.transcripts.popleft()
            else:
                turns = list(self.default_turns)
        response = build_response(turns, params, sha256, duration)
        self.ledger.add(
            {
                "request_id": response["metadata"]["request_id"],
                "params": params,
                "url": url,
                "audio_bytes": size,
                "audio_sha256": None if url else sha256,
                "content_type": content_type,
                "turns": turns,
                "headers": request.headers,
            }
        )
        return json_response(200, response, {"dg-request-id": response["metadata"]["request_id"]})


@contextmanager
def running_deepgram(api_key: str | None = None) -> Iterator[FakeDeepgram]:
    ledger = Ledger()
    fake = FakeDeepgram("127.0.0.1", 0, api_key or uuid.uuid4().hex + uuid.uuid4().hex[:8], ledger)
    with serve(fake.handle, ledger, keep_body_up_to=KEEP_BODY_UP_TO) as (host, port):
        fake.host, fake.port = host, port
        yield fake
