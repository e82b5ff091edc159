"""The `api_call` step's HTTP request: SSRF-guarded, bounded in size and time, redirects re-checked.

Errors are typed so the activity can decide about retries: `BlockedAddressError`,
`InvalidRequestError` and `ResponseTooLargeError` are the step's configuration and never
get better by retrying; `UpstreamHttpError` says whether the status is worth retrying
(and after how long); `UpstreamUnavailableError` (DNS, connect, TLS, timeout) is.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from infra.http_guard import (
    AddressGuard,
    BlockedAddressError,
    GuardedTransport,
    pinned_addresses,
)

__all__ = [
    "ApiCaller",
    "ApiRequest",
    "ApiResponse",
    "BlockedAddressError",
    "InvalidRequestError",
    "ResponseTooLargeError",
    "UpstreamHttpError",
    "UpstreamUnavailableError",
    "extract_path",
    "parse_path",
]

USER_AGENT = "CXGear api_call"
BODY_EXCERPT_CHARS = 500
# Only as much of an error response as the message and excerpt need.
_ERROR_BODY_BYTES = 8192
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Set by the HTTP machinery; a templated value here could desynchronise the framing.
_DROPPED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
    }
)
# Headers often carry credentials under any name (X-Api-Key, Authorization, a custom
# token): a redirect to another origin keeps only these.
_CROSS_ORIGIN_HEADERS = frozenset({"accept", "accept-language", "content-type", "user-agent"})
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_PATH = re.compile(r"^(?:[^.\[\]]+|\[-?\d+\])(?:\.[^.\[\]]+|\[-?\d+\])*$")
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")


@dataclass
class ApiRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    timeout_s: float = 10
    max_response_bytes: int = 1_048_576
    output_paths: dict[str, str] = field(default_factory=dict)


@dataclass
class ApiResponse:
    status: int
    outputs: dict[str, Any]
    body_excerpt: str
    elapsed_ms: int


class InvalidRequestError(ValueError):
    """The step's request cannot be sent as configured (scheme, method, header, output path)."""


class ResponseTooLargeError(Exception):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"response larger than {limit} bytes")


class UpstreamHttpError(Exception):
    """The server answered with a status the step treats as a failure."""

    def __init__(
        self,
        status: int,
        retryable: bool,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        body_excerpt: str = "",
    ) -> None:
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.body_excerpt = body_excerpt
        super().__init__(message or f"HTTP {status}")


class UpstreamUnavailableError(Exception):
    """No answer: name not resolved, connection refused, TLS failure or timeout. Retryable."""

    retryable = True


def parse_path(path: str) -> list[str | int]:
    """`data.items[0].id` → ["data", "items", 0, "id"]; a leading `$` / `$.` is allowed."""
    path = path.strip()
    if path.startswith("$"):
        path = path[1:].lstrip(".")
    if not path:
        return []
    if not _PATH.match(path):
        raise ValueError(f"output path {path!r} is not like data.items[0].id")
    return [
        name if index is None or name else int(index)
        for name, index in ((match.group(1), match.group(2)) for match in _PATH_PART.finditer(path))
    ]


def extract_path(obj: Any, path: str) -> Any:
    """The value at a dotted path with `[n]` indices (negative from the end); None if absent."""
    return _walk(obj, parse_path(path))


def _walk(current: Any, parts: list[str | int]) -> Any:
    for part in parts:
        if isinstance(current, dict):
            current = current.get(part) if isinstance(part, str) else None
        elif isinstance(current, list):
            # `items.0` is read like `items[0]`: people write both.
            index = int(part) if isinstance(part, str) and part.lstrip("-").isdigit() else part
            if not isinstance(index, int) or not -len(current) <= index < len(current):
                return None
            current = current[index]
        else:
            return None
    return current


