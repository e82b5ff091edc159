"""What every Call Analyzer page shares: the permission gate and the call_analyzer project.

Some of the API's reads behind these pages need only `projects.read` (an Agent may read a
project's tags through the API); the pages themselves are for the people who set up, tag, review
and read analytics, so each one also requires its own permission, checked with the same
`grants` rule as the API, and answers 403 like the API does.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from api.console.api_client import ApiError, ConsoleApi
from api.console.pages import Me, form_problem, redirect

CALL_ANALYZER = "call_analyzer"


def require(me: Me, permission: str) -> None:
    if not me.can(permission):
        raise ApiError(403, f"Missing permission {permission}", "FORBIDDEN")


async def call_project(
    request: Request, me: Me, project_id: uuid.UUID | str, permission: str
) -> dict[str, Any]:
    """The project, once the user holds `permission` and the project analyses calls."""
    require(me, permission)
    project: dict[str, Any] = await ConsoleApi(request).get(f"/projects/{project_id}")
    if project["type"] != CALL_ANALYZER:
        raise ApiError(
            409,
            f"Project '{project['name']}' is not a call analyzer project",
            "PROJECT_TYPE",
        )
    return project


async def send_form(
    request: Request,
    method: str,
    path: str,
    body: dict[str, Any],
    *,
    page: Callable[..., Awaitable[Response]],
    form: dict[str, Any],
    then: Callable[[Any], str],
) -> Response:
    """Send a form's body to the API; a refusal re-renders `page` with the API's status, its
    message and the `form` values as typed, an acceptance redirects to `then(answer)`."""
    try:
        answer = await ConsoleApi(request).call(method, path, json=body)
    except ApiError as err:
        return await page(err.status, error=form_problem(err), form=form)
    return redirect(request, then(answer))
