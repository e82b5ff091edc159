"""Provider SDK clients built from a connection's config and credentials.

Each factory returns the provider's real SDK client; an optional base URL in the
config points it somewhere else than the public API (a regional endpoint, a proxy,
or a loopback fake in tests). SDK-level retries are off where the SDK has them:
our activities own the retry policy.

The signature helpers verify provider webhooks (Twilio status callbacks and inbound
messages, SendGrid signed Event Webhook batches).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment
from sendgrid import SendGridAPIClient  # type: ignore[import-untyped]  # sendgrid ships no py.typed
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped]  # no py.typed
from twilio.http.response import Response as TwilioResponse  # type: ignore[import-untyped]
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]
from twilio.rest import Client as TwilioClient  # type: ignore[import-untyped]

__all__ = [
    "OPENAI_TIMEOUT_S",
    "DEEPGRAM_TIMEOUT_S",
    "TWILIO_TIMEOUT_S",
    "BaseUrlTwilioHttpClient",
    "deepgram_client",
    "openai_client",
    "sendgrid_client",
    "sendgrid_signature_valid",
    "twilio_client",
    "twilio_signature_valid",
]

OPENAI_TIMEOUT_S = 120.0
DEEPGRAM_TIMEOUT_S = 300.0
TWILIO_TIMEOUT_S = 30.0


def _optional_str(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value.rstrip("/")


def _required_str(creds: Mapping[str, Any], key: str) -> str:
    value = creds.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"missing credential {key!r}")
    return value


# --- OpenAI -------------------------------------------------------------------------------------


def openai_client(config: Mapping[str, Any], creds: Mapping[str, Any]) -> openai.AsyncOpenAI:
    """AsyncOpenAI for `creds["api_key"]`; `config["base_url"]` (ending in /v1) is optional."""
    return openai.AsyncOpenAI(
        api_key=_required_str(creds, "api_key"),
        base_url=_optional_str(config, "base_url"),
        timeout=OPENAI_TIMEOUT_S,
        max_retries=0,
    )


# --- Twilio -------------------------------------------------------------------------------------


class BaseUrlTwilioHttpClient(TwilioHttpClient):  # type: ignore[misc]  # base class is untyped
    """Twilio's HTTP client with every request's scheme and host replaced by `base_url`.

    The SDK builds absolute URLs per domain (api.twilio.com, messaging.twilio.com, …)
    and may add edge/region to the host; rewriting here covers all of them while the
    path and query stay exactly what the SDK produced. A path prefix in `base_url`
    (e.g. a proxy mounted under /twilio) is kept in front of the SDK's path.
    """

    def __init__(self, base_url: str, *, timeout: float | None = TWILIO_TIMEOUT_S) -> None:
        super().__init__(timeout=timeout, max_retries=0)
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"api_base_url must be an absolute http(s) URL, got {base_url!r}")
        self.base_scheme = parts.scheme
        self.base_netloc = parts.netloc
        self.base_path = parts.path.rstrip("/")

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        return urlunsplit(
            (self.base_scheme, self.base_netloc, self.base_path + parts.path, parts.query, "")
        )

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        response: TwilioResponse = super().request(
            method,
            self.rewrite(url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        return response


def twilio_client(config: Mapping[str, Any], creds: Mapping[str, Any]) -> TwilioClient:
    """Twilio REST client; `config["api_base_url"]` optionally redirects every request."""
    base_url = _optional_str(config, "api_base_url")
    http_client = (
        BaseUrlTwilioHttpClient(base_url)
        if base_url
        else TwilioHttpClient(timeout=TWILIO_TIMEOUT_S, max_retries=0)
    )
    client: TwilioClient = TwilioClient(
        _required_str(creds, "account_sid"),
        _required_str(creds, "auth_token"),
        http_client=http_client,
    )
    return client


def twilio_signature_valid(
    auth_token: str, url: str, params: Mapping[str, str], signature: str
) -> bool:
    """Check `X-Twilio-Signature` for a form-encoded webhook delivered to `url`."""
    if not signature:
        return False
    validator = RequestValidator(auth_token)
    return bool(validator.validate(url, dict(params), signature))


# --- SendGrid -----------------------------------------------------------------------------------


def sendgrid_client(config: Mapping[str, Any], creds: Mapping[str, Any]) -> SendGridAPIClient:
    """SendGrid v3 client; `config["base_url"]` (scheme + host, no /v3) is optional."""
    host = _optional_str(config, "base_url") or "https://api.sendgrid.com"
    client: SendGridAPIClient = SendGridAPIClient(
        api_key=_required_str(creds, "api_key"), host=host
    )
    return client


def sendgrid_signature_valid(
    public_key_b64: str, payload: bytes, signature: str, timestamp: str
) -> bool:
    """Verify a signed Event Webhook batch: ECDSA P-256 / SHA-256 over timestamp + raw body.

    `public_key_b64` is the verification key as SendGrid shows it (base64 DER
    SubjectPublicKeyInfo); `signature` the base64 DER signature from
    `X-Twilio-Email-Event-Webhook-Signature`. The freshness of `timestamp` is the
    caller's check. Verified with `cryptography` over the raw bytes (SendGrid's own
    helper takes a str and re-encodes it, which is lossy for the exact body).
    """
    try:
        key = load_der_public_key(base64.b64decode(public_key_b64.strip(), validate=True))
        raw_signature = base64.b64decode(signature.strip(), validate=True)
    except (ValueError, binascii.Error):
        return False
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        key.verify(raw_signature, timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


# --- Deepgram -----------------------------------------------------------------------------------


def deepgram_client(config: Mapping[str, Any], creds: Mapping[str, Any]) -> AsyncDeepgramClient:
    """AsyncDeepgramClient; `config["base_url"]` (scheme + host, no /v1) is optional.

    deepgram-sdk 7 takes a `DeepgramClientEnvironment`: `base` serves the REST API
    (listen, manage), the websocket entries are derived from it (http→ws).
    """
    base_url = _optional_str(config, "base_url")
    if base_url:
        parts = urlsplit(base_url)
        ws_scheme = "wss" if parts.scheme == "https" else "ws"
        ws_url = urlunsplit((ws_scheme, parts.netloc, parts.path, "", ""))
        environment = DeepgramClientEnvironment(
            base=base_url, production=ws_url, agent=ws_url, agent_rest=base_url
        )
    else:
        environment = DeepgramClientEnvironment.PRODUCTION
    return AsyncDeepgramClient(
        api_key=_required_str(creds, "api_key"),
        environment=environment,
        timeout=DEEPGRAM_TIMEOUT_S,
        max_retries=0,
    )
