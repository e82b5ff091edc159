"""Projects: list, create, switcher. The home page sends you to your projects."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from api.console.api_client import ApiError, ConsoleApi
from api.console.cookies import SESSION_COOKIE
from api.console.pages import CsrfChecked, MeDep, redirect, render

router = APIRouter()

PROJECT_TYPES = {"outreach": "Outreach", "call_analyzer": "Call analyzer"}


async def project_of(request: Request, project_id: uuid.UUID) -> dict[str, Any]:
    project: dict[str, Any] = await ConsoleApi(request).get(f"/projects/{project_id}")
    return project


@router.get("/")
async def home(request: Request) -> Response:
    return redirect(request, "/projects" if request.cookies.get(SESSION_COOKIE) else "/signin")


@router.get("/projects")
async def projects_page(request: Request, me: MeDep) -> Response:
    return render(request, "projects.html", {"me": me, "types": PROJECT_TYPES, "form": {}})


@router.post("/projects", dependencies=[CsrfChecked])
async def create_project(
    request: Request,
    me: MeDep,
    name: Annotated[str, Form(max_length=200)],
    type: Annotated[str, Form(max_length=40)],
    timezone: Annotated[str, Form(max_length=100)] = "UTC",
) -> Response:
    form = {"name": name, "type": type, "timezone": timezone}
    try:
        project = await ConsoleApi(request).post("/projects", form)
    except ApiError as err:
        context = {"me": me, "types": PROJECT_TYPES, "form": form, "error": err.message}
        return render(request, "projects.html", context, status=err.status)
    if project["type"] == "call_analyzer" and me.can("pca.setup"):
        return redirect(request, f"/projects/{project['id']}/calls/setup")
    return redirect(request, f"/projects/{project['id']}/tables")


@router.get("/projects/switch")
async def switch_project(request: Request, to: uuid.UUID) -> Response:
    return redirect(request, f"/projects/{to}/tables")


@router.get("/projects/{project_id}")
async def project_home(request: Request, project_id: uuid.UUID) -> Response:
    return redirect(request, f"/projects/{project_id}/tables")
