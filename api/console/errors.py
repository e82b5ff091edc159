"""What a page shows when the API refuses: sign-in for an ended session, 403/404 pages."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from api.console.api_client import ApiError
from api.console.cookies import clear_session_cookie
from api.console.pages import current_me, redirect, render

TITLES = {403: "Not allowed", 404: "Not found"}


def install_console_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if exc.status == 401:
            ended = exc.code if exc.code.startswith("SESSION_") else ""
            response = redirect(request, f"/signin?ended={ended}" if ended else "/signin")
            clear_session_cookie(response)
            return response
        if exc.code == "PASSWORD_CHANGE_REQUIRED":
            return redirect(request, "/password?required=true")
        title = TITLES.get(exc.status, "Something went wrong")
        try:
            me = await current_me(request)  # keeps the navigation on a refused page
        except ApiError:
            me = None
        context = {"title": title, "message": exc.message, "me": me}
        return render(request, "error.html", context, status=exc.status)
