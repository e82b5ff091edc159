from __future__ import annotations

from httpx import AsyncClient

from tests.builders import as_user, invite, role_id, signup


class TestSystemRoles:
    async def test_three_read_only_system_roles(self, client: AsyncClient) -> None:
        admin = await signup(client)
        roles = (await client.get("/api/v1/roles", headers=admin.headers)).json()["data"]
        assert {r["name"] for r in roles if r["isSystem"]} == {"Admin", "Supervisor", "Agent"}
        admin_role = await role_id(client, admin, "Admin")
        r = await client.patch(
            f"/api/v1/roles/{admin_role}", json={"name": "Boss"}, headers=admin.headers
        )
        assert r.status_code == 409
        assert r.json()["errorCode"] == "READ_ONLY"
        assert (
            await client.delete(f"/api/v1/roles/{admin_role}", headers=admin.headers)
        ).status_code == 409


class TestCustomRoles:
    async def test_extend_rename_edit_delete(self, client: AsyncClient) -> None:
        admin = await signup(client)
        agent_role = await role_id(client, admin, "Agent")
        r = await client.post(
            f"/api/v1/roles/{agent_role}/extend",
            json={"name": "Senior agent"},
            headers=admin.headers,
        )
        assert r.status_code == 201
        custom = r.json()
        assert custom["extendsId"] == agent_role
        assert "dialler.agent" in custom["permissions"]
        r = await client.patch(
            f"/api/v1/roles/{custom['id']}",
            json={"name": "Lead agent", "permissions": ["dialler.agent", "analytics.read"]},
            headers=admin.headers,
        )
        assert r.status_code == 200
        assert r.json()["name"] == "Lead agent"
        assert r.json()["permissions"] == ["dialler.agent", "analytics.read"]
        assert (
            await client.delete(f"/api/v1/roles/{custom['id']}", headers=admin.headers)
        ).status_code == 204

    async def test_star_is_never_grantable(self, client: AsyncClient) -> None:
        admin = await signup(client)
        admin_role = await role_id(client, admin, "Admin")
        r = await client.post(
            f"/api/v1/roles/{admin_role}/extend",
            json={"name": "Almost admin"},
            headers=admin.headers,
        )
        assert r.status_code == 201
        assert "*" not in r.json()["permissions"]
        assert "users.manage" in r.json()["permissions"]
        r = await client.patch(
            f"/api/v1/roles/{r.json()['id']}", json={"permissions": ["*"]}, headers=admin.headers
        )
        assert r.status_code == 422

    async def test_unknown_permission_rejected(self, client: AsyncClient) -> None:
        admin = await signup(client)
        agent_role = await role_id(client, admin, "Agent")
        r = await client.post(
            f"/api/v1/roles/{agent_role}/extend",
            json={"name": "X", "permissions": ["projects.destroy"]},
            headers=admin.headers,
        )
        assert r.status_code == 422
        assert "projects.destroy" in r.json()["message"]

    async def test_custom_role_grants_its_permissions(self, client: AsyncClient) -> None:
        admin = await signup(client)
        agent_role = await role_id(client, admin, "Agent")
        custom = (
            await client.post(
                f"/api/v1/roles/{agent_role}/extend",
                json={"name": "Key keeper", "permissions": ["api_keys.manage"]},
                headers=admin.headers,
            )
        ).json()
        user = await invite(client, admin, roles=["Key keeper"])
        assert custom["name"] == "Key keeper"
        keeper = await as_user(client, user["email"])
        assert (await client.get("/api/v1/api-keys", headers=keeper.headers)).status_code == 200
        assert (await client.get("/api/v1/projects", headers=keeper.headers)).status_code == 403