class ApiCaller:
    """Sends one `ApiRequest`; built once per worker and shared by all api_call activities.

    `transport` replaces the guarded transport (tests, proxies): the host is still
    resolved and vetted before each hop, but the connection is then the transport's
    business and no longer pinned to the vetted address.
    """

    def __init__(
        self,
        *,
        allowed_hosts: Collection[str] = (),
        max_redirects: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.guard = AddressGuard(allowed_hosts=allowed_hosts)
        self.max_redirects = max_redirects
        self._client = httpx.AsyncClient(
            transport=transport or GuardedTransport(self.guard),
            trust_env=False,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(self, req: ApiRequest) -> ApiResponse:
        method = req.method.strip().upper()
        if method not in METHODS:
            raise InvalidRequestError(f"method {req.method!r} is not one of {sorted(METHODS)}")
        try:
            paths = {
                name: None if path.strip() == "status" else parse_path(path)
                for name, path in req.output_paths.items()
            }
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        headers = _request_headers(req.headers)
        content = req.body.encode() if req.body is not None else None
        url = _parse_url(req.url)
        started = time.monotonic()
        try:
            async with asyncio.timeout(req.timeout_s):
                response, body = await self._exchange(method, url, headers, content, req)
        except TimeoutError:
            raise UpstreamUnavailableError(
                f"{method} {_redacted(url)} timed out after {req.timeout_s:g} s"
            ) from None
        elapsed_ms = int((time.monotonic() - started) * 1000)
        status = response.status_code
        excerpt = _excerpt(response, body)
        if not 200 <= status < 300:
            raise _status_error(method, response, excerpt)
        data = _json_body(response, body)
        outputs = {
            name: status if parts is None else None if data is _NOT_JSON else _walk(data, parts)
            for name, parts in paths.items()
        }
        return ApiResponse(
            status=status, outputs=outputs, body_excerpt=excerpt, elapsed_ms=elapsed_ms
        )

    async def _exchange(
        self,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        content: bytes | None,
        req: ApiRequest,
    ) -> tuple[httpx.Response, bytes]:
        for hop in range(self.max_redirects + 1):
            host, port = _target(url)
            try:
                addresses = await self.guard.resolve(host, port)
            except socket.gaierror as exc:
                raise UpstreamUnavailableError(f"cannot resolve {host}: {exc}") from None
            request = self._client.build_request(
                method, url, headers=headers, content=content, timeout=req.timeout_s
            )
            try:
                with pinned_addresses(host, port, addresses):
                    response = await self._client.send(request, stream=True)
                try:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECT_STATUSES and location:
                        if hop == self.max_redirects:
                            raise UpstreamHttpError(
                                response.status_code,
                                False,
                                f"{method} {_redacted(req.url)} redirected more than "
                                f"{self.max_redirects} times",
                            )
                        try:
                            target = url.join(location)
                        except httpx.InvalidURL:
                            raise UpstreamHttpError(
                                response.status_code,
                                False,
                                f"{_redacted(url)} redirected to an invalid URL",
                            ) from None
                        method, content, headers = _follow(
                            response.status_code, method, content, headers, url, target
                        )
                        url = target
                        continue
                    if 200 <= response.status_code < 300:
                        body = await _read(response, req.max_response_bytes, strict=True)
                    else:
                        body = await _read(response, _ERROR_BODY_BYTES, strict=False)
                    return response, body
                finally:
                    await response.aclose()
            except httpx.RequestError as exc:  # transport failures and undecodable bodies
                raise UpstreamUnavailableError(
                    f"{method} {_redacted(url)} failed: {type(exc).__name__}: {exc}"
                ) from None
        raise AssertionError("unreachable: the last hop returns or raises")


def _parse_url(raw: str) -> httpx.URL:
    try:
        url = httpx.URL(raw.strip())
    except httpx.InvalidURL as exc:
        raise InvalidRequestError(f"invalid URL: {exc}") from None
    _target(url)
    return url


def _target(url: httpx.URL) -> tuple[str, int]:
    if url.scheme not in ("http", "https"):
        raise InvalidRequestError(f"only http and https URLs are allowed, not {url.scheme!r}")
    if not url.raw_host:
        raise InvalidRequestError(f"URL {_redacted(url)} has no host")
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.raw_host.decode("ascii"), port


def _redacted(url: httpx.URL | str) -> str:
    """scheme://host/path: query strings and user info often carry API keys."""
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else url
        return str(parsed.copy_with(query=None, fragment=None, username=None, password=None))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<invalid URL>"


def _request_headers(raw: dict[str, str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw.items():
        if not _TOKEN.match(name):
            raise InvalidRequestError(f"header name {name!r} is not valid")
        if any(ch in value for ch in "\r\n\0"):
            raise InvalidRequestError(f"header {name} contains a line break")
        if name.lower() not in _DROPPED_HEADERS:
            headers[name] = value
    return headers


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _follow(
    status: int,
    method: str,
    content: bytes | None,
    headers: dict[str, str],
    source: httpx.URL,
    target: httpx.URL,
) -> tuple[str, bytes | None, dict[str, str]]:
    # Browsers' behaviour, which servers expect: 303 (and 301/302 after POST) become GET.
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, content = "GET", None
        headers = {
            k: v
            for k, v in headers.items()
            if k.lower() not in ("content-type", "content-encoding")
        }
    if _origin(source) != _origin(target):
        headers = {k: v for k, v in headers.items() if k.lower() in _CROSS_ORIGIN_HEADERS}
    return method, content, headers


async def _read(response: httpx.Response, limit: int, *, strict: bool) -> bytes:
    """Up to `limit` decoded bytes; past it, raise (`strict`) or truncate."""
    declared = response.headers.get("content-length", "")
    if (
        strict
        and declared.isdigit()
        and int(declared) > limit
        and not response.headers.get("content-encoding")
    ):
        raise ResponseTooLargeError(limit)
    buffer = bytearray()
    # Decoded bytes are counted, so a small gzip bomb is caught as it expands.
    async for chunk in response.aiter_bytes():
        buffer += chunk
        if len(buffer) > limit:
            if strict:
                raise ResponseTooLargeError(limit)
            return bytes(buffer[:limit])
    return bytes(buffer)


_NOT_JSON = object()


def _json_body(response: httpx.Response, body: bytes) -> Any:
    mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (mime in ("application/json", "text/json") or mime.endswith("+json")):
        return _NOT_JSON
    try:
        return json.loads(body)
    except ValueError:
        return _NOT_JSON


def _excerpt(response: httpx.Response, body: bytes) -> str:
    head = body[: BODY_EXCERPT_CHARS * 4]
    try:
        text = head.decode(response.charset_encoding or "utf-8", "replace")
    except LookupError:
        text = head.decode("utf-8", "replace")
    return text[:BODY_EXCERPT_CHARS]


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _status_error(method: str, response: httpx.Response, excerpt: str) -> UpstreamHttpError:
    status = response.status_code
    retryable = status in (408, 429) or status >= 500
    message = f"{method} {_redacted(response.request.url)} returned HTTP {status}"
    if excerpt.strip():
        message += f": {' '.join(excerpt.split())[:200]}"
    return UpstreamHttpError(
        status,
        retryable,
        message,
        retry_after=_retry_after(response.headers.get("retry-after")) if retryable else None,
        body_excerpt=excerpt,
    )
