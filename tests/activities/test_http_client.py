"""The `api_call` step's HTTP client against real loopback servers (loopback is blocked by default)."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from activities.http_client import (
    ApiCaller,
    ApiRequest,
    BlockedAddressError,
    InvalidRequestError,
    ResponseTooLargeError,
    UpstreamHttpError,
    UpstreamUnavailableError,
    extract_path,
)
from infra.http_guard import AddressGuard, GuardedTransport, address_block_reason

ITEMS = {"data": {"items": [{"id": 7, "name": "first"}, {"id": 8}], "empty": None}, "ok": True}


@dataclass
class Server:
    host: str
    port: int
    scheme: str = "http"
    ledger: list[dict[str, Any]] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    # /slow answers only once this is set (or after a minute): a timeout is the client's own.
    slow_release: threading.Event = field(default_factory=threading.Event)

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, path: str, *, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.handle_any()

    def do_POST(self) -> None:
        self.handle_any()

    def do_HEAD(self) -> None:
        self.handle_any()

    def handle_any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.server_state.ledger.append(
            {
                "method": self.command,
                "path": parts.path,
                "headers": dict(self.headers),
                "body": body,
            }
        )
        route = parts.path
        if route == "/json":
            self.reply(200, json.dumps(ITEMS).encode(), "application/json; charset=utf-8")
        elif route == "/problem-json":
            self.reply(200, b'{"detail": "x"}', "application/problem+json")
        elif route == "/bad-json":
            self.reply(200, b"{not json", "application/json")
        elif route == "/text":
            self.reply(200, ("hello " + "é" * 600).encode(), "text/plain; charset=utf-8")
        elif route == "/echo":
            echo = {"method": self.command, "headers": dict(self.headers), "body": body}
            self.reply(200, json.dumps(echo).encode(), "application/json")
        elif route == "/big":
            self.reply(200, b"x" * 2_000_000, "text/plain")
        elif route == "/big-unannounced":
            # No Content-Length: only counting while streaming can notice the size.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"y" * 65536)
            self.close_connection = True
        elif route == "/gzip-bomb":
            self.reply(
                200, gzip.compress(b"\0" * 20_000_000), "text/plain", {"Content-Encoding": "gzip"}
            )
        elif route == "/status":
            headers = {"Retry-After": query["retry_after"]} if "retry_after" in query else {}
            self.reply(int(query["code"]), b'{"error": "nope"}', "application/json", headers)
        elif route == "/redirect":
            self.reply(int(query.get("code", "302")), b"", "text/plain", {"Location": query["to"]})
        elif route == "/slow":
            self.server_state.slow_release.wait(60)
            self.reply(200, b"{}", "application/json")
        else:
            self.reply(404, b"not found", "text/plain")

    def reply(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The client hangs up on purpose (oversized bodies, timeouts, bad certificates).
        pass


def start_server(tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    state = Server(host="127.0.0.1", port=0, scheme="https" if tls else "http")
    handler = type("BoundHandler", (Handler,), {"server_state": state})
    httpd = QuietServer(("127.0.0.1", 0), handler)
    if tls is not None:
        tls.sni_callback = lambda sock, name, ctx: state.sni.append(name)
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    yield from start_server()


@pytest.fixture(scope="module")
def other_server() -> Iterator[Server]:
    yield from start_server()


@pytest.fixture
def caller(server: Server) -> ApiCaller:
    return ApiCaller(allowed_hosts=[server.hostport])


def get(url: str, **kwargs: Any) -> ApiRequest:
    return ApiRequest(method="GET", url=url, headers={}, body=None, **kwargs)


class RecordingTransport(httpx.AsyncBaseTransport):
    """Stands where the network would be: a refused request must never reach it."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={})


