"""Provider SDK clients built from a connection's config and credentials.

Each factory returns the provider's real SDK client; an optional base URL in the
config points it somewhere else than the public API (a regional endpoint, a proxy,
or a loopback fake in tests). SDK-level retries are off where the SDK has them:
our activities own the retry policy.

A base URL is chosen by the organization, and the SDK sends the organization's
credentials to it from inside our network: every factory takes a `ProviderGuard`,
which resolves the host and refuses loopback, private, link-local and other
non-public addresses (the same rules as the `api_call` step) unless the operator
allow-listed the host in `CXGEAR_PROVIDER_ALLOWED_HOSTS`. The httpx-based SDKs
(OpenAI, Deepgram) also connect through the guarded transport, so a redirect or a
DNS answer that changes after the check is vetted again at connect time. Twilio's
client follows no redirects and SendGrid's is built not to; both are synchronous
SDKs on their own HTTP stacks, so for them the check happens when the client is built.

The signature helpers verify provider webhooks (Twilio status callbacks and inbound
messages, SendGrid signed Event Webhook batches).
"""

from __future__ import annotations

import base64
import binascii
import urllib.request
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import httpx
import httpx2
import openai
import python_http_client  # type: ignore[import-untyped]  # no py.typed
from botocore.config import Config as BotoConfig
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

from infra.http_guard import AddressGuard, BlockedAddressError, GuardedTransport
from infra.http_guard_httpx2 import GuardedTransport2

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "PROVIDER_HOSTS_SETTING",
    "OPENAI_TIMEOUT_S",
    "DEEPGRAM_TIMEOUT_S",
    "TWILIO_TIMEOUT_S",
    "BaseUrlTwilioHttpClient",
    "ProviderGuard",
    "ProviderUrlBlocked",
    "deepgram_client",
    "openai_client",
    "s3_client",
    "sendgrid_client",
    "sendgrid_signature_valid",
    "twilio_client",
    "twilio_signature_valid",
]

OPENAI_TIMEOUT_S = 120.0
DEEPGRAM_TIMEOUT_S = 300.0
TWILIO_TIMEOUT_S = 30.0
S3_CONNECT_TIMEOUT_S = 10.0
S3_READ_TIMEOUT_S = 60.0


def _optional_str(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value.rstrip("/")


class ProviderUrlBlocked(ValueError):
    """An integration's base URL points at an address providers may not be reached on.

    A ValueError like the factories' other configuration errors: retrying never helps.
    """

    def __init__(self, key: str, blocked: BlockedAddressError) -> None:
        self.key = key
        self.blocked = blocked
        super().__init__(f"{key}: {blocked}")


PROVIDER_HOSTS_SETTING = "CXGEAR_PROVIDER_ALLOWED_HOSTS"
# The config keys holding a base URL, across kinds.
_URL_KEYS = ("base_url", "api_base_url", "endpoint_url")


class ProviderGuard:
    """Vets integrations' base URLs; one per process, built from the operator's allow-list."""

    def __init__(self, allowed_hosts: Collection[str] = ()) -> None:
        self.addresses = AddressGuard(allowed_hosts=allowed_hosts, setting=PROVIDER_HOSTS_SETTING)

    async def vet(self, config: Mapping[str, Any]) -> None:
        """Raise `ProviderUrlBlocked` unless every base URL in `config` may be reached.

        A name that does not resolve raises `socket.gaierror` (an OSError): the provider is
        unreachable for now, which is not a configuration error.
        """
        for key in _URL_KEYS:
            url = _optional_str(config, key)
            if url is None:
                continue
            parts = httpx.URL(url)
            if parts.scheme not in ("http", "https") or not parts.host:
                raise ValueError(f"{key} must be an absolute http(s) URL")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            try:
                await self.addresses.resolve(parts.host, port)
            except BlockedAddressError as exc:
                raise ProviderUrlBlocked(key, exc) from None

    def http_client(self, timeout: float) -> httpx.AsyncClient:
        """An httpx client whose every connection (redirects included) is vetted."""
        return httpx.AsyncClient(
            transport=GuardedTransport(self.addresses),
            timeout=timeout,
            follow_redirects=True,
            trust_env=False,
        )

    def openai_http_client(self) -> httpx2.AsyncClient:
        """The OpenAI SDK's own default client (httpx2) with every connection vetted."""
        return openai.DefaultAsyncHttpxClient(
            transport=GuardedTransport2(self.addresses), trust_env=False
        )


def _required_str(creds: Mapping[str, Any], key: str) -> str:
    value = creds.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"missing credential {key!r}")
    return value


