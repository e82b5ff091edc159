from __future__ import annotations

from httpx import AsyncClient

from tests.builders import project, signup


class TestProjects:
    async def test_create_list_get_rename_delete(self, client: AsyncClient) -> None:
        admin = await signup(client)
        p = await project(client, admin, type="call_analyzer")
        assert p["type"] == "call_analyzer"
        listing = (await client.get("/api/v1/projects", headers=admin.headers)).json()
        assert [x["id"] for x in listing["data"]] == [p["id"]]
        r = await client.patch(
            f"/api/v1/projects/{p['id']}", json={"name": "Renamed"}, headers=admin.headers
        )
        assert r.json()["name"] == "Renamed"
        assert (await client.get(f"/api/v1/projects/{p['id']}", headers=admin.headers)).json()[
            "name"
        ] == "Renamed"
        assert (
            await client.delete(f"/api/v1/projects/{p['id']}", headers=admin.headers)
        ).status_code == 204
        assert (
            await client.get(f"/api/v1/projects/{p['id']}", headers=admin.headers)
        ).status_code == 404

    async def test_bad_type_and_timezone(self, client: AsyncClient) -> None:
        admin = await signup(client)
        r = await client.post(
            "/api/v1/projects", json={"name": "x", "type": "crm"}, headers=admin.headers
        )
        assert r.status_code == 422
        r = await client.post(
            "/api/v1/projects",
            json={"name": "x", "type": "outreach", "timezone": "Mars/Base"},
            headers=admin.headers,
        )
        assert r.status_code == 422
        assert "Mars/Base" in r.json()["message"]

    async def test_plan_limit_on_projects(self, client: AsyncClient) -> None:
        admin = await signup(client)
        for _ in range(3):
            await project(client, admin)
        r = await client.post(
            "/api/v1/projects", json={"name": "4th", "type": "outreach"}, headers=admin.headers
        )
        assert r.status_code == 403
        assert r.json()["errorCode"] == "PLAN_LIMIT"

    async def test_smuggled_org_id_is_rejected(self, client: AsyncClient) -> None:
        admin, victim = await signup(client), await signup(client)
        # Another organization's id: accepting it would plant the project in the victim's org.
        r = await client.post(
            "/api/v1/projects",
            json={"name": "planted", "type": "outreach", "orgId": victim.org_id},
            headers=admin.headers,
        )
        assert r.status_code == 422
        assert r.json()["errorCode"] == "VALIDATION_ERROR"
        for account in (admin, victim):
            listed = (await client.get("/api/v1/projects", headers=account.headers)).json()
            assert "planted" not in [x["name"] for x in listed["data"]]
