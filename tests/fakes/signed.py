"""Shared pieces of the provider fakes: signed webhook requests, the ledger, the loopback server.

A `SignedRequest` is a provider callback ready to send: tests deliver it either
through an in-process ASGI client (`client.post(req.path, content=req.body,
headers=req.headers)`) or over real HTTP with `deliver` / `adeliver`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx


@dataclass(frozen=True)
class SignedRequest:
    """A provider webhook POST: absolute `url`, raw `body`, headers incl. the signature.

    `form` holds the decoded form parameters for form-encoded callbacks (Twilio);
    it is empty for JSON callbacks (SendGrid), whose events are in `json_body`.
    """

    url: str
    headers: dict[str, str]
    body: bytes
    form: dict[str, str] = field(default_factory=dict)
    json_body: Any = None

    @property
    def path(self) -> str:
        """Path and query of `url`, for an ASGI client whose base URL is the app."""
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def url_with_base(self, base_override: str | None) -> str:
        """`url` with scheme+host+port replaced (a TLS-terminating proxy in front of the API)."""
        if not base_override:
            return self.url
        base = urlsplit(base_override)
        parts = urlsplit(self.url)
        return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))

    def tampered(self, **form_changes: str) -> SignedRequest:
        """The same request (same signature) with changed form params or, without any, a changed body."""
        if form_changes:
            form = {**self.form, **form_changes}
            body = urlencode(form).encode()
            return SignedRequest(self.url, dict(self.headers), body, form, self.json_body)
        return SignedRequest(
            self.url, dict(self.headers), self.body + b" ", dict(self.form), self.json_body
        )


def deliver(
    signed: SignedRequest, base_override: str | None = None, *, timeout: float = 10.0
) -> httpx.Response:
    """POST the signed request over real HTTP (blocking; the API must run in another thread/process)."""
    return httpx.post(
        signed.url_with_base(base_override),
        content=signed.body,
        headers=signed.headers,
        timeout=timeout,
    )


async def adeliver(
    signed: SignedRequest, base_override: str | None = None, *, timeout: float = 10.0
) -> httpx.Response:
    """Async `deliver`, for an API served by uvicorn in the test's own event loop."""
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.post(
            signed.url_with_base(base_override), content=signed.body, headers=signed.headers
        )


# --- ledger -------------------------------------------------------------------------------------


@dataclass
class Ledger:
    """Thread-safe record of what a fake received.

    `entries`: one per accepted provider operation (a send, a completion, a transcription);
    `requests`: every HTTP request the fake saw, rejected ones included.
    """

    entries: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.entries.append(entry)

    def add_request(self, request: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(request)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.entries)

    def requests_snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.requests)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.requests.clear()

    def __len__(self) -> int:
        with self.lock:
            return len(self.entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.snapshot())

    def __getitem__(self, index: int) -> dict[str, Any]:
        with self.lock:
            return self.entries[index]


# --- loopback server ----------------------------------------------------------------------------


@dataclass
class FakeRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    # Computed while reading, so a body too large to keep (`serve(keep_body_up_to=…)`) can still
    # be checked: then `body` is empty and these say what arrived.
    body_size: int = 0
    body_sha256: str = hashlib.sha256(b"").hexdigest()

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.body.decode(), keep_blank_values=True)
        return {key: values[-1] for key, values in parsed.items()}

    def query_one(self) -> dict[str, str]:
        return {key: values[-1] for key, values in self.query.items()}


@dataclass
class FakeResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> FakeResponse:
    return FakeResponse(
        status,
        json.dumps(payload).encode(),
        {"content-type": "application/json", **(headers or {})},
    )


Handle = Callable[[FakeRequest], FakeResponse]


_PIECE = 1024 * 1024


def _handler(
    handle: Handle, ledger: Ledger, keep_body_up_to: int | None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return

        def _read_body(self) -> tuple[bytes, int, str]:
            """The body (unless longer than `keep_body_up_to`), its size and sha256."""
            digest, kept, size = hashlib.sha256(), bytearray(), 0

            def take(piece: bytes) -> None:
                nonlocal size
                digest.update(piece)
                size += len(piece)
                if keep_body_up_to is None or size <= keep_body_up_to:
                    kept.extend(piece)
                else:
                    kept.clear()

            if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
                while True:
                    chunk = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if chunk == 0:
                        self.rfile.readline()
                        break
                    while chunk:
                        piece = self.rfile.read(min(chunk, _PIECE))
                        if not piece:
                            break
                        take(piece)
                        chunk -= len(piece)
                    self.rfile.readline()
            else:
                left = int(self.headers.get("content-length") or 0)
                while left > 0 and (piece := self.rfile.read(min(left, _PIECE))):
                    take(piece)
                    left -= len(piece)
            body = bytes(kept) if keep_body_up_to is None or size <= keep_body_up_to else b""
            return body, size, digest.hexdigest()

        def _answer(self) -> None:
            parts = urlsplit(self.path)
            body, size, sha256 = self._read_body()
            request = FakeRequest(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={key.lower(): value for key, value in self.headers.items()},
                body=body,
                body_size=size,
                body_sha256=sha256,
            )
            try:
                response = handle(request)
            except Exception as exc:  # a bug in the fake must not hang the client
                response = json_response(500, {"error": f"fake crashed: {exc!r}"})
            ledger.add_request(
                {
                    "method": request.method,
                    "path": request.path,
                    "query": request.query_one(),
                    "headers": request.headers,
                    "status": response.status,
                }
            )
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    return Handler


# The name the provider fakes are reached by. Tests allow-list it for integrations' base URLs
# (CXGEAR_PROVIDER_ALLOWED_HOSTS); the same listener as 127.0.0.1 is not allowed, which is how
# the SSRF tests show a loopback base URL being refused.
FAKE_HOST = "localhost"


@contextmanager
def serve(
    handle: Handle, ledger: Ledger, *, keep_body_up_to: int | None = None
) -> Iterator[tuple[str, int]]:
    """Serve `handle` on 127.0.0.1:<free port> in a daemon thread; yields (FAKE_HOST, port).

    Request bodies longer than `keep_body_up_to` bytes are hashed and counted, not kept.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(handle, ledger, keep_body_up_to))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield FAKE_HOST, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
