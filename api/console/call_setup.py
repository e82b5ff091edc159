"""Call Analyzer setup: the LLM, speech-to-text and storage integrations, the summary prompt
and the score bands of a call_analyzer project."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from api.console.api_client import ApiError, ConsoleApi
from api.console.call_project import call_project, send_form
from api.console.pages import CsrfChecked, Me, MeDep, render

router = APIRouter()

# Which integration kinds may fill each role of the setup (the intake's steps use them).
ROLES = {
    "llm": ("Language model (tags, summaries)", ("openai", "mock")),
    "stt": ("Speech to text", ("deepgram", "mock_stt")),
    "storage": ("Recording storage", ("s3", "https")),
}


async def _integrations(api: ConsoleApi) -> dict[str, list[dict[str, Any]]]:
    try:
        found: list[dict[str, Any]] = (await api.get("/integrations"))["data"]
    except ApiError as err:
        if err.status != 403:
            raise
        found = []  # a role with pca.setup but not integrations.read sees empty choices
    return {role: [i for i in found if i["kind"] in kinds] for role, (_, kinds) in ROLES.items()}


async def _setup_page(
    request: Request, me: Me, project_id: uuid.UUID, status: int = 200, **extra: Any
) -> Response:
    project = await call_project(request, me, project_id, "pca.setup")
    api = ConsoleApi(request)
    setup = await api.get(f"/projects/{project_id}/call-setup")
    context = {
        "me": me,
        "project": project,
        "setup": extra.pop("form", None) or setup,
        "complete": setup["complete"],
        "roles": ROLES,
        "choices": await _integrations(api),
        **extra,
    }
    return render(request, "call_setup.html", context, status=status)


@router.get("/projects/{project_id}/calls/setup")
async def setup_page(request: Request, me: MeDep, project_id: uuid.UUID) -> Response:
    return await _setup_page(request, me, project_id)


Choice = Annotated[str, Form(max_length=40)]


@router.post("/projects/{project_id}/calls/setup", dependencies=[CsrfChecked])
async def save_setup(
    request: Request,
    me: MeDep,
    project_id: uuid.UUID,
    summary_prompt: Annotated[str, Form(max_length=4000)],
    good_at_least: Annotated[str, Form(max_length=20)],
    fair_at_least: Annotated[str, Form(max_length=20)],
    llm: Choice = "",
    stt: Choice = "",
    storage: Choice = "",
) -> Response:
    # Numbers are passed through as typed so the API's validation names what is wrong.
    body: dict[str, Any] = {
        "llmIntegrationId": llm or None,
        "sttIntegrationId": stt or None,
        "storageIntegrationId": storage or None,
        "summaryPrompt": summary_prompt,
        "goodAtLeast": good_at_least,
        "fairAtLeast": fair_at_least,
    }
    await call_project(request, me, project_id, "pca.setup")
    return await send_form(
        request,
        "PUT",
        f"/projects/{project_id}/call-setup",
        body,
        page=partial(_setup_page, request, me, project_id),
        form=body,
        then=lambda _: f"/projects/{project_id}/calls/setup?saved=1",
    )
