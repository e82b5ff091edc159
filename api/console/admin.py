"""Admin: users (invite, disable/enable, who is online) and vault secrets (masked, set, audit)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response

from api.console.api_client import ApiError, ConsoleApi
from api.console.pages import CsrfChecked, MeDep, redirect, render

router = APIRouter(prefix="/admin")


async def _users_context(request: Request, me: Any) -> dict[str, Any]:
    api = ConsoleApi(request)
    users = (await api.get("/users"))["data"]
    roles = (await api.get("/roles"))["data"] if me.can("roles.manage") else []
    return {"me": me, "users": users, "roles": roles, "form": {}}


@router.get("/users")
async def users_page(request: Request, me: MeDep) -> Response:
    return render(request, "users.html", await _users_context(request, me))


@router.post("/users", dependencies=[CsrfChecked])
async def invite_user(
    request: Request,
    me: MeDep,
    full_name: Annotated[str, Form(max_length=200)],
    email: Annotated[str, Form(max_length=320)],
    temporary_password: Annotated[str, Form(max_length=1000)],
    role_ids: Annotated[list[uuid.UUID] | None, Form()] = None,
) -> Response:
    body = {
        "fullName": full_name,
        "email": email,
        "temporaryPassword": temporary_password,
        "roleIds": [str(r) for r in role_ids or []],
    }
    try:
        await ConsoleApi(request).post("/users", body)
    except ApiError as err:
        if err.status in (401, 403):
            raise
        context = await _users_context(request, me)
        context.update(error=err.message, form={"fullName": full_name, "email": email})
        return render(request, "users.html", context, status=err.status)
    return redirect(request, "/admin/users")


@router.post("/users/{user_id}/{action}", dependencies=[CsrfChecked])
async def user_action(
    request: Request,
    me: MeDep,
    user_id: uuid.UUID,
    action: Annotated[str, Path(pattern="^(disable|enable)$")],
) -> Response:
    await ConsoleApi(request).post(f"/users/{user_id}/{action}")
    return redirect(request, "/admin/users")


async def _vault_context(request: Request, me: Any) -> dict[str, Any]:
    api = ConsoleApi(request)
    secrets = (await api.get("/vault/secrets"))["data"]
    audit = (await api.get("/vault/audit", limit=100))["data"]
    return {"me": me, "secrets": secrets, "audit": audit}


@router.get("/vault")
async def vault_page(request: Request, me: MeDep) -> Response:
    return render(request, "vault.html", await _vault_context(request, me))


@router.post("/vault", dependencies=[CsrfChecked])
async def set_secret(
    request: Request,
    me: MeDep,
    name: Annotated[str, Form(max_length=200)],
    value: Annotated[str, Form(max_length=100_000)],
    cas: Annotated[str, Form(max_length=12, pattern=r"^\d*$")] = "",
) -> Response:
    body: dict[str, Any] = {"value": value, "cas": int(cas) if cas else None}
    try:
        await ConsoleApi(request).put(f"/vault/secrets/{name}", body)
    except ApiError as err:
        if err.status in (401, 403):
            raise
        context = await _vault_context(request, me)
        context.update(error=err.message, name=name)  # the value is never sent back
        return render(request, "vault.html", context, status=err.status)
    return redirect(request, "/admin/vault?saved=1")
