"""Spinners: list, create, YAML editor with live located validation, graph, publish, run now."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from api.console.api_client import ApiError, ConsoleApi
from api.console.graph import layout
from api.console.pages import CsrfChecked, MeDep, redirect, render
from api.console.projects import project_of
from api.console.yaml_lines import line_of, yaml_error_line
from api.deps import SessionDep
from api.routes.spinners import ReadableSpinner
from api.services.spinners import as_public, check, save_time_fields
from models.spinner_language.validation import parse_definition

router = APIRouter()
MAX_YAML = 200_000


def _issue(message: str, path: str = "", line: int | None = None, level: str = "error") -> Any:
    return {"level": level, "path": path, "message": message, "line": line, "stepId": None}


def _parsed(text: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The YAML as a definition mapping, or the located reason it is not one."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [_issue(f"invalid YAML: {problem}", line=yaml_error_line(exc))]
    if not isinstance(data, dict):
        return None, [_issue("the definition must be a mapping with a 'steps' list", line=1)]
    return data, []


def _located(text: str, issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**i, "line": i.get("line") or line_of(text, i.get("path") or "")} for i in issues]


def _as_yaml(definition: dict[str, Any]) -> str:
    if not definition:
        return "steps:\n  - id: hello\n    type: log\n    message: Hello\n    next: done\n"
    return yaml.safe_dump(definition, sort_keys=False, allow_unicode=True)


async def spinner_context(request: Request, me: Any, spinner_id: uuid.UUID) -> dict[str, Any]:
    api = ConsoleApi(request)
    spinner = await api.get(f"/spinners/{spinner_id}")
    project = await project_of(request, spinner["projectId"])
    versions = (await api.get(f"/spinners/{spinner_id}/versions"))["data"]
    tables = (await api.get(f"/projects/{spinner['projectId']}/data-tables"))["data"]
    siblings = (await api.get(f"/projects/{spinner['projectId']}/spinners"))["data"]
    schedules = (await api.get(f"/spinners/{spinner_id}/schedules"))["data"]
    links = (await api.get(f"/spinners/{spinner_id}/links"))["data"]
    graph = None
    if versions:
        parsed, _ = parse_definition(versions[-1]["definition"])
        graph = layout(parsed) if parsed is not None else None
    text = _as_yaml(spinner["draft"])
    return {
        "me": me,
        "project": project,
        "spinner": spinner,
        "versions": versions,
        "tables": tables,
        "table_names": {t["id"]: t["name"] for t in tables},
        "children": [c for c in siblings if c["id"] != spinner["id"]],
        "spinner_names": {c["id"]: c["name"] for c in siblings},
        "schedules": schedules,
        "links": links,
        "form": {},
        "graph": graph,
        "yaml_text": text,
        "issues": _located(text, spinner.get("issues") or []),
    }


@router.get("/projects/{project_id}/spinners")
async def spinners_page(request: Request, me: MeDep, project_id: uuid.UUID) -> Response:
    project = await project_of(request, project_id)
    spinners = (await ConsoleApi(request).get(f"/projects/{project_id}/spinners"))["data"]
    context = {"me": me, "project": project, "spinners": spinners}
    return render(request, "spinners.html", context)


@router.post("/projects/{project_id}/spinners", dependencies=[CsrfChecked])
async def create_spinner(
    request: Request, me: MeDep, project_id: uuid.UUID, name: Annotated[str, Form(max_length=200)]
) -> Response:
    api = ConsoleApi(request)
    try:
        spinner = await api.post(f"/projects/{project_id}/spinners", {"name": name})
    except ApiError as err:
        project = await project_of(request, project_id)
        spinners = (await api.get(f"/projects/{project_id}/spinners"))["data"]
        context = {"me": me, "project": project, "spinners": spinners, "error": err.message}
        return render(request, "spinners.html", context, status=err.status)
    return redirect(request, f"/spinners/{spinner['id']}")


@router.get("/spinners/{spinner_id}")
async def spinner_page(request: Request, me: MeDep, spinner_id: uuid.UUID) -> Response:
    return render(request, "spinner.html", await spinner_context(request, me, spinner_id))


@router.post("/spinners/{spinner_id}/check", dependencies=[CsrfChecked])
async def check_draft(
    request: Request,
    spinner: ReadableSpinner,
    session: SessionDep,
    definition: Annotated[str, Form(max_length=MAX_YAML)] = "",
) -> Response:
    """Live validation while typing: the API's own checks, nothing saved."""
    data, issues = _parsed(definition)
    if data is not None:
        found = check(data, *await save_time_fields(session, spinner))
        issues = [i.model_dump() for i in as_public(found)]
    return render(request, "issues.html", {"issues": _located(definition, issues), "live": True})


@router.post("/spinners/{spinner_id}/draft", dependencies=[CsrfChecked])
async def save_draft(
    request: Request,
    me: MeDep,
    spinner_id: uuid.UUID,
    definition: Annotated[str, Form(max_length=MAX_YAML)],
    then: Annotated[str, Form(pattern="^(save|publish)$")] = "save",
) -> Response:
    api = ConsoleApi(request)
    data, issues = _parsed(definition)
    message = None
    if data is not None:
        try:
            saved = await api.patch(f"/spinners/{spinner_id}", {"definition": data})
            issues = saved["issues"]
            if then == "publish":
                version = await api.post(f"/spinners/{spinner_id}/publish")
                return redirect(request, f"/spinners/{spinner_id}?published={version['version']}")
            message = "Draft saved."
        except ApiError as err:
            message = err.message
            if err.code == "VALIDATION_ERROR" and isinstance(err.details, list):
                issues = err.details
    context = await spinner_context(request, me, spinner_id)
    context.update(yaml_text=definition, issues=_located(definition, issues), message=message)
    status = 422 if any(i["level"] == "error" for i in issues) else 200
    return render(request, "spinner.html", context, status=status)


@router.post("/spinners/{spinner_id}/run", dependencies=[CsrfChecked])
async def run_now(
    request: Request, me: MeDep, spinner_id: uuid.UUID, table_id: Annotated[uuid.UUID, Form()]
) -> Response:
    try:
        job = await ConsoleApi(request).post(
            f"/spinners/{spinner_id}/run", {"tableId": str(table_id)}
        )
    except ApiError as err:
        context = await spinner_context(request, me, spinner_id)
        context["run_error"] = err.message
        return render(request, "spinner.html", context, status=err.status)
    return redirect(request, f"/jobs/{job['id']}")
