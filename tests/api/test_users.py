from __future__ import annotations

from httpx import AsyncClient

from tests.builders import PASSWORD, as_user, invite, role_id, signup


class TestInvite:
    async def test_invited_user_is_active_and_listed_with_presence(
        self, client: AsyncClient
    ) -> None:
        admin = await signup(client)
        user = await invite(client, admin, roles=["Agent"])
        assert user["status"] == "active"
        assert [r["name"] for r in user["roles"]] == ["Agent"]
        await as_user(client, user["email"])
        listing = (await client.get("/api/v1/users", headers=admin.headers)).json()
        assert listing["count"] == 2
        row = next(u for u in listing["data"] if u["email"] == user["email"])
        assert row["presence"] == "online"
        assert row["device"] == "pytest"
        assert row["ip"] == "203.0.113.10"
        assert row["lastActiveAt"]

    async def test_duplicate_email_rejected(self, client: AsyncClient) -> None:
        admin = await signup(client)
        user = await invite(client, admin, roles=["Agent"])
        r = await client.post(
            "/api/v1/users",
            json={
                "fullName": "Again",
                "email": user["email"],
                "temporaryPassword": PASSWORD,
                "roleIds": [await role_id(client, admin, "Agent")],
            },
            headers=admin.headers,
        )
        assert r.status_code == 409
        assert r.json()["errorCode"] == "EMAIL_TAKEN"

    async def test_plan_limit_on_users(self, client: AsyncClient) -> None:
        admin = await signup(client)
        for _ in range(4):
            await invite(client, admin, roles=["Agent"])
        r = await client.post(
            "/api/v1/users",
            json={
                "fullName": "Sixth",
                "email": "sixth-user@example.com",
                "temporaryPassword": PASSWORD,
                "roleIds": [await role_id(client, admin, "Agent")],
            },
            headers=admin.headers,
        )
        assert r.status_code == 403
        assert r.json()["errorCode"] == "PLAN_LIMIT"


class TestDisable:
    async def test_disabled_user_cannot_sign_in_and_session_dies(self, client: AsyncClient) -> None:
        admin = await signup(client)
        user = await invite(client, admin, roles=["Agent"])
        session = await as_user(client, user["email"])
        r = await client.post(f"/api/v1/users/{user['id']}/disable", headers=admin.headers)
        assert r.status_code == 200
        assert r.json()["presence"] == "disabled"
        assert (await client.get("/api/v1/auth/me", headers=session.headers)).status_code == 401
        r = await client.post(
            "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
        )
        assert r.json()["errorCode"] == "USER_DISABLED"
        r = await client.post(f"/api/v1/users/{user['id']}/enable", headers=admin.headers)
        assert r.json()["status"] == "active"

    async def test_last_admin_cannot_be_disabled(self, client: AsyncClient) -> None:
        admin = await signup(client)
        r = await client.post(f"/api/v1/users/{admin.user_id}/disable", headers=admin.headers)
        assert r.status_code == 409
        assert r.json()["errorCode"] == "LAST_ADMIN"
        assert (await client.get("/api/v1/auth/me", headers=admin.headers)).status_code == 200

    async def test_last_admin_cannot_lose_the_role(self, client: AsyncClient) -> None:
        admin = await signup(client)
        r = await client.patch(
            f"/api/v1/users/{admin.user_id}",
            json={"roleIds": [await role_id(client, admin, "Agent")]},
            headers=admin.headers,
        )
        assert r.status_code == 409
        assert r.json()["errorCode"] == "LAST_ADMIN"


class TestPermissions:
    async def test_agent_gets_403_on_user_management(self, client: AsyncClient) -> None:
        admin = await signup(client)
        user = await invite(client, admin, roles=["Agent"])
        agent = await as_user(client, user["email"])
        r = await client.get("/api/v1/users", headers=agent.headers)
        assert r.status_code == 403
        assert r.json()["errorCode"] == "FORBIDDEN"
        assert "users.manage" in r.json()["message"]

    async def test_changing_roles_changes_access(self, client: AsyncClient) -> None:
        admin = await signup(client)
        user = await invite(client, admin, roles=["Agent"])
        agent = await as_user(client, user["email"])
        assert (
            await client.post(
                "/api/v1/projects", json={"name": "x", "type": "outreach"}, headers=agent.headers
            )
        ).status_code == 403
        r = await client.patch(
            f"/api/v1/users/{user['id']}",
            json={"roleIds": [await role_id(client, admin, "Supervisor")]},
            headers=admin.headers,
        )
        assert r.status_code == 200
        r = await client.post(
            "/api/v1/projects", json={"name": "x", "type": "outreach"}, headers=agent.headers
        )
        assert r.status_code == 201
