"""`cxgear jobs …` and `cxgear records …`: follow and steer runs."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from cxgear.cli_client import api_client, checked
from cxgear.cli_output import show, show_one
from cxgear.cli_tables import PROJECT, TOKEN, project_id

jobs_app = typer.Typer(help="Jobs: list, show, pause, resume, cancel, re-drive.")
records_app = typer.Typer(help="Records of a job or a project, with filters.")
out = Console()
JSON = typer.Option(False, "--json", help="Print the API's JSON instead of a table")

JOB_COLUMNS: list[Any] = [
    "id",
    "status",
    "trigger",
    "spinnerVersion",
    ("done/total", lambda j: f"{_done(j)}/{j['counts']['total']}"),
    ("failed", lambda j: j["counts"]["failed"]),
    ("waiting", lambda j: j["counts"]["waiting"]),
    "createdAt",
]


def _done(job: dict[str, Any]) -> int:
    c = job["counts"]
    return int(c["completed"] + c["failed"] + c["cancelled"])


@jobs_app.command("list")
def jobs_list(
    project: str = typer.Option(..., "--project", "-p", help="Project id or name"),
    as_json: bool = JSON,
    token: str | None = TOKEN,
) -> None:
    with api_client(token) as http:
        data = checked(http.get(f"/api/v1/projects/{project_id(http, project)}/jobs"))["data"]
    show(data, JOB_COLUMNS, as_json=as_json)


@jobs_app.command("show")
def jobs_show(job_id: str, as_json: bool = JSON, token: str | None = TOKEN) -> None:
    with api_client(token) as http:
        job = checked(http.get(f"/api/v1/jobs/{job_id}"))
    counts = job["counts"]
    summary = {
        **job,
        "progress": f"{_done(job)}/{counts['total']} done",
        "counts": ", ".join(f"{k} {v}" for k, v in counts.items()),
    }
    fields = ("id", "status", "trigger", "spinnerId", "spinnerVersion", "tableId")
    times = ("createdAt", "startedAt", "endedAt", "durationS")
    show_one(job if as_json else summary, (*fields, "progress", "counts", *times), as_json=as_json)


def _steer(action: str, job_id: str, token: str | None, body: Any = None) -> None:
    with api_client(token) as http:
        job = checked(http.post(f"/api/v1/jobs/{job_id}/{action}", json=body))
    out.print(f"job {job.get('id', job_id)}: {action} sent; status {job.get('status', '?')}")


@jobs_app.command("pause")
def jobs_pause(job_id: str, token: str | None = TOKEN) -> None:
    """Stop starting new records; running ones finish."""
    _steer("pause", job_id, token)


@jobs_app.command("resume")
def jobs_resume(job_id: str, token: str | None = TOKEN) -> None:
    _steer("resume", job_id, token)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, token: str | None = TOKEN) -> None:
    _steer("cancel", job_id, token)


@jobs_app.command("redrive")
def jobs_redrive(
    job_id: str,
    from_start: bool = typer.Option(
        False, "--from-start", help="Run failed records from the first step, not the failed one"
    ),
    token: str | None = TOKEN,
) -> None:
    """Run the job's failed records again."""
    _steer("redrive", job_id, token, {"mode": "start" if from_start else "failed_step"})


@records_app.command("list")
def records_list(
    job: str | None = typer.Option(None, "--job", "-j", help="Job id"),
    project: str | None = PROJECT,
    status: str | None = typer.Option(
        None, "--status", help="pending, running, waiting, completed, failed or cancelled"
    ),
    disposition: str | None = typer.Option(None, "--disposition", "-d"),
    search: str | None = typer.Option(None, "--search", "-q", help="Text in the metadata"),
    after: int | None = typer.Option(None, "--after", help="Start after this record id"),
    limit: int = typer.Option(100, "--limit", min=1, help="Records per page"),
    as_json: bool = JSON,
    token: str | None = TOKEN,
) -> None:
    """Records of a job (--job) or of a project (--project), newest last, one page at a time."""
    if bool(job) == bool(project):
        raise typer.BadParameter("give either --job or --project")
    params = {
        k: v
        for k, v in {
            "status": status,
            "disposition": disposition,
            "q": search,
            "after": after,
            "limit": limit,
        }.items()
        if v is not None
    }
    with api_client(token) as http:
        path = (
            f"/api/v1/jobs/{job}/records"
            if job
            else f"/api/v1/projects/{project_id(http, project or '')}/records"
        )
        page = checked(http.get(path, params=params))
    columns = ["id", "jobId", "status", "disposition", "failedStep", "error", "durationMs"]
    show(page["data"], columns, as_json=as_json, json_data=page)
    if not as_json:
        more = f"; next page: --after {page['nextAfter']}" if page.get("nextAfter") else ""
        out.print(f"{len(page['data'])} of {page['count']:,} records{more}")
