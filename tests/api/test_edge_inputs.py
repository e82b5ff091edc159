"""Input PostgreSQL cannot store (NUL, lone surrogates, integers past bigint) is a 422 naming the
field, never a 500; an unexpected error is JSON with a correlation id. Each case is one the
hardening review sent to the API and got a plain-text 500 for."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from api.errors import LastResortMiddleware, install_error_handlers
from tests.builders import Account, contacts_csv, make_table, project, role_id, signup

NUL = "a\x00b"
HUGE = "1699804711576517214208"
LONE = '"\\ud800"'  # a JSON escape of an unpaired UTF-16 surrogate


def refused(r: Any, field: str) -> None:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["errorCode"] == "VALIDATION_ERROR"
    assert field in body["message"], body["message"]


def raw_json(text: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "content": text.encode("ascii"),
        "headers": {"Content-Type": "application/json", **(headers or {})},
    }


class TestNulCharacter:
    async def test_signup_full_name(self, client: AsyncClient) -> None:
        r = await client.post(
            "/api/v1/auth/signup",
            json={
                "fullName": NUL,
                "organizationName": "Acme",
                "email": "nul-signup@example.com",
                "password": "Correct-Horse-9-battery",
            },
        )
        refused(r, "fullName")
        assert "NUL" in r.json()["message"]

    async def test_names_of_projects_tables_spinners_roles(self, client: AsyncClient) -> None:
        admin = await signup(client)
        r = await client.post(
            "/api/v1/projects", json={"name": NUL, "type": "outreach"}, headers=admin.headers
        )
        refused(r, "name")
        p = await project(client, admin)
        r = await client.post(
            f"/api/v1/projects/{p['id']}/data-tables", json={"name": NUL}, headers=admin.headers
        )
        refused(r, "name")
        r = await client.post(
            f"/api/v1/projects/{p['id']}/spinners",
            json={"name": NUL, "definition": {"steps": []}},
            headers=admin.headers,
        )
        refused(r, "name")
        agent = await role_id(client, admin, "Agent")
        r = await client.post(
            f"/api/v1/roles/{agent}/extend", json={"name": NUL}, headers=admin.headers
        )
        refused(r, "name")

    async def test_spinner_definition(self, client: AsyncClient) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        r = await client.post(
            f"/api/v1/projects/{p['id']}/spinners",
            json={
                "name": "s",
                "definition": {"steps": [{"id": "t", "type": "tag", "disposition": NUL}]},
            },
            headers=admin.headers,
        )
        refused(r, "definition")

    async def test_records_search_and_path_text(self, client: AsyncClient) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        r = await client.get(
            f"/api/v1/projects/{p['id']}/records", params={"q": NUL}, headers=admin.headers
        )
        refused(r, "q")
        r = await client.post(
            "/api/v1/do-not-contact/remove",
            json={"address": "a\x00b@example.com"},
            headers=admin.headers,
        )
        refused(r, "address")


class TestLoneSurrogate:
    async def ingest_url(self, client: AsyncClient, admin: Account) -> tuple[str, str]:
        p = await project(client, admin)
        table = await make_table(client, admin, project_id=p["id"], csv_text=contacts_csv(1))
        r = await client.post(
            f"/api/v1/data-tables/{table['id']}/ingest-token", headers=admin.headers
        )
        return f"/api/v1/public/data-tables/ingest/{r.json()['token']}", table["id"]

    async def test_ingest_value_and_key(self, client: AsyncClient) -> None:
        admin = await signup(client)
        url, table_id = await self.ingest_url(client, admin)
        good = '"name": "x", "phone": "+14155550100", "amount": "1", "tz": "UTC"'
        r = await client.post(url, **raw_json('{"records": [{' + good + ', "x": ' + LONE + "}]}"))
        refused(r, "records")
        assert "surrogate" in r.json()["message"]
        r = await client.post(url, **raw_json('{"records": [{' + good + ", " + LONE + ': "1"}]}'))
        refused(r, "records")
        rows = await client.get(f"/api/v1/data-tables/{table_id}/rows", headers=admin.headers)
        assert len(rows.json()["data"]) == 1  # only the imported row: nothing was stored

    async def test_metadata_field_name_in_definition(self, client: AsyncClient) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        step = '{"id": "m", "type": "message", "channel": "sms", "to_field": ' + LONE + "}"
        r = await client.post(
            f"/api/v1/projects/{p['id']}/spinners",
            **raw_json('{"name": "s", "definition": {"steps": [' + step + "]}}", admin.headers),
        )
        refused(r, "definition")


class TestIntegersPastBigint:
    @pytest.mark.parametrize(
        ("path", "field"),
        [
            (f"/api/v1/records/{HUGE}", "record_id"),
            (f"/api/v1/records/{HUGE}/journey", "record_id"),
            ("/api/v1/do-not-contact?before=-6454000000000000000000", "before"),
        ],
    )
    async def test_paths_and_cursors(self, client: AsyncClient, path: str, field: str) -> None:
        admin = await signup(client)
        refused(await client.get(path, headers=admin.headers), field)

    async def test_records_and_rows_after_cursor(self, client: AsyncClient) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        table = await make_table(client, admin, project_id=p["id"], csv_text=contacts_csv(1))
        after = {"after": "215435169970565108811694080"}
        r = await client.get(
            f"/api/v1/projects/{p['id']}/records", params=after, headers=admin.headers
        )
        refused(r, "after")
        r = await client.get(
            f"/api/v1/data-tables/{table['id']}/rows", params=after, headers=admin.headers
        )
        refused(r, "after")

    async def test_public_callback(self, client: AsyncClient) -> None:
        r = await client.post("/api/v1/public/callbacks/35060000000000000000000", json={})
        refused(r, "token")


class TestUnexpectedErrors:
    async def test_json_500_with_correlation_id_logged_with_traceback(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        probe = FastAPI()
        install_error_handlers(probe)
        probe.add_middleware(LastResortMiddleware)

        @probe.get("/boom/{token}")
        async def boom(token: str) -> None:
            raise RuntimeError("kaboom")

        transport = ASGITransport(app=probe)
        with caplog.at_level(logging.ERROR, logger="api.errors"):
            async with AsyncClient(transport=transport, base_url="http://probe") as c:
                r = await c.get("/boom/cxw_secret-token")
        assert r.status_code == 500
        body = r.json()
        assert body["errorCode"] == "INTERNAL"
        assert body["correlationId"] in body["message"]
        assert r.headers["X-Correlation-Id"] == body["correlationId"]
        logged = caplog.records[-1]
        assert body["correlationId"] in logged.getMessage()
        assert logged.exc_info is not None and "kaboom" in str(logged.exc_info[1])
        assert "cxw_secret-token" not in logged.getMessage()  # the route template is logged

    async def test_error_message_quoting_a_surrogate_encodes(self) -> None:
        from api.errors import AppError

        probe = FastAPI()
        install_error_handlers(probe)

        @probe.get("/bad")
        async def bad() -> None:
            raise AppError("unknown column '\ud800'", "VALIDATION_ERROR", 422)

        async with AsyncClient(transport=ASGITransport(app=probe), base_url="http://p") as c:
            r = await c.get("/bad")
        assert r.status_code == 422
        assert r.json()["message"] == "unknown column '\ud800'"
