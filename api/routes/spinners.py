"""Spinners: drafts with located validation, immutable published versions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends
from sqlmodel import col, func, select

from api.deps import Allow, Principal, PublicRoute, SessionDep
from api.errors import not_found
from api.routes.projects import ReadableProject, WritableProject
from api.services.plan_limits import ensure_capacity, register_capacity_meter
from api.services.spinners import as_public, check_saved, publish
from models.plan import Meter
from models.spinner import (
    Spinner,
    SpinnerCreate,
    SpinnerKind,
    SpinnerPublic,
    SpinnersPublic,
    SpinnerUpdate,
    SpinnerVersion,
    SpinnerVersionPublic,
    SpinnerVersionsPublic,
)
from models.spinner_language.definition import SpinnerDefinition

router = APIRouter(tags=["spinners"])
DEFINITION_SCHEMA: Final[dict[str, Any]] = SpinnerDefinition.model_json_schema()
Read = Annotated[Principal, Allow("spinners.read")]
Write = Annotated[Principal, Allow("spinners.write")]

register_capacity_meter(
    Meter.main_spinners,
    lambda org_id: (
        select(func.count())
        .select_from(Spinner)
        .where(Spinner.org_id == org_id, Spinner.kind == SpinnerKind.main)
    ),
)


async def spinner_for(spinner_id: uuid.UUID, principal: Principal, session: SessionDep) -> Spinner:
    spinner = await session.get(Spinner, spinner_id)
    if spinner is None or spinner.org_id != principal.org_id:
        raise not_found("Spinner")
    return spinner


async def readable_spinner(spinner_id: uuid.UUID, principal: Read, session: SessionDep) -> Spinner:
    return await spinner_for(spinner_id, principal, session)


async def writable_spinner(spinner_id: uuid.UUID, principal: Write, session: SessionDep) -> Spinner:
    return await spinner_for(spinner_id, principal, session)


ReadableSpinner = Annotated[Spinner, Depends(readable_spinner)]
WritableSpinner = Annotated[Spinner, Depends(writable_spinner)]


async def to_public(session: SessionDep, spinner: Spinner) -> SpinnerPublic:
    issues = await check_saved(session, spinner)
    return SpinnerPublic.model_validate(spinner).model_copy(update={"issues": as_public(issues)})


@router.get("/projects/{project_id}/spinners")
async def list_spinners(
    project: ReadableProject, principal: Read, session: SessionDep
) -> SpinnersPublic:
    spinners = (
        await session.exec(
            select(Spinner)
            .where(Spinner.project_id == project.id)
            .order_by(col(Spinner.created_at))
        )
    ).all()
    return SpinnersPublic(
        data=[SpinnerPublic.model_validate(s) for s in spinners], count=len(spinners)
    )


@router.post("/projects/{project_id}/spinners", status_code=201)
async def create_spinner(
    project: WritableProject, body: SpinnerCreate, principal: Write, session: SessionDep
) -> SpinnerPublic:
    await ensure_capacity(session, principal.org, Meter.main_spinners)
    spinner = Spinner(
        org_id=principal.org_id,
        project_id=project.id,
        name=body.name,
        description=body.description,
        draft=body.definition or {},
    )
    session.add(spinner)
    await session.flush()
    return await to_public(session, spinner)


@router.get("/spinners/schema", dependencies=[Depends(PublicRoute())])
async def definition_schema() -> dict[str, Any]:
    """The JSON Schema of a spinner definition (the `definition:` of a spinner file): for
    editors, and the same schema `/docs` shows for the `definition` of spinner bodies.
    Public: it describes the language, nothing of any organization."""
    return DEFINITION_SCHEMA


@router.get("/spinners/{spinner_id}")
async def get_spinner(spinner: ReadableSpinner, session: SessionDep) -> SpinnerPublic:
    return await to_public(session, spinner)


@router.patch("/spinners/{spinner_id}")
async def update_spinner(
    spinner: WritableSpinner, body: SpinnerUpdate, session: SessionDep
) -> SpinnerPublic:
    if body.name is not None:
        spinner.name = body.name
    if body.description is not None:
        spinner.description = body.description
    if body.definition is not None:
        spinner.draft = body.definition
    spinner.updated_at = datetime.now(UTC)
    session.add(spinner)
    await session.flush()
    return await to_public(session, spinner)


@router.delete("/spinners/{spinner_id}", status_code=204)
async def delete_spinner(spinner: WritableSpinner, session: SessionDep) -> None:
    await session.delete(spinner)


@router.post("/spinners/{spinner_id}/publish", status_code=201)
async def publish_spinner(
    spinner: WritableSpinner, principal: Write, session: SessionDep
) -> SpinnerVersionPublic:
    version = await publish(session, spinner, principal.user.id)
    return SpinnerVersionPublic.model_validate(version)


@router.get("/spinners/{spinner_id}/versions")
async def list_versions(spinner: ReadableSpinner, session: SessionDep) -> SpinnerVersionsPublic:
    versions = (
        await session.exec(
            select(SpinnerVersion)
            .where(SpinnerVersion.spinner_id == spinner.id)
            .order_by(col(SpinnerVersion.version))
        )
    ).all()
    return SpinnerVersionsPublic(
        data=[SpinnerVersionPublic.model_validate(v) for v in versions], count=len(versions)
    )
