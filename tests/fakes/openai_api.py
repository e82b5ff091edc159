"""A loopback fake of the OpenAI chat completions API; keeps a ledger of the completions asked for.

with running_openai() as fake:
    client = await openai_client(fake.config, fake.creds, guard=guard)
    fake.script("first reply", "second reply")   # then the responder / echo
    fake.responder = lambda messages: "yes" if "?" in str(messages) else "no"
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.signed import FakeRequest, FakeResponse, Ledger, json_response, serve

Messages = list[dict[str, Any]]
Responder = Callable[[Messages], str]

MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1"]


def message_text(message: dict[str, Any]) -> str:
    """Text of a chat message whose content is a string or a list of content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def echo(messages: Messages) -> str:
    """Default reply: deterministic echo of the last user message."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return f"echo: {message_text(message)}"
    return "echo:"


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _error(status: int, message: str, type_: str, code: str | None) -> FakeResponse:
    return json_response(
        status, {"error": {"message": message, "type": type_, "param": None, "code": code}}
    )


@dataclass
class FakeOpenAI:
    host: str
    port: int
    api_key: str
    ledger: Ledger
    responder: Responder = echo
    replies: deque[str] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    failures: deque[tuple[int, float | None]] = field(default_factory=deque)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def config(self) -> dict[str, str]:
        """Connection config for `infra.providers.openai_client`."""
        return {"base_url": self.base_url}

    @property
    def creds(self) -> dict[str, str]:
        return {"api_key": self.api_key}

    def script(self, *replies: str) -> None:
        """Queue replies answered in order before falling back to `responder`."""
        with self.lock:
            self.replies.extend(replies)

    def fail_next(self, n: int = 1, *, status: int = 500, retry_after: float | None = None) -> None:
        """Answer the next `n` completions with `status` (429 carries Retry-After), unrecorded."""
        with self.lock:
            self.failures.extend([(status, retry_after)] * n)

    @property
    def completions(self) -> list[dict[str, Any]]:
        return self.ledger.snapshot()

    def _next_reply(self, messages: Messages) -> str:
        with self.lock:
            if self.replies:
                return self.replies.popleft()
            responder = self.responder
        return responder(messages)

    def _next_failure(self) -> tuple[int, float | None] | None:
        with self.lock:
            return self.failures.popleft() if self.failures else None

    def handle(self, request: FakeRequest) -> FakeResponse:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            shown = (request.headers.get("authorization") or "").removeprefix("Bearer ")[:6]
            return _error(
                401,
                f"Incorrect API key provided: {shown}***. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            )
        if request.method == "GET" and request.path == "/v1/models":
            return json_response(
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": model,
                            "object": "model",
                            "created": 1715367049,
                            "owned_by": "system",
                        }
                        for model in MODELS
                    ],
                },
            )
        if request.method == "POST" and request.path == "/v1/chat/completions":
            return self._chat(request)
        return _error(
            404, f"Invalid URL ({request.method} {request.path})", "invalid_request_error", None
        )

    def _chat(self, request: FakeRequest) -> FakeResponse:
        try:
            body = request.json()
        except ValueError:
            return _error(
                400,
                "We could not parse the JSON body of your request.",
                "invalid_request_error",
                None,
            )
        if (
            not isinstance(body, dict)
            or not body.get("model")
            or not isinstance(body.get("messages"), list)
        ):
            return _error(
                400, "'model' and 'messages' are required.", "invalid_request_error", None
            )
        if body.get("stream"):
            return _error(400, "the fake does not stream", "invalid_request_error", None)
        failure = self._next_failure()
        if failure is not None:
            status, retry_after = failure
            response = _error(
                status,
                "Rate limit reached" if status == 429 else "The server had an error",
                "requests" if status == 429 else "server_error",
                "rate_limit_exceeded" if status == 429 else None,
            )
            if retry_after is not None:
                response.headers["retry-after"] = str(retry_after)
            return response
        messages: Messages = body["messages"]
        reply = self._next_reply(messages)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.ledger.add(
            {
                "id": completion_id,
                "model": body["model"],
                "messages": messages,
                "temperature": body.get("temperature"),
                "request": body,
                "headers": request.headers,
                "reply": reply,
            }
        )
        prompt_tokens = sum(_tokens(message_text(m)) for m in messages)
        completion_tokens = _tokens(reply)
        return json_response(
            200,
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
                "system_fingerprint": "fp_"
                + hashlib.sha256(body["model"].encode()).hexdigest()[:10],
            },
            {"x-request-id": f"req_{uuid.uuid4().hex}"},
        )


@contextmanager
def running_openai(api_key: str = "sk-test-cxgear-0000000000000000") -> Iterator[FakeOpenAI]:
    ledger = Ledger()
    fake = FakeOpenAI("127.0.0.1", 0, api_key, ledger)
    with serve(fake.handle, ledger) as (host, port):
        fake.host, fake.port = host, port
        yield fake
