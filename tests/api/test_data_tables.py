"""Data tables: CRUD, CSV import/append (streamed, all-or-nothing), show data, metadata, export."""

from __future__ import annotations

import asyncio
import csv
import io
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
import uvicorn
from httpx import ASGITransport, AsyncClient

from api.app import create_app
from api.services.formula_guard import guard
from infra.db import libpq_url
from infra.settings import Settings
from tests.builders import Account, as_user, invite, make_spinner, project, run_now, signup
from tests.conftest import make_settings
from tests.stack_fixtures import free_port

CSV_TYPE = {"Content-Type": "text/csv"}


# --- builders -------------------------------------------------------------------------------


async def new_table(
    client: AsyncClient, account: Account, *, project_id: str | None = None, name: str = "contacts"
) -> dict[str, Any]:
    if project_id is None:
        project_id = (await project(client, account))["id"]
    r = await client.post(
        f"/api/v1/projects/{project_id}/data-tables", json={"name": name}, headers=account.headers
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def post_csv(
    client: AsyncClient,
    account: Account,
    table_id: str,
    body: bytes | str,
    *,
    action: str = "import",
    formula_guard: bool = True,
) -> Any:
    data = body.encode() if isinstance(body, str) else body
    return await client.post(
        f"/api/v1/data-tables/{table_id}/{action}",
        content=data,
        params={"formulaGuard": str(formula_guard).lower()},
        headers={**account.headers, **CSV_TYPE},
    )


async def imported(
    client: AsyncClient, account: Account, body: str, *, name: str = "contacts"
) -> dict[str, Any]:
    table = await new_table(client, account, name=name)
    r = await post_csv(client, account, table["id"], body)
    assert r.status_code == 200, r.text
    return dict(r.json()["table"])


async def get_table(client: AsyncClient, account: Account, table_id: str) -> dict[str, Any]:
    r = await client.get(f"/api/v1/data-tables/{table_id}", headers=account.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def all_rows(client: AsyncClient, account: Account, table_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = 0
    while True:
        r = await client.get(
            f"/api/v1/data-tables/{table_id}/rows?after={after}&limit=500", headers=account.headers
        )
        assert r.status_code == 200, r.text
        page = r.json()
        rows += [x["data"] for x in page["data"]]
        if page["nextAfter"] is None:
            return rows
        after = page["nextAfter"]


def stored_rows(settings: Settings, table_id: str) -> int:
    """Rows in the database itself, whatever the table's counter says."""
    with psycopg.connect(libpq_url(settings.database_url)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM data_row WHERE table_id = %s", (table_id,)
        ).fetchone()
        assert row is not None
        return int(row[0])


def contacts(n: int, *, start: int = 0, sep: str = ",", newline: str = "\n") -> str:
    lines = [sep.join(["name", "phone", "email"])]
    lines += [
        sep.join([f"Contact {i}", f"+1415555{i:04d}", f"c{i}@example.com"])
        for i in range(start, start + n)
    ]
    return newline.join(lines) + newline


def ids_csv(n: int) -> bytes:
    """One column, so that a cut anywhere still parses: only the transaction can keep it out."""
    return ("id\n" + "".join(f"{i:07d}\n" for i in range(n))).encode()


async def expect_refused(
    client: AsyncClient,
    account: Account,
    settings: Settings,
    body: bytes | str,
    *,
    status: int,
    code: str,
    action: str = "import",
    table: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Upload, check the error, and check that nothing at all was written."""
    table = table or await new_table(client, account)
    before = await get_table(client, account, table["id"])
    r = await post_csv(client, account, table["id"], body, action=action)
    assert r.status_code == status, r.text
    assert r.json()["errorCode"] == code, r.text
    after = await get_table(client, account, table["id"])
    assert after["rowCount"] == before["rowCount"]
    assert after["columns"] == before["columns"]
    assert stored_rows(settings, table["id"]) == before["rowCount"]
    return dict(r.json())


@contextmanager
def live_api(settings: Settings) -> Iterator[str]:
    """The app served by a real uvicorn on a free port (for the CLI and for dropped connections)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


# --- tests ----------------------------------------------------------------------------------


class TestTables:
    async def test_create_list_get_rename_delete(self, client: AsyncClient) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        table = await new_table(client, admin, project_id=p["id"])
        assert table["columns"] == [] and table["rowCount"] == 0
        assert table["hasIngestToken"] is False
        listing = (
            await client.get(f"/api/v1/projects/{p['id']}/data-tables", headers=admin.headers)
        ).json()
        assert [t["id"] for t in listing["data"]] == [table["id"]] and listing["count"] == 1
        r = await client.patch(
            f"/api/v1/data-tables/{table['id']}", json={"name": "Leads"}, headers=admin.headers
        )
        assert r.status_code == 200 and r.json()["name"] == "Leads"
        assert (await get_table(client, admin, table["id"]))["name"] == "Leads"
        r = await client.delete(f"/api/v1/data-tables/{table['id']}", headers=admin.headers)
        assert r.status_code == 204
        r = await client.get(f"/api/v1/data-tables/{table['id']}", headers=admin.headers)
        assert r.status_code == 404

    async def test_names_are_unique_within_a_project(self, client: AsyncClient) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        await new_table(client, admin, project_id=p["id"], name="a")
        b = await new_table(client, admin, project_id=p["id"], name="b")
        r = await client.post(
            f"/api/v1/projects/{p['id']}/data-tables", json={"name": "a"}, headers=admin.headers
        )
        assert r.status_code == 409 and r.json()["errorCode"] == "NAME_TAKEN"
        r = await client.patch(
            f"/api/v1/data-tables/{b['id']}", json={"name": "a"}, headers=admin.headers
        )
        assert r.status_code == 409 and r.json()["errorCode"] == "NAME_TAKEN"
        other = await project(client, admin)
        await new_table(client, admin, project_id=other["id"], name="a")

    async def test_delete_needs_data_tables_delete(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, contacts(3))
        supervisor = await invite(client, admin, roles=["Supervisor"])
        them = await as_user(client, supervisor["email"])
        r = await client.delete(f"/api/v1/data-tables/{table['id']}", headers=them.headers)
        assert r.status_code == 403 and r.json()["errorCode"] == "FORBIDDEN"
        assert "data_tables.delete" in r.json()["message"]
        assert (await get_table(client, admin, table["id"]))["rowCount"] == 3

    async def test_reading_needs_projects_read_and_writing_projects_write(
        self, client: AsyncClient
    ) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        table = await new_table(client, admin, project_id=p["id"])
        agent = await as_user(client, (await invite(client, admin, roles=["Agent"]))["email"])
        assert (
            await client.get(f"/api/v1/data-tables/{table['id']}", headers=agent.headers)
        ).status_code == 200
        r = await client.post(
            f"/api/v1/projects/{p['id']}/data-tables", json={"name": "x"}, headers=agent.headers
        )
        assert r.status_code == 403
        r = await post_csv(client, agent, table["id"], contacts(2))
        assert r.status_code == 403
        assert (await get_table(client, admin, table["id"]))["rowCount"] == 0

    async def test_deleting_a_table_deletes_its_rows(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        table = await imported(client, admin, contacts(50))
        assert stored_rows(settings, table["id"]) == 50
        r = await client.delete(f"/api/v1/data-tables/{table['id']}", headers=admin.headers)
        assert r.status_code == 204
        assert stored_rows(settings, table["id"]) == 0

    async def test_table_used_by_a_running_job_cannot_be_deleted(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, contacts(2))
        spinner = await make_spinner(
            client,
            admin,
            project_id=table["projectId"],
            definition={"steps": [{"id": "t", "type": "tag", "disposition": "ok"}]},
        )
        # No worker polls this module's task queues: the job stays queued, i.e. active.
        job_id = await run_now(client, admin, spinner, table)
        job = (await client.get(f"/api/v1/jobs/{job_id}", headers=admin.headers)).json()
        assert job["status"] in ("queued", "running")
        r = await client.delete(f"/api/v1/data-tables/{table['id']}", headers=admin.headers)
        assert r.status_code == 409
        assert r.json()["errorCode"] == "TABLE_IN_USE"
        assert "running job" in r.json()["message"]
        assert (await get_table(client, admin, table["id"]))["rowCount"] == 2

    async def test_plan_limit_on_data_tables(self, client: AsyncClient) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        for i in range(20):
            await new_table(client, admin, project_id=p["id"], name=f"t{i}")
        r = await client.post(
            f"/api/v1/projects/{p['id']}/data-tables",
            json={"name": "one more"},
            headers=admin.headers,
        )
        assert r.status_code == 403 and r.json()["errorCode"] == "PLAN_LIMIT"

    async def test_another_organizations_table_is_not_found(self, client: AsyncClient) -> None:
        mine, theirs = await signup(client), await signup(client)
        table = await imported(client, theirs, contacts(2))
        for method, path in [
            ("GET", ""),
            ("PATCH", ""),
            ("DELETE", ""),
            ("GET", "/rows"),
            ("GET", "/export"),
            ("POST", "/append"),
            ("POST", "/ingest-token"),
        ]:
            r = await client.request(
                method, f"/api/v1/data-tables/{table['id']}{path}", headers=mine.headers, json={}
            )
            assert r.status_code == 404, (method, path, r.text)
        assert (await get_table(client, theirs, table["id"]))["rowCount"] == 2


class TestImport:
    async def test_header_fixes_the_columns_multipart(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await new_table(client, admin)
        r = await client.post(
            f"/api/v1/data-tables/{table['id']}/import",
            files={"file": ("contacts.csv", contacts(3).encode(), "text/csv")},
            data={"note": "ignored"},
            headers=admin.headers,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["inserted"] == 3 and body["delimiter"] == ","
        assert body["table"]["columns"] == ["name", "phone", "email"]
        assert body["table"]["rowCount"] == 3
        rows = await all_rows(client, admin, table["id"])
        assert rows[0] == {"name": "Contact 0", "phone": "+14155550000", "email": "c0@example.com"}

    async def test_raw_text_csv_body(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, contacts(4))
        assert table["rowCount"] == 4
        assert len(await all_rows(client, admin, table["id"])) == 4

    async def test_quoted_fields_with_newlines_quotes_and_delimiters(
        self, client: AsyncClient
    ) -> None:
        admin = await signup(client)
        text = (
            "name,note,phone\r\n"
            '"O\'Neil, Ada","She said ""hi""\r\nthen left",+14155550100\r\n'
            'Bob,"multi\nline\nnote",+14155550101\r\n'
            'Zoë,"back\\slash, tab\there",+14155550102\r\n'
        )
        table = await imported(client, admin, text)
        assert await all_rows(client, admin, table["id"]) == [
            {"name": "O'Neil, Ada", "note": 'She said "hi"\r\nthen left', "phone": "+14155550100"},
            {"name": "Bob", "note": "multi\nline\nnote", "phone": "+14155550101"},
            {"name": "Zoë", "note": "back\\slash, tab\there", "phone": "+14155550102"},
        ]

    async def test_header_names_with_json_and_format_characters(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, 'share 100%,"say ""hi""",a\\b\n5%,"""x""",\\\n')
        assert table["columns"] == ["share 100%", 'say "hi"', "a\\b"]
        assert await all_rows(client, admin, table["id"]) == [
            {"share 100%": "5%", 'say "hi"': '"x"', "a\\b": "\\"}
        ]

    async def test_utf8_with_bom_is_accepted(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await new_table(client, admin)
        r = await post_csv(client, admin, table["id"], "\ufeffnom,ville\nZoë,Zürich\n".encode())
        assert r.status_code == 200, r.text
        assert r.json()["table"]["columns"] == ["nom", "ville"]
        assert await all_rows(client, admin, table["id"]) == [{"nom": "Zoë", "ville": "Zürich"}]

    @pytest.mark.parametrize("sep", [";", "\t", "|"])
    async def test_other_delimiters_are_sniffed(self, client: AsyncClient, sep: str) -> None:
        admin = await signup(client)
        table = await new_table(client, admin)
        r = await post_csv(client, admin, table["id"], contacts(5, sep=sep))
        assert r.status_code == 200, r.text
        assert r.json()["delimiter"] == sep
        assert r.json()["table"]["columns"] == ["name", "phone", "email"]
        rows = await all_rows(client, admin, table["id"])
        assert rows[4] == {"name": "Contact 4", "phone": "+14155550004", "email": "c4@example.com"}

    async def test_commas_inside_a_semicolon_file_stay_in_their_cells(
        self, client: AsyncClient
    ) -> None:
        admin = await signup(client)
        table = await imported(client, admin, "name;amount\nAda;1,50\nBob;2,75\n")
        assert table["columns"] == ["name", "amount"]
        assert (await all_rows(client, admin, table["id"]))[1] == {"name": "Bob", "amount": "2,75"}

    async def test_crlf_files_and_blank_lines(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, "a,b\r\n1,2\r\n\r\n,\r\n3,4\r\n\r\n")
        assert table["rowCount"] == 2
        assert await all_rows(client, admin, table["id"]) == [
            {"a": "1", "b": "2"},
            {"a": "3", "b": "4"},
        ]

    async def test_header_names_are_trimmed(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, " name , phone\nAda, +1\n")
        assert table["columns"] == ["name", "phone"]
        assert await all_rows(client, admin, table["id"]) == [{"name": "Ada", "phone": " +1"}]

    async def test_thousands_of_rows_span_many_batches(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        table = await imported(client, admin, contacts(4500))
        assert table["rowCount"] == 4500
        assert stored_rows(settings, table["id"]) == 4500
        rows = await all_rows(client, admin, table["id"])
        assert rows[4499]["email"] == "c4499@example.com"

    async def test_import_into_a_table_with_rows_is_refused(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        table = await imported(client, admin, contacts(3))
        body = await expect_refused(
            client, admin, settings, contacts(2), status=409, code="TABLE_NOT_EMPTY", table=table
        )
        assert "append" in body["message"]

    async def test_other_media_types_are_refused(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await new_table(client, admin)
        r = await client.post(
            f"/api/v1/data-tables/{table['id']}/import", json={"a": 1}, headers=admin.headers
        )
        assert r.status_code == 415 and r.json()["errorCode"] == "UNSUPPORTED_MEDIA_TYPE"

    async def test_multipart_without_a_file_field(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await new_table(client, admin)
        r = await client.post(
            f"/api/v1/data-tables/{table['id']}/import",
            files={"upload": ("c.csv", contacts(2).encode(), "text/csv")},
            headers=admin.headers,
        )
        assert r.status_code == 422 and "'file'" in r.json()["message"]
        assert (await get_table(client, admin, table["id"]))["columns"] == []

    @pytest.mark.parametrize("second", ["file", "other"])
    async def test_multipart_with_two_files_is_refused(
        self, client: AsyncClient, settings: Settings, second: str
    ) -> None:
        admin = await signup(client)
        table = await imported(client, admin, contacts(2), name="appended")
        for target, action in ((await new_table(client, admin), "import"), (table, "append")):
            r = await client.post(
                f"/api/v1/data-tables/{target['id']}/{action}",
                files=[
                    ("file", ("a.csv", contacts(20_000).encode(), "text/csv")),
                    (second, ("b.csv", contacts(3).encode(), "text/csv")),
                ],
                headers=admin.headers,
            )
            assert r.status_code == 422, r.text
            assert r.json()["errorCode"] == "MULTIPLE_FILES"
            after = await get_table(client, admin, target["id"])
            assert after["rowCount"] == target["rowCount"]
            assert after["columns"] == target["columns"]
            assert stored_rows(settings, target["id"]) == target["rowCount"]

    async def test_concurrent_imports_into_one_table_write_once(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        table = await new_table(client, admin)
        results = await asyncio.gather(
            *(post_csv(client, admin, table["id"], contacts(300)) for _ in range(3))
        )
        assert sorted(r.status_code for r in results) == [200, 409, 409]
        assert stored_rows(settings, table["id"]) == 300


class TestAppend:
    async def test_same_columns_in_another_order(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, contacts(2))
        r = await post_csv(
            client,
            admin,
            table["id"],
            "email,name,phone\nz@example.com,Zed,+1999\n",
            action="append",
        )
        assert r.status_code == 200, r.text
        assert r.json()["inserted"] == 1 and r.json()["table"]["rowCount"] == 3
        assert r.json()["table"]["columns"] == ["name", "phone", "email"]
        rows = await all_rows(client, admin, table["id"])
        assert rows[2] == {"name": "Zed", "phone": "+1999", "email": "z@example.com"}

    async def test_other_columns_are_refused_naming_the_difference(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        table = await imported(client, admin, contacts(2))
        body = await expect_refused(
            client,
            admin,
            settings,
            "name,phone,mail,city\nA,+1,a@x,Paris\n",
            status=422,
            code="SCHEMA_MISMATCH",
            action="append",
            table=table,
        )
        assert body["details"] == {"missing": ["email"], "unexpected": ["mail", "city"]}
        assert "'email'" in body["message"] and "'mail'" in body["message"]

    async def test_append_to_an_empty_table_is_refused(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        body = await expect_refused(
            client, admin, settings, contacts(2), status=409, code="TABLE_EMPTY", action="append"
        )
        assert "import a CSV first" in body["message"]

    async def test_a_bad_append_keeps_the_earlier_rows_and_adds_none(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        table = await imported(client, admin, contacts(5))
        bad = contacts(3000, start=5) + "Contact x,+1\n"
        body = await expect_refused(
            client,
            admin,
            settings,
            bad,
            status=422,
            code="CSV_RAGGED_ROW",
            action="append",
            table=table,
        )
        assert body["details"]["line"] == 3002
        assert len(await all_rows(client, admin, table["id"])) == 5


class TestBadInput:
    @pytest.mark.parametrize(
        ("body", "code"),
        [
            (b"", "CSV_EMPTY"),
            (b"\xef\xbb\xbf", "CSV_EMPTY"),
            (b"\n\n  \n", "CSV_EMPTY"),
            (b"name,phone\n", "CSV_NO_ROWS"),
            (b"name,phone\n\n,\n", "CSV_NO_ROWS"),
            (b"name,phone,name\nA,B,C\n", "CSV_BAD_HEADER"),
            (b"name,,phone\nA,B,C\n", "CSV_BAD_HEADER"),
            (b"name, \nA,B\n", "CSV_BAD_HEADER"),
        ],
    )
    async def test_refused_with_a_code_and_nothing_written(
        self, client: AsyncClient, settings: Settings, body: bytes, code: str
    ) -> None:
        admin = await signup(client)
        await expect_refused(client, admin, settings, body, status=422, code=code)

    async def test_duplicate_and_blank_names_are_named(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        body = await expect_refused(
            client, admin, settings, "a,b,a,c,c\n1,2,3,4,5\n", status=422, code="CSV_BAD_HEADER"
        )
        assert body["details"] == {"duplicates": ["a", "c"]}
        body = await expect_refused(
            client, admin, settings, "a,,c,\n1,2,3,4\n", status=422, code="CSV_BAD_HEADER"
        )
        assert body["details"] == {"blank": [2, 4]}

    async def test_ragged_row_reports_its_line(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        text = 'name,note\nAda,"two\nlines"\nBob,ok\nCy,too,many\nDee,ok\n'
        body = await expect_refused(
            client, admin, settings, text, status=422, code="CSV_RAGGED_ROW"
        )
        assert body["details"] == {"line": 5, "fields": 3, "expected": 2}
        assert "Line 5" in body["message"]

    async def test_short_row_deep_in_the_file_writes_nothing(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        text = contacts(4000) + "lonely\n" + contacts(10)
        body = await expect_refused(
            client, admin, settings, text, status=422, code="CSV_RAGGED_ROW"
        )
        assert body["details"]["line"] == 4002

    async def test_undecodable_bytes_report_their_line(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        text = "name,city\nAda,Paris\nZoë,Zürich\n".encode("latin-1")
        body = await expect_refused(client, admin, settings, text, status=422, code="CSV_ENCODING")
        assert body["details"] == {"line": 3}
        assert "UTF-8" in body["message"]

    async def test_undecodable_bytes_far_into_the_file(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        text = contacts(9000).encode() + b"Bad \xff row,+1,x@y\n"
        body = await expect_refused(client, admin, settings, text, status=422, code="CSV_ENCODING")
        assert body["details"] == {"line": 9002}

    async def test_nul_bytes_are_refused(self, client: AsyncClient, settings: Settings) -> None:
        admin = await signup(client)
        body = await expect_refused(
            client, admin, settings, b"a,b\n1,2\n3,\x004\n", status=422, code="CSV_ENCODING"
        )
        assert body["details"] == {"line": 3}

    async def test_unclosed_quote_is_refused(self, client: AsyncClient, settings: Settings) -> None:
        admin = await signup(client)
        await expect_refused(
            client, admin, settings, 'a,b\n1,"2\n3,4\n', status=422, code="CSV_MALFORMED"
        )

    async def test_unclosed_quote_is_reported_where_it_opens(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        lines = contacts(20_000).splitlines(keepends=True)
        lines[2] = 'Contact 1,"+14155550001,c1@example.com\n'  # line 3: the quote never closes
        body = await expect_refused(
            client, admin, settings, "".join(lines), status=422, code="CSV_MALFORMED"
        )
        assert body["details"] == {"line": 3, "column": 2}
        assert body["message"].startswith("Line 3, column 2:")

    async def test_unclosed_quote_in_a_later_batch(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        lines = contacts(20_000).splitlines(keepends=True)
        lines[15_001] = '"Contact 15000,+14155550001,c1@example.com\n'
        body = await expect_refused(
            client, admin, settings, "".join(lines), status=422, code="CSV_MALFORMED"
        )
        assert body["details"] == {"line": 15_002, "column": 1}

    async def test_long_cells_are_kept_whole(self, client: AsyncClient, settings: Settings) -> None:
        admin = await signup(client)
        # Past csv's default field limit of 131,072 characters, quoted with line breaks and not.
        note = "word " * 60_000
        essay = "para\n" * 40_000
        table = await imported(client, admin, f'name,note\nAda,{note}\nBo,"{essay}"\n')
        rows = await all_rows(client, admin, table["id"])
        assert [r["name"] for r in rows] == ["Ada", "Bo"]
        assert rows[0]["note"] == note and rows[1]["note"] == essay

    async def test_cell_over_the_limit_says_cell_too_large(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        limit = 16 * 1024 * 1024
        huge = "x" * 1000 + "\n"
        cell = huge * (limit // len(huge) + 1)  # lines under the line limit, one cell over it
        text = f'name,phone,note\nAda,+14155550100,ok\nBo,+14155550101,"{cell}"\n'
        body = await expect_refused(
            client, admin, settings, text, status=422, code="CSV_CELL_TOO_LARGE"
        )
        assert body["details"] == {"line": 3, "column": 3, "max": limit}
        assert "cell too large" in body["message"]

    async def test_unknown_delimiter_is_refused_clearly(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        body = await expect_refused(
            client,
            admin,
            settings,
            "name:phone\nAda:+1\nBob:+2\n",
            status=422,
            code="CSV_DELIMITER",
        )
        assert "':'" in body["message"]

    async def test_more_columns_than_the_maximum(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        n = settings.max_columns + 1
        text = ",".join(f"c{i}" for i in range(n)) + "\n" + ",".join("x" * n) + "\n"
        body = await expect_refused(
            client, admin, settings, text, status=422, code="CSV_TOO_MANY_COLUMNS"
        )
        assert body["details"] == {"columns": n, "max": settings.max_columns}

    async def test_file_over_the_size_limit_is_refused_while_streaming(
        self, settings: Settings
    ) -> None:
        small = make_settings(**{**settings.model_dump(), "max_upload_bytes": 1024 * 1024})
        app = create_app(small)
        pulled = 0

        async def endless() -> AsyncIterator[bytes]:
            nonlocal pulled
            yield b"id\n"
            chunk = ids_csv(8192)[3:]  # 64 KiB of rows
            for _ in range(50_000):  # ~3 GB if anyone read it all
                pulled += 1
                if pulled == 12:
                    await asyncio.sleep(0.3)  # the worker is mid-COPY when the limit is hit
                yield chunk

        async with app.router.lifespan_context(app):
            async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
                admin = await signup(c)
                table = await new_table(c, admin)
                r = await c.post(
                    f"/api/v1/data-tables/{table['id']}/import",
                    content=endless(),
                    headers={**admin.headers, **CSV_TYPE},
                )
                assert r.status_code == 413
                assert r.json()["errorCode"] == "PAYLOAD_TOO_LARGE"
                assert pulled <= 20
                assert (await get_table(c, admin, table["id"]))["rowCount"] == 0
                assert stored_rows(small, table["id"]) == 0
                declared = await c.post(
                    f"/api/v1/data-tables/{table['id']}/import",
                    content=b"x",
                    headers={**admin.headers, **CSV_TYPE, "Content-Length": str(10**9)},
                )
                assert declared.status_code == 413

    async def test_upload_that_fails_midway_leaves_no_rows(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        table = await new_table(client, admin)

        async def breaks() -> AsyncIterator[bytes]:
            data = ids_csv(100_000)  # 800 KB: the worker has COPYed rows when the client fails
            for i in range(0, len(data), 64 * 1024):
                yield data[i : i + 64 * 1024]
            await asyncio.sleep(0.3)
            raise ConnectionResetError("client went away")

        # In-process the client's error surfaces as the server's receive() raising, which the
        # last-resort handler answers; a real client that went away never reads that answer.
        r = await client.post(
            f"/api/v1/data-tables/{table['id']}/import",
            content=breaks(),
            headers={**admin.headers, **CSV_TYPE},
        )
        assert r.status_code >= 400
        assert stored_rows(settings, table["id"]) == 0
        after = await get_table(client, admin, table["id"])
        assert after["rowCount"] == 0 and after["columns"] == []
        r = await post_csv(client, admin, table["id"], contacts(2))
        assert r.status_code == 200, r.text

    async def test_connection_dropped_midway_leaves_no_rows(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        table = await new_table(client, admin)
        partial = ids_csv(100_000)
        with live_api(settings) as base:
            port = int(base.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port)) as sock:
                head = (
                    f"POST /api/v1/data-tables/{table['id']}/import HTTP/1.1\r\n"
                    f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {admin.token}\r\n"
                    f"Content-Type: text/csv\r\nContent-Length: {len(partial) * 10}\r\n\r\n"
                )
                sock.sendall(head.encode() + partial)
                await asyncio.sleep(0.5)
            await wait_for_no_import(settings)
        assert stored_rows(settings, table["id"]) == 0
        after = await get_table(client, admin, table["id"])
        assert after["rowCount"] == 0 and after["columns"] == []


async def wait_for_no_import(settings: Settings, timeout: float = 20) -> None:
    """Until no import transaction is open: only then can 'no rows' be told from 'not yet'."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cxgear csv import'"
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            assert time.monotonic() < deadline, "the import transaction is still open"
            await asyncio.sleep(0.1)


class TestShowData:
    async def test_keyset_pages_with_total_and_columns(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, contacts(120))
        url = f"/api/v1/data-tables/{table['id']}/rows"
        first = (await client.get(f"{url}?limit=50", headers=admin.headers)).json()
        assert first["count"] == 120 and first["columns"] == ["name", "phone", "email"]
        assert len(first["data"]) == 50 and first["data"][0]["data"]["name"] == "Contact 0"
        second = (
            await client.get(f"{url}?limit=50&after={first['nextAfter']}", headers=admin.headers)
        ).json()
        assert second["data"][0]["data"]["name"] == "Contact 50"
        third = (
            await client.get(f"{url}?limit=50&after={second['nextAfter']}", headers=admin.headers)
        ).json()
        assert len(third["data"]) == 20 and third["nextAfter"] is None
        ids = [r["rowId"] for r in first["data"] + second["data"] + third["data"]]
        assert ids == sorted(set(ids))

    async def test_page_size_is_capped(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, contacts(600))
        page = (
            await client.get(
                f"/api/v1/data-tables/{table['id']}/rows?limit=100000", headers=admin.headers
            )
        ).json()
        assert len(page["data"]) == 500 and page["nextAfter"] is not None

    async def test_empty_table(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await new_table(client, admin)
        page = (
            await client.get(f"/api/v1/data-tables/{table['id']}/rows", headers=admin.headers)
        ).json()
        assert page == {"columns": [], "data": [], "count": 0, "nextAfter": None}


class TestMetadataFields:
    async def test_set_a_subset_and_read_it_back(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, contacts(2))
        r = await client.patch(
            f"/api/v1/data-tables/{table['id']}",
            json={"metadataFields": ["phone", "name", "phone"]},
            headers=admin.headers,
        )
        assert r.status_code == 200 and r.json()["metadataFields"] == ["phone", "name"]
        assert (await get_table(client, admin, table["id"]))["metadataFields"] == ["phone", "name"]

    async def test_unknown_column_is_refused(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, contacts(2))
        r = await client.patch(
            f"/api/v1/data-tables/{table['id']}",
            json={"metadataFields": ["name", "zipcode"]},
            headers=admin.headers,
        )
        assert r.status_code == 422 and r.json()["errorCode"] == "VALIDATION_ERROR"
        assert "'zipcode'" in r.json()["message"]
        assert (await get_table(client, admin, table["id"]))["metadataFields"] == []

    async def test_empty_selection_means_all_columns(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await imported(client, admin, contacts(2))
        url = f"/api/v1/data-tables/{table['id']}"
        # A spinner's templates may use the project's metadata fields: its issues show which.
        spinner = await make_spinner(
            client,
            admin,
            project_id=table["projectId"],
            definition={"steps": [{"id": "say", "type": "log", "message": "{{email}} {{phone}}"}]},
            publish=False,
        )

        async def unknown_fields() -> set[str]:
            r = await client.get(f"/api/v1/spinners/{spinner['id']}", headers=admin.headers)
            assert r.status_code == 200, r.text
            return {
                field
                for issue in r.json()["issues"]
                for field in ("name", "phone", "email")
                if f"'{field}'" in issue["message"]
            }

        assert await unknown_fields() == set()  # nothing chosen yet: every column
        r = await client.patch(url, json={"metadataFields": ["name"]}, headers=admin.headers)
        assert r.status_code == 200
        assert await unknown_fields() == {"email", "phone"}
        r = await client.patch(url, json={"metadataFields": []}, headers=admin.headers)
        assert r.status_code == 200 and r.json()["metadataFields"] == []
        assert await unknown_fields() == set()

    async def test_before_an_import_no_field_exists(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await new_table(client, admin)
        r = await client.patch(
            f"/api/v1/data-tables/{table['id']}",
            json={"metadataFields": ["name"]},
            headers=admin.headers,
        )
        assert r.status_code == 422 and "import a CSV first" in r.json()["message"]


class TestExport:
    async def test_streams_every_row_under_the_header(self, client: AsyncClient) -> None:
        admin = await signup(client)
        text = contacts(2500) + '"Ada, ""the first""","+1","multi\nline"\n'
        table = await imported(client, admin, text)
        r = await client.get(f"/api/v1/data-tables/{table['id']}/export", headers=admin.headers)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/csv")
        assert 'filename="contacts.csv"' in r.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(r.text, newline="")))
        assert rows[0] == ["name", "phone", "email"]
        assert len(rows) == 2502
        assert rows[1] == ["Contact 0", "+14155550000", "c0@example.com"]
        assert rows[-1] == ['Ada, "the first"', "+1", "multi\nline"]

    async def test_formula_injection_is_guarded(self, client: AsyncClient) -> None:
        admin = await signup(client)
        text = (
            "=cmd,label\n"
            '=SUM(A1:A9),equals\n+1+1,plus\n-2+3,minus\n@SUM(1),at\n"\tx",tab\n"\rx",cr\n'
            "safe = fine,plain\n"
        )
        table = await imported(client, admin, text)
        r = await client.get(f"/api/v1/data-tables/{table['id']}/export", headers=admin.headers)
        rows = list(csv.reader(io.StringIO(r.text, newline="")))
        assert rows == [
            ["'=cmd", "label"],
            ["'=SUM(A1:A9)", "equals"],
            ["'+1+1", "plus"],
            ["'-2+3", "minus"],
            ["'@SUM(1)", "at"],
            ["'\tx", "tab"],
            ["'\rx", "cr"],
            ["safe = fine", "plain"],
        ]

    async def test_numbers_and_phones_are_data_not_formulas(self, client: AsyncClient) -> None:
        admin = await signup(client)
        values = [
            "+447700900000",
            "+44 (0) 7700-900.000",
            "-12.5",
            "+3",
            "-0",
            "=SUM(A1)",
            "@cmd",
            "-2+3",
            "+",
            "-",
            "'=already quoted",
            "''@twice",
            "'+44",
            "'",
            "it's",
            "\tx",
        ]
        body = io.StringIO()
        csv.writer(body, lineterminator="\n").writerows(
            [["v", "n"], *([v, str(i)] for i, v in enumerate(values))]
        )
        table = await new_table(client, admin)
        # Stored as written: this file is not one of our exports.
        r = await post_csv(client, admin, table["id"], body.getvalue(), formula_guard=False)
        assert r.status_code == 200, r.text
        assert [x["v"] for x in await all_rows(client, admin, table["id"])] == values
        r = await client.get(f"/api/v1/data-tables/{table['id']}/export", headers=admin.headers)
        cells = [row[0] for row in csv.reader(io.StringIO(r.text, newline=""))][1:]
        # The SQL guard of the export and the Python one of the header and the import agree.
        assert cells == [guard(v) for v in values]
        assert cells[:5] == values[:5]
        assert cells[5:10] == ["'=SUM(A1)", "'@cmd", "'-2+3", "'+", "'-"]
        assert cells[10:12] == ["''=already quoted", "'" + "''@twice"]
        assert cells[12:] == ["'+44", "'", "it's", "'\tx"]

    @pytest.mark.parametrize("guarded", [True, False])
    async def test_export_then_import_gives_back_every_value(
        self, client: AsyncClient, guarded: bool
    ) -> None:
        admin = await signup(client)
        header = ["name", "=phone", "balance", "note"]
        rows = [
            ["Ada", "+447700900000", "-12.50", "=SUM(A1)"],
            ["Bob", "+1 (415) 555-0100", "-3", "@cmd"],
            ["'=quoted", "-", "+5", "'leading quote"],
            ["Eve\tTab", "\tpadded", "'-2+3", 'say "hi", bye\nnow'],
        ]
        body = io.StringIO()
        csv.writer(body, lineterminator="\n").writerows([header, *rows])
        table = await new_table(client, admin)
        r = await post_csv(client, admin, table["id"], body.getvalue(), formula_guard=False)
        assert r.status_code == 200, r.text
        flag = {"formulaGuard": str(guarded).lower()}
        r = await client.get(
            f"/api/v1/data-tables/{table['id']}/export", params=flag, headers=admin.headers
        )
        assert r.status_code == 200
        assert ("'=SUM(A1)" in r.text) is guarded
        copy = await new_table(client, admin, name="copy")
        r = await post_csv(client, admin, copy["id"], r.content, formula_guard=guarded)
        assert r.status_code == 200, r.text
        assert r.json()["table"]["columns"] == header
        expected = [dict(zip(header, row, strict=True)) for row in rows]
        assert await all_rows(client, admin, copy["id"]) == expected
        assert await all_rows(client, admin, table["id"]) == expected

    async def test_exporting_an_empty_table(self, client: AsyncClient) -> None:
        admin = await signup(client)
        table = await new_table(client, admin)
        r = await client.get(f"/api/v1/data-tables/{table['id']}/export", headers=admin.headers)
        assert r.status_code == 409 and r.json()["errorCode"] == "TABLE_EMPTY"
