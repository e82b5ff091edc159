"""`cxgear schedules …`: a spinner's cron schedules."""

from __future__ import annotations

import typer
from rich.console import Console

from cxgear.cli_client import api_client, checked
from cxgear.cli_output import show
from cxgear.cli_tables import TOKEN

schedules_app = typer.Typer(help="Cron schedules of a spinner.", no_args_is_help=True)
out = Console()
JSON = typer.Option(False, "--json", help="Print the API's JSON instead of a table")
COLUMNS = ("id", "cron", "timezone", "tableId", "onlyNew", "paused", "createdAt")


@schedules_app.command("list")
def schedules_list(spinner_id: str, as_json: bool = JSON, token: str | None = TOKEN) -> None:
    with api_client(token) as http:
        data = checked(http.get(f"/api/v1/spinners/{spinner_id}/schedules"))["data"]
    show(data, COLUMNS, as_json=as_json)


@schedules_app.command("create")
def schedules_create(
    spinner_id: str,
    table: str = typer.Option(..., "--table", "-t", help="Data table id"),
    cron: str = typer.Option(..., "--cron", help='e.g. "0 9 * * mon-fri"'),
    timezone: str = typer.Option("UTC", "--timezone"),
    only_new: bool = typer.Option(False, "--only-new", help="Only rows added since the last run"),
    as_json: bool = JSON,
    token: str | None = TOKEN,
) -> None:
    """Run a published spinner over a table on a cron schedule."""
    body = {"tableId": table, "cron": cron, "timezone": timezone, "onlyNew": only_new}
    with api_client(token) as http:
        made = checked(http.post(f"/api/v1/spinners/{spinner_id}/schedules", json=body))
    show([made], COLUMNS, as_json=as_json, json_data=made)


def _act(schedule_id: str, action: str, token: str | None) -> None:
    with api_client(token) as http:
        sched = checked(http.post(f"/api/v1/schedules/{schedule_id}/{action}"))
    out.print(f"schedule {schedule_id} is {'paused' if sched['paused'] else 'active'}")


@schedules_app.command("pause")
def schedules_pause(schedule_id: str, token: str | None = TOKEN) -> None:
    _act(schedule_id, "pause", token)


@schedules_app.command("resume")
def schedules_resume(schedule_id: str, token: str | None = TOKEN) -> None:
    _act(schedule_id, "resume", token)


@schedules_app.command("delete")
def schedules_delete(schedule_id: str, token: str | None = TOKEN) -> None:
    with api_client(token) as http:
        checked(http.delete(f"/api/v1/schedules/{schedule_id}"))
    out.print(f"deleted schedule {schedule_id}")
