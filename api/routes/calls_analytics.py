"""Call analytics for one project or across the organization's projects."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AfterValidator

from api.deps import Allow, Principal, SessionDep
from api.services.calls.analytics import call_analytics
from api.services.calls.projects import AnalyticsProject
from models.call_analysis.analytics import CallAnalyticsPublic

router = APIRouter(tags=["call analysis"])
Read = Annotated[Principal, Allow("analytics.read")]
WINDOWS = (7, 30, 90)


def _window(days: int) -> int:
    if days not in WINDOWS:
        raise ValueError("days must be 7, 30 or 90")
    return days


# A Literal would refuse the query string "30" (it is not the int 30); the enum documents it.
Days = Annotated[
    int,
    Query(description="The window: 7, 30 or 90 days", json_schema_extra={"enum": list(WINDOWS)}),
    AfterValidator(_window),
]


@router.get("/projects/{project_id}/call-analytics")
async def project_call_analytics(
    project: AnalyticsProject, session: SessionDep, days: Days = 30
) -> CallAnalyticsPublic:
    return await call_analytics(
        await session.connection(),
        project.org_id,
        days=days,
        project_id=project.id,
        timezone=project.timezone,
    )


@router.get("/call-analytics")
async def org_call_analytics(
    principal: Read, session: SessionDep, days: Days = 30
) -> CallAnalyticsPublic:
    return await call_analytics(await session.connection(), principal.org_id, days=days)
