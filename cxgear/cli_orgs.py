"""`cxgear orgs …`: operator commands on the install's organizations.

They talk to the database named by the settings, not to the API: choosing an organization's plan
is the operator's decision for the whole install, and the API has no role above an organization
(every route is scoped to the caller's organization), so no API token could grant it.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from cxgear.cli_output import fail, print_json
from infra.db import libpq_url
from infra.plans import load_plans
from infra.settings import get_settings

orgs_app = typer.Typer(
    help="Operator commands on organizations (direct database access).", no_args_is_help=True
)
out = Console()


def _connect() -> psycopg.Connection[Any]:
    url = libpq_url(get_settings().database_url)
    try:
        return psycopg.connect(url, connect_timeout=10, application_name="cxgear orgs")
    except psycopg.OperationalError as exc:
        raise fail(f"cannot reach the database ({str(exc).strip().splitlines()[0]})") from None


def _find(conn: psycopg.Connection[Any], org: str) -> tuple[uuid.UUID, str, str]:
    try:
        rows = conn.execute(
            "SELECT id, name, plan FROM organization WHERE id = %s", (uuid.UUID(org),)
        ).fetchall()
    except ValueError:
        rows = conn.execute(
            "SELECT id, name, plan FROM organization WHERE lower(name) = lower(%s)", (org,)
        ).fetchall()
    if not rows:
        raise fail(f"no organization '{org}'")
    if len(rows) > 1:
        raise fail(f"several organizations are named '{org}'; pass its id")
    return rows[0][0], rows[0][1], rows[0][2]


@orgs_app.command("list")
def orgs_list(as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """Every organization with its plan."""
    with _connect() as conn:
        rows = conn.execute(
            "SELECT id, name, plan, created_at FROM organization ORDER BY created_at"
        ).fetchall()
    data = [
        {"id": str(r[0]), "name": r[1], "plan": r[2], "createdAt": r[3].isoformat()} for r in rows
    ]
    if as_json:
        print_json(data)
        return
    table = Table("id", "name", "plan", "created at")
    for d in data:
        table.add_row(d["id"], d["name"], d["plan"], d["createdAt"])
    out.print(table)


@orgs_app.command("set-plan")
def set_plan(
    org: str = typer.Argument(..., help="Organization id or name"),
    plan: str = typer.Argument(..., help="Plan name (built-in or from CXGEAR_PLANS_FILE)"),
) -> None:
    """Put an organization on a plan; its limits apply to the next request."""
    plans = load_plans(get_settings().plans_file)
    if plan not in plans:
        raise fail(f"no plan '{plan}'; choose from {', '.join(plans)}")
    with _connect() as conn:
        org_id, name, before = _find(conn, org)
        conn.execute("UPDATE organization SET plan = %s WHERE id = %s", (plan, org_id))
    out.print(f"{name} ({org_id}): plan {before} → {plan}")
