"""Integrations' base URLs go through the SSRF guard before any provider SDK sends a byte.

Each factory is given a base URL on a loopback port that is not allow-listed; the port's
listener proves that nothing connected. Redirects from an allowed host to a refused one are
refused too (OpenAI and Deepgram at connect time, SendGrid by not following them).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from python_http_client.exceptions import HTTPError  # type: ignore[import-untyped]  # no py.typed

from infra.http_guard import BlockedAddressError
from infra.providers import (
    PROVIDER_HOSTS_SETTING,
    ProviderGuard,
    ProviderUrlBlocked,
    deepgram_client,
    openai_client,
    sendgrid_client,
    twilio_client,
)
from tests.fakes.listener import Listener, listening
from tests.fakes.signed import FAKE_HOST, FakeRequest, FakeResponse, Ledger, serve

Factory = Callable[..., Awaitable[Any]]
API_KEY = {"api_key": "sk-never-sent"}
TWILIO_CREDS = {"account_sid": "AC" + "0" * 32, "auth_token": "never-sent"}

# (factory, config key, path suffix the kind's base URL carries, credentials)
KINDS: dict[str, tuple[Factory, str, str, dict[str, str]]] = {
    "openai": (openai_client, "base_url", "/v1", API_KEY),
    "twilio": (twilio_client, "api_base_url", "", TWILIO_CREDS),
    "sendgrid": (sendgrid_client, "base_url", "", API_KEY),
    "deepgram": (deepgram_client, "base_url", "", API_KEY),
}


@pytest.fixture
def listener() -> Iterator[Listener]:
    with listening() as port:
        yield port


@pytest.mark.parametrize("kind", sorted(KINDS))
class TestRefusedBaseUrls:
    async def test_a_loopback_port_is_refused_and_never_connected(
        self, kind: str, listener: Listener
    ) -> None:
        factory, key, suffix, creds = KINDS[kind]
        config = {key: f"http://127.0.0.1:{listener.port}{suffix}"}
        with pytest.raises(ProviderUrlBlocked) as refused:
            await factory(config, creds, guard=ProviderGuard([FAKE_HOST]))
        message = str(refused.value)
        assert key in message and "127.0.0.1" in message and "loopback" in message
        assert PROVIDER_HOSTS_SETTING in message
        assert creds[next(iter(creds))] not in message
        assert listener.connections() == 0

    @pytest.mark.parametrize(
        ("host", "reason"),
        [
            ("169.254.169.254", "link-local"),  # the cloud metadata service
            ("10.0.0.8", "private"),
            ("[::ffff:127.0.0.1]", "loopback"),
            ("[::1]", "loopback"),
            ("0.0.0.0", "unspecified"),
        ],
    )
    async def test_non_public_addresses_are_refused(
        self, kind: str, host: str, reason: str
    ) -> None:
        factory, key, suffix, creds = KINDS[kind]
        with pytest.raises(ProviderUrlBlocked, match=reason):
            await factory({key: f"https://{host}{suffix}"}, creds, guard=ProviderGuard())

    async def test_the_operator_can_allow_the_host(self, kind: str, listener: Listener) -> None:
        factory, key, suffix, creds = KINDS[kind]
        config = {key: f"http://127.0.0.1:{listener.port}{suffix}"}
        # Positive control for the refusal above: the same URL, allow-listed, builds a client.
        client = await factory(config, creds, guard=ProviderGuard([f"127.0.0.1:{listener.port}"]))
        assert client is not None
        refused_elsewhere = ProviderGuard([f"127.0.0.1:{listener.port + 1}"])
        with pytest.raises(ProviderUrlBlocked):
            await factory(config, creds, guard=refused_elsewhere)


def test_the_listener_counts_a_connection(listener: Listener) -> None:
    # Positive control for `connections() == 0` above.
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5):
        pass
    assert listener.connections() == 1
    assert listener.connections() == 0


@pytest.fixture
def redirector(listener: Listener) -> Iterator[tuple[str, Ledger]]:
    """An allowed host (the fakes' name) that redirects every request to the listener."""
    ledger = Ledger()

    def handle(request: FakeRequest) -> FakeResponse:
        return FakeResponse(
            307, b"", {"location": f"http://127.0.0.1:{listener.port}{request.path}"}
        )

    with serve(handle, ledger) as (host, port):
        yield f"http://{host}:{port}", ledger


class TestRedirects:
    async def test_openai_does_not_follow_a_redirect_to_a_refused_address(
        self, redirector: tuple[str, Ledger], listener: Listener
    ) -> None:
        base, ledger = redirector
        client = await openai_client(
            {"base_url": base + "/v1"}, API_KEY, guard=ProviderGuard([FAKE_HOST])
        )
        async with client:
            with pytest.raises(BlockedAddressError, match="loopback"):
                await client.models.list()
        assert [r["path"] for r in ledger.requests] == ["/v1/models"]
        assert listener.connections() == 0

    async def test_deepgram_does_not_follow_a_redirect_to_a_refused_address(
        self, redirector: tuple[str, Ledger], listener: Listener
    ) -> None:
        base, ledger = redirector
        client = await deepgram_client(
            {"base_url": base}, API_KEY, guard=ProviderGuard([FAKE_HOST])
        )
        with pytest.raises(BlockedAddressError, match="loopback"):
            await client.manage.v1.projects.list()
        assert len(ledger.requests) == 1
        assert listener.connections() == 0

    async def test_sendgrid_reports_the_redirect_instead_of_following_it(
        self, redirector: tuple[str, Ledger], listener: Listener
    ) -> None:
        base, ledger = redirector
        client = await sendgrid_client(
            {"base_url": base}, API_KEY, guard=ProviderGuard([FAKE_HOST])
        )
        with pytest.raises(HTTPError) as answered:
            client.client.scopes.get()
        assert answered.value.status_code == 307
        assert len(ledger.requests) == 1
        assert listener.connections() == 0
