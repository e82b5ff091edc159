"""`cxgear secrets …` and `cxgear integrations …`: the admin side of the vault and providers,
through the HTTP API. A secret's value is read from stdin or a prompt, never from the command
line (it would land in shell history and process listings), and is never printed."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console
from rich.table import Table

from cxgear.cli_client import api_client, checked

secrets_app = typer.Typer(help="Vault secrets of your organization (values never shown).")
integrations_app = typer.Typer(help="Provider integrations: list and test connections.")
out = Console()

TOKEN = typer.Option(None, "--token", help="Session token (default: $CXGEAR_TOKEN)")


@secrets_app.command("list")
def secrets_list(token: str | None = TOKEN) -> None:
    """Secrets, masked: name, version, last update and who made it."""
    with api_client(token) as c:
        data = checked(c.get("/api/v1/vault/secrets"))["data"]
    table = Table("name", "version", "updated at", "updated by")
    for s in data:
        table.add_row(
            s["name"],
            str(s["version"]),
            str(s.get("updatedAt") or ""),
            str(s.get("updatedBy") or ""),
        )
    out.print(table)


@secrets_app.command("set")
def secrets_set(
    name: str,
    cas: int | None = typer.Option(
        None, "--cas", help="Only write if the current version is this (0: only create)"
    ),
    token: str | None = TOKEN,
) -> None:
    """Create or rotate a secret; the value comes from stdin (or a hidden prompt)."""
    value = (
        sys.stdin.read().rstrip("\n")
        if not sys.stdin.isatty()
        else typer.prompt("value", hide_input=True)
    )
    if not value:
        raise typer.BadParameter("the value is empty", param_hint="stdin")
    with api_client(token) as c:
        saved = checked(c.put(f"/api/v1/vault/secrets/{name}", json={"value": value, "cas": cas}))
    out.print(f"{saved['name']} is now at version {saved['version']}")


@secrets_app.command("delete")
def secrets_delete(name: str, token: str | None = TOKEN) -> None:
    with api_client(token) as c:
        checked(c.delete(f"/api/v1/vault/secrets/{name}"))
    out.print(f"deleted {name}")


@integrations_app.command("list")
def integrations_list(token: str | None = TOKEN) -> None:
    with api_client(token) as c:
        data = checked(c.get("/api/v1/integrations"))["data"]
    table = Table("id", "kind", "name", "credentials set")
    for i in data:
        table.add_row(i["id"], i["kind"], i["name"], ", ".join(i.get("credentialFields") or []))
    out.print(table)


@integrations_app.command("test")
def integrations_test(integration_id: str, token: str | None = TOKEN) -> None:
    """Test the connection with the stored credentials; exit code 1 when it fails."""
    with api_client(token) as c:
        result = checked(c.post(f"/api/v1/integrations/{integration_id}/test"))
    out.print(json.dumps(result))
    if not result.get("ok"):
        raise typer.Exit(1)
