"""A spinner's schedules (cron + time zone, next runs, pause/resume/delete) and its supporting
links (retry on a condition, or on a callback); both shown on the spinner page."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response

from api.console.api_client import ApiError, ConsoleApi
from api.console.pages import CsrfChecked, MeDep, form_problem, redirect, render
from api.console.spinners import spinner_context

router = APIRouter()


async def _refused(
    request: Request, me: Any, spinner_id: uuid.UUID, err: ApiError, **extra: Any
) -> Response:
    context = await spinner_context(request, me, spinner_id)
    context.update(extra)
    return render(request, "spinner.html", context, status=err.status)


@router.post("/spinners/{spinner_id}/schedules", dependencies=[CsrfChecked])
async def create_schedule(
    request: Request,
    me: MeDep,
    spinner_id: uuid.UUID,
    table_id: Annotated[uuid.UUID, Form()],
    cron: Annotated[str, Form(max_length=100)],
    timezone: Annotated[str, Form(max_length=100)] = "UTC",
    only_new: Annotated[bool, Form()] = False,
) -> Response:
    body = {"tableId": str(table_id), "cron": cron, "timezone": timezone, "onlyNew": only_new}
    try:
        await ConsoleApi(request).post(f"/spinners/{spinner_id}/schedules", body)
    except ApiError as err:
        problem = form_problem(err)
        return await _refused(request, me, spinner_id, err, schedule_error=problem, form=body)
    return redirect(request, f"/spinners/{spinner_id}#schedules-title")


@router.post("/spinners/{spinner_id}/schedules/{schedule_id}/{action}", dependencies=[CsrfChecked])
async def schedule_action(
    request: Request,
    me: MeDep,
    spinner_id: uuid.UUID,
    schedule_id: uuid.UUID,
    action: Annotated[str, Path(pattern="^(pause|resume|delete)$")],
) -> Response:
    api = ConsoleApi(request)
    if action == "delete":
        await api.delete(f"/schedules/{schedule_id}")
    else:
        await api.post(f"/schedules/{schedule_id}/{action}")
    return redirect(request, f"/spinners/{spinner_id}#schedules-title")


@router.post("/spinners/{spinner_id}/links", dependencies=[CsrfChecked])
async def create_link(
    request: Request,
    me: MeDep,
    spinner_id: uuid.UUID,
    child_spinner_id: Annotated[uuid.UUID, Form()],
    kind: Annotated[str, Form(max_length=16)],
    condition: Annotated[str, Form(max_length=1000)] = "",
    delay: Annotated[str, Form(max_length=32)] = "",
    max_attempts: Annotated[int, Form(ge=1, le=1000)] = 1,
    event: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    body = {
        "childSpinnerId": str(child_spinner_id),
        "kind": kind,
        "condition": condition or None,
        "delay": delay or None,
        "maxAttempts": max_attempts,
        "event": event or None,
    }
    try:
        await ConsoleApi(request).post(f"/spinners/{spinner_id}/links", body)
    except ApiError as err:
        problem = form_problem(err)
        return await _refused(request, me, spinner_id, err, link_error=problem, link_form=body)
    return redirect(request, f"/spinners/{spinner_id}#links-title")


@router.post("/spinners/{spinner_id}/links/{link_id}/delete", dependencies=[CsrfChecked])
async def delete_link(
    request: Request, me: MeDep, spinner_id: uuid.UUID, link_id: uuid.UUID
) -> Response:
    await ConsoleApi(request).delete(f"/spinners/{spinner_id}/links/{link_id}")
    return redirect(request, f"/spinners/{spinner_id}#links-title")
