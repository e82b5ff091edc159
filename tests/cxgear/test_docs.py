"""docs/spinner-language.md is generated from the models, and its callback examples work."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from api.errors import AppError
from api.services import callbacks
from cxgear.cli_docs import (
    EXAMPLES,
    REFERENCE,
    callback_scheme,
    load_example,
    spinner_language_reference,
)
from models.spinner_language.docs import REGENERATE
from models.spinner_language.steps import STEP_TYPES

SECRET = "a-test-callback-secret"


class TestReference:
    def test_the_committed_file_is_what_the_models_generate(self) -> None:
        assert REFERENCE.read_text() == spinner_language_reference(), (
            f"{REFERENCE.name} is out of date with the spinner language models; run {REGENERATE}"
        )

    def test_every_step_type_has_a_section(self) -> None:
        text = REFERENCE.read_text()
        for step_type in STEP_TYPES:
            assert f'<a id="{step_type}"></a>' in text
            assert f"`{step_type}`" in text.split(f'<a id="{step_type}"></a>', 1)[1][:200]


class TestCallbackExamples:
    def test_the_worked_example_is_the_signature_the_api_checks(self) -> None:
        scheme = callback_scheme()
        signature = callbacks.sign(
            scheme.example_secret,
            scheme.example_record_id,
            scheme.example_timestamp,
            scheme.example_body.encode(),
        )
        assert scheme.example_headers[callbacks.SIGNATURE_HEADER] == signature
        assert f"{callbacks.SIGNATURE_HEADER}: {signature}" in REFERENCE.read_text()

    def test_the_python_example_is_accepted_and_a_changed_body_is_not(self) -> None:
        signing = load_example("callback_signing")
        body = b'{"status": "qualified"}'
        headers = signing.callback_headers(SECRET, 7, body, int(time.time()))
        ts, sig = headers[callbacks.TIMESTAMP_HEADER], headers[callbacks.SIGNATURE_HEADER]
        callbacks.verify(SECRET, 7, ts, sig, body)
        for record_id, sent in ((7, b'{"status": "lost"}'), (8, body)):
            with pytest.raises(AppError) as refused:
                callbacks.verify(SECRET, record_id, ts, sig, sent)
            assert refused.value.error_code == "BAD_SIGNATURE"

    def test_the_curl_example_sends_a_callback_the_api_accepts(self) -> None:
        received: list[tuple[str, dict[str, str], bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                received.append((self.path, dict(self.headers), self.rfile.read(length)))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args: Any) -> None:
                pass

        server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.handle_request, daemon=True).start()
        body = json.dumps({"status": "qualified", "note": "it's done"})
        url = f"http://127.0.0.1:{server.server_address[1]}/api/v1/public/callbacks/42"
        result = subprocess.run(
            ["sh", str(EXAMPLES / "send_callback.sh")],
            env={
                "PATH": "/usr/bin:/bin",
                "CALLBACK_URL": url,
                "CXGEAR_CALLBACK_SECRET": SECRET,
                "BODY": body,
            },
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        server.server_close()
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"ok": True}
        [(path, headers, sent)] = received
        assert path == "/api/v1/public/callbacks/42"
        assert sent == body.encode()
        lower = {k.lower(): v for k, v in headers.items()}
        callbacks.verify(
            SECRET,
            42,
            lower[callbacks.TIMESTAMP_HEADER],
            lower[callbacks.SIGNATURE_HEADER],
            sent,
        )
