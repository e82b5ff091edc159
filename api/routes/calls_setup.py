"""A call_analyzer project's setup and tags."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import Allow, Principal, SessionDep, TemporalDep
from api.errors import AppError, not_found
from api.services.calls.intake import resume_intake
from api.services.calls.projects import (
    ReadableCallProject,
    SetupProject,
    TagsProject,
    call_project,
)
from api.services.calls.tags import check_tag_set, project_tags, stored_tags
from models.call_analysis.setup import CallSetup, CallSetupPublic, ProjectCallSetup, stored_setup
from models.call_analysis.tags import CallTag, CallTagPublic, CallTagsPublic, TagDefinition
from models.integration import Integration
from models.project import Project

router = APIRouter(tags=["call analysis"])
ReadP = Annotated[Principal, Allow("projects.read")]
TagsP = Annotated[Principal, Allow("pca.tags")]


def setup_public(project: Project, row: CallSetup | None) -> CallSetupPublic:
    setup = stored_setup(row.settings if row else None)
    return CallSetupPublic(
        project_id=project.id,
        **setup.model_dump(),
        complete=None
        not in (setup.llm_integration_id, setup.stt_integration_id, setup.storage_integration_id),
        updated_at=row.updated_at if row else None,
    )


@router.get("/projects/{project_id}/call-setup")
async def get_call_setup(project: ReadableCallProject, session: SessionDep) -> CallSetupPublic:
    return setup_public(project, await session.get(CallSetup, project.id))


@router.put("/projects/{project_id}/call-setup")
async def put_call_setup(
    project: SetupProject, body: ProjectCallSetup, session: SessionDep, temporal: TemporalDep
) -> CallSetupPublic:
    chosen = [
        i
        for i in (body.llm_integration_id, body.stt_integration_id, body.storage_integration_id)
        if i is not None
    ]
    if chosen:
        found = set(
            (
                await session.exec(
                    select(Integration.id).where(
                        col(Integration.id).in_(chosen), Integration.org_id == project.org_id
                    )
                )
            ).all()
        )
        missing = [str(i) for i in chosen if i not in found]
        if missing:
            raise AppError(
                f"Unknown integration(s): {', '.join(missing)}", "INTEGRATION_UNKNOWN", 422
            )
    row = await session.get(CallSetup, project.id)
    was_complete = row is not None and setup_public(project, row).complete
    if row is None:
        row = CallSetup(project_id=project.id, org_id=project.org_id)
    row.settings = body.model_dump(mode="json")
    row.updated_at = datetime.now(UTC)
    session.add(row)
    await session.flush()
    out = setup_public(project, row)
    if out.complete and not was_complete:
        # The nightly intake created with the project waited for this; a later pause by
        # someone is theirs to undo.
        await resume_intake(session, temporal, project)
    return out


def tag_public(row: CallTag) -> CallTagPublic:
    return CallTagPublic.model_validate(row)


@router.get("/projects/{project_id}/call-tags")
async def list_call_tags(project: ReadableCallProject, session: SessionDep) -> CallTagsPublic:
    rows = await project_tags(session, project.id)
    return CallTagsPublic(data=[tag_public(r) for r in rows], count=len(rows))


@router.post("/projects/{project_id}/call-tags", status_code=201)
async def create_call_tag(
    project: TagsProject, body: TagDefinition, session: SessionDep
) -> CallTagPublic:
    rows = await project_tags(session, project.id)
    if any(r.name == body.name for r in rows):
        raise AppError(f"A tag named '{body.name}' already exists", "TAG_EXISTS", 409)
    await check_tag_set(session, project.id, [*stored_tags(rows), body])
    row = CallTag(
        org_id=project.org_id,
        project_id=project.id,
        name=body.name,
        kind=body.kind,
        definition=body.model_dump(mode="json"),
    )
    session.add(row)
    await session.flush()
    return tag_public(row)


async def _tag(
    session: AsyncSession, principal: Principal, tag_id: uuid.UUID, *, lock: bool = False
) -> TagInProject:
    row = await session.get(CallTag, tag_id)
    if row is None or row.org_id != principal.org_id:
        raise not_found("Tag")
    # Writers lock the project first (as creation does), then read the tag set.
    return TagInProject(row, await call_project(row.project_id, principal, session, lock=lock))


@dataclass
class TagInProject:
    tag: CallTag
    project: Project


async def readable_tag(tag_id: uuid.UUID, principal: ReadP, session: SessionDep) -> TagInProject:
    return await _tag(session, principal, tag_id)


async def writable_tag(tag_id: uuid.UUID, principal: TagsP, session: SessionDep) -> TagInProject:
    return await _tag(session, principal, tag_id, lock=True)


# Dependencies, so another organization's id is a 404 before the body is even looked at.
ReadableTag = Annotated[TagInProject, Depends(readable_tag)]
WritableTag = Annotated[TagInProject, Depends(writable_tag)]


@router.get("/call-tags/{tag_id}")
async def get_call_tag(found: ReadableTag) -> CallTagPublic:
    return tag_public(found.tag)


@router.put("/call-tags/{tag_id}")
async def replace_call_tag(
    found: WritableTag, body: TagDefinition, session: SessionDep
) -> CallTagPublic:
    row, project = found.tag, found.project
    others = [r for r in await project_tags(session, project.id) if r.id != row.id]
    if any(r.name == body.name for r in others):
        raise AppError(f"A tag named '{body.name}' already exists", "TAG_EXISTS", 409)
    await check_tag_set(
        session, project.id, [*stored_tags(others), body], removing=body.name != row.name
    )
    row.name, row.kind = body.name, body.kind
    row.definition = body.model_dump(mode="json")
    row.updated_at = datetime.now(UTC)
    session.add(row)
    await session.flush()
    return tag_public(row)


@router.delete("/call-tags/{tag_id}", status_code=204)
async def delete_call_tag(found: WritableTag, session: SessionDep) -> None:
    row, project = found.tag, found.project
    others = [r for r in await project_tags(session, project.id) if r.id != row.id]
    await check_tag_set(session, project.id, stored_tags(others), removing=True)
    await session.delete(row)
