"""SSRF guard for user-configured URLs (`api_call` steps, integrations' provider base URLs).

A spinner author controls the URL, so without this guard a step could read the cloud
metadata service (169.254.169.254), the Temporal or Vault ports on the worker's own
loopback, or anything on the cluster network. Every resolved address of the host must
be publicly routable unless an operator allowed the host explicitly.

The check and the connection use the same addresses: `GuardedTransport` connects to the
addresses `AddressGuard.resolve` vetted (handed over through `pinned_addresses`) instead
of resolving the name again, so a DNS answer that changes between the check and the
connect (DNS rebinding) cannot redirect the request. TLS still uses the original host
name for SNI and certificate verification because the URL itself is never rewritten.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

import httpcore
import httpx

__all__ = [
    "AddressGuard",
    "BlockedAddressError",
    "GuardedNetworkBackend",
    "GuardedTransport",
    "address_block_reason",
    "pinned_addresses",
    "vetted_addresses",
]

IPAddress = IPv4Address | IPv6Address

_SHARED_ADDRESS_SPACE = IPv4Network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
_NAT64 = IPv6Network("64:ff9b::/96")  # RFC 6052: the low 32 bits are an IPv4 address


class BlockedAddressError(Exception):
    """The request's host resolves to an address a spinner may not reach."""

    def __init__(
        self,
        host: str,
        port: int,
        address: str,
        reason: str,
        setting: str = "CXGEAR_HTTP_ALLOWED_HOSTS",
    ) -> None:
        self.host = host
        self.port = port
        self.address = address
        self.reason = reason
        super().__init__(
            f"refusing to connect to {host}: it resolves to {address}, a {reason} address, "
            "and requests to private, loopback and link-local addresses are blocked. "
            f"If {host} is an internal service you trust, an operator can allow it by adding "
            f'"{_display_host(host)}" (any port) or "{_display_host(host)}:{port}" to '
            f"{setting} (comma-separated; read when a worker starts, so restart the workers "
            "after changing it)."
        )


def address_block_reason(address: IPAddress) -> str | None:
    """Why `address` may not be reached, or None when it is publicly routable."""
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            # ::ffff:127.0.0.1 reaches 127.0.0.1: judge the IPv4 address it carries.
            reason = address_block_reason(embedded)
            return None if reason is None else f"{reason} (IPv4 {embedded} inside IPv6)"
        if address.is_site_local:
            return "site-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, IPv4Address) and address in _SHARED_ADDRESS_SPACE:
        return "carrier-grade NAT (shared)"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-public"
    return None


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def normalise_host(host: str) -> str:
    """Lower-case, no trailing dot, IP literals in canonical form (so `::0001` == `::1`)."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ip_address(host))
    except ValueError:
        return host


def _display_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _parse_allowed(entry: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `1.2.3.4`, `[::1]:8080` or a bare `::1`."""
    entry = entry.strip()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        host, port = entry, ""
    if not host or (port and not port.isdigit()):
        raise ValueError(f"allowed host {entry!r} is not host, host:port or [ipv6]:port")
    url = httpx.URL(f"http://{_display_host(host)}/")  # IDNA names as DNS sees them
    return normalise_host(url.raw_host.decode("ascii")), int(port) if port else None


class AddressGuard:
    """Resolves a host and refuses it unless every address is public or the host is allowed."""

    def __init__(
        self, *, allowed_hosts: Collection[str] = (), setting: str = "CXGEAR_HTTP_ALLOWED_HOSTS"
    ) -> None:
        self._allowed = frozenset(_parse_allowed(entry) for entry in allowed_hosts if entry.strip())
        # The variable a refusal tells the operator to edit.
        self.setting = setting

    def is_allowed(self, host: str, port: int) -> bool:
        host = normalise_host(host)
        return (host, port) in self._allowed or (host, None) in self._allowed

    async def resolve(self, host: str, port: int) -> list[str]:
        """Vetted addresses of `host`, in the resolver's order.

        Raises `BlockedAddressError`, or `socket.gaierror` when the name does not resolve.
        """
        host = normalise_host(host)
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no addresses")
        if self.is_allowed(host, port):
            return addresses
        # One bad address is enough: a name that also resolves to a public address would
        # otherwise reach the private one whenever the resolver orders it first.
        for address in addresses:
            reason = address_block_reason(ip_address(address.partition("%")[0]))
            if reason is not None:
                raise BlockedAddressError(host, port, address, reason, self.setting)
        return addresses


_pinned: ContextVar[Mapping[tuple[str, int], Sequence[str]] | None] = ContextVar(
    "cxgear_pinned_addresses", default=None
)


@contextmanager
def pinned_addresses(host: str, port: int, addresses: Sequence[str]) -> Iterator[None]:
    """Connections opened for (host, port) inside this block go to `addresses` only."""
    token = _pinned.set({(normalise_host(host), port): tuple(addresses)})
    try:
        yield
    finally:
        _pinned.reset(token)


async def vetted_addresses(guard: AddressGuard, host: str, port: int) -> Sequence[str]:
    """The addresses a connection to (host, port) may use: pinned ones, or resolved and vetted.

    Raises `BlockedAddressError`, or `socket.gaierror` when the name does not resolve.
    """
    pins = _pinned.get()
    addresses = pins.get((normalise_host(host), port)) if pins else None
    if addresses is None:
        addresses = await guard.resolve(host, port)
    return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to vetted addresses: pinned ones, or resolved and vetted here."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await vetted_addresses(self._guard, host, port)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
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
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable through the SSRF guard")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the guarded network backend; never uses proxies from the env."""

    def __init__(
        self,
        guard: AddressGuard,
        *,
        verify: ssl.SSLContext | str | bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
    ) -> None:
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # httpx takes no network backend; the pool it built is replaced by an identical
        # one that has ours (covered by the loopback tests if httpx changes this).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(guard),
        )
