from __future__ import annotations

import re

import psycopg
from fastapi import FastAPI
from httpx import AsyncClient

from api.deps import RequirePermission
from infra.settings import Settings
from tests.api.test_route_contract import _calls, api_routes
from tests.builders import PASSWORD, invite, login, signup


class TestSignup:
    async def test_creates_org_on_trial_with_admin(self, client: AsyncClient) -> None:
        account = await signup(client)
        r = await client.get("/api/v1/auth/me", headers=account.headers)
        assert r.status_code == 200
        body = r.json()
        assert body["organization"]["plan"] == "trial"
        assert body["permissions"] == ["*"]

    async def test_weak_password_is_rejected_with_reason(
        self, client: AsyncClient, unique: str
    ) -> None:
        r = await client.post(
            "/api/v1/auth/signup",
            json={
                "fullName": "A",
                "organizationName": "O",
                "email": f"{unique}@ex.com",
                "password": "short",
            },
        )
        assert r.status_code == 422
        assert r.json()["errorCode"] == "WEAK_PASSWORD"
        assert "at least" in r.json()["message"]

    async def test_duplicate_email_is_rejected(self, client: AsyncClient) -> None:
        account = await signup(client)
        r = await client.post(
            "/api/v1/auth/signup",
            json={
                "fullName": "B",
                "organizationName": "Other",
                "email": account.email.upper(),
                "password": PASSWORD,
            },
        )
        assert r.status_code == 409
        assert r.json()["errorCode"] == "EMAIL_TAKEN"

    async def test_unknown_fields_are_rejected(self, client: AsyncClient, unique: str) -> None:
        r = await client.post(
            "/api/v1/auth/signup",
            json={
                "fullName": "A",
                "organizationName": "O",
                "email": f"{unique}@ex.com",
                "password": PASSWORD,
                "orgId": "00000000-0000-0000-0000-000000000000",
            },
        )
        assert r.status_code == 422
        assert r.json()["errorCode"] == "VALIDATION_ERROR"
        assert "orgId" in r.json()["message"]


