"""Sign in (with the single-session rule's "continue here"), sign up, sign out."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from api.console.api_client import ApiError, ConsoleApi
from api.console.cookies import SEED_COOKIE, clear_session_cookie, set_session_cookie
from api.console.pages import CsrfChecked, redirect, render

router = APIRouter()

ENDED = {
    "SESSION_EXPIRED": "Your session expired. Sign in again.",
    "SESSION_REPLACED": "Your session was ended because you signed in on another device.",
    "SESSION_REVOKED": "Your session was signed out. Sign in again.",
    "SIGNED_OUT": "You are signed out.",
}


def _seeded(request: Request) -> tuple[str, bool]:
    seed = request.cookies.get(SEED_COOKIE)
    return (seed, False) if seed else (secrets.token_urlsafe(32), True)


def _auth_page(
    request: Request, template: str, context: dict[str, Any], status: int = 200
) -> Response:
    seed, new = _seeded(request)
    response = render(request, template, context, status=status, seed=seed)
    if new:
        response.set_cookie(
            SEED_COOKIE,
            seed,
            httponly=True,
            secure=request.url.scheme == "https",
            samesite="lax",
            path="/",
        )
    return response


def _signed_in(request: Request, session: dict[str, Any]) -> Response:
    expires = datetime.fromisoformat(session["expiresAt"])
    max_age = max(60, int((expires - datetime.now(UTC)).total_seconds()))
    response = redirect(request, "/")
    set_session_cookie(request, response, session["token"], max_age)
    return response


@router.get("/signin")
async def signin_page(request: Request, ended: str | None = None) -> Response:
    return _auth_page(request, "signin.html", {"banner": ENDED.get(ended or "")})


@router.post("/signin", dependencies=[CsrfChecked])
async def signin(
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1000)],
    continue_here: Annotated[bool, Form()] = False,
) -> Response:
    body = {"email": email, "password": password, "continueHere": continue_here}
    try:
        session = await ConsoleApi(request).post("/auth/login", body)
    except ApiError as err:
        context: dict[str, Any] = {"error": err.message, "email": email}
        if err.code == "SESSION_ACTIVE_ELSEWHERE" and isinstance(err.details, dict):
            context = {"email": email, "elsewhere": err.details}
        return _auth_page(request, "signin.html", context, status=err.status)
    return _signed_in(request, session)


@router.get("/signup")
async def signup_page(request: Request) -> Response:
    return _auth_page(request, "signup.html", {"form": {}})


@router.post("/signup", dependencies=[CsrfChecked])
async def signup(
    request: Request,
    full_name: Annotated[str, Form(max_length=200)],
    organization_name: Annotated[str, Form(max_length=200)],
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1000)],
) -> Response:
    form = {"fullName": full_name, "organizationName": organization_name, "email": email}
    try:
        session = await ConsoleApi(request).post("/auth/signup", {**form, "password": password})
    except ApiError as err:
        return _auth_page(
            request, "signup.html", {"form": form, "error": err.message}, status=err.status
        )
    return _signed_in(request, session)


@router.post("/signout", dependencies=[CsrfChecked])
async def signout(request: Request) -> Response:
    try:
        await ConsoleApi(request).post("/auth/logout")
    except ApiError:
        pass  # already ended elsewhere: signing out still clears this browser
    response = redirect(request, "/signin?ended=SIGNED_OUT")
    clear_session_cookie(response)
    return response


@router.get("/password")
async def password_page(request: Request, required: bool = False) -> Response:
    # No navigation here: a user with a temporary password may call nothing else yet.
    return render(request, "password.html", {"required": required})


@router.post("/password", dependencies=[CsrfChecked])
async def change_password(
    request: Request,
    current_password: Annotated[str, Form(max_length=1000)],
    new_password: Annotated[str, Form(max_length=1000)],
) -> Response:
    body = {"currentPassword": current_password, "newPassword": new_password}
    try:
        await ConsoleApi(request).post("/auth/password", body)
    except ApiError as err:
        if err.code.startswith("SESSION_") or err.code == "TOKEN_INVALID":
            raise  # an ended session goes to sign-in, as on every page
        context = {"error": err.message, "required": True}
        return render(request, "password.html", context, status=err.status)
    return redirect(request, "/")
