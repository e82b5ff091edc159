"""Links from a spinner to its supporting (child) spinners: retry on a condition, or on a callback."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sqlmodel import col, select

from api.deps import SessionDep
from api.errors import AppError, not_found
from api.routes.spinners import ReadableSpinner, WritableSpinner
from models.spinner import Spinner
from models.spinner_link import (
    SpinnerLink,
    SpinnerLinkCreate,
    SpinnerLinkPublic,
    SpinnerLinksPublic,
)

router = APIRouter(tags=["spinners"])


@router.get("/spinners/{spinner_id}/links")
async def list_links(spinner: ReadableSpinner, session: SessionDep) -> SpinnerLinksPublic:
    rows = (
        await session.exec(
            select(SpinnerLink)
            .where(SpinnerLink.parent_spinner_id == spinner.id)
            .order_by(col(SpinnerLink.created_at), col(SpinnerLink.id))
        )
    ).all()
    data = [SpinnerLinkPublic.model_validate(r) for r in rows]
    return SpinnerLinksPublic(data=data, count=len(data))


@router.post("/spinners/{spinner_id}/links", status_code=201)
async def create_link(
    spinner: WritableSpinner, body: SpinnerLinkCreate, session: SessionDep
) -> SpinnerLinkPublic:
    child = await session.get(Spinner, body.child_spinner_id)
    # Another organization's spinner is indistinguishable from a missing one.
    if child is None or child.org_id != spinner.org_id:
        raise not_found("Child spinner")
    if child.id == spinner.id:
        raise AppError("A spinner cannot support itself", "VALIDATION_ERROR", 422)
    if child.project_id != spinner.project_id:
        raise AppError("The child spinner belongs to another project", "VALIDATION_ERROR", 422)
    if child.latest_version < 1:
        raise AppError(
            f"Spinner '{child.name}' has no published version; publish it before linking",
            "NOT_PUBLISHED",
            422,
        )
    link = SpinnerLink(
        org_id=spinner.org_id,
        parent_spinner_id=spinner.id,
        child_spinner_id=child.id,
        kind=body.kind.value,
        condition=body.condition,
        delay=body.delay,
        max_attempts=body.max_attempts,
        event=body.event,
    )
    session.add(link)
    await session.flush()
    return SpinnerLinkPublic.model_validate(link)


@router.delete("/spinners/{spinner_id}/links/{link_id}", status_code=204)
async def delete_link(spinner: WritableSpinner, link_id: uuid.UUID, session: SessionDep) -> None:
    link = await session.get(SpinnerLink, link_id)
    if link is None or link.parent_spinner_id != spinner.id:
        raise not_found("Link")
    await session.delete(link)
