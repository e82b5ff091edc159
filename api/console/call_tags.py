"""Call tags of a call_analyzer project: list, create, edit and delete the four kinds. The
API checks a tag set as a whole (cycles, unknown names, tags a scorecard uses); its refusals are
shown on the form."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from api.console.api_client import ApiError, ConsoleApi
from api.console.call_project import call_project, send_form
from api.console.pages import CsrfChecked, Me, MeDep, form_problem, redirect, render
from api.deps import in_event_loop

router = APIRouter()

KINDS = {
    "bag_of_words": "Bag of words: phrases said in the call",
    "metadata": "Metadata: a condition on the call's fields",
    "genai": "GenAI: a question the language model answers",
    "derived": "Derived: logic over other tags",
}
PERMISSION = "pca.tags"


@dataclass
class TagForm:
    """The fields of every kind; only the chosen kind's are sent to the API."""

    name: Annotated[str, Form(max_length=64)]
    kind: Annotated[str, Form(max_length=16)]
    description: Annotated[str, Form(max_length=1000)] = ""
    condition: Annotated[str, Form(max_length=2000)] = ""
    phrases: Annotated[str, Form(max_length=50_000)] = ""
    speaker: Annotated[str, Form(max_length=50)] = ""
    min_count: Annotated[str, Form(max_length=10)] = "1"
    question: Annotated[str, Form(max_length=2000)] = ""
    mode: Annotated[str, Form(max_length=16)] = "yes_no"
    group: Annotated[str, Form(max_length=64)] = "default"

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind, "name": self.name.strip()}
        if self.description:
            body["description"] = self.description
        if self.kind in ("metadata", "derived"):
            body["condition"] = self.condition
        elif self.kind == "bag_of_words":
            body["phrases"] = [p.strip() for p in self.phrases.splitlines() if p.strip()]
            body["speaker"] = self.speaker.strip() or None
            body["minCount"] = self.min_count or "1"
        elif self.kind == "genai":
            body["question"] = self.question
            body["mode"] = self.mode
            body["group"] = self.group.strip() or "default"
        return body


TagFormDep = Annotated[TagForm, Depends(in_event_loop(TagForm))]


def form_values(definition: dict[str, Any]) -> dict[str, Any]:
    """A stored definition (or a refused body) as the form's field values."""
    values = dict(definition)
    phrases = values.get("phrases")
    if isinstance(phrases, list):
        values["phrases"] = "\n".join(str(p) for p in phrases)
    return values


async def _tags_page(
    request: Request, me: Me, project_id: uuid.UUID, status: int = 200, **extra: Any
) -> Response:
    project = await call_project(request, me, project_id, PERMISSION)
    tags = (await ConsoleApi(request).get(f"/projects/{project_id}/call-tags"))["data"]
    context = {"me": me, "project": project, "tags": tags, "kinds": KINDS, "form": {}, **extra}
    return render(request, "call_tags.html", context, status=status)


@router.get("/projects/{project_id}/calls/tags")
async def tags_page(request: Request, me: MeDep, project_id: uuid.UUID) -> Response:
    return await _tags_page(request, me, project_id)


@router.post("/projects/{project_id}/calls/tags", dependencies=[CsrfChecked])
async def create_tag(
    request: Request, me: MeDep, project_id: uuid.UUID, form: TagFormDep
) -> Response:
    await call_project(request, me, project_id, PERMISSION)
    body = form.body()
    return await send_form(
        request,
        "POST",
        f"/projects/{project_id}/call-tags",
        body,
        page=partial(_tags_page, request, me, project_id),
        form=form_values(body),
        then=lambda _: f"/projects/{project_id}/calls/tags?saved={body['name']}",
    )


async def _tag_page(
    request: Request, me: Me, tag_id: uuid.UUID, status: int = 200, **extra: Any
) -> Response:
    tag = await ConsoleApi(request).get(f"/call-tags/{tag_id}")
    project = await call_project(request, me, tag["projectId"], PERMISSION)
    context = {
        "me": me,
        "project": project,
        "tag": tag,
        "kinds": KINDS,
        "form": extra.pop("form", None) or form_values(tag["definition"]),
        **extra,
    }
    return render(request, "call_tag.html", context, status=status)


@router.get("/calls/tags/{tag_id}")
async def tag_page(request: Request, me: MeDep, tag_id: uuid.UUID) -> Response:
    return await _tag_page(request, me, tag_id)


@router.post("/calls/tags/{tag_id}", dependencies=[CsrfChecked])
async def edit_tag(request: Request, me: MeDep, tag_id: uuid.UUID, form: TagFormDep) -> Response:
    tag = await ConsoleApi(request).get(f"/call-tags/{tag_id}")
    await call_project(request, me, tag["projectId"], PERMISSION)
    body = form.body()
    return await send_form(
        request,
        "PUT",
        f"/call-tags/{tag_id}",
        body,
        page=partial(_tag_page, request, me, tag_id),
        form=form_values(body),
        then=lambda _: f"/projects/{tag['projectId']}/calls/tags?saved={body['name']}",
    )


@router.post("/calls/tags/{tag_id}/delete", dependencies=[CsrfChecked])
async def delete_tag(request: Request, me: MeDep, tag_id: uuid.UUID) -> Response:
    api = ConsoleApi(request)
    tag = await api.get(f"/call-tags/{tag_id}")
    await call_project(request, me, tag["projectId"], PERMISSION)
    try:
        await api.delete(f"/call-tags/{tag_id}")
    except ApiError as err:
        return await _tag_page(request, me, tag_id, err.status, delete_error=form_problem(err))
    return redirect(request, f"/projects/{tag['projectId']}/calls/tags?deleted={tag['name']}")