class TestHappyPath:
    async def test_allowed_loopback_host_is_reached_and_paths_extracted(
        self, caller: ApiCaller, server: Server
    ) -> None:
        response = await caller.call(
            get(
                server.url("/json?q=1"),
                output_paths={
                    "first_id": "data.items[0].id",
                    "last_id": "data.items[-1].id",
                    "name": "$.data.items.0.name",
                    "missing": "data.items[5].id",
                    "null": "data.empty.deeper",
                    "ok": "ok",
                    "code": "status",
                },
            )
        )

        assert response.status == 200
        assert response.outputs == {
            "first_id": 7,
            "last_id": 8,
            "name": "first",
            "missing": None,
            "null": None,
            "ok": True,
            "code": 200,
        }
        assert json.loads(response.body_excerpt) == ITEMS
        assert response.elapsed_ms >= 0

    async def test_post_sends_method_headers_and_body(
        self, caller: ApiCaller, server: Server
    ) -> None:
        response = await caller.call(
            ApiRequest(
                method="post",
                url=server.url("/echo"),
                headers={"Content-Type": "application/json", "X-Api-Key": "k1", "Host": "evil"},
                body='{"name": "Ann"}',
                output_paths={"method": "method", "key": "headers.X-Api-Key", "body": "body"},
            )
        )

        assert response.outputs == {"method": "POST", "key": "k1", "body": '{"name": "Ann"}'}
        assert server.ledger[-1]["headers"]["Host"] == server.hostport

    async def test_json_content_types_and_others(self, caller: ApiCaller, server: Server) -> None:
        paths = {"detail": "detail", "code": "status"}

        problem = await caller.call(get(server.url("/problem-json"), output_paths=paths))
        broken = await caller.call(get(server.url("/bad-json"), output_paths=paths))
        text = await caller.call(get(server.url("/text"), output_paths=paths))

        assert problem.outputs == {"detail": "x", "code": 200}
        assert broken.outputs == {"detail": None, "code": 200}
        assert text.outputs == {"detail": None, "code": 200}
        assert text.body_excerpt == ("hello " + "é" * 600)[:500]

    async def test_redirect_within_allowed_host_is_followed(
        self, caller: ApiCaller, server: Server
    ) -> None:
        response = await caller.call(
            ApiRequest(
                method="POST",
                url=server.url("/redirect?code=303&to=/echo"),
                headers={"X-Api-Key": "k1", "Content-Type": "application/json"},
                body="{}",
                output_paths={"method": "method", "key": "headers.X-Api-Key"},
            )
        )

        # 303 turns the POST into a GET; same origin keeps the credentials.
        assert response.outputs == {"method": "GET", "key": "k1"}

    async def test_cross_origin_redirect_drops_credentials(
        self, server: Server, other_server: Server
    ) -> None:
        # Same loopback address, other origin: "localhost" and another port.
        caller = ApiCaller(allowed_hosts=[server.hostport, f"localhost:{other_server.port}"])
        target = other_server.url("/echo", host="localhost")

        response = await caller.call(
            ApiRequest(
                method="GET",
                url=server.url(f"/redirect?code=307&to={target}"),
                headers={
                    "Authorization": "Bearer t",
                    "X-Api-Key": "k1",
                    "Accept": "application/json",
                },
                body=None,
                output_paths={"headers": "headers"},
            )
        )

        headers = {k.lower(): v for k, v in response.outputs["headers"].items()}
        assert "authorization" not in headers
        assert "x-api-key" not in headers
        assert headers["accept"] == "application/json"


