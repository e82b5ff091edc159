from __future__ import annotations

from httpx import ASGITransport, AsyncClient

from api.app import create_app
from cxgear.stack.ports import free_port
from infra.settings import Settings
from tests.conftest import make_settings


async def _ready(settings: Settings) -> tuple[int, dict[str, object]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
            r = await c.get("/readyz")
            return r.status_code, r.json()


class TestHealth:
    async def test_healthz(self, client: AsyncClient) -> None:
        r = await client.get("/healthz")
        assert r.status_code == 200

    async def test_ready_when_everything_is_up(self, settings: Settings) -> None:
        status, body = await _ready(settings)
        assert status == 200, body
        assert body["checks"] == {"database": "ok", "temporal": "ok", "vault": "ok"}

    async def test_vault_down_is_named(self, settings: Settings) -> None:
        down = make_settings(
            **{**settings.model_dump(), "vault_address": f"http://127.0.0.1:{free_port()}"}
        )
        status, body = await _ready(down)
        assert status == 503
        assert body["errorCode"] == "NOT_READY"
        assert "vault" in str(body["message"])
        assert body["checks"]["database"] == "ok"  # type: ignore[index]

    async def test_temporal_down_is_named(self, settings: Settings) -> None:
        down = make_settings(
            **{**settings.model_dump(), "temporal_address": f"127.0.0.1:{free_port()}"}
        )
        status, body = await _ready(down)
        assert status == 503
        assert "temporal" in str(body["message"])
        assert body["checks"]["vault"] == "ok"  # type: ignore[index]

    async def test_openapi_served(self, client: AsyncClient) -> None:
        r = await client.get("/api/v1/openapi.json")
        assert r.status_code == 200
        assert "/api/v1/auth/signup" in r.json()["paths"]