# --- OpenAI -------------------------------------------------------------------------------------


async def openai_client(
    config: Mapping[str, Any], creds: Mapping[str, Any], *, guard: ProviderGuard
) -> openai.AsyncOpenAI:
    """AsyncOpenAI for `creds["api_key"]`; `config["base_url"]` (ending in /v1) is optional."""
    api_key = _required_str(creds, "api_key")
    base_url = _optional_str(config, "base_url")
    await guard.vet(config)
    return openai.AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        timeout=OPENAI_TIMEOUT_S,
        max_retries=0,
        # The public endpoint keeps the SDK's own client (and the environment's proxy).
        http_client=guard.openai_http_client() if base_url else None,
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


async def twilio_client(
    config: Mapping[str, Any], creds: Mapping[str, Any], *, guard: ProviderGuard
) -> TwilioClient:
    """Twilio REST client; `config["api_base_url"]` optionally redirects every request."""
    base_url = _optional_str(config, "api_base_url")
    await guard.vet(config)
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


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        # urllib then raises HTTPError for the 3xx, which python_http_client reports as such.
        return None


class NoRedirectSendGridHttp(python_http_client.Client):  # type: ignore[misc]  # untyped base
    """python_http_client's Client without urllib's redirect following.

    urllib follows a 3xx to any host with the Authorization header still attached, and the
    address vetted for the base URL says nothing about the redirect's target.
    """

    def _build_client(self, name: str | None = None) -> NoRedirectSendGridHttp:
        url_path = self._url_path + [name] if name else self._url_path
        return NoRedirectSendGridHttp(
            host=self.host,
            version=self._version,
            request_headers=self.request_headers,
            url_path=url_path,
            append_slash=self.append_slash,
            timeout=self.timeout,
        )

    def _make_request(self, opener: Any, request: Any, timeout: float | None = None) -> Any:
        del opener  # urllib's default opener follows redirects
        return super()._make_request(
            urllib.request.build_opener(_RefuseRedirects()), request, timeout
        )


async def sendgrid_client(
    config: Mapping[str, Any], creds: Mapping[str, Any], *, guard: ProviderGuard
) -> SendGridAPIClient:
    """SendGrid v3 client; `config["base_url"]` (scheme + host, no /v3) is optional."""
    host = _optional_str(config, "base_url") or "https://api.sendgrid.com"
    api_key = _required_str(creds, "api_key")
    await guard.vet(config)
    client: SendGridAPIClient = SendGridAPIClient(api_key=api_key, host=host)
    client.client = NoRedirectSendGridHttp(
        host=host, request_headers=client.client.request_headers, version=3
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


async def deepgram_client(
    config: Mapping[str, Any], creds: Mapping[str, Any], *, guard: ProviderGuard
) -> AsyncDeepgramClient:
    """AsyncDeepgramClient; `config["base_url"]` (scheme + host, no /v1) is optional.

    deepgram-sdk 7 takes a `DeepgramClientEnvironment`: `base` serves the REST API
    (listen, manage), the websocket entries are derived from it (http→ws).
    """
    api_key = _required_str(creds, "api_key")
    base_url = _optional_str(config, "base_url")
    await guard.vet(config)
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
        api_key=api_key,
        environment=environment,
        timeout=DEEPGRAM_TIMEOUT_S,
        max_retries=0,
        httpx_client=guard.http_client(DEEPGRAM_TIMEOUT_S) if base_url else None,
    )


# --- S3-compatible storage ----------------------------------------------------------------------


async def s3_client(
    config: Mapping[str, Any], creds: Mapping[str, Any], *, guard: ProviderGuard
) -> S3Client:
    """A boto3 S3 client; `config["endpoint_url"]` names an S3-compatible store (None: AWS).

    boto3 runs on its own HTTP stack, so the endpoint is vetted here, when the client is built
    (like Twilio's and SendGrid's); S3 answers with no redirects boto3 would follow elsewhere.
    """
    access_key = _required_str(creds, "access_key_id")
    secret_key = _required_str(creds, "secret_access_key")
    endpoint = _optional_str(config, "endpoint_url")
    await guard.vet(config)
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=_optional_str(config, "region") or "us-east-1",
        config=BotoConfig(
            # Our activities own the retry policy.
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=S3_CONNECT_TIMEOUT_S,
            read_timeout=S3_READ_TIMEOUT_S,
            # Path-style works with every S3-compatible store (SeaweedFS, MinIO) and with AWS.
            s3={"addressing_style": "path"},
        ),
    )
    return client
