"""docs/spinner-language.md is generated from the models, and its callback examples work."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from api.app import create_app
from cxgear.cli_docs import (
    EXAMPLES,
    REFERENCE,
    callback_scheme,
    load_example,
    spinner_language_reference,
)
from infra.callback_signing import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WINDOW_S,
    CallbackRefused,
    new_callback_secret,
    sign_callback,
    verify_callback,
)
from infra.settings import Settings
from models.spinner_language.docs import REGENERATE
from models.spinner_language.steps import STEP_TYPES

SECRET = new_callback_secret()
# The test vector published with the Standard Webhooks specification.
SPEC_VECTOR = {
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "msg_id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "timestamp": 1614265330,
    "body": b'{"test": 2432232314}',
    "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}


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
    def test_the_documented_routes_are_the_apis(self) -> None:
        scheme = callback_scheme()
        # The OpenAPI document lists every route; building the app connects to nothing.
        paths = create_app(Settings(_env_file=None)).openapi()["paths"]  # type: ignore[call-arg]
        served = {(method.upper(), path) for path, ops in paths.items() for method in ops}
        assert ("POST", scheme.route) in served
        assert ("POST", scheme.rotate_route) in served
        assert ("GET", scheme.status_route) in served

    def test_the_worked_example_is_the_signature_the_api_checks(self) -> None:
        scheme = callback_scheme()
        expected = sign_callback(
            scheme.example_secret,
            scheme.example_msg_id,
            scheme.example_timestamp,
            scheme.example_body.encode(),
        )
        assert dict(scheme.example_headers) == expected
        text = REFERENCE.read_text()
        for name, value in expected.items():
            assert f"{name}: {value}" in text

    def test_the_python_example_reproduces_the_specifications_test_vector(self) -> None:
        signing = load_example("callback_signing")
        headers = signing.callback_headers(
            SPEC_VECTOR["secret"],
            SPEC_VECTOR["msg_id"],
            SPEC_VECTOR["timestamp"],
            SPEC_VECTOR["body"],
        )
        assert headers[SIGNATURE_HEADER] == SPEC_VECTOR["signature"]

    def test_the_python_example_is_accepted_and_a_changed_id_body_or_secret_is_not(self) -> None:
        signing = load_example("callback_signing")
        body = b'{"status": "qualified"}'
        headers = signing.callback_headers(SECRET, "msg_7", int(time.time()), body)
        assert verify_callback([SECRET], headers, body) == "msg_7"
        forged = [
            ([SECRET], {**headers, ID_HEADER: "msg_8"}, body),
            ([SECRET], headers, b'{"status": "lost"}'),
            ([new_callback_secret()], headers, body),
        ]
        for secrets_, sent_headers, sent in forged:
            with pytest.raises(CallbackRefused):
                verify_callback(secrets_, sent_headers, sent)

    @pytest.mark.parametrize(("offset", "accepted"), [(-5, True), (5, False)])
    def test_the_window_the_reference_states_is_the_one_checked(
        self, offset: int, accepted: bool
    ) -> None:
        body = b"{}"
        for sign in (-1, 1):
            timestamp = int(time.time()) + sign * (WINDOW_S + offset)
            headers = sign_callback(SECRET, f"msg_{sign}", timestamp, body)
            if accepted:
                assert verify_callback([SECRET], headers, body) == f"msg_{sign}"
            else:
                with pytest.raises(CallbackRefused):
                    verify_callback([SECRET], headers, body)
        assert f"more than {WINDOW_S} s" in " ".join(REFERENCE.read_text().split())

    @pytest.mark.parametrize("webhook_id", [None, "crm-event-17"])
    def test_the_curl_example_sends_a_callback_the_api_accepts(
        self, webhook_id: str | None
    ) -> None:
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
        path = "/api/v1/public/callbacks/6f1de0a42c554b8e9a3f0d7c81b2e945"
        env = {
            "PATH": "/usr/bin:/bin",
            "CALLBACK_URL": f"http://127.0.0.1:{server.server_address[1]}{path}",
            "CALLBACK_SECRET": SECRET,
            "BODY": body,
        }
        if webhook_id is not None:
            env["WEBHOOK_ID"] = webhook_id
        result = subprocess.run(
            ["sh", str(EXAMPLES / "send_callback.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        server.server_close()
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"ok": True}
        [(sent_path, headers, sent)] = received
        assert sent_path == path
        assert sent == body.encode()
        lower = {k.lower(): v for k, v in headers.items()}
        event_id = verify_callback([SECRET], lower, sent)
        if webhook_id is None:
            assert event_id.startswith("msg_") and len(event_id) == len("msg_") + 32
        else:
            assert event_id == webhook_id
        with pytest.raises(CallbackRefused):
            verify_callback([new_callback_secret()], lower, sent)
        assert lower[TIMESTAMP_HEADER].isdigit()
