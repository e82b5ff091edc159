"""Analysed calls: the filtered, paged list and one call's page (transcript with the evidence
marked, tags, score breakdown with supervisors' overrides beside the originals, summary)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from api.console.api_client import ApiError, ConsoleApi
from api.console.call_project import call_project
from api.console.pages import CsrfChecked, Me, MeDep, form_problem, redirect, render
from api.console.transcript import clock, transcript_lines
from models.fields import DbId

router = APIRouter()
PERMISSION = "analytics.read"
PAGE = 50
Filter = Annotated[str, Query(max_length=200)]


@router.get("/projects/{project_id}/calls")
async def calls_page(
    request: Request,
    me: MeDep,
    project_id: uuid.UUID,
    band: Filter = "",
    tag: Filter = "",
    agent: Filter = "",
    from_: Annotated[str, Query(alias="from", max_length=20)] = "",
    to: Annotated[str, Query(max_length=20)] = "",
    after: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    project = await call_project(request, me, project_id, PERMISSION)
    api = ConsoleApi(request)
    filters = {"band": band, "tag": tag, "agent": agent, "from": from_, "to": to}
    status, error = 200, None
    try:
        calls = await api.get(
            f"/projects/{project_id}/analysed-calls", after=after, limit=PAGE, **filters
        )
    except ApiError as err:
        # A filter the API refuses (a malformed date, a band that does not exist) is shown
        # above an empty list, with the form as typed.
        status, error = err.status, form_problem(err)
        calls = {"data": [], "nextAfter": None}
    tags = (await api.get(f"/projects/{project_id}/call-tags"))["data"]
    context = {
        "me": me,
        "project": project,
        "calls": calls,
        "filters": filters,
        "tag_names": [t["name"] for t in tags],
        "after": after,
        "error": error,
    }
    return render(request, "analysed_calls.html", context, status=status)


async def _call_page(
    request: Request, me: Me, call_id: int, status: int = 200, **extra: Any
) -> Response:
    call = await ConsoleApi(request).get(f"/analysed-calls/{call_id}")
    project = await call_project(request, me, call["projectId"], PERMISSION)
    context = {
        "me": me,
        "project": project,
        "call": call,
        "lines": transcript_lines(call["transcript"], call["tags"]),
        "clock": clock,
        **extra,
    }
    return render(request, "analysed_call.html", context, status=status)


@router.get("/calls/{call_id}")
async def call_page(request: Request, me: MeDep, call_id: DbId) -> Response:
    return await _call_page(request, me, call_id)


@router.post("/calls/{call_id}/overrides", dependencies=[CsrfChecked])
async def override(
    request: Request,
    me: MeDep,
    call_id: DbId,
    question_id: Annotated[str, Form(max_length=64)],
    points: Annotated[str, Form(max_length=10)],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    body = {"questionId": question_id, "points": points, "reason": reason}
    try:
        await ConsoleApi(request).post(f"/analysed-calls/{call_id}/overrides", body)
    except ApiError as err:
        problem = form_problem(err)
        return await _call_page(
            request,
            me,
            call_id,
            err.status,
            override_error={"item": question_id, "message": problem},
            override_form=body,
        )
    return redirect(request, f"/calls/{call_id}?overridden={question_id}#score-h")
