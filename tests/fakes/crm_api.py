"""A loopback JSON API standing in for a customer's CRM; keeps a ledger of what it received."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Ledger:
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(entry)


class Gate:
    """Answers the first `n` requests after `hold_after(n)`, then holds every later one (already
    in the ledger: the CRM received it) until `release()`. Lets a test stop the world mid-job."""

    # A held request gives up after this long, so no handler thread outlives a failed test.
    MAX_HOLD_S = 300.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self._left: int | None = None
        self.held: list[str] = []

    def hold_after(self, n: int) -> None:
        with self._lock:
            self._left, self.held = n, []
            self._open.clear()

    def release(self) -> None:
        with self._lock:
            self._left = None
            self._open.set()

    def pass_through(self, path: str) -> None:
        with self._lock:
            if self._left is None:
                return
            if self._left > 0:
                self._left -= 1
                return
            self.held.append(path)
        self._open.wait(self.MAX_HOLD_S)


@dataclass
class FakeCrm:
    host: str
    port: int
    ledger: Ledger
    gate: Gate = field(default_factory=Gate)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def allowed(self) -> str:
        return f"{self.host}:{self.port}"


def _handler(ledger: Ledger, gate: Gate) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            ledger.add(
                {
                    "method": self.command,
                    "path": self.path,
                    "body": body,
                    "headers": dict(self.headers),
                }
            )
            gate.pass_through(self.path)
            payload: dict[str, Any]
            if self.path.startswith("/fail"):
                status, payload = 404, {"error": "no such contact"}
            else:
                status, payload = 200, {"score": 42, "contact": {"tier": "gold"}, "path": self.path}
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # a held request whose caller was killed meanwhile
                self.close_connection = True

        do_GET = do_POST = do_PUT = _answer

    return Handler


@contextmanager
def running_crm() -> Iterator[FakeCrm]:
    ledger, gate = Ledger(), Gate()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(ledger, gate))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeCrm("127.0.0.1", server.server_address[1], ledger, gate)
    finally:
        gate.release()
        server.shutdown()
        server.server_close()
