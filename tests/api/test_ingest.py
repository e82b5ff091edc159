"""Ingest: the per-table webhook, organization-key ingest, and Idempotency-Key replay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from httpx import AsyncClient

from infra.db import libpq_url
from infra.settings import Settings
from tests.api.test_data_tables import all_rows, get_table, imported, new_table, stored_rows
from tests.builders import Account, api_key, as_user, invite, signup

CSV = "name,phone\nAda,+14155550100\n"
KEY_INGEST = "/api/v1/public/ingest"


def record(i: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": f"R{i}", "phone": f"+1415555{i:04d}", **extra}


async def webhook(client: AsyncClient, account: Account, table_id: str) -> str:
    r = await client.post(f"/api/v1/data-tables/{table_id}/ingest-token", headers=account.headers)
    assert r.status_code == 201, r.text
    return f"/api/v1/public/data-tables/ingest/{r.json()['token']}"


async def key_headers(client: AsyncClient, account: Account, scopes: list[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {await api_key(client, account, scopes=scopes)}"}


class TestIngestWebhook:
    async def test_token_is_shown_once_and_ingests(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, CSV)
        r = await client.post(
            f"/api/v1/data-tables/{table['id']}/ingest-token", headers=admin.headers
        )
        assert r.status_code == 201
        token = r.json()["token"]
        assert token.startswith("cxw_") and r.json()["url"].endswith(f"/ingest/{token}")
        shown = await get_table(client, admin, table["id"])
        assert shown["hasIngestToken"] is True and token not in str(shown)
        r = await client.post(
            f"/api/v1/public/data-tables/ingest/{token}",
            json={"records": [record(1), record(2)]},
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"ok": True, "inserted": 2}
        assert (await get_table(client, admin, table["id"]))["rowCount"] == 3
        assert (await all_rows(client, admin, table["id"]))[1:] == [record(1), record(2)]

    async def test_token_is_stored_hashed(self, client: AsyncClient, settings: Settings) -> None:
        admin = await signup(client)
        table = await imported(client, admin, CSV)
        url = await webhook(client, admin, table["id"])
        token = url.rsplit("/", 1)[1]
        with psycopg.connect(libpq_url(settings.database_url)) as conn:
            row = conn.execute(
                "SELECT ingest_token_hash FROM data_table WHERE id = %s", (table["id"],)
            ).fetchone()
        assert row is not None and row[0] and token not in row[0]

    async def test_rotation_kills_the_old_token_at_once(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, CSV)
        old = await webhook(client, admin, table["id"])
        new = await webhook(client, admin, table["id"])
        r = await client.post(old, json={"records": [record()]})
        assert r.status_code == 404 and r.json()["errorCode"] == "NOT_FOUND"
        assert (await client.post(new, json={"records": [record()]})).status_code == 200

    async def test_revoked_token_stops_working(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, CSV)
        url = await webhook(client, admin, table["id"])
        r = await client.delete(
            f"/api/v1/data-tables/{table['id']}/ingest-token", headers=admin.headers
        )
        assert r.status_code == 204
        assert (await client.post(url, json={"records": [record()]})).status_code == 404
        assert (await get_table(client, admin, table["id"]))["hasIngestToken"] is False

    async def test_unknown_token(self, client: AsyncClient) -> None:
        for token in ("cxw_nope", "nope"):
            r = await client.post(
                f"/api/v1/public/data-tables/ingest/{token}", json={"records": [record()]}
            )
            assert r.status_code == 404

    async def test_rotating_needs_projects_write(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, CSV)
        agent = await as_user(client, (await invite(client, admin, roles=["Agent"]))["email"])
        r = await client.post(
            f"/api/v1/data-tables/{table['id']}/ingest-token", headers=agent.headers
        )
        assert r.status_code == 403

    async def test_missing_and_extra_keys_are_named(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        table = await imported(client, admin, CSV)
        url = await webhook(client, admin, table["id"])
        r = await client.post(
            url, json={"records": [record(1), {"name": "x", "fone": "1"}, record(3, city="Paris")]}
        )
        assert r.status_code == 422 and r.json()["errorCode"] == "SCHEMA_MISMATCH"
        assert r.json()["details"] == {
            "missing": ["phone"],
            "unexpected": ["fone", "city"],
            "records": [1, 2],
        }
        assert "records[1], records[2]" in r.json()["message"]
        assert stored_rows(settings, table["id"]) == 1

    async def test_empty_table_says_import_a_csv_first(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        table = await new_table(client, admin)
        url = await webhook(client, admin, table["id"])
        r = await client.post(url, json={"records": [record()]})
        assert r.status_code == 409 and r.json()["errorCode"] == "TABLE_EMPTY"
        assert "import a CSV first" in r.json()["message"]
        assert stored_rows(settings, table["id"]) == 0

    async def test_one_to_five_hundred_records(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        table = await imported(client, admin, CSV)
        url = await webhook(client, admin, table["id"])
        for records in ([], [record(i) for i in range(501)]):
            r = await client.post(url, json={"records": records})
            assert r.status_code == 422 and r.json()["errorCode"] == "VALIDATION_ERROR"
        assert stored_rows(settings, table["id"]) == 1
        r = await client.post(url, json={"records": [record(i) for i in range(500)]})
        assert r.json() == {"ok": True, "inserted": 500}
        assert stored_rows(settings, table["id"]) == 501

    async def test_values_are_stored_as_text_and_nesting_is_refused(
        self, client: AsyncClient
    ) -> None:
        admin = await signup(client)
        table = await imported(client, admin, "name,amount,vip,note\nAda,1,true,x\n")
        url = await webhook(client, admin, table["id"])
        r = await client.post(
            url, json={"records": [{"name": "Bo", "amount": 2.5, "vip": False, "note": None}]}
        )
        assert r.status_code == 200, r.text
        assert (await all_rows(client, admin, table["id"]))[1] == {
            "name": "Bo",
            "amount": "2.5",
            "vip": "false",
            "note": "",
        }
        r = await client.post(
            url, json={"records": [{"name": "Cy", "amount": 1, "vip": True, "note": {"a": 1}}]}
        )
        assert r.status_code == 422 and "records[0].note" in r.json()["message"]
        assert (await get_table(client, admin, table["id"]))["rowCount"] == 2

    async def test_numbers_keep_their_json_text(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, "name,amount,rate,big\nAda,1,2,3\n")
        url = await webhook(client, admin, table["id"])
        raw = (
            '{"records": [{"name": "Bo", "amount": 1e5, "rate": 1.10,'
            ' "big": 123456789012345678901234567890},'
            ' {"name": "Cy", "amount": -0.0, "rate": 2E-3, "big": 7}]}'
        )
        r = await client.post(url, content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        rows = await all_rows(client, admin, table["id"])
        assert rows[1:] == [
            {
                "name": "Bo",
                "amount": "1e5",
                "rate": "1.10",
                "big": "123456789012345678901234567890",
            },
            {"name": "Cy", "amount": "-0.0", "rate": "2E-3", "big": "7"},
        ]

    @pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1E400", "-2e999"])
    async def test_non_finite_numbers_are_refused(
        self, client: AsyncClient, settings: Settings, number: str
    ) -> None:
        admin = await signup(client)
        table = await imported(client, admin, "name,amount\nAda,1\n")
        url = await webhook(client, admin, table["id"])
        raw = (
            f'{{"records": [{{"name": "Bo", "amount": 1}}, {{"name": "Cy", "amount": {number}}}]}}'
        )
        r = await client.post(url, content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["errorCode"] == "VALIDATION_ERROR"
        assert body["message"] == f"records[1].amount is {number}: numbers must be finite"
        assert stored_rows(settings, table["id"]) == 1
        keyed = await client.post(
            KEY_INGEST,
            content=raw.replace("{", f'{{"dataTableId": "{table["id"]}", ', 1),
            headers={
                "Content-Type": "application/json",
                **await key_headers(client, admin, ["ingest"]),
            },
        )
        assert keyed.status_code == 422, keyed.text
        assert "records[1].amount" in keyed.json()["message"]
        assert stored_rows(settings, table["id"]) == 1

    async def test_chunked_body_over_the_limit_is_413(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        table = await imported(client, admin, CSV)
        url = await webhook(client, admin, table["id"])
        sent = 0

        async def ten_megabytes() -> AsyncIterator[bytes]:
            # No Content-Length: the limit is only found while the body streams in.
            nonlocal sent
            yield b'{"records": ['
            chunk = b",".join([b'{"name": "Ada", "phone": "+14155550100"}'] * 1000) + b","
            for _ in range(10 * 1024 * 1024 // len(chunk)):
                sent += 1
                yield chunk
            yield b'{"name": "Bo", "phone": "+14155550101"}]}'

        r = await client.post(
            url, content=ten_megabytes(), headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 413, r.text
        assert r.json() == {
            "message": f"Request body is larger than {settings.max_body_bytes} bytes",
            "errorCode": "PAYLOAD_TOO_LARGE",
        }
        assert stored_rows(settings, table["id"]) == 1
        assert sent * 40_000 < 2 * settings.max_body_bytes  # the rest was never read


class TestKeyIngest:
    async def test_ingest_scoped_key_appends(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, CSV)
        headers = await key_headers(client, admin, ["ingest"])
        r = await client.post(
            KEY_INGEST,
            json={"dataTableId": table["id"], "records": [record(7)]},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"ok": True, "inserted": 1}
        assert (await all_rows(client, admin, table["id"]))[-1] == record(7)

    async def test_key_without_the_ingest_scope_is_forbidden(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, CSV)
        headers = await key_headers(client, admin, ["trigger"])
        r = await client.post(
            KEY_INGEST, json={"dataTableId": table["id"], "records": [record()]}, headers=headers
        )
        assert r.status_code == 403
        assert (await get_table(client, admin, table["id"]))["rowCount"] == 1

    async def test_session_token_is_not_a_key(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, CSV)
        r = await client.post(
            KEY_INGEST,
            json={"dataTableId": table["id"], "records": [record()]},
            headers=admin.headers,
        )
        assert r.status_code == 401 and r.json()["errorCode"] == "API_KEY_REQUIRED"

    async def test_another_organizations_table_is_not_found(self, client: AsyncClient) -> None:
        mine, theirs = await signup(client), await signup(client)
        table = await imported(client, theirs, CSV)
        headers = await key_headers(client, mine, ["ingest"])
        r = await client.post(
            KEY_INGEST, json={"dataTableId": table["id"], "records": [record()]}, headers=headers
        )
        assert r.status_code == 404
        assert (await get_table(client, theirs, table["id"]))["rowCount"] == 1

    async def test_body_needs_the_table_id(self, client: AsyncClient) -> None:
        admin = await signup(client)
        headers = await key_headers(client, admin, ["ingest"])
        r = await client.post(KEY_INGEST, json={"records": [record()]}, headers=headers)
        assert r.status_code == 422 and "dataTableId" in r.json()["message"]


class TestIdempotency:
    async def test_same_key_and_body_replays_without_inserting(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        table = await imported(client, admin, CSV)
        url = await webhook(client, admin, table["id"])
        body = {"records": [record(1), record(2)]}
        first = await client.post(url, json=body, headers={"Idempotency-Key": "order-1"})
        again = await client.post(url, json=body, headers={"Idempotency-Key": "order-1"})
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json() == {"ok": True, "inserted": 2}
        assert stored_rows(settings, table["id"]) == 3

    async def test_same_key_with_another_body_is_refused(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        table = await imported(client, admin, CSV)
        headers = {**(await key_headers(client, admin, ["ingest"])), "Idempotency-Key": "k"}
        body = {"dataTableId": table["id"], "records": [record(1)]}
        assert (await client.post(KEY_INGEST, json=body, headers=headers)).status_code == 200
        body["records"] = [record(2)]
        r = await client.post(KEY_INGEST, json=body, headers=headers)
        assert r.status_code == 422 and r.json()["errorCode"] == "IDEMPOTENCY_KEY_REUSED"
        assert stored_rows(settings, table["id"]) == 2

    async def test_keys_belong_to_one_organization(self, client: AsyncClient) -> None:
        one, two = await signup(client), await signup(client)
        for account in (one, two):
            table = await imported(client, account, CSV)
            url = await webhook(client, account, table["id"])
            r = await client.post(
                url, json={"records": [record()]}, headers={"Idempotency-Key": "shared"}
            )
            assert r.json() == {"ok": True, "inserted": 1}
            assert (await get_table(client, account, table["id"]))["rowCount"] == 2

    async def test_failed_request_does_not_use_up_the_key(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, CSV)
        url = await webhook(client, admin, table["id"])
        headers = {"Idempotency-Key": "retry-me"}
        r = await client.post(url, json={"records": [{"name": "x"}]}, headers=headers)
        assert r.status_code == 422
        r = await client.post(url, json={"records": [record()]}, headers=headers)
        assert r.json() == {"ok": True, "inserted": 1}

    async def test_keys_expire_after_a_day_and_are_purged(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        table = await imported(client, admin, CSV)
        url = await webhook(client, admin, table["id"])
        await client.post(url, json={"records": [record(1)]}, headers={"Idempotency-Key": "old"})
        await client.post(url, json={"records": [record(1)]}, headers={"Idempotency-Key": "gone"})
        with psycopg.connect(libpq_url(settings.database_url)) as conn:
            conn.execute(
                "UPDATE ingest_idempotency SET created_at = now() - interval '25 hours'"
                " WHERE key IN ('old', 'gone') AND org_id = %s",
                (admin.org_id,),
            )
        r = await client.post(
            url, json={"records": [record(2)]}, headers={"Idempotency-Key": "old"}
        )
        assert r.json() == {"ok": True, "inserted": 1}
        assert (await get_table(client, admin, table["id"]))["rowCount"] == 4
        with psycopg.connect(libpq_url(settings.database_url)) as conn:
            keys = conn.execute(
                "SELECT key FROM ingest_idempotency WHERE org_id = %s", (admin.org_id,)
            ).fetchall()
        assert keys == [("old",)]

    async def test_concurrent_retries_insert_once(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        table = await imported(client, admin, CSV)
        url = await webhook(client, admin, table["id"])
        body = {"records": [record(i) for i in range(50)]}
        answers = await asyncio.gather(
            *(client.post(url, json=body, headers={"Idempotency-Key": "burst"}) for _ in range(5))
        )
        assert [a.json() for a in answers] == [{"ok": True, "inserted": 50}] * 5
        assert stored_rows(settings, table["id"]) == 51
