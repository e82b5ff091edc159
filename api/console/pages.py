"""Rendering: templates (autoescaped), the page context every page shares, security headers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from api.console.api_client import ApiError, ConsoleApi
from api.console.cookies import CSRF_FIELD, CSRF_HEADER, csrf_for, csrf_matches, csrf_seed
from infra.settings import Settings

HERE = Path(__file__).parent
# Jinja2Templates turns autoescaping on: every value a page shows is escaped.
templates = Jinja2Templates(directory=HERE / "templates")

# No inline scripts or styles anywhere: htmx, its SSE extension and console.js are files.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def secret(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return settings.secret_key.get_secret_value()


ADMIN_LINKS = (
    ("users.manage", "/admin/users", "Users"),
    ("roles.manage", "/admin/roles", "Roles"),
    ("api_keys.manage", "/admin/api-keys", "API keys"),
    ("vault.read", "/admin/vault", "Vault secrets"),
    ("integrations.read", "/admin/integrations", "Integrations"),
    ("integrations.read", "/admin/channels", "Channels"),
    ("integrations.read", "/admin/do-not-contact", "Do not contact"),
    ("billing.read", "/usage", "Usage"),
)


@dataclass
class Me:
    """The signed-in user as the API's /auth/me describes them, plus their projects."""

    user: dict[str, Any]
    organization: dict[str, Any]
    permissions: list[str]
    projects: list[dict[str, Any]] = field(default_factory=list)

    def can(self, permission: str) -> bool:
        # The same rule as models.permissions.grants, which also knows wildcards.
        from models.permissions import grants

        return grants(self.permissions, permission)

    def admin_links(self) -> list[tuple[str, str]]:
        """The admin pages this user may open, as (href, label) for the navigation."""
        return [(href, label) for perm, href, label in ADMIN_LINKS if self.can(perm)]


async def current_me(request: Request) -> Me:
    api = ConsoleApi(request)
    if api.token is None:
        raise ApiError(401, "Sign in to continue", "SIGN_IN")
    me = await api.get("/auth/me")
    result = Me(me["user"], me["organization"], me["permissions"])
    if result.can("projects.read"):
        result.projects = (await api.get("/projects"))["data"]
    return result


MeDep = Annotated[Me, Depends(current_me)]


async def csrf_checked(request: Request) -> None:
    """State-changing console requests carry the CSRF token (htmx header or form field)."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not csrf_matches(secret(request), csrf_seed(request), sent):
        raise ApiError(403, "This form expired or came from elsewhere; reload the page", "CSRF")


CsrfChecked = Depends(csrf_checked)


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    seed: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    ctx: dict[str, Any] = dict(context or {})
    csrf_source = seed or csrf_seed(request)
    ctx.setdefault("csrf", csrf_for(secret(request), csrf_source) if csrf_source else "")
    ctx.setdefault("me", None)
    ctx.setdefault("project", None)
    response = templates.TemplateResponse(request, template, ctx, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    if headers:
        response.headers.update(headers)
    return response


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def redirect(request: Request, url: str) -> Response:
    """A redirect that also works for htmx requests (which would follow a 303 in place)."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return Response(status_code=303, headers={"Location": url})


class ConsolePage:
    """Marks a console route for the route contract test. Its access is the API's: the page's
    data and actions come from API routes called as the signed-in user, which enforce their own
    permissions (a refused call becomes a 403 page, an ended session the sign-in page)."""

    async def __call__(self) -> None:
        return None


def form_problem(err: ApiError) -> str:
    """What a form shows inline when the API refuses it (validation, names taken, plan limits).

    An ended session, a missing permission or a missing object is the console's own page
    (sign-in, 403, 404), so those are raised again for the console's error handler.
    """
    if err.status in (401, 404) or err.code in ("FORBIDDEN", "CSRF_FAILED"):
        raise err
    return err.message
