"""QA scorecards of a call_analyzer project: list, create, edit the questions and bundles and
publish them as a new version, see the versions. Published versions never change; analyses keep
the version they were scored with."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from api.console.api_client import ConsoleApi
from api.console.call_project import call_project, send_form
from api.console.pages import CsrfChecked, Me, MeDep, render
from api.deps import in_event_loop

router = APIRouter()
PERMISSION = "pca.qa"
BLANK_ROWS = 3  # empty rows under the existing ones, for new questions and bundles
Cells = Annotated[list[str], Form(max_length=200)]


@dataclass
class CardForm:
    """The question and bundle tables as parallel columns; rows without an id are ignored."""

    name: Annotated[str, Form(max_length=200)] = ""
    q_id: Cells | None = None
    q_text: Cells | None = None
    q_points: Cells | None = None
    q_condition: Cells | None = None
    q_bundle: Cells | None = None
    b_id: Cells | None = None
    b_name: Cells | None = None
    b_points: Cells | None = None
    b_condition: Cells | None = None

    @staticmethod
    def _cell(column: list[str] | None, i: int) -> str:
        return column[i].strip() if column and i < len(column) else ""

    def body(self) -> dict[str, Any]:
        questions: list[dict[str, Any]] = []
        for i in range(len(self.q_id or [])):
            qid = self._cell(self.q_id, i)
            if not qid:
                continue
            bundle = self._cell(self.q_bundle, i)
            question: dict[str, Any] = {"id": qid, "text": self._cell(self.q_text, i)}
            if bundle:
                question["bundleId"] = bundle
            else:
                question["points"] = self._cell(self.q_points, i) or "0"
                question["condition"] = self._cell(self.q_condition, i) or None
            questions.append(question)
        bundles = [
            {
                "id": self._cell(self.b_id, i),
                "name": self._cell(self.b_name, i),
                "points": self._cell(self.b_points, i) or "0",
                "condition": self._cell(self.b_condition, i),
            }
            for i in range(len(self.b_id or []))
            if self._cell(self.b_id, i)
        ]
        body: dict[str, Any] = {"questions": questions, "bundles": bundles}
        if self.name.strip():
            body["name"] = self.name.strip()
        return body


CardFormDep = Annotated[CardForm, Depends(in_event_loop(CardForm))]


def _rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*items, *({} for _ in range(BLANK_ROWS))]


async def _cards_page(
    request: Request, me: Me, project_id: uuid.UUID, status: int = 200, **extra: Any
) -> Response:
    project = await call_project(request, me, project_id, PERMISSION)
    cards = (await ConsoleApi(request).get(f"/projects/{project_id}/scorecards"))["data"]
    form = extra.pop("form", None) or {"questions": [], "bundles": []}
    context = {
        "me": me,
        "project": project,
        "cards": cards,
        "form": form,
        "questions": _rows(form["questions"]),
        "bundles": _rows(form["bundles"]),
        **extra,
    }
    return render(request, "call_scorecards.html", context, status=status)


@router.get("/projects/{project_id}/calls/scorecards")
async def cards_page(request: Request, me: MeDep, project_id: uuid.UUID) -> Response:
    return await _cards_page(request, me, project_id)


@router.post("/projects/{project_id}/calls/scorecards", dependencies=[CsrfChecked])
async def create_card(
    request: Request, me: MeDep, project_id: uuid.UUID, form: CardFormDep
) -> Response:
    await call_project(request, me, project_id, PERMISSION)
    body = form.body()
    return await send_form(
        request,
        "POST",
        f"/projects/{project_id}/scorecards",
        body,
        page=partial(_cards_page, request, me, project_id),
        form=body,
        then=lambda card: f"/calls/scorecards/{card['id']}",
    )


async def _card_page(
    request: Request, me: Me, card_id: uuid.UUID, status: int = 200, **extra: Any
) -> Response:
    api = ConsoleApi(request)
    card = await api.get(f"/scorecards/{card_id}")
    project = await call_project(request, me, card["projectId"], PERMISSION)
    versions = (await api.get(f"/scorecards/{card_id}/versions"))["data"]
    form = extra.pop("form", None) or {"name": card["name"], **card["current"]}
    context = {
        "me": me,
        "project": project,
        "card": card,
        "versions": versions,
        "form": form,
        "questions": _rows(form["questions"]),
        "bundles": _rows(form["bundles"]),
        **extra,
    }
    return render(request, "call_scorecard.html", context, status=status)


@router.get("/calls/scorecards/{card_id}")
async def card_page(request: Request, me: MeDep, card_id: uuid.UUID) -> Response:
    return await _card_page(request, me, card_id)


@router.post("/calls/scorecards/{card_id}", dependencies=[CsrfChecked])
async def publish_card(
    request: Request, me: MeDep, card_id: uuid.UUID, form: CardFormDep
) -> Response:
    card = await ConsoleApi(request).get(f"/scorecards/{card_id}")
    await call_project(request, me, card["projectId"], PERMISSION)
    body = form.body()
    return await send_form(
        request,
        "POST",
        f"/scorecards/{card_id}/versions",
        body,
        page=partial(_card_page, request, me, card_id),
        form=body,
        then=lambda published: (
            f"/calls/scorecards/{card_id}?published={published['currentVersion']}"
        ),
    )