class TestAddressGuard:
    async def test_loopback_is_refused_without_allowlist(self, server: Server) -> None:
        before = len(server.ledger)

        with pytest.raises(BlockedAddressError) as refused:
            await ApiCaller().call(get(server.url("/json")))

        assert len(server.ledger) == before
        message = str(refused.value)
        assert "127.0.0.1" in message and "loopback" in message
        assert f"127.0.0.1:{server.port}" in message and "CXGEAR_HTTP_ALLOWED_HOSTS" in message

    async def test_allowlist_entry_with_a_port_allows_only_that_port(self, server: Server) -> None:
        with pytest.raises(BlockedAddressError):
            await ApiCaller(allowed_hosts=["127.0.0.1:1"]).call(get(server.url("/json")))

    @pytest.mark.parametrize(
        "url",
        [
            "http://10.0.0.1/",
            "http://172.16.5.4:8080/",
            "http://192.168.1.1/admin",
            "http://[::1]/",
            "http://0.0.0.0/",
            "http://169.254.169.254/latest/meta-data",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://100.64.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://224.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://localhost/",
        ],
    )
    async def test_private_addresses_are_refused_before_any_connection(self, url: str) -> None:
        transport = RecordingTransport()

        with pytest.raises(BlockedAddressError):
            await ApiCaller(transport=transport).call(get(url))

        assert transport.requests == []

    async def test_redirect_to_metadata_service_is_refused(
        self, caller: ApiCaller, server: Server
    ) -> None:
        with pytest.raises(BlockedAddressError) as refused:
            await caller.call(
                get(server.url("/redirect?to=http://169.254.169.254/latest/meta-data/"))
            )

        assert "link-local" in str(refused.value)

    async def test_redirect_to_another_loopback_port_is_refused(
        self, caller: ApiCaller, server: Server, other_server: Server
    ) -> None:
        target = other_server.url("/json", host="localhost")
        before = len(other_server.ledger)

        with pytest.raises(BlockedAddressError):
            await caller.call(get(server.url(f"/redirect?to={target}")))

        assert len(other_server.ledger) == before

    async def test_a_name_with_one_private_address_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        fake_dns(monkeypatch, {"mixed.example": ["93.184.215.14", "10.1.2.3"]})
        transport = RecordingTransport()

        with pytest.raises(BlockedAddressError) as refused:
            await ApiCaller(transport=transport).call(get("http://mixed.example/"))

        assert "10.1.2.3" in str(refused.value)
        assert transport.requests == []

    async def test_connection_uses_the_vetted_address_without_resolving_again(
        self, monkeypatch: pytest.MonkeyPatch, server: Server
    ) -> None:
        # A rebinding resolver would answer differently the second time; there must be none.
        lookups = fake_dns(monkeypatch, {"api.example": ["127.0.0.1"]})
        caller = ApiCaller(allowed_hosts=[f"api.example:{server.port}"])

        response = await caller.call(
            get(f"http://api.example:{server.port}/echo", output_paths={"host": "headers.Host"})
        )

        assert response.outputs == {"host": f"api.example:{server.port}"}
        assert lookups == ["api.example"]

    async def test_unresolvable_name_is_a_retryable_failure(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        fake_dns(monkeypatch, {})

        with pytest.raises(UpstreamUnavailableError) as failed:
            await ApiCaller().call(get("https://nowhere.example/"))

        assert failed.value.retryable

    @pytest.mark.parametrize(
        "url", ["file:///etc/passwd", "ftp://example.com/", "gopher://example.com/", "http:///x"]
    )
    async def test_only_http_urls_are_accepted(self, url: str) -> None:
        with pytest.raises(InvalidRequestError):
            await ApiCaller(transport=RecordingTransport()).call(get(url))

    @pytest.mark.parametrize(
        ("address", "reason"),
        [
            ("127.0.0.1", "loopback"),
            ("10.0.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.0.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.100.100.200", "carrier-grade NAT (shared)"),
            ("0.0.0.0", "unspecified"),
            ("239.1.1.1", "multicast"),
            ("240.0.0.1", "private"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("fc00::1", "private"),
            ("ff02::1", "multicast"),
            ("::ffff:10.0.0.1", "private (IPv4 10.0.0.1 inside IPv6)"),
            ("64:ff9b::a9fe:a9fe", "link-local (IPv4 169.254.169.254 inside IPv6)"),
            ("2002:7f00:1::", "loopback (IPv4 127.0.0.1 inside IPv6)"),
            ("8.8.8.8", None),
            ("2606:4700:4700::1111", None),
            ("::ffff:8.8.8.8", None),
        ],
    )
    def test_address_classification(self, address: str, reason: str | None) -> None:
        assert address_block_reason(ip_address(address)) == reason

    def test_allowlist_forms(self) -> None:
        guard = AddressGuard(
            allowed_hosts=["API.Internal.", "10.0.0.5:8443", "[::1]:9000", "fd00::7"]
        )

        assert guard.is_allowed("api.internal", 443)
        assert guard.is_allowed("10.0.0.5", 8443)
        assert not guard.is_allowed("10.0.0.5", 443)
        assert not guard.is_allowed("sub.api.internal", 443)
        assert guard.is_allowed("::1", 9000)
        assert guard.is_allowed("fd00:0::7", 1)


class TestLimits:
    @pytest.mark.parametrize("path", ["/big", "/big-unannounced", "/gzip-bomb"])
    async def test_oversized_response_is_refused(
        self, caller: ApiCaller, server: Server, path: str
    ) -> None:
        with pytest.raises(ResponseTooLargeError) as refused:
            await caller.call(get(server.url(path)))

        assert str(refused.value) == "response larger than 1048576 bytes"

    async def test_smaller_limit_per_request(self, caller: ApiCaller, server: Server) -> None:
        with pytest.raises(ResponseTooLargeError, match="larger than 50 bytes"):
            await caller.call(get(server.url("/json"), max_response_bytes=50))

    async def test_slow_server_times_out(self, caller: ApiCaller, server: Server) -> None:
        """The server answers only when released; the client gives up first, on its own."""
        server.slow_release.clear()
        try:
            with pytest.raises(UpstreamUnavailableError, match="timed out"):
                await asyncio.wait_for(
                    caller.call(get(server.url("/slow"), timeout_s=0.3)), timeout=30
                )
        finally:
            server.slow_release.set()

    async def test_redirect_loop_stops(self, server: Server) -> None:
        loop_url = server.url("/redirect?to=/redirect%3Fto%3D/json")
        caller = ApiCaller(allowed_hosts=[server.hostport], max_redirects=1)

        with pytest.raises(UpstreamHttpError) as failed:
            await caller.call(get(loop_url))

        assert not failed.value.retryable
        assert "redirected more than 1 times" in str(failed.value)


class TestStatusErrors:
    async def test_not_found_is_not_retryable(self, caller: ApiCaller, server: Server) -> None:
        with pytest.raises(UpstreamHttpError) as failed:
            await caller.call(get(server.url("/status?code=404&secret=abc")))

        assert failed.value.status == 404
        assert not failed.value.retryable
        assert failed.value.retry_after is None
        assert failed.value.body_excerpt == '{"error": "nope"}'
        assert "secret" not in str(failed.value)

    async def test_unavailable_is_retryable(self, caller: ApiCaller, server: Server) -> None:
        with pytest.raises(UpstreamHttpError) as failed:
            await caller.call(get(server.url("/status?code=503")))

        assert (failed.value.status, failed.value.retryable) == (503, True)

    async def test_too_many_requests_carries_retry_after_seconds(
        self, caller: ApiCaller, server: Server
    ) -> None:
        with pytest.raises(UpstreamHttpError) as failed:
            await caller.call(get(server.url("/status?code=429&retry_after=7")))

        assert (failed.value.status, failed.value.retryable) == (429, True)
        assert failed.value.retry_after == 7

    async def test_retry_after_as_a_date(self, caller: ApiCaller, server: Server) -> None:
        when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)

        with pytest.raises(UpstreamHttpError) as failed:
            await caller.call(get(server.url(f"/status?code=429&retry_after={quote(when)}")))

        assert failed.value.retry_after is not None
        assert 100 < failed.value.retry_after <= 120

    async def test_request_timeout_status_is_retryable(
        self, caller: ApiCaller, server: Server
    ) -> None:
        with pytest.raises(UpstreamHttpError) as failed:
            await caller.call(get(server.url("/status?code=408")))

        assert failed.value.retryable


class TestTls:
    async def test_https_keeps_the_host_name_for_sni_and_certificate(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cert, key = make_certificate(tmp_path, "api.example")
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_tls.load_cert_chain(cert, key)
        client_tls = ssl.create_default_context(cafile=str(cert))
        servers = start_server(server_tls)
        tls_server = next(servers)
        try:
            fake_dns(monkeypatch, {"api.example": ["127.0.0.1"]})
            allowed = [f"api.example:{tls_server.port}", tls_server.hostport]
            guard = AddressGuard(allowed_hosts=allowed)
            caller = ApiCaller(
                allowed_hosts=allowed, transport=GuardedTransport(guard, verify=client_tls)
            )

            response = await caller.call(
                get(
                    tls_server.url("/json", host="api.example"),
                    output_paths={"id": "data.items[0].id"},
                )
            )
            # The certificate names api.example, not the address actually connected to.
            with pytest.raises(UpstreamUnavailableError):
                await caller.call(get(tls_server.url("/json")))

            assert response.outputs == {"id": 7}
            assert tls_server.sni[0] == "api.example"
        finally:
            next(servers, None)


class TestExtractPath:
    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("data.items[0].id", 7),
            ("data.items[1].id", 8),
            ("data.items[-2].name", "first"),
            ("data.items.1.id", 8),
            ("data.items[2]", None),
            ("data.nothing.here", None),
            ("ok.deeper", None),
            ("$.ok", True),
            ("$", ITEMS),
        ],
    )
    def test_paths(self, path: str, expected: Any) -> None:
        assert extract_path(ITEMS, path) == expected

    def test_root_array(self) -> None:
        assert extract_path([{"a": [1, 2]}], "[0].a[1]") == 2

    @pytest.mark.parametrize("path", ["a..b", "a[x]", "a[0", ".a"])
    def test_malformed_paths_raise(self, path: str) -> None:
        with pytest.raises(ValueError):
            extract_path(ITEMS, path)

    async def test_malformed_output_path_is_refused_before_the_request(self) -> None:
        transport = RecordingTransport()

        with pytest.raises(InvalidRequestError):
            await ApiCaller(transport=transport).call(
                get("http://93.184.215.14/", output_paths={"x": "a..b"})
            )

        assert transport.requests == []


def fake_dns(monkeypatch: pytest.MonkeyPatch, records: dict[str, list[str]]) -> list[str]:
    """Answer getaddrinfo from `records`; everything else resolves normally. Returns the lookups."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    lookups: list[str] = []

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in records:
            lookups.append(name)
            return [
                (
                    socket.AF_INET6 if ":" in address else socket.AF_INET,
                    socket.SOCK_STREAM,
                    socket.IPPROTO_TCP,
                    "",
                    (address, port),
                )
                for address in records[name]
            ]
        if name.endswith(".example"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await real(host, port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return lookups


def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
    subprocess.run(
        [
            *command.split(),
            *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}"),
            *("-addext", f"subjectAltName=DNS:{name}"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
