"""The web console: server-rendered pages at `/` over the API's own routes (see api_client)."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from api.console import (
    access,
    admin,
    auth,
    call_analytics,
    call_results,
    call_scorecards,
    call_setup,
    call_tags,
    jobs,
    projects,
    providers,
    schedules,
    spinners,
    tables,
    usage,
)
from api.console.errors import install_console_errors
from api.console.pages import HERE, ConsolePage


def mount_console(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="console-static")
    for module in (
        auth,
        projects,
        tables,
        spinners,
        schedules,
        jobs,
        admin,
        access,
        providers,
        usage,
        call_setup,
        call_tags,
        call_scorecards,
        call_analytics,  # before call_results: /calls/analytics is not /calls/{call_id}
        call_results,
    ):
        app.include_router(
            module.router, include_in_schema=False, dependencies=[Depends(ConsolePage())]
        )
    install_console_errors(app)
