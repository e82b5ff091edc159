"""A loopback fake of SendGrid's v3 mail send API and signed Event Webhook; keeps a ledger of sends.

    with running_sendgrid() as fake:
        client = await sendgrid_client(fake.config, fake.creds, guard=guard)
        response = client.send(mail)                       # 202, X-Message-Id
        message_id = response.headers["X-Message-Id"]
        signed = fake.events([fake.delivered(message_id)], url=webhook_url)
        # verify with sendgrid_signature_valid(fake.public_key_b64, signed.body, sig, ts)

Events carry `sg_message_id` as SendGrid does: the X-Message-Id followed by a
`.filterdrecv-…` suffix, so match on the part before the first dot.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.signed import (
    FakeRequest,
    FakeResponse,
    Ledger,
    SignedRequest,
    adeliver,
    deliver,
    json_response,
    serve,
)

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

SCOPES = ["mail.send", "mail.batch.read", "scopes.read", "user.profile.read"]


def _errors(status: int, message: str, field_: str | None = None) -> FakeResponse:
    return json_response(status, {"errors": [{"message": message, "field": field_, "help": None}]})


def _token(n: int = 16) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(n)).decode().rstrip("=")


@dataclass
class FakeSendGrid:
    host: str
    port: int
    api_key: str
    ledger: Ledger
    private_key: ec.EllipticCurvePrivateKey
    event_webhook_url: str | None = None
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: deque[int] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # (seconds, remaining): sleep before answering a send that was already recorded.
    hang: list[float] = field(default_factory=lambda: [0.0, 0.0])
    hangs_started: int = 0
    # Email Activity is eventually consistent: a message is found there only this long after.
    list_lag: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config(self) -> dict[str, str]:
        """Connection config for `infra.providers.sendgrid_client`."""
        return {"base_url": self.base_url}

    @property
    def creds(self) -> dict[str, str]:
        return {"api_key": self.api_key}

    @property
    def public_key_b64(self) -> str:
        """The Event Webhook verification key as SendGrid shows it (base64 DER SubjectPublicKeyInfo)."""
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    @property
    def sends(self) -> list[dict[str, Any]]:
        return self.ledger.snapshot()

    def hang_after_accept(self, seconds: float, *, times: int = 1) -> None:
        """The next `times` sends are recorded, then answered only after `seconds`."""
        with self.lock:
            self.hang[:] = [seconds, float(times)]

    def fail_next(self, n: int = 1, *, status: int = 500) -> None:
        """Answer the next `n` sends with `status` without recording them."""
        with self.lock:
            self.failures.extend([status] * n)

    # --- events ----------------------------------------------------------------------------------

    def event(
        self,
        message_id: str,
        event: str,
        *,
        email: str | None = None,
        timestamp: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """One event for a sent message (by X-Message-Id), with the message's custom_args on top level."""
        with self.lock:
            message = self.messages[message_id]
        payload: dict[str, Any] = {
            "email": email or message["to"][0],
            "timestamp": timestamp if timestamp is not None else int(time.time()),
            "smtp-id": f"<{message_id}@geopod-ismtpd-1>",
            "event": event,
            "sg_event_id": _token(),
            "sg_message_id": f"{message_id}.filterdrecv-{secrets.token_hex(4)}-1-{secrets.token_hex(8).upper()}-1.0",
        }
        if message["categories"]:
            payload["category"] = message["categories"]
        payload.update(message["custom_args"])
        payload.update(extra)
        return payload

    def delivered(self, message_id: str, **kw: Any) -> dict[str, Any]:
        return self.event(message_id, "delivered", response="250 2.0.0 OK", tls=1, **kw)

    def bounce(
        self,
        message_id: str,
        *,
        reason: str = "550 5.1.1 The email account does not exist.",
        **kw: Any,
    ) -> dict[str, Any]:
        return self.event(message_id, "bounce", reason=reason, status="5.1.1", type="bounce", **kw)

    def unsubscribe(self, message_id: str, **kw: Any) -> dict[str, Any]:
        return self.event(message_id, "unsubscribe", **kw)

    def open(self, message_id: str, **kw: Any) -> dict[str, Any]:
        return self.event(
            message_id,
            "open",
            useragent="Mozilla/5.0",
            ip="192.0.2.10",
            sg_machine_open=False,
            **kw,
        )

    def sign(self, payload: bytes, timestamp: str) -> str:
        signature = self.private_key.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode()

    def events(
        self,
        events: list[dict[str, Any]],
        *,
        url: str | None = None,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """A signed Event Webhook POST of `events` to `url` (or `event_webhook_url`)."""
        target = url or self.event_webhook_url
        if not target:
            raise ValueError("pass url= or set event_webhook_url")
        payload = (json.dumps(events, separators=(",", ":")) + "\r\n").encode()
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        return SignedRequest(
            url=target,
            headers={
                "content-type": "application/json",
                "user-agent": "SendGrid Event API",
                SIGNATURE_HEADER: self.sign(payload, stamp),
                TIMESTAMP_HEADER: stamp,
            },
            body=payload,
            json_body=events,
        )

    @staticmethod
    def deliver(signed: SignedRequest, base_override: str | None = None) -> httpx.Response:
        return deliver(signed, base_override)

    @staticmethod
    async def adeliver(signed: SignedRequest, base_override: str | None = None) -> httpx.Response:
        return await adeliver(signed, base_override)

    # --- HTTP ------------------------------------------------------------------------------------

    def handle(self, request: FakeRequest) -> FakeResponse:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _errors(401, "The provided authorization grant is invalid, expired, or revoked")
        if request.method == "GET" and request.path == "/v3/scopes":
            return json_response(200, {"scopes": SCOPES})
        if request.method == "POST" and request.path == "/v3/mail/send":
            return self._send(request)
        if request.method == "GET" and request.path == "/v3/messages":
            return self._activity(request)
        return _errors(404, "resource not found")

    def _activity(self, request: FakeRequest) -> FakeResponse:
        """Email Activity search; only the `unique_args['name']="value"` query is understood."""
        query = request.query_one().get("query", "")
        match = re.fullmatch(r"unique_args\['(?P<name>[^']+)'\]=\"(?P<value>[^\"]*)\"", query)
        if match is None:
            return _errors(400, "invalid query")
        with self.lock:
            visible_before = time.time() - self.list_lag
            found = [
                m
                for m in self.messages.values()
                if str(m["custom_args"].get(match["name"])) == match["value"]
                and m["accepted_at"] <= visible_before
            ]
            messages = [
                {
                    "from_email": m["from"],
                    "msg_id": f"{m['message_id']}.filterdrecv-1-1.0",
                    "subject": m["subject"],
                    "to_email": m["to"][0],
                    "status": "processed",
                    "opens_count": 0,
                    "clicks_count": 0,
                    "last_event_time": "2024-02-01T10:00:00Z",
                }
                for m in found
            ]
        return json_response(200, {"messages": messages})

    def _send(self, request: FakeRequest) -> FakeResponse:
        try:
            mail = request.json()
        except ValueError:
            return _errors(400, "Bad Request", None)
        if not isinstance(mail, dict):
            return _errors(400, "Bad Request", None)
        personalizations = mail.get("personalizations") or []
        if not personalizations:
            return _errors(400, "The personalizations field is required.", "personalizations")
        sender = (mail.get("from") or {}).get("email")
        if not sender:
            return _errors(
                400, "The from object must be provided for every email send.", "from.email"
            )
        to = [r["email"] for p in personalizations for r in p.get("to", []) if r.get("email")]
        if not to:
            return _errors(
                400,
                "The to array is required for all personalization objects.",
                "personalizations.0.to",
            )
        subject = personalizations[0].get("subject") or mail.get("subject")
        template_id = mail.get("template_id")
        content = mail.get("content") or []
        if not subject and not template_id:
            return _errors(400, "The subject is required.", "subject")
        if not content and not template_id:
            return _errors(
                400,
                "Unless a valid template_id is provided, the content parameter is required.",
                "content",
            )
        custom_args = {
            **(mail.get("custom_args") or {}),
            **(personalizations[0].get("custom_args") or {}),
        }
        with self.lock:
            if self.failures:
                return _errors(self.failures.popleft(), "Internal Server Error")
            message_id = _token()
            message = {
                "message_id": message_id,
                "to": to,
                "from": sender,
                "subject": subject,
                "content": content,
                "template_id": template_id,
                "dynamic_template_data": personalizations[0].get("dynamic_template_data"),
                "custom_args": custom_args,
                "categories": mail.get("categories") or [],
                "accepted_at": time.time(),
            }
            self.messages[message_id] = message
            self.ledger.add({**message, "request": mail, "headers": request.headers})
            hang = 0.0
            if self.hang[1] > 0:
                hang = self.hang[0]
                self.hang[1] -= 1
                self.hangs_started += 1
        if hang:
            time.sleep(hang)
        return FakeResponse(202, b"", {"x-message-id": message_id})


@contextmanager
def running_sendgrid(api_key: str | None = None) -> Iterator[FakeSendGrid]:
    ledger = Ledger()
    fake = FakeSendGrid(
        "127.0.0.1",
        0,
        api_key or "SG." + _token(16) + "." + _token(32),
        ledger,
        ec.generate_private_key(ec.SECP256R1()),
    )
    with serve(fake.handle, ledger) as (host, port):
        fake.host, fake.port = host, port
        yield fake
