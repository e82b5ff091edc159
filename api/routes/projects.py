"""Projects: the workspace of one campaign or client."""

from __future__ import annotations

import uuid
from typing import Annotated
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends
from sqlmodel import col, select

from api.deps import Allow, Principal, SessionDep, SettingsDep, TemporalLazyDep
from api.errors import AppError, not_found
from api.services.calls.intake import seed_call_project
from api.services.plan_limits import ensure_capacity
from models.plan import Meter
from models.project import (
    Project,
    ProjectCreate,
    ProjectPublic,
    ProjectsPublic,
    ProjectType,
    ProjectUpdate,
)

router = APIRouter(prefix="/projects", tags=["projects"])
Read = Annotated[Principal, Allow("projects.read")]
Write = Annotated[Principal, Allow("projects.write")]


async def project_for(project_id: uuid.UUID, principal: Principal, session: SessionDep) -> Project:
    project = await session.get(Project, project_id)
    if project is None or project.org_id != principal.org_id:
        raise not_found("Project")
    return project


async def readable_project(project_id: uuid.UUID, principal: Read, session: SessionDep) -> Project:
    return await project_for(project_id, principal, session)


async def writable_project(project_id: uuid.UUID, principal: Write, session: SessionDep) -> Project:
    return await project_for(project_id, principal, session)


ReadableProject = Annotated[Project, Depends(readable_project)]
WritableProject = Annotated[Project, Depends(writable_project)]


def checked_timezone(tz: str) -> str:
    if tz not in available_timezones():
        raise AppError(
            f"Unknown time zone '{tz}' (use an IANA name like Europe/Paris)",
            "VALIDATION_ERROR",
            422,
        )
    return tz


@router.get("")
async def list_projects(principal: Read, session: SessionDep) -> ProjectsPublic:
    projects = (
        await session.exec(
            select(Project)
            .where(Project.org_id == principal.org_id)
            .order_by(col(Project.created_at))
        )
    ).all()
    return ProjectsPublic(
        data=[ProjectPublic.model_validate(p) for p in projects], count=len(projects)
    )


@router.post("", status_code=201)
async def create_project(
    body: ProjectCreate,
    principal: Write,
    session: SessionDep,
    temporal: TemporalLazyDep,
    settings: SettingsDep,
) -> ProjectPublic:
    await ensure_capacity(session, principal.org, Meter.projects)
    project = Project(
        org_id=principal.org_id,
        name=body.name,
        type=body.type.value,
        timezone=checked_timezone(body.timezone),
    )
    session.add(project)
    await session.flush()
    if project.type == ProjectType.call_analyzer:
        # Only a call analyzer project needs Temporal (for its nightly schedule).
        await seed_call_project(
            session, await temporal(), settings, project, principal.org, principal.user.id
        )
    return ProjectPublic.model_validate(project)


@router.get("/{project_id}")
async def get_project(project: ReadableProject) -> ProjectPublic:
    return ProjectPublic.model_validate(project)


@router.patch("/{project_id}")
async def update_project(
    project: WritableProject, body: ProjectUpdate, session: SessionDep
) -> ProjectPublic:
    if body.name is not None:
        project.name = body.name
    if body.timezone is not None:
        project.timezone = checked_timezone(body.timezone)
    session.add(project)
    await session.flush()
    return ProjectPublic.model_validate(project)


@router.delete("/{project_id}", status_code=204)
async def delete_project(project: WritableProject, session: SessionDep) -> None:
    await session.delete(project)
