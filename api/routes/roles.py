"""Roles: read-only system roles, custom roles extended from them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlmodel import col, func, select

from api.deps import Allow, Principal, SessionDep
from api.errors import AppError, not_found
from api.routes.users import keep_an_admin
from models.permissions import ALL, PERMISSIONS, expand
from models.role import Role, RoleExtend, RolePublic, RolesPublic, RoleUpdate
from models.user import UserRole

router = APIRouter(prefix="/roles", tags=["roles"])
Manage = Annotated[Principal, Allow("roles.manage")]


async def role_in_org(role_id: uuid.UUID, principal: Manage, session: SessionDep) -> Role:
    role = await session.get(Role, role_id)
    if role is None or role.org_id != principal.org_id:
        raise not_found("Role")
    return role


RoleDep = Annotated[Role, Depends(role_in_org)]


def checked_permissions(perms: list[str]) -> list[str]:
    if ALL in perms:
        raise AppError("'*' can never be granted to a custom role", "VALIDATION_ERROR", 422)
    unknown = sorted(set(perms) - set(PERMISSIONS))
    if unknown:
        raise AppError(f"Unknown permission keys: {', '.join(unknown)}", "VALIDATION_ERROR", 422)
    return [p for p in PERMISSIONS if p in perms]


async def name_free(
    session: SessionDep, org_id: uuid.UUID, name: str, except_id: uuid.UUID | None
) -> None:
    clash = (
        await session.exec(
            select(Role.id).where(
                Role.org_id == org_id, func.lower(Role.name) == name.lower(), Role.id != except_id
            )
        )
    ).first()
    if clash:
        raise AppError(f"A role named '{name}' already exists", "NAME_TAKEN", 409)


def read_only(role: Role) -> None:
    if role.is_system:
        raise AppError("System roles are read-only; extend one instead", "READ_ONLY", 409)


@router.get("")
async def list_roles(principal: Manage, session: SessionDep) -> RolesPublic:
    roles = (
        await session.exec(
            select(Role)
            .where(Role.org_id == principal.org_id)
            .order_by(col(Role.is_system).desc(), col(Role.name))
        )
    ).all()
    return RolesPublic(data=[RolePublic.model_validate(r) for r in roles], count=len(roles))


@router.get("/{role_id}")
async def get_role(role: RoleDep) -> RolePublic:
    return RolePublic.model_validate(role)


@router.post("/{role_id}/extend", status_code=201)
async def extend_role(
    role: RoleDep, body: RoleExtend, principal: Manage, session: SessionDep
) -> RolePublic:
    await name_free(session, principal.org_id, body.name, None)
    perms = (
        checked_permissions(body.permissions)
        if body.permissions is not None
        else expand(role.permissions)
    )
    custom = Role(org_id=principal.org_id, name=body.name, permissions=perms, extends_id=role.id)
    session.add(custom)
    await session.flush()
    return RolePublic.model_validate(custom)


@router.patch("/{role_id}")
async def update_role(
    role: RoleDep, body: RoleUpdate, principal: Manage, session: SessionDep
) -> RolePublic:
    read_only(role)
    if body.name is not None:
        await name_free(session, principal.org_id, body.name, role.id)
        role.name = body.name
    if body.permissions is not None:
        role.permissions = checked_permissions(body.permissions)
    session.add(role)
    await session.flush()
    return RolePublic.model_validate(role)


@router.delete("/{role_id}", status_code=204)
async def delete_role(role: RoleDep, principal: Manage, session: SessionDep) -> None:
    read_only(role)
    holders = (
        await session.exec(
            select(func.count()).select_from(UserRole).where(UserRole.role_id == role.id)
        )
    ).one()
    if holders:
        raise AppError(
            f"{holders} user(s) still hold this role; give them another role first",
            "ROLE_IN_USE",
            409,
        )
    await session.delete(role)
    await keep_an_admin(session, principal.org_id)
