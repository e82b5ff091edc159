"""The SSRF guard of `infra.http_guard` for the httpx2 / httpcore2 stack the OpenAI SDK uses.

openai ≥ 3 sends through `httpx2` (a fork of httpx with its own httpcore), so an httpx
transport does not fit its client. The vetting is shared; only the plumbing differs.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable

import httpcore2
import httpx2

from infra.http_guard import AddressGuard, vetted_addresses

__all__ = ["GuardedNetworkBackend2", "GuardedTransport2"]


class GuardedNetworkBackend2(httpcore2.AsyncNetworkBackend):
    """Opens TCP connections only to addresses `AddressGuard` vetted."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            addresses = await vetted_addresses(self._guard, host, port)
        except socket.gaierror as exc:
            raise httpcore2.ConnectError(f"cannot resolve {host}: {exc}") from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError("unix sockets are not reachable through the SSRF guard")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport2(httpx2.AsyncHTTPTransport):
    """httpx2's transport with the guarded network backend; never uses proxies from the env."""

    def __init__(
        self,
        guard: AddressGuard,
        *,
        verify: ssl.SSLContext | str | bool = True,
        limits: httpx2.Limits = httpx2.Limits(max_connections=100, max_keepalive_connections=20),
    ) -> None:
        ssl_context = httpx2.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # Like GuardedTransport: the pool httpx2 built is replaced by one with our backend.
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend2(guard),
        )
