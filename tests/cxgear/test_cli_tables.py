"""`cxgear tables …` against the API served by a real uvicorn."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from httpx import AsyncClient
from typer.testing import CliRunner

from cxgear.cli import app as cli
from infra.settings import Settings
from tests.api.test_data_tables import all_rows, get_table, live_api, stored_rows
from tests.builders import Account, project, signup

runner = CliRunner()


@pytest.fixture(scope="module")
def api_url(settings: Settings) -> Iterator[str]:
    with live_api(settings) as url:
        yield url


def tables(api_url: str, account: Account, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        cli,
        ["tables", *args],
        env={"CXGEAR_API_URL": api_url, "CXGEAR_TOKEN": account.token, "COLUMNS": "200"},
    )
    return result.exit_code, result.output


def write_contacts(path: Path, n: int, *, start: int = 0, header: str = "name,phone,note") -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header.split(","))
        for i in range(start, start + n):
            writer.writerow([f"Contact {i}", f"+1415555{i:04d}", f'said "hi, {i}"\nbye'])
    return path


class TestImportCommand:
    async def test_creates_the_table_and_streams_the_file(
        self, client: AsyncClient, api_url: str, tmp_path: Path
    ) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        file = write_contacts(tmp_path / "contacts.csv", 3000)
        code, output = tables(
            api_url, admin, "import", str(file), "--project", p["name"], "--name", "leads"
        )
        assert code == 0, output
        assert "Imported 3,000 rows into 'leads'" in output
        listing = (
            await client.get(f"/api/v1/projects/{p['id']}/data-tables", headers=admin.headers)
        ).json()["data"]
        assert [(t["name"], t["rowCount"]) for t in listing] == [("leads", 3000)]
        rows = await all_rows(client, admin, listing[0]["id"])
        assert rows[2999] == {
            "name": "Contact 2999",
            "phone": "+14155552999",
            "note": 'said "hi, 2999"\nbye',
        }

    async def test_append_then_export(
        self, client: AsyncClient, api_url: str, tmp_path: Path
    ) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        first = write_contacts(tmp_path / "a.csv", 10)
        more = tmp_path / "b.csv"
        # Column order differs in the appended file; the rows still line up by name.
        with more.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["note", "phone", "name"])
            for i in range(10, 15):
                writer.writerow(["=1+1", f"+1{i}", f"Contact {i}"])
        assert tables(api_url, admin, "import", str(first), "-p", p["id"], "-n", "t")[0] == 0
        code, output = tables(api_url, admin, "append", str(more), "-p", p["id"], "-n", "t")
        assert code == 0, output
        assert "Appended 5 rows" in output and "it now has 15 rows" in output
        out = tmp_path / "export.csv"
        code, output = tables(api_url, admin, "export", "-p", p["id"], "-n", "t", "-o", str(out))
        assert code == 0, output
        with out.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["name", "phone", "note"] and len(rows) == 16
        assert rows[15] == ["Contact 14", "+114", "'=1+1"]

    async def test_api_errors_are_shown_with_their_code(
        self, client: AsyncClient, api_url: str, tmp_path: Path, settings: Settings
    ) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        bad = write_contacts(tmp_path / "bad.csv", 4000)
        with bad.open("a") as f:
            f.write("only,two\n")
        code, output = tables(api_url, admin, "import", str(bad), "-p", p["id"], "-n", "t")
        assert code == 1
        assert "CSV_RAGGED_ROW" in output and "Line 8002" in output
        table = (
            await client.get(f"/api/v1/projects/{p['id']}/data-tables", headers=admin.headers)
        ).json()["data"][0]
        assert (await get_table(client, admin, table["id"]))["rowCount"] == 0
        assert stored_rows(settings, table["id"]) == 0

    async def test_unknown_project_and_missing_token(
        self, client: AsyncClient, api_url: str, tmp_path: Path
    ) -> None:
        admin = await signup(client)
        file = write_contacts(tmp_path / "c.csv", 1)
        code, output = tables(api_url, admin, "import", str(file), "-p", "nope", "-n", "t")
        assert code == 2 and "No project named 'nope'" in output
        result = runner.invoke(
            cli, ["tables", "import", str(file), "-p", "x", "-n", "t"], env={"CXGEAR_TOKEN": ""}
        )
        assert result.exit_code == 2 and "CXGEAR_TOKEN" in result.output
