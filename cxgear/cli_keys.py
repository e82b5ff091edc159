"""`cxgear api-keys …`: keys for the public ingest and trigger endpoints."""

from __future__ import annotations

import typer
from rich.console import Console

from cxgear.cli_client import api_client, checked
from cxgear.cli_output import print_json, show
from cxgear.cli_tables import TOKEN

keys_app = typer.Typer(help="API keys (the secret is shown once, at creation).")
out = Console()
JSON = typer.Option(False, "--json", help="Print the API's JSON instead of a table")
COLUMNS = ("id", "name", "prefix", "scopes", "createdAt", "lastUsedAt", "revokedAt")


@keys_app.command("list")
def keys_list(as_json: bool = JSON, token: str | None = TOKEN) -> None:
    with api_client(token) as http:
        data = checked(http.get("/api/v1/api-keys"))["data"]
    show(data, COLUMNS, as_json=as_json)


@keys_app.command("create")
def keys_create(
    name: str,
    scopes: list[str] = typer.Option(
        ["trigger"], "--scope", "-s", help="ingest and/or trigger (repeat the option)"
    ),
    as_json: bool = JSON,
    token: str | None = TOKEN,
) -> None:
    """Create a key; its secret is printed once and cannot be shown again."""
    with api_client(token) as http:
        made = checked(http.post("/api/v1/api-keys", json={"name": name, "scopes": scopes}))
    if as_json:
        print_json(made)
        return
    out.print(f"created key {made['id']} ({made['name']}, scopes {', '.join(made['scopes'])})")
    out.print("secret (shown only now, store it safely):")
    out.print(made["secret"], markup=False, highlight=False, soft_wrap=True)


@keys_app.command("revoke")
def keys_revoke(key_id: str, token: str | None = TOKEN) -> None:
    with api_client(token) as http:
        key = checked(http.delete(f"/api/v1/api-keys/{key_id}"))
    out.print(f"revoked key {key['id']} ({key['name']}) at {key['revokedAt']}")
