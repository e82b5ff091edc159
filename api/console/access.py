"""Admin: roles (extend a system role, edit and delete custom ones) and API keys (the secret is
shown once, in the answer to the form that created it)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from api.console.api_client import ApiError, ConsoleApi
from api.console.pages import CsrfChecked, Me, MeDep, form_problem, redirect, render
from models.api_key import ApiScope
from models.permissions import PERMISSIONS

router = APIRouter(prefix="/admin")
NameField = Annotated[str, Form(max_length=200)]


async def _roles_page(request: Request, me: Me, status: int = 200, **extra: Any) -> Response:
    roles = (await ConsoleApi(request).get("/roles"))["data"]
    names = {r["id"]: r["name"] for r in roles}
    context = {"me": me, "roles": roles, "names": names, **extra}
    return render(request, "roles.html", context, status=status)


@router.get("/roles")
async def roles_page(request: Request, me: MeDep) -> Response:
    return await _roles_page(request, me)


@router.post("/roles/{role_id}/extend", dependencies=[CsrfChecked])
async def extend_role(request: Request, me: MeDep, role_id: uuid.UUID, name: NameField) -> Response:
    try:
        role = await ConsoleApi(request).post(f"/roles/{role_id}/extend", {"name": name})
    except ApiError as err:
        return await _roles_page(request, me, err.status, error=form_problem(err))
    return redirect(request, f"/admin/roles/{role['id']}")


async def _role_page(
    request: Request, me: Me, role_id: uuid.UUID, status: int = 200, **extra: Any
) -> Response:
    role = await ConsoleApi(request).get(f"/roles/{role_id}")
    context = {"me": me, "role": role, "permissions": PERMISSIONS, **extra}
    return render(request, "role.html", context, status=status)


@router.get("/roles/{role_id}")
async def role_page(request: Request, me: MeDep, role_id: uuid.UUID) -> Response:
    return await _role_page(request, me, role_id)


@router.post("/roles/{role_id}", dependencies=[CsrfChecked])
async def edit_role(
    request: Request,
    me: MeDep,
    role_id: uuid.UUID,
    name: NameField,
    permissions: Annotated[list[str] | None, Form(max_length=100)] = None,
) -> Response:
    body = {"name": name, "permissions": permissions or []}
    try:
        await ConsoleApi(request).patch(f"/roles/{role_id}", body)
    except ApiError as err:
        return await _role_page(request, me, role_id, err.status, error=form_problem(err))
    return redirect(request, f"/admin/roles/{role_id}?saved=1")


@router.post("/roles/{role_id}/delete", dependencies=[CsrfChecked])
async def delete_role(request: Request, me: MeDep, role_id: uuid.UUID) -> Response:
    try:
        await ConsoleApi(request).delete(f"/roles/{role_id}")
    except ApiError as err:
        return await _roles_page(request, me, err.status, error=form_problem(err))
    return redirect(request, "/admin/roles")


async def _keys_page(request: Request, me: Me, status: int = 200, **extra: Any) -> Response:
    keys = (await ConsoleApi(request).get("/api-keys"))["data"]
    context = {"me": me, "keys": keys, "scopes": [s.value for s in ApiScope], **extra}
    return render(request, "api_keys.html", context, status=status)


@router.get("/api-keys")
async def keys_page(request: Request, me: MeDep) -> Response:
    return await _keys_page(request, me)


@router.post("/api-keys", dependencies=[CsrfChecked])
async def create_key(
    request: Request,
    me: MeDep,
    name: NameField,
    scopes: Annotated[list[str] | None, Form(max_length=10)] = None,
) -> Response:
    try:
        created = await ConsoleApi(request).post(
            "/api-keys", {"name": name, "scopes": scopes or []}
        )
    except ApiError as err:
        return await _keys_page(request, me, err.status, error=form_problem(err), name=name)
    # The one answer that carries the secret; the page is served with Cache-Control: no-store.
    return await _keys_page(request, me, 201, created=created)


@router.post("/api-keys/{key_id}/revoke", dependencies=[CsrfChecked])
async def revoke_key(request: Request, me: MeDep, key_id: uuid.UUID) -> Response:
    await ConsoleApi(request).delete(f"/api-keys/{key_id}")
    return redirect(request, "/admin/api-keys")
