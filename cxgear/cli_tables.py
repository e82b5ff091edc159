"""`cxgear tables …`: import, append and export data tables through the HTTP API.

Files are streamed both ways (never read whole), with a progress bar over bytes and lines.
The API answers with the number of rows written; the line count shown while sending is only a
hint, since a quoted field may span lines.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import typer
from rich import filesize
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from cxgear.cli_client import api_client, checked
from cxgear.cli_output import fail, show

tables_app = typer.Typer(
    help="Data tables: import, append and export CSV files.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)

CHUNK = 1024 * 1024
# The API answers only once every row is committed, which for millions of rows takes a while
# after the last byte was sent.
UPLOAD_TIMEOUT = httpx.Timeout(60, read=3600)

TOKEN = typer.Option(None, "--token", help="Session token (default: $CXGEAR_TOKEN)")
PROJECT = typer.Option(None, "--project", "-p", help="Project id or name")
NAME = typer.Option(None, "--name", "-n", help="Data table name in the project")
TABLE = typer.Option(None, "--table", "-t", help="Data table id (instead of --project/--name)")
UNGUARD = typer.Option(
    True,
    "--formula-guard/--no-formula-guard",
    help="Remove the ' our export put before formula-like cells (off for files from elsewhere "
    "whose leading ' is data)",
)


def _fail(message: str) -> typer.Exit:
    return fail(message)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def project_id(http: httpx.Client, project: str) -> str:
    if _is_uuid(project):
        return project
    projects = checked(http.get("/api/v1/projects"))["data"]
    found = [p for p in projects if p["name"] == project] or [
        p for p in projects if p["name"].lower() == project.lower()
    ]
    if not found:
        raise _fail(f"No project named '{project}'")
    if len(found) > 1:
        raise _fail(f"Several projects are named '{project}'; pass its id")
    return str(found[0]["id"])


def find_table(
    http: httpx.Client,
    *,
    table: str | None,
    project: str | None,
    name: str | None,
    create: bool = False,
) -> dict[str, Any]:
    if table:
        return dict(checked(http.get(f"/api/v1/data-tables/{table}")))
    if not project or not name:
        raise _fail("Name the table with --table ID, or with --project and --name")
    pid = project_id(http, project)
    tables = checked(http.get(f"/api/v1/projects/{pid}/data-tables"))["data"]
    for t in tables:
        if t["name"] == name:
            return dict(t)
    if not create:
        raise _fail(f"No data table named '{name}' in project '{project}'")
    return dict(checked(http.post(f"/api/v1/projects/{pid}/data-tables", json={"name": name})))


def _export_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("lines, {task.fields[size]}"),
        TimeElapsedColumn(),
        console=err,
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[lines]:,} lines"),
        TimeRemainingColumn(),
        console=err,
    )


def _file_chunks(file: BinaryIO, progress: Progress, task: TaskID) -> Iterator[bytes]:
    lines = 0
    while block := file.read(CHUNK):
        lines += block.count(b"\n")
        progress.update(task, advance=len(block), lines=lines)
        yield block
    progress.update(task, description="Writing rows")


def upload(
    http: httpx.Client, table: dict[str, Any], file: Path, action: str, *, formula_guard: bool
) -> dict[str, Any]:
    size = file.stat().st_size
    with file.open("rb") as f, _progress() as progress:
        task = progress.add_task(f"Sending {file.name}", total=size, lines=0)
        response = http.post(
            f"/api/v1/data-tables/{table['id']}/{action}",
            content=_file_chunks(f, progress, task),
            headers={"Content-Type": "text/csv", "Content-Length": str(size)},
            params={"formulaGuard": formula_guard},
            timeout=UPLOAD_TIMEOUT,
        )
    return dict(checked(response))


def _report(result: dict[str, Any], verb: str) -> None:
    table = result["table"]
    out.print(
        f"{verb} {result['inserted']:,} rows into '{table['name']}' ({table['id']}); "
        f"it now has {table['rowCount']:,} rows and columns: {', '.join(table['columns'])}"
    )


@tables_app.command("list")
def list_tables(
    project: str = typer.Option(..., "--project", "-p", help="Project id or name"),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON instead of a table"),
    token: str | None = TOKEN,
) -> None:
    """List the data tables of a project."""
    with api_client(token) as http:
        pid = project_id(http, project)
        data = checked(http.get(f"/api/v1/projects/{pid}/data-tables"))["data"]
    show(
        data,
        (
            "id",
            "name",
            ("rows", lambda t: f"{t['rowCount']:,}"),
            ("columns", lambda t: len(t["columns"])),
        ),
        as_json=as_json,
    )


@tables_app.command("import")
def import_file(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    project: str = typer.Option(..., "--project", "-p", help="Project id or name"),
    name: str = typer.Option(..., "--name", "-n", help="Table name; created when missing"),
    formula_guard: bool = UNGUARD,
    token: str | None = TOKEN,
) -> None:
    """Import a CSV into a new (or empty) table: its header fixes the columns."""
    with api_client(token) as http:
        table = find_table(http, table=None, project=project, name=name, create=True)
        _report(upload(http, table, file, "import", formula_guard=formula_guard), "Imported")


@tables_app.command("append")
def append_file(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    table: str | None = TABLE,
    project: str | None = PROJECT,
    name: str | None = NAME,
    formula_guard: bool = UNGUARD,
    token: str | None = TOKEN,
) -> None:
    """Append a CSV with the table's columns (in any order)."""
    with api_client(token) as http:
        found = find_table(http, table=table, project=project, name=name)
        _report(upload(http, found, file, "append", formula_guard=formula_guard), "Appended")


@tables_app.command("export")
def export_table(
    table: str | None = TABLE,
    project: str | None = PROJECT,
    name: str | None = NAME,
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (default: stdout)"
    ),
    formula_guard: bool = typer.Option(
        True,
        "--formula-guard/--no-formula-guard",
        help="Prefix ' to cells a spreadsheet would run as formulas (import removes it again)",
    ),
    token: str | None = TOKEN,
) -> None:
    """Export a table as CSV; importing the file gives back the same values."""
    with api_client(token) as http:
        found = find_table(http, table=table, project=project, name=name)
        sink = output.open("wb") if output else sys.stdout.buffer
        try:
            with (
                http.stream(
                    "GET",
                    f"/api/v1/data-tables/{found['id']}/export",
                    params={"formulaGuard": formula_guard},
                    timeout=UPLOAD_TIMEOUT,
                ) as response,
                _export_progress() as progress,
            ):
                if response.status_code >= 400:
                    response.read()
                    checked(response)
                task = progress.add_task(
                    f"Exporting {found['name']}", total=found["rowCount"] + 1, size="0 bytes"
                )
                lines = written = 0
                for block in response.iter_bytes(CHUNK):
                    sink.write(block)
                    lines += block.count(b"\n")
                    written += len(block)
                    progress.update(task, completed=lines, size=filesize.decimal(written))
        finally:
            if output:
                sink.close()
    if output:
        err.print(f"Wrote {found['rowCount']:,} rows to {output}")