class TestLogin:
    async def test_wrong_password(self, client: AsyncClient) -> None:
        account = await signup(client)
        r = await client.post(
            "/api/v1/auth/login", json={"email": account.email, "password": "nope"}
        )
        assert r.status_code == 401
        assert r.json()["errorCode"] == "INVALID_CREDENTIALS"

    async def test_other_device_is_refused_with_its_details(self, client: AsyncClient) -> None:
        account = await signup(client, device="Laptop Firefox")
        r = await login(client, account.email, device="Phone Safari")
        assert r.status_code == 409
        body = r.json()
        assert body["errorCode"] == "SESSION_ACTIVE_ELSEWHERE"
        assert body["details"]["device"] == "Laptop Firefox"
        assert body["details"]["ip"] == "203.0.113.10"
        assert body["details"]["startedAt"]
        still = await client.get("/api/v1/auth/me", headers=account.headers)
        assert still.status_code == 200

    async def test_continue_here_ends_the_old_session(self, client: AsyncClient) -> None:
        account = await signup(client, device="Laptop Firefox")
        r = await login(client, account.email, device="Phone Safari", continue_here=True)
        assert r.status_code == 200
        old = await client.get("/api/v1/auth/me", headers=account.headers)
        assert old.status_code == 401
        assert old.json()["errorCode"] == "SESSION_REPLACED"
        new = await client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {r.json()['token']}"}
        )
        assert new.status_code == 200

    async def test_same_device_replaces_its_own_session_silently(self, client: AsyncClient) -> None:
        account = await signup(client, device="Laptop Firefox")
        r = await login(client, account.email, device="Laptop Firefox")
        assert r.status_code == 200
        assert r.json()["token"] != account.token

    async def test_expired_session(self, client: AsyncClient, settings: Settings) -> None:
        account = await signup(client)
        with psycopg.connect(
            settings.database_url.replace("+psycopg", ""), autocommit=True
        ) as conn:
            conn.execute(
                "update user_session set expires_at = now() - interval '1 minute' where user_id = %s",
                (account.user_id,),
            )
        r = await client.get("/api/v1/auth/me", headers=account.headers)
        assert r.status_code == 401
        assert r.json()["errorCode"] == "SESSION_EXPIRED"
        again = await login(client, account.email, device="Elsewhere")
        assert again.status_code == 200

    async def test_a_read_request_keeps_the_session_last_active_time(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        # A GET's one write, the session's last-active time, lands with the request.
        account = await signup(client)
        with psycopg.connect(
            settings.database_url.replace("+psycopg", ""), autocommit=True
        ) as conn:
            conn.execute(
                "update user_session set last_active_at = now() - interval '1 hour'"
                " where user_id = %s",
                (account.user_id,),
            )
            assert (await client.get("/api/v1/auth/me", headers=account.headers)).status_code == 200
            row = conn.execute(
                "select now() - last_active_at < interval '1 minute' from user_session"
                " where user_id = %s",
                (account.user_id,),
            ).fetchone()
        assert row == (True,)

    async def test_logout_revokes_the_token(self, client: AsyncClient) -> None:
        account = await signup(client)
        assert (
            await client.post("/api/v1/auth/logout", headers=account.headers)
        ).status_code == 204
        r = await client.get("/api/v1/auth/me", headers=account.headers)
        assert r.status_code == 401
        assert r.json()["errorCode"] == "SESSION_REVOKED"

    async def test_garbage_token(self, client: AsyncClient) -> None:
        r = await client.get("/api/v1/auth/me", headers={"Authorization": "Bearer nonsense"})
        assert r.status_code == 401
        assert r.json()["errorCode"] == "TOKEN_INVALID"
        r = await client.get("/api/v1/auth/me")
        assert r.status_code == 401

    async def test_temporary_password_opens_only_me_password_and_logout(
        self, app: FastAPI, client: AsyncClient
    ) -> None:
        admin = await signup(client)
        user = await invite(client, admin, roles=["Admin"])
        r = await login(client, user["email"])
        assert r.status_code == 200
        assert r.json()["mustChangePassword"] is True
        temp = {"Authorization": f"Bearer {r.json()['token']}"}

        me = await client.get("/api/v1/auth/me", headers=temp)
        assert me.status_code == 200
        assert me.json()["user"]["mustChangePassword"] is True
        # Every route that takes a permission refuses, although the user is an Admin.
        refused, other = 0, []
        for route in api_routes(app):
            if not route.path.startswith("/api/"):
                continue  # console pages answer in HTML through the same API routes
            if not any(isinstance(c, RequirePermission) for c in _calls(route.dependant)):
                continue
            path = re.sub(r"{\w+}", "00000000-0000-4000-8000-000000000000", route.path)
            for method in route.methods:
                r = await client.request(method, path, headers=temp, json={})
                if (r.status_code, r.json().get("errorCode")) == (403, "PASSWORD_CHANGE_REQUIRED"):
                    refused += 1
                else:
                    other.append(f"{method} {route.path} -> {r.status_code} {r.text[:100]}")
        assert other == []
        assert refused >= 50
        # A valid body is refused the same way, and nothing is created.
        r = await client.post(
            "/api/v1/projects", json={"name": "Sneaky", "type": "outreach"}, headers=temp
        )
        assert (r.status_code, r.json()["errorCode"]) == (403, "PASSWORD_CHANGE_REQUIRED")
        assert (await client.get("/api/v1/projects", headers=admin.headers)).json()["count"] == 0

        r = await client.post(
            "/api/v1/auth/password",
            json={"currentPassword": PASSWORD, "newPassword": "An0ther-Strong-pass"},
            headers=temp,
        )
        assert r.status_code == 204
        # The same session now reaches the rest of the API.
        r = await client.get("/api/v1/projects", headers=temp)
        assert r.status_code == 200, r.text
        assert (await client.get("/api/v1/auth/me", headers=temp)).json()["user"][
            "mustChangePassword"
        ] is False
        r = await client.post(
            "/api/v1/auth/login",
            json={"email": user["email"], "password": "An0ther-Strong-pass", "continueHere": True},
            headers={"User-Agent": "pytest"},
        )
        assert r.status_code == 200
        assert r.json()["mustChangePassword"] is False

    async def test_temporary_password_user_can_sign_out(self, client: AsyncClient) -> None:
        admin = await signup(client)
        user = await invite(client, admin, roles=["Agent"])
        token = (await login(client, user["email"])).json()["token"]
        temp = {"Authorization": f"Bearer {token}"}
        assert (await client.post("/api/v1/auth/logout", headers=temp)).status_code == 204
        r = await client.get("/api/v1/auth/me", headers=temp)
        assert r.status_code == 401
        assert r.json()["errorCode"] == "SESSION_REVOKED"


class TestBodyLimit:
    async def test_oversized_body_gets_413(self, client: AsyncClient, settings: Settings) -> None:
        r = await client.post(
            "/api/v1/auth/login",
            content=b"{" + b" " * (settings.max_body_bytes + 10) + b"}",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413
        assert r.json()["errorCode"] == "PAYLOAD_TOO_LARGE"
