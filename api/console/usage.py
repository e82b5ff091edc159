"""Usage: the plan's meters as bars (used / limit / remaining) and the monthly reset date."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.console.api_client import ConsoleApi
from api.console.pages import MeDep, render

router = APIRouter()


@router.get("/usage")
async def usage_page(request: Request, me: MeDep) -> Response:
    usage = await ConsoleApi(request).get("/usage")
    return render(request, "usage.html", {"me": me, "usage": usage})
