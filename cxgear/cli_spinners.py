"""`cxgear spinners …`, `cxgear run` and `cxgear journey`: spinners as code and live runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cxgear.cli_client import api_client, checked
from cxgear.cli_output import fail, show
from cxgear.cli_tables import project_id
from models.spinner_language.yaml_io import SpinnerFile, dump_spinner_yaml, load_spinner_yaml

spinners_app = typer.Typer(help="Spinners as code: apply and export YAML.", no_args_is_help=True)
console = Console()
err = Console(stderr=True, soft_wrap=True)
TokenOpt = typer.Option(None, "--token", help="Session token (default $CXGEAR_TOKEN)")


@spinners_app.command("list")
def list_spinners(
    project: str = typer.Option(..., "--project", "-p", help="Project id or name"),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON instead of a table"),
    token: str = TokenOpt,
) -> None:
    """The spinners of a project with their latest published version."""
    with api_client(token) as http:
        data = checked(http.get(f"/api/v1/projects/{project_id(http, project)}/spinners"))["data"]
    show(data, ("id", "name", "latestVersion", "updatedAt"), as_json=as_json)


@spinners_app.command("apply")
def apply(
    file: Path = typer.Argument(..., exists=True, readable=True, help="Spinner YAML file"),
    project: str = typer.Option(None, help="Project id (default: `project` in the file)"),
    publish: bool = typer.Option(None, "--publish/--no-publish", help="Publish after applying"),
    token: str = TokenOpt,
) -> None:
    """Create or update a spinner's draft from YAML (by name within the project); optionally publish."""
    spec: SpinnerFile = load_spinner_yaml(file.read_text())
    project_id = project or spec.project
    if not project_id:
        raise fail("name the project with --project or `project:` in the file")
    definition = spec.definition.model_dump(mode="json", exclude_none=True)
    with api_client(token) as http:
        existing = checked(http.get(f"/api/v1/projects/{project_id}/spinners"))["data"]
        match = next((s for s in existing if s["name"] == spec.name), None)
        if match is None:
            body = {
                "name": spec.name,
                "description": spec.description or "",
                "definition": definition,
            }
            spinner = checked(http.post(f"/api/v1/projects/{project_id}/spinners", json=body))
            console.print(f"created spinner {spinner['id']} ({spec.name})")
        elif match["draft"] != definition or match["description"] != (spec.description or ""):
            body = {"description": spec.description or "", "definition": definition}
            spinner = checked(http.patch(f"/api/v1/spinners/{match['id']}", json=body))
            console.print(f"updated draft of {spinner['id']} ({spec.name})")
        else:
            spinner = match
            console.print(f"unchanged: {spinner['id']} ({spec.name})")
        for issue in checked(http.get(f"/api/v1/spinners/{spinner['id']}")).get("issues", []):
            console.print(f"  {issue['level']}: {issue['path']}: {issue['message']}")
        if publish if publish is not None else spec.publish:
            before = spinner.get("latestVersion", 0)
            version = checked(http.post(f"/api/v1/spinners/{spinner['id']}/publish"))
            state = "published" if version["version"] != before else "already published as"
            console.print(f"{state} version {version['version']}")


@spinners_app.command("export")
def export(
    spinner_id: str = typer.Argument(..., help="Spinner id"),
    output: Path = typer.Option(None, "-o", "--output", help="File to write (default stdout)"),
    token: str = TokenOpt,
) -> None:
    """Write a spinner's draft as YAML that `apply` accepts."""
    with api_client(token) as http:
        spinner = checked(http.get(f"/api/v1/spinners/{spinner_id}"))
    data = {
        "name": spinner["name"],
        "description": spinner["description"] or None,
        "project": spinner["projectId"],
        "definition": spinner["draft"],
    }
    try:
        text = dump_spinner_yaml(SpinnerFile.model_validate(data))
    except ValidationError as exc:
        # A draft still being written (a new spinner has no steps) is exported as stored, so
        # it can be finished in an editor and applied.
        err.print(
            f"note: the draft is not a complete definition yet ({exc.error_count()} problem(s)); "
            "exported as stored",
            markup=False,
        )
        data = {k: v for k, v in data.items() if v is not None}
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if output:
        output.write_text(text)
    else:
        console.out(text, end="")


def watch_job(http: Any, job_id: str, interval: float = 1.0) -> dict[str, Any]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "failed {task.fields[failed]} · waiting {task.fields[waiting]} · {task.fields[rate]}/s"
        ),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("job", total=None, failed=0, waiting=0, rate="0.0")
        while True:
            # Served from the API's shared per-job poll of PostgreSQL: watching costs Temporal nothing.
            p = checked(http.get(f"/api/v1/jobs/{job_id}/progress"))
            progress.update(
                task,
                total=p["total"] or None,
                completed=p["done"],
                description=p["status"],
                failed=p["failed"],
                waiting=p["waiting"],
                rate=f"{p['ratePerS'] or 0:.1f}",
            )
            if p["phase"] == "ended":
                return dict(checked(http.get(f"/api/v1/jobs/{job_id}")))
            time.sleep(interval)


def run(
    spinner_id: str = typer.Argument(..., help="Spinner id"),
    table: str = typer.Option(..., "--table", help="Data table id"),
    watch: bool = typer.Option(False, "--watch", help="Show live progress until the job ends"),
    token: str = TokenOpt,
) -> None:
    """Run a published spinner over a table now."""
    with api_client(token) as http:
        job = checked(http.post(f"/api/v1/spinners/{spinner_id}/run", json={"tableId": table}))
        console.print(f"job {job['id']} started on version {job['spinnerVersion']}")
        if watch:
            job = watch_job(http, job["id"])
            c = job["counts"]
            console.print(
                f"job {job['status']}: {c['completed']} completed, {c['failed']} failed, "
                f"{c['cancelled']} cancelled of {c['total']}"
            )


def journey(record_id: int = typer.Argument(..., help="Record id"), token: str = TokenOpt) -> None:
    """Print a record's journey: each step with its outcome, attempts, timing and errors."""
    with api_client(token) as http:
        data = checked(http.get(f"/api/v1/records/{record_id}/journey"))
    table = Table(title=f"record {record_id} · {data['status']} ({data['workflowId']})")
    for col in ("step", "outcome", "attempts", "ms", "messages / error"):
        table.add_column(col)
    for s in data["steps"]:
        note = s.get("error") or " | ".join(s.get("messages") or [])
        table.add_row(
            s.get("stepId") or "-",
            s["label"],
            str(s["attempts"]),
            str(s.get("durationMs") or ""),
            note,
        )
    console.print(table)
    console.print_json(data=data["output"])
