"""A loopback fake of Twilio's Messages API; keeps a ledger of accepted sends and builds signed callbacks.

with running_twilio() as fake:
    client = await twilio_client(fake.config, fake.creds, guard=guard)
    msg = client.messages.create(to=..., from_=..., body=..., status_callback=url)
    signed = fake.status_callback(msg.sid, "delivered")   # X-Twilio-Signature over url + form
    await asgi_client.post(signed.path, content=signed.body, headers=signed.headers)
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
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]  # no py.typed

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

API = "/2010-04-01"
_MESSAGES = re.compile(rf"^{API}/Accounts/(?P<account>AC\w+)/Messages\.json$")
_MESSAGE = re.compile(rf"^{API}/Accounts/(?P<account>AC\w+)/Messages/(?P<sid>SM\w+)\.json$")
_ACCOUNT = re.compile(rf"^{API}/Accounts/(?P<account>AC\w+)\.json$")


def _error(status: int, code: int, message: str) -> FakeResponse:
    return json_response(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def sign(auth_token: str, url: str, form: dict[str, str]) -> SignedRequest:
    """A form POST to `url` carrying `X-Twilio-Signature` as Twilio computes it."""
    signature = RequestValidator(auth_token).compute_signature(url, form)
    return SignedRequest(
        url=url,
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": str(signature),
            "user-agent": "TwilioProxy/1.1",
        },
        body=urlencode(form).encode(),
        form=dict(form),
    )


@dataclass
class FakeTwilio:
    host: str
    port: int
    account_sid: str
    auth_token: str
    ledger: Ledger
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: deque[int] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # (seconds, remaining): sleep before answering a send that was already recorded.
    hang: list[float] = field(default_factory=lambda: [0.0, 0.0])
    hangs_started: int = 0
    # Twilio's Messages list is eventually consistent: a message shows there only this many
    # seconds after it was accepted (fetching it by sid works at once).
    list_lag: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def hang_after_accept(self, seconds: float, *, times: int = 1) -> None:
        """The next `times` sends are recorded, then answered only after `seconds` (a hung
        connection after Twilio accepted the message: the caller cannot tell it was sent)."""
        with self.lock:
            self.hang[:] = [seconds, float(times)]

    @property
    def config(self) -> dict[str, str]:
        """Connection config for `infra.providers.twilio_client`."""
        return {"api_base_url": self.base_url}

    @property
    def creds(self) -> dict[str, str]:
        return {"account_sid": self.account_sid, "auth_token": self.auth_token}

    @property
    def sends(self) -> list[dict[str, Any]]:
        return self.ledger.snapshot()

    def fail_next(self, n: int = 1, *, status: int = 500) -> None:
        """Answer the next `n` sends with `status` without recording them."""
        with self.lock:
            self.failures.extend([status] * n)

    def message(self, sid: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.messages[sid])

    # --- callbacks -------------------------------------------------------------------------------

    def status_callback(
        self,
        sid: str,
        status: str,
        *,
        url: str | None = None,
        error_code: str | None = None,
    ) -> SignedRequest:
        """Signed status callback for message `sid` (queued/sent/delivered/undelivered/failed/read).

        Posted to the message's StatusCallback unless `url` is given; the fake's
        record of the message takes the new status (as a later fetch would show).
        """
        with self.lock:
            message = self.messages[sid]
            message["status"] = status
            target = url or message["status_callback"]
            if error_code is not None:
                message["error_code"] = int(error_code)
            to, from_ = message["to"], message["from"]
        if not target:
            raise ValueError(f"message {sid} has no StatusCallback; pass url=")
        form = {
            "SmsSid": sid,
            "SmsStatus": status,
            "MessageStatus": status,
            "To": to,
            "From": from_ or "",
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
        }
        if error_code is not None:
            form["ErrorCode"] = error_code
        return sign(self.auth_token, target, form)

    def inbound_message(self, from_: str, to: str, body: str, *, url: str) -> SignedRequest:
        """Signed inbound-SMS webhook (what Twilio posts to a number's messaging URL)."""
        sid = "SM" + secrets.token_hex(16)
        form = {
            "ToCountry": "US",
            "ToState": "",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "",
            "FromZip": "",
            "SmsSid": sid,
            "FromState": "",
            "SmsStatus": "received",
            "FromCity": "",
            "Body": body,
            "FromCountry": "US",
            "To": to,
            "ToZip": "",
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": from_,
            "ApiVersion": "2010-04-01",
        }
        return sign(self.auth_token, url, form)

    @staticmethod
    def deliver(signed: SignedRequest, base_override: str | None = None) -> httpx.Response:
        """POST a signed callback over HTTP; `base_override` replaces scheme+host+port only."""
        return deliver(signed, base_override)

    @staticmethod
    async def adeliver(signed: SignedRequest, base_override: str | None = None) -> httpx.Response:
        return await adeliver(signed, base_override)

    # --- HTTP ------------------------------------------------------------------------------------

    def _authorized(self, request: FakeRequest) -> bool:
        token = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {token}"

    def handle(self, request: FakeRequest) -> FakeResponse:
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        for pattern in (_MESSAGES, _MESSAGE, _ACCOUNT):
            match = pattern.match(request.path)
            if match is None:
                continue
            if match["account"] != self.account_sid:
                return _error(404, 20404, f"The requested resource {request.path} was not found")
            if pattern is _MESSAGES and request.method == "POST":
                return self._send(request)
            if pattern is _MESSAGES and request.method == "GET":
                return self._list(request)
            if pattern is _MESSAGE and request.method == "GET":
                with self.lock:
                    found = self.messages.get(match["sid"])
                    resource = dict(found) if found else None
                if resource is None:
                    return _error(
                        404, 20404, f"The requested resource {request.path} was not found"
                    )
                return json_response(200, self._resource(resource))
            if pattern is _ACCOUNT and request.method == "GET":
                return json_response(200, self._account())
            return _error(405, 20004, "Method not allowed")
        return _error(404, 20404, f"The requested resource {request.path} was not found")

    def _account(self) -> dict[str, Any]:
        uri = f"{API}/Accounts/{self.account_sid}"
        return {
            "sid": self.account_sid,
            "owner_account_sid": self.account_sid,
            "friendly_name": "CXGear fake account",
            "status": "active",
            "type": "Full",
            "auth_token": self.auth_token,
            "date_created": "Thu, 01 Feb 2024 10:00:00 +0000",
            "date_updated": "Thu, 01 Feb 2024 10:00:00 +0000",
            "uri": f"{uri}.json",
            "subresource_uris": {"messages": f"{uri}/Messages.json"},
        }

    def _send(self, request: FakeRequest) -> FakeResponse:
        form = request.form()
        to = form.get("To", "")
        from_ = form.get("From")
        service = form.get("MessagingServiceSid")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not from_ and not service:
            return _error(400, 21603, "A 'From' phone number is required.")
        if not form.get("Body") and not form.get("ContentSid") and not form.get("MediaUrl"):
            return _error(400, 21602, "Message body is required.")
        content_variables: Any = form.get("ContentVariables")
        if content_variables:
            try:
                content_variables = json.loads(content_variables)
            except ValueError:
                return _error(400, 21656, "The ContentVariables Parameter is invalid.")
        with self.lock:
            if self.failures:
                status = self.failures.popleft()
                return _error(status, 20500, "An internal server error has occurred")
            sid = "SM" + secrets.token_hex(16)
            now = formatdate(usegmt=False)
            message = {
                "sid": sid,
                "to": to,
                "from": from_,
                "messaging_service_sid": service,
                "body": form.get("Body", ""),
                "content_sid": form.get("ContentSid"),
                "content_variables": content_variables or None,
                "status_callback": form.get("StatusCallback"),
                "status": "queued",
                "error_code": None,
                "date_created": now,
                "sent_at": time.time(),
            }
            self.messages[sid] = message
            self.ledger.add({**message, "form": form, "headers": request.headers})
            resource = dict(message)
            hang = 0.0
            if self.hang[1] > 0:
                hang = self.hang[0]
                self.hang[1] -= 1
                self.hangs_started += 1
        if hang:
            time.sleep(hang)
        return json_response(201, self._resource(resource))

    def _list(self, request: FakeRequest) -> FakeResponse:
        """Messages list filtered like Twilio's: To, From, DateSent>= (newest first, one page)."""
        query = request.query_one()
        after = query.get("DateSent>")
        since = (
            datetime.strptime(after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
            if after
            else 0.0
        )
        with self.lock:
            visible_before = time.time() - self.list_lag
            found = [
                dict(m)
                for m in self.messages.values()
                if (not query.get("To") or m["to"] == query["To"])
                and (not query.get("From") or m["from"] == query["From"])
                and since <= m["sent_at"] <= visible_before
            ]
        found.sort(key=lambda m: m["sent_at"], reverse=True)
        size = int(query.get("PageSize") or 50)
        uri = f"{API}/Accounts/{self.account_sid}/Messages.json"
        return json_response(
            200,
            {
                "messages": [self._resource(m) for m in found[:size]],
                "end": max(0, min(size, len(found)) - 1),
                "first_page_uri": f"{uri}?PageSize={size}&Page=0",
                "next_page_uri": None,
                "page": 0,
                "page_size": size,
                "previous_page_uri": None,
                "start": 0,
                "uri": f"{uri}?PageSize={size}&Page=0",
            },
        )

    def _resource(self, message: dict[str, Any]) -> dict[str, Any]:
        uri = f"{API}/Accounts/{self.account_sid}/Messages/{message['sid']}"
        body = str(message["body"] or "")
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": message["date_created"],
            "date_sent": message["date_created"],
            "date_updated": message["date_created"],
            "direction": "outbound-api",
            "error_code": message["error_code"],
            "error_message": None,
            "from": message["from"],
            "messaging_service_sid": message["messaging_service_sid"],
            "num_media": "0",
            "num_segments": str(max(1, -(-len(body) // 160))),
            "price": None,
            "price_unit": "USD",
            "sid": message["sid"],
            "status": message["status"],
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": message["to"],
            "uri": f"{uri}.json",
        }


@contextmanager
def running_twilio(
    account_sid: str | None = None, auth_token: str | None = None
) -> Iterator[FakeTwilio]:
    ledger = Ledger()
    fake = FakeTwilio(
        "127.0.0.1",
        0,
        account_sid or "AC" + secrets.token_hex(16),
        auth_token or secrets.token_hex(16),
        ledger,
    )
    with serve(fake.handle, ledger) as (host, port):
        fake.host, fake.port = host, port
        yield fake
