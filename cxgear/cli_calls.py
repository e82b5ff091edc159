"""`cxgear calls analyse FILE…`: upload local recordings and run a project's intake on them.

Each file goes to `POST /projects/{id}/recordings`, which streams it into the storage integration
of the project's call setup (the storage keys stay on the server); then one row per file is
appended to the project's "Calls" table and the intake spinner runs over just those rows.
Everything is checked before the first byte is sent: the files (present, non-empty, audio by
their first bytes, the same check the API and the pipeline make), the project's setup, its table
and its spinner.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import typer
from rich import filesize
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from cxgear.cli_client import api_base_url, api_client, checked
from cxgear.cli_output import fail
from cxgear.cli_spinners import watch_job
from cxgear.cli_tables import TOKEN, project_id
from models.call_analysis.audio import ACCEPTED, SNIFF_BYTES, audio_format

calls_app = typer.Typer(
    help="Call analysis: upload recordings and analyse them.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)

CALLS_TABLE = "Calls"
INTAKE_SPINNER = "Call intake"
CHUNK = 1024 * 1024
MAX_ROWS_PER_REQUEST = 500
# Storing a large recording finishes some time after its last byte was sent.
UPLOAD_TIMEOUT = httpx.Timeout(60, read=600)


@dataclass(frozen=True)
class Recording:
    path: Path
    size: int

    @property
    def call_id(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class Intake:
    project_id: str
    table: dict[str, Any]
    spinner: dict[str, Any]


def checked_files(files: list[Path]) -> list[Recording]:
    """Every file, or exit 2 naming every problem (nothing is uploaded then)."""
    found: list[Recording] = []
    problems: list[str] = []
    seen: dict[str, Path] = {}
    for path in files:
        try:
            size = path.stat().st_size
            with path.open("rb") as fh:
                head = fh.read(SNIFF_BYTES)
        except IsADirectoryError:
            problems.append(f"{path}: is a directory")
            continue
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror or exc}")
            continue
        if size == 0:
            problems.append(f"{path}: is empty")
        elif audio_format(head) is None:
            problems.append(f"{path}: not a supported audio file ({ACCEPTED})")
        elif path.stem in seen:
            problems.append(f"{path}: same call id '{path.stem}' as {seen[path.stem]}")
        else:
            seen[path.stem] = path
            found.append(Recording(path, size))
    if problems:
        raise fail(f"nothing uploaded: {'; '.join(problems)}")
    return found


def _named(items: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [i for i in items if i["name"] == name]


def find_intake(http: httpx.Client, project: str, spinner: str | None) -> Intake:
    pid = project_id(http, project)
    setup = checked(http.get(f"/api/v1/projects/{pid}/call-setup"))
    if not setup.get("storageIntegrationId"):
        raise fail(
            "the project's call setup names no storage integration: choose one "
            "(PUT /api/v1/projects/{id}/call-setup storageIntegrationId) before uploading"
        )
    tables = _named(checked(http.get(f"/api/v1/projects/{pid}/data-tables"))["data"], CALLS_TABLE)
    if not tables:
        raise fail(f"the project has no data table named '{CALLS_TABLE}'")
    table = tables[0]
    missing = [c for c in ("recording_url", "call_id", "agent") if c not in table["columns"]]
    if missing:
        raise fail(f"the '{CALLS_TABLE}' table has no column(s) {', '.join(missing)}")
    if spinner:
        chosen = dict(checked(http.get(f"/api/v1/spinners/{spinner}")))
        if chosen.get("projectId") != pid:
            raise fail(f"spinner {spinner} is not in project {pid}")
    else:
        spinners = checked(http.get(f"/api/v1/projects/{pid}/spinners"))["data"]
        named = _named(spinners, INTAKE_SPINNER)
        if len(named) != 1:
            what = "no spinner" if not named else "several spinners"
            raise fail(f"the project has {what} named '{INTAKE_SPINNER}'; pass --spinner ID")
        chosen = named[0]
    return Intake(pid, table, chosen)


def _progress(*, disable: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=disable,
    )


def _chunks(fh: BinaryIO, progress: Progress, tasks: tuple[TaskID, TaskID]) -> Iterator[bytes]:
    while block := fh.read(CHUNK):
        for task in tasks:
            progress.advance(task, len(block))
        yield block


def upload_all(http: httpx.Client, pid: str, recordings: list[Recording]) -> list[str]:
    """Each file's `s3://` URL, in order. A bar per file and one for the total on a terminal;
    otherwise a line per file."""
    urls: list[str] = []
    live = err.is_terminal
    with _progress(disable=not live) as progress:
        total = progress.add_task(
            f"{len(recordings)} recording(s)", total=sum(r.size for r in recordings)
        )
        for rec in recordings:
            task = progress.add_task(rec.path.name, total=rec.size)
            with rec.path.open("rb") as fh:
                response = http.post(
                    f"/api/v1/projects/{pid}/recordings",
                    params={"name": rec.path.name},
                    content=_chunks(fh, progress, (task, total)),
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(rec.size),
                    },
                    timeout=UPLOAD_TIMEOUT,
                )
            stored = checked(response)
            urls.append(str(stored["recordingUrl"]))
            line = f"uploaded {rec.path.name} ({filesize.decimal(rec.size)}) → {urls[-1]}"
            if live:
                progress.console.print(line, markup=False, highlight=False)
            else:
                err.print(line, markup=False, highlight=False)
    return urls


def append_rows(
    http: httpx.Client,
    table: dict[str, Any],
    recordings: list[Recording],
    urls: list[str],
    agent: str | None,
) -> list[int]:
    # The row carries every column of the table (the API wants exactly those); the ones a file
    # cannot tell (direction, start time…) stay empty.
    records = [
        {
            **dict.fromkeys(table["columns"], ""),
            "recording_url": url,
            "call_id": rec.call_id,
            "agent": agent or "",
        }
        for rec, url in zip(recordings, urls, strict=True)
    ]
    ids: list[int] = []
    for start in range(0, len(records), MAX_ROWS_PER_REQUEST):
        batch = records[start : start + MAX_ROWS_PER_REQUEST]
        added = checked(
            http.post(f"/api/v1/data-tables/{table['id']}/rows", json={"records": batch})
        )
        ids.extend(int(i) for i in added["rowIds"])
    return ids


@calls_app.command("analyse")
def analyse(
    files: list[Path] = typer.Argument(..., help="Recordings (WAV, MP3, OGG, FLAC, M4A, WebM)"),
    project: str = typer.Option(..., "--project", "-p", help="Call analyzer project id or name"),
    agent: str | None = typer.Option(None, "--agent", "-a", help="The agent on these calls"),
    spinner: str | None = typer.Option(
        None, "--spinner", help=f"Intake spinner id (default: the project's '{INTAKE_SPINNER}')"
    ),
    wait: bool = typer.Option(False, "--wait", help="Show the job's progress until it ends"),
    token: str | None = TOKEN,
) -> None:
    """Upload recordings to the project's storage and analyse them with its intake spinner.

    The call id of each row is the file's name without its extension."""
    recordings = checked_files(files)
    with api_client(token) as http:
        intake = find_intake(http, project, spinner)
        urls = upload_all(http, intake.project_id, recordings)
        row_ids = append_rows(http, intake.table, recordings, urls, agent)
        job = checked(
            http.post(
                f"/api/v1/spinners/{intake.spinner['id']}/run",
                json={"tableId": intake.table["id"], "rowIds": row_ids},
            )
        )
        out.print(
            f"job {job['id']} started: {intake.spinner['name']} over {len(row_ids)} call(s) "
            f"(rows {', '.join(map(str, row_ids))} of '{intake.table['name']}')"
        )
        for warning in job.get("warnings") or []:
            err.print(f"warning: {warning.get('message', warning)}", markup=False, highlight=False)
        if not wait:
            out.print(f"follow it with: cxgear jobs show {job['id']}")
            return
        job = watch_job(http, job["id"])
    c = job["counts"]
    out.print(
        f"job {job['status']}: {c['completed']} completed, {c['failed']} failed, "
        f"{c['cancelled']} cancelled of {c['total']}"
    )
    out.print(
        f"analysed calls: {api_base_url()}/api/v1/projects/{intake.project_id}/analysed-calls; "
        f"records: cxgear records list --job {job['id']}"
    )
    if c["failed"]:
        raise typer.Exit(1)
