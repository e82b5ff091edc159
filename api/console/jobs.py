"""Jobs: list, job page with live progress (server-sent events), pause/resume/cancel/re-drive,
the job's records; record page with metadata, outcomes and the journey."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from api.console.api_client import ApiError, ConsoleApi
from api.console.pages import CsrfChecked, MeDep, redirect, render, templates
from api.console.projects import project_of
from api.deps import ProgressDep
from api.services.temporal_links import job_workflows_url, record_workflow_url
from models.fields import Cursor, SafeStr

router = APIRouter()
RECORDS_PAGE = 50


@router.get("/projects/{project_id}/jobs")
async def jobs_page(request: Request, me: MeDep, project_id: uuid.UUID) -> Response:
    project = await project_of(request, project_id)
    jobs = (await ConsoleApi(request).get(f"/projects/{project_id}/jobs"))["data"]
    return render(request, "jobs.html", {"me": me, "project": project, "jobs": jobs})


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
    progress = await api.get(f"/jobs/{job_id}/progress")
    project = await project_of(request, job["projectId"])
    records = await api.get(
        f"/jobs/{job_id}/records", status=status, after=after, limit=RECORDS_PAGE
    )
    context = {
        "me": me,
        "project": project,
        "job": job,
        "progress": progress,
        "records": records,
        "status": status,
        "temporal_url": job_workflows_url(request.app.state.settings, str(job_id)),
        "live": progress["phase"] != "ended",
    }
    return render(request, "job.html", context)


def _event(name: str, html: str) -> str:
    data = "\n".join(f"data: {line}" for line in html.splitlines() or [""])
    return f"event: {name}\n{data}\n\n"


@router.get("/jobs/{job_id}/events")
async def job_events(request: Request, job_id: uuid.UUID, hub: ProgressDep) -> StreamingResponse:
    """The job's progress panel, re-rendered from each snapshot of the API's shared poller.

    The API's own routes decide access first (the job must be readable by the signed-in user);
    the stream then relays `ProgressHub.watch`, the one poll per job that also feeds
    `GET /api/v1/jobs/{id}/progress/stream`, so a page adds a viewer, never a poller.
    """
    api = ConsoleApi(request)
    me = await api.get("/auth/me")
    await api.get(f"/jobs/{job_id}")  # 401/403/404 before the stream starts
    org_id = uuid.UUID(me["organization"]["id"])
    panel = templates.get_template("job_progress.html")

    async def stream() -> AsyncIterator[str]:
        async for snapshot in hub.watch(org_id, job_id):
            yield _event("progress", panel.render(progress=snapshot.model_dump(mode="json")))
        yield _event("done", "")

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
    project = await project_of(request, record["projectId"])
    journey = problem = None
    try:
        journey = await api.get(f"/records/{record_id}/journey")
    except ApiError as err:
        if err.status in (401, 403):
            raise
        problem = err.message
    workflow_id = journey["workflowId"] if journey else None
    context = {
        "me": me,
        "project": project,
        "record": record,
        "journey": journey,
        "journey_problem": problem,
        "temporal_url": record_workflow_url(request.app.state.settings, record_id, workflow_id),
    }
    return render(request, "record.html", context)
