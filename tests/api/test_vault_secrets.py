from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from api.app import create_app
from cxgear.stack.ports import free_port
from infra.settings import Settings
from infra.vault import SecretStore
from tests.builders import Account, as_user, invite, role_id, signup
from tests.conftest import make_settings

SECRETS = "/api/v1/vault/secrets"


async def put(
    client: AsyncClient, account: Account, name: str, value: str, cas: int | None = None
) -> Any:
    return await client.put(
        f"{SECRETS}/{name}", json={"value": value, "cas": cas}, headers=account.headers
    )


async def member_with(client: AsyncClient, admin: Account, *, permissions: list[str]) -> Account:
    """A user of admin's organization whose only role is a custom one with `permissions`."""
    base = await role_id(client, admin, "Agent")
    name = f"Custom {uuid.uuid4().hex[:6]}"
    r = await client.post(
        f"/api/v1/roles/{base}/extend",
        json={"name": name, "permissions": permissions},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    user = await invite(client, admin, roles=[name])
    return await as_user(client, user["email"])


class TestSecrets:
    async def test_listing_is_masked_with_version_and_author(self, client: AsyncClient) -> None:
        admin = await signup(client)
        value = f"bearer-{uuid.uuid4().hex}"
        r = await put(client, admin, "crm_token", value)
        assert r.status_code == 201, r.text
        listing = await client.get(SECRETS, headers=admin.headers)
        assert listing.status_code == 200
        assert listing.json()["count"] == 1
        row = listing.json()["data"][0]
        assert row["name"] == "crm_token"
        assert row["version"] == 1
        assert row["updatedBy"] == admin.user_id
        assert row["updatedAt"] is not None
        assert set(row) == {"name", "version", "updatedAt", "updatedBy"}
        assert value not in listing.text
        assert value not in r.text

    async def test_value_lands_in_vault_under_the_organization(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        await put(client, admin, "api.key-1", "s3cret")
        store = SecretStore(settings)
        assert await store.read_secret(uuid.UUID(admin.org_id), "api.key-1") == "s3cret"
        other = await signup(client)
        assert (await client.get(SECRETS, headers=other.headers)).json()["count"] == 0

    async def test_update_adds_a_version(self, client: AsyncClient, settings: Settings) -> None:
        admin = await signup(client)
        await put(client, admin, "token", "v1")
        r = await put(client, admin, "token", "v2")
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 2
        row = (await client.get(SECRETS, headers=admin.headers)).json()["data"][0]
        assert row["version"] == 2
        store = SecretStore(settings)
        assert await store.read_secret(uuid.UUID(admin.org_id), "token") == "v2"

    async def test_check_and_set_conflicts_answer_409(self, client: AsyncClient) -> None:
        admin = await signup(client)
        assert (await put(client, admin, "token", "a", cas=0)).status_code == 201
        again = await put(client, admin, "token", "b", cas=0)
        assert again.status_code == 409
        assert again.json()["errorCode"] == "VERSION_CONFLICT"
        assert "version 1" in again.json()["message"]
        assert (await put(client, admin, "token", "c", cas=1)).json()["version"] == 2
        stale = await put(client, admin, "token", "d", cas=1)
        assert stale.status_code == 409
        assert stale.json()["errorCode"] == "VERSION_CONFLICT"

    async def test_delete_removes_every_version(self, client: AsyncClient) -> None:
        admin = await signup(client)
        await put(client, admin, "token", "a")
        await put(client, admin, "token", "b")
        r = await client.delete(f"{SECRETS}/token", headers=admin.headers)
        assert r.status_code == 204
        assert (await client.get(SECRETS, headers=admin.headers)).json()["count"] == 0
        gone = await client.delete(f"{SECRETS}/token", headers=admin.headers)
        assert gone.status_code == 404
        # A deleted name starts again at version 1.
        assert (await put(client, admin, "token", "c", cas=0)).json()["version"] == 1

    @pytest.mark.parametrize("name", ["has space", "a/b", "x" * 101, "..", "ünï"])
    async def test_bad_names_are_refused(self, client: AsyncClient, name: str) -> None:
        admin = await signup(client)
        r = await put(client, admin, name, "v")
        assert r.status_code in (404, 422), r.text
        if r.status_code == 422:
            assert r.json()["errorCode"] == "VALIDATION_ERROR"
        assert (await client.get(SECRETS, headers=admin.headers)).json()["count"] == 0

    async def test_empty_value_is_refused(self, client: AsyncClient) -> None:
        admin = await signup(client)
        r = await put(client, admin, "token", "")
        assert r.status_code == 422


class TestAudit:
    async def test_writes_and_deletes_are_audited_newest_first_without_values(
        self, client: AsyncClient
    ) -> None:
        admin = await signup(client)
        await put(client, admin, "token", "first-value")
        await put(client, admin, "token", "second-value")
        await client.delete(f"{SECRETS}/token", headers=admin.headers)
        r = await client.get("/api/v1/vault/audit", headers=admin.headers)
        assert r.status_code == 200
        rows = r.json()["data"]
        assert [(x["action"], x["version"]) for x in rows] == [
            ("delete", 2),
            ("update", 2),
            ("create", 1),
        ]
        assert {x["userId"] for x in rows} == {admin.user_id}
        assert "first-value" not in r.text and "second-value" not in r.text
        assert all("value" not in x for x in rows)

    async def test_updated_by_is_the_last_writer(self, client: AsyncClient) -> None:
        admin = await signup(client)
        await put(client, admin, "token", "a")
        keeper = await member_with(client, admin, permissions=["vault.read", "vault.write"])
        assert (await put(client, keeper, "token", "b")).status_code == 200
        row = (await client.get(SECRETS, headers=admin.headers)).json()["data"][0]
        assert row["updatedBy"] == keeper.user_id


class TestPermissions:
    async def test_without_vault_permissions_everything_is_403(self, client: AsyncClient) -> None:
        admin = await signup(client)
        await put(client, admin, "token", "a")
        user = await invite(client, admin, roles=["Supervisor"])
        supervisor = await as_user(client, user["email"])
        for r in (
            await client.get(SECRETS, headers=supervisor.headers),
            await client.get("/api/v1/vault/audit", headers=supervisor.headers),
            await put(client, supervisor, "token", "b"),
            await client.delete(f"{SECRETS}/token", headers=supervisor.headers),
        ):
            assert r.status_code == 403, r.text
            assert r.json()["errorCode"] == "FORBIDDEN"

    async def test_read_only_role_cannot_write(self, client: AsyncClient) -> None:
        admin = await signup(client)
        reader = await member_with(client, admin, permissions=["vault.read"])
        assert (await client.get(SECRETS, headers=reader.headers)).status_code == 200
        denied = await put(client, reader, "token", "b")
        assert denied.status_code == 403
        assert "vault.write" in denied.json()["message"]


@pytest.fixture(scope="module")
async def vault_down_app(settings: Settings) -> AsyncIterator[FastAPI]:
    closed = make_settings(
        database_url=settings.database_url,
        temporal_address=settings.temporal_address,
        vault_address=f"http://127.0.0.1:{free_port()}",
        vault_token="whatever",
        secret_key=settings.secret_key.get_secret_value(),
    )
    application = create_app(closed)
    async with application.router.lifespan_context(application):
        yield application


class TestVaultDown:
    async def test_every_route_answers_503_vault_unavailable(
        self, client: AsyncClient, vault_down_app: FastAPI
    ) -> None:
        admin = await signup(client)
        transport = ASGITransport(app=vault_down_app, client=("203.0.113.10", 40000))
        async with AsyncClient(transport=transport, base_url="http://testserver") as down:
            for r in (
                await down.get(SECRETS, headers=admin.headers),
                await put(down, admin, "token", "never-stored-value"),
                await down.delete(f"{SECRETS}/token", headers=admin.headers),
            ):
                assert r.status_code == 503, r.text
                assert r.json()["errorCode"] == "VAULT_UNAVAILABLE"
                assert "never-stored-value" not in r.text
        # Nothing half-written: the failed write left no audit row.
        audit = await client.get("/api/v1/vault/audit", headers=admin.headers)
        assert audit.json()["count"] == 0


class TestTokenRenewal:
    async def test_periodic_token_is_renewed_before_it_expires(
        self, settings: Settings, openbao_server: Any
    ) -> None:
        # Long enough that a loaded machine's hiccup does not outlast the renewal window.
        period = 6
        root = openbao_server.client()
        created = root.auth.token.create(period=f"{period}s", renewable=True)
        token = created["auth"]["client_token"]
        store = SecretStore(make_settings(vault_address=settings.vault_address, vault_token=token))
        org = uuid.uuid4()
        began = time.monotonic()
        await store.write_secret(org, "token", "v1")
        # Used steadily until the server has seen two renewals: without them the token would
        # have expired (each renewal comes once most of the period has gone).
        renewals: set[Any] = set()
        while len(renewals) < 2:
            assert await store.read_secret(org, "token") == "v1"
            seen = root.auth.token.lookup(token)["data"].get("last_renewal_time")
            if seen:
                renewals.add(seen)
            assert time.monotonic() - began < 60, "the token was never renewed twice"
            await asyncio.sleep(0.2)
        assert time.monotonic() - began > period
        assert await store.read_secret(org, "token") == "v1"
