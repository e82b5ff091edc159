from __future__ import annotations

from httpx import AsyncClient

from tests.builders import api_key, signup


class TestApiKeys:
    async def test_secret_shown_once_and_listed_by_prefix(self, client: AsyncClient) -> None:
        admin = await signup(client)
        secret = await api_key(client, admin, scopes=["ingest"])
        assert secret.startswith("cxg_")
        listing = (await client.get("/api/v1/api-keys", headers=admin.headers)).json()
        assert listing["count"] == 1
        row = listing["data"][0]
        assert row["prefix"] == secret[:12]
        assert "secret" not in row
        assert secret not in str(listing)

    async def test_unknown_scope_rejected(self, client: AsyncClient) -> None:
        admin = await signup(client)
        r = await client.post(
            "/api/v1/api-keys", json={"name": "k", "scopes": ["admin"]}, headers=admin.headers
        )
        assert r.status_code == 422

    async def test_key_cannot_call_session_routes(self, client: AsyncClient) -> None:
        admin = await signup(client)
        secret = await api_key(client, admin, scopes=["ingest", "trigger"])
        r = await client.get("/api/v1/projects", headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 401
        assert r.json()["errorCode"] == "API_KEY_NOT_ALLOWED"
