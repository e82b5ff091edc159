from __future__ import annotations

from datetime import UTC, datetime

from httpx import AsyncClient

from api.routes.usage import next_month_start
from tests.builders import api_key, as_user, invite, project, signup


def meter(body: dict[str, object], name: str) -> dict[str, object]:
    meters = body["meters"]
    assert isinstance(meters, list)
    return next(m for m in meters if m["meter"] == name)


class TestUsage:
    async def test_meters_show_used_limit_and_remaining_of_the_plan(
        self, client: AsyncClient
    ) -> None:
        admin = await signup(client)
        await project(client, admin)
        await api_key(client, admin, scopes=["ingest"])
        r = await client.get("/api/v1/usage", headers=admin.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["plan"] == "trial"
        assert meter(body, "projects") == {
            "meter": "projects",
            "monthly": False,
            "used": 1,
            "limit": 3,
            "remaining": 2,
            "unlimited": False,
        }
        assert meter(body, "api_keys")["used"] == 1
        assert meter(body, "users")["used"] == 1
        jobs = meter(body, "jobs")
        assert jobs["monthly"] is True and jobs["used"] == 0 and jobs["limit"] == 500
        resets = datetime.fromisoformat(body["resetsAt"])
        assert resets > datetime.now(UTC) and resets.day == 1 and resets.hour == 0

    async def test_needs_billing_read(self, client: AsyncClient) -> None:
        admin = await signup(client)
        agent = await invite(client, admin, roles=["Agent"])
        r = await client.get(
            "/api/v1/usage", headers=(await as_user(client, agent["email"])).headers
        )
        assert r.status_code == 403
        assert r.json()["errorCode"] == "FORBIDDEN"

    def test_the_monthly_reset_is_the_first_of_next_month(self) -> None:
        assert next_month_start(datetime(2025, 12, 31, 23, 59, tzinfo=UTC)) == datetime(
            2026, 1, 1, tzinfo=UTC
        )
        assert next_month_start(datetime(2025, 2, 1, tzinfo=UTC)) == datetime(
            2025, 3, 1, tzinfo=UTC
        )
