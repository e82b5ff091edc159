"""Call analytics of a call_analyzer project over 7, 30 or 90 days, with charts drawn as SVG."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.console.api_client import ConsoleApi
from api.console.call_project import call_project, require
from api.console.charts import band_split, daily_chart, tag_bars
from api.console.pages import MeDep, render

router = APIRouter()
WINDOWS = (7, 30, 90)


def _context(figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "a": figures,
        "windows": WINDOWS,
        "daily": daily_chart(figures),
        "bands": band_split(figures["bands"], figures["ungraded"]),
        "tags": tag_bars(figures["topTags"]),
    }


def _window(days: int) -> int:
    # The API accepts only the three windows; anything else shows the nearest one.
    return min(WINDOWS, key=lambda w: abs(w - days))


Days = Annotated[int, Query(ge=1, le=366)]


@router.get("/projects/{project_id}/calls/analytics")
async def analytics_page(
    request: Request, me: MeDep, project_id: uuid.UUID, days: Days = 30
) -> Response:
    project = await call_project(request, me, project_id, "analytics.read")
    figures = await ConsoleApi(request).get(
        f"/projects/{project_id}/call-analytics", days=_window(days)
    )
    context = {
        "me": me,
        "project": project,
        "base": f"/projects/{project_id}/calls/analytics",
        **_context(figures),
    }
    return render(request, "call_analytics.html", context)


@router.get("/calls/analytics")
async def org_analytics_page(request: Request, me: MeDep, days: Days = 30) -> Response:
    """The same figures across every call_analyzer project of the organization."""
    require(me, "analytics.read")
    figures = await ConsoleApi(request).get("/call-analytics", days=_window(days))
    context = {"me": me, "base": "/calls/analytics", **_context(figures)}
    return render(request, "call_analytics.html", context)
