"""Route dependencies giving a call_analyzer project of the caller's organization."""

# No `from __future__ import annotations`: the dependency below is built per permission and
# FastAPI must read its annotations as objects, not strings naming a local.

import uuid
from typing import Annotated, Any

from fastapi import Depends
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import Allow, Principal, SessionDep
from api.errors import AppError, not_found
from models.project import Project, ProjectType


async def call_project(
    project_id: uuid.UUID, principal: Principal, session: AsyncSession, *, lock: bool = False
) -> Project:
    project = await session.get(Project, project_id, with_for_update=lock or None)
    if project is None or project.org_id != principal.org_id:
        raise not_found("Project")
    if project.type != ProjectType.call_analyzer:
        raise AppError(
            f"Project '{project.name}' is a {project.type} project; call analysis needs a"
            " call_analyzer project",
            "PROJECT_TYPE",
            409,
        )
    return project


def _dependency(permission: str, *, lock: bool = False) -> Any:
    async def dep(
        project_id: uuid.UUID,
        principal: Annotated[Principal, Allow(permission)],
        session: SessionDep,
    ) -> Project:
        # Writers lock the project row so two concurrent tag edits cannot together form a cycle.
        return await call_project(project_id, principal, session, lock=lock)

    return Depends(dep)


ReadableCallProject = Annotated[Project, _dependency("projects.read")]
SetupProject = Annotated[Project, _dependency("pca.setup", lock=True)]
TagsProject = Annotated[Project, _dependency("pca.tags", lock=True)]
QaProject = Annotated[Project, _dependency("pca.qa", lock=True)]
AnalyticsProject = Annotated[Project, _dependency("analytics.read")]
# Uploading recordings is part of running the intake on them.
RunCallProject = Annotated[Project, _dependency("spinners.run")]
