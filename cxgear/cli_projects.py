"""`cxgear projects …` and the browsing side of `cxgear tables …` (rows, metadata fields)."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from cxgear.cli_client import api_client, checked
from cxgear.cli_output import show
from cxgear.cli_tables import NAME, PROJECT, TABLE, TOKEN, find_table, tables_app

projects_app = typer.Typer(help="Projects of your organization.", no_args_is_help=True)
out = Console()
JSON = typer.Option(False, "--json", help="Print the API's JSON instead of a table")


@projects_app.command("list")
def projects_list(as_json: bool = JSON, token: str | None = TOKEN) -> None:
    with api_client(token) as http:
        data = checked(http.get("/api/v1/projects"))["data"]
    show(data, ("id", "name", "type", "timezone", "createdAt"), as_json=as_json)


@projects_app.command("create")
def projects_create(
    name: str,
    kind: str = typer.Option("outreach", "--type", help="outreach or call_analyzer"),
    timezone: str = typer.Option("UTC", "--timezone"),
    as_json: bool = JSON,
    token: str | None = TOKEN,
) -> None:
    with api_client(token) as http:
        body = {"name": name, "type": kind, "timezone": timezone}
        made = checked(http.post("/api/v1/projects", json=body))
    show([made], ("id", "name", "type", "timezone"), as_json=as_json, json_data=made)


@tables_app.command("rows")
def table_rows(
    table: str | None = TABLE,
    project: str | None = PROJECT,
    name: str | None = NAME,
    after: int | None = typer.Option(None, "--after", help="Start after this row id"),
    limit: int = typer.Option(50, "--limit", min=1, max=500, help="Rows per page"),
    as_json: bool = JSON,
    token: str | None = TOKEN,
) -> None:
    """One page of a table's rows; the footer gives the --after of the next page."""
    with api_client(token) as http:
        found = find_table(http, table=table, project=project, name=name)
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        page = checked(http.get(f"/api/v1/data-tables/{found['id']}/rows", params=params))
    rows = [{"rowId": r["rowId"], **r["data"]} for r in page["data"]]
    show(rows, ["rowId", *page["columns"]], as_json=as_json, json_data=page)
    if not as_json:
        more = f"; next page: --after {page['nextAfter']}" if page["nextAfter"] else "; last page"
        out.print(f"{len(rows)} of {page['count']:,} rows{more}")


@tables_app.command("fields")
def table_fields(
    table: str | None = TABLE,
    project: str | None = PROJECT,
    name: str | None = NAME,
    set_fields: str | None = typer.Option(
        None, "--set", help="Comma-separated columns to carry into records ('' for none)"
    ),
    as_json: bool = JSON,
    token: str | None = TOKEN,
) -> None:
    """Show (or with --set, replace) the columns a table carries into records as metadata."""
    with api_client(token) as http:
        found = find_table(http, table=table, project=project, name=name)
        if set_fields is not None:
            fields = [f.strip() for f in set_fields.split(",") if f.strip()]
            found = checked(
                http.patch(f"/api/v1/data-tables/{found['id']}", json={"metadataFields": fields})
            )
    if as_json:
        show([], (), as_json=True, json_data={"metadataFields": found["metadataFields"]})
        return
    chosen = set(found["metadataFields"])
    rows = [{"column": c, "metadata": "yes" if c in chosen else ""} for c in found["columns"]]
    show(rows, ("column", "metadata"), as_json=False, title=f"{found['name']} ({found['id']})")
