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


@dataclass
class FakeCrm:
    host: str
    port: int
    ledger: Ledger

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def allowed(self) -> str:
        return f"{self.host}:{self.port}"


def _handler(ledger: Ledger) -> type[BaseHTTPRequestHandler]:
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
            payload: dict[str, Any]
            if self.path.startswith("/fail"):
                status, payload = 404, {"error": "no such contact"}
            else:
                status, payload = 200, {"score": 42, "contact": {"tier": "gold"}, "path": self.path}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _answer

    return Handler


@contextmanager
def running_crm() -> Iterator[FakeCrm]:
    ledger = Ledger()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(ledger))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeCrm("127.0.0.1", server.server_address[1], ledger)
    finally:
        server.shutdown()
        server.server_close()
