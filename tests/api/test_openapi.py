"""The OpenAPI document: where tools find it, and the security schemes /docs authorizes with."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient


async def _document(client: AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


class TestOpenApiDocument:
    async def test_is_served_at_the_root_too(self, client: AsyncClient) -> None:
        root = await client.get("/openapi.json")
        assert root.status_code == 200
        assert root.json() == await _document(client)

    async def test_declares_a_session_token_and_an_api_key_scheme(
        self, client: AsyncClient
    ) -> None:
        schemes = (await _document(client))["components"]["securitySchemes"]
        assert schemes["SessionToken"] == {
            "type": "http",
            "scheme": "bearer",
            "description": schemes["SessionToken"]["description"],
        }
        assert schemes["ApiKey"]["type"] == "http"
        assert schemes["ApiKey"]["bearerFormat"] == "cxg_…"

    async def test_people_routes_ask_for_a_session_and_machine_routes_for_a_key(
        self, client: AsyncClient
    ) -> None:
        paths = (await _document(client))["paths"]
        assert paths["/api/v1/projects"]["get"]["security"] == [{"SessionToken": []}]
        assert paths["/api/v1/public/ingest"]["post"]["security"] == [{"ApiKey": []}]
        assert "security" not in paths["/api/v1/auth/login"]["post"]

    async def test_the_declared_scheme_is_the_one_enforced(self, client: AsyncClient) -> None:
        missing = await client.get("/api/v1/projects")
        assert missing.status_code == 401
        assert missing.json()["errorCode"] == "TOKEN_INVALID"
        basic = await client.get("/api/v1/projects", headers={"authorization": "Basic YTpi"})
        assert basic.status_code == 401
        assert basic.json()["errorCode"] == "TOKEN_INVALID"
