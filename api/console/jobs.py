"""Jobs: list, job page with live progress (server-sent events), pause/resume/cancel/re-drive,
the job's records; record page with metadata, outcomes and the journey."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from api.console.api_client import ApiError, ConsoleApi
from api.console.pages import CsrfChecked, MeDep, redirect, render, templates
from api.console.projects import project_of
from infra.settings import Settings
from models.fields import Cursor, SafeStr

router = APIRouter()
TERMINAL = {"completed", "failed", "cancelled"}
POLL_S = 1.0
RECORDS_PAGE = 50


def progress_of(job: dict[str, Any]) -> dict[str, Any]:
    """Completed / failed / waiting, rate and ETA from the job's record counts."""
    counts = job["counts"]
    total = counts["total"] or 0
    done = counts["completed"] + counts["failed"] + counts["cancelled"]
    rate = eta = None
    if job.get("started_at") and done:
        end = job.get("ended_at")
        until = datetime.fromisoformat(end) if end else datetime.now(UTC)
        elapsed = (until - datetime.fromisoformat(job["started_at"])).total_seconds()
        if elapsed > 0:
            rate = done / elapsed
            eta = (total - done) / rate if total > done else 0
    percent = round(100 * done / total) if total else (100 if job["status"] in TERMINAL else 0)
    return {"done": done, "total": total, "percent": percent, "rate": rate, "eta": eta}


def temporal_ui(request: Request, path: str) -> str:
    # Built inline until api/services/temporal_links.py (the codec work) is merged.
    settings: Settings = request.app.state.settings
    host = request.url.hostname or "localhost"
    return (
        f"http://{host}:{settings.temporal_ui_port}/namespaces/{settings.temporal_namespace}{path}"
    )


@router.get("/projects/{project_id}/jobs")
async def jobs_page(request: Request, me: MeDep, project_id: uuid.UUID) -> Response:
    project = await project_of(request, project_id)
    jobs = (await ConsoleApi(request).get(f"/projects/{project_id}/jobs"))["data"]
    rows = [{**j, "progress": progress_of(j)} for j in jobs]
    return render(request, "jobs.html", {"me": me, "project": project, "jobs": rows})


@router.get("/jobs/{job_id}")
async def job_page(
    request: Request,
    me: MeDep,
    job_id: uuid.UUID,
    status: Annotated[
        str | None, Query(pattern="^(pending|running|waiting|completed|failed|cancelled)$")
    ] = None,
    after: Annotated[Cursor | None, Query()] = None,
) -> Response:
    api = ConsoleApi(request)
    job = await api.get(f"/jobs/{job_id}")
    project = await project_of(request, job["project_id"])
    records = await api.get(
        f"/jobs/{job_id}/records", status=status, after=after, limit=RECORDS_PAGE
    )
    query = quote(f'CxJobId="{job_id}"')
    context = {
        "me": me,
        "project": project,
        "job": job,
        "progress": progress_of(job),
        "records": records,
        "status": status,
        "temporal_url": temporal_ui(request, f"/workflows?query={query}"),
        "live": job["status"] not in TERMINAL,
    }
    return render(request, "job.html", context)


def _event(name: str, html: str) -> str:
    data = "\n".join(f"data: {line}" for line in html.splitlines() or [""])
    return f"event: {name}\n{data}\n\n"


@router.get("/jobs/{job_id}/events")
async def job_events(request: Request, job_id: uuid.UUID) -> StreamingResponse:
    """The job's progress panel, re-rendered each second until the job ends.

    Polls the job row through the API's job route (PostgreSQL); one connection per open page.
    """
    api = ConsoleApi(request)
    await api.get(f"/jobs/{job_id}")  # 401/403/404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        while not await request.is_disconnected():
            try:
                job = await api.get(f"/jobs/{job_id}")
            except ApiError:
                yield _event("done", "")
                return
            html = templates.get_template("job_progress.html").render(
                job=job, progress=progress_of(job)
            )
            yield _event("progress", html)
            if job["status"] in TERMINAL:
                yield _event("done", "")
                return
            await asyncio.sleep(POLL_S)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post("/jobs/{job_id}/{action}", dependencies=[CsrfChecked])
async def job_action(
    request: Request,
    me: MeDep,
    job_id: uuid.UUID,
    action: Annotated[str, Path(pattern="^(pause|resume|cancel|redrive)$")],
    mode: Annotated[str, Form(pattern="^(failed_step|start)$")] = "failed_step",
) -> Response:
    body = {"mode": mode} if action == "redrive" else None
    try:
        await ConsoleApi(request).post(f"/jobs/{job_id}/{action}", body)
    except ApiError as err:
        if err.status in (401, 403, 404):
            raise
        return redirect(request, f"/jobs/{job_id}?problem={quote(err.message)}")
    return redirect(request, f"/jobs/{job_id}")


@router.get("/projects/{project_id}/records")
async def records_page(
    request: Request,
    me: MeDep,
    project_id: uuid.UUID,
    status: Annotated[
        str | None, Query(pattern="^(pending|running|waiting|completed|failed|cancelled)$")
    ] = None,
    disposition: Annotated[SafeStr | None, Query(max_length=200)] = None,
    q: Annotated[SafeStr | None, Query(max_length=200)] = None,
    after: Annotated[Cursor | None, Query()] = None,
) -> Response:
    project = await project_of(request, project_id)
    filters = {"status": status, "disposition": disposition, "q": q}
    records = await ConsoleApi(request).get(
        f"/projects/{project_id}/records", **filters, after=after, limit=RECORDS_PAGE
    )
    context = {"me": me, "project": project, "records": records, "filters": filters}
    return render(request, "records.html", context)


@router.get("/records/{record_id}")
async def record_page(request: Request, me: MeDep, record_id: int) -> Response:
    api = ConsoleApi(request)
    record = await api.get(f"/records/{record_id}")
    project = await project_of(request, record["project_id"])
    journey = problem = None
    try:
        journey = await api.get(f"/records/{record_id}/journey")
    except ApiError as err:
        if err.status in (401, 403):
            raise
        problem = err.message
    workflow_id = journey["workflow_id"] if journey else f"rec-{record_id}"
    context = {
        "me": me,
        "project": project,
        "record": record,
        "journey": journey,
        "journey_problem": problem,
        "temporal_url": temporal_ui(request, f"/workflows/{quote(workflow_id)}"),
    }
    return render(request, "record.html", context)
