"""Users of the organization: invite, list with presence, update roles, disable and enable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import Allow, Principal, SessionDep
from api.errors import AppError, not_found
from api.routes.auth import email_taken, weak_password
from api.services.plan_limits import ensure_capacity
from infra.security import hash_password
from models.permissions import ALL
from models.plan import Meter
from models.role import Role
from models.user import (
    RoleRef,
    User,
    UserInvite,
    UserPublic,
    UserRole,
    UsersPublic,
    UserStatus,
    UserUpdate,
)
from models.user_session import SessionEnd, UserSession

router = APIRouter(prefix="/users", tags=["users"])
Manage = Annotated[Principal, Allow("users.manage")]
ONLINE_WINDOW = timedelta(minutes=5)


async def user_in_org(user_id: uuid.UUID, principal: Manage, session: SessionDep) -> User:
    user = await session.get(User, user_id)
    if user is None or user.org_id != principal.org_id:
        raise not_found("User")
    return user


UserDep = Annotated[User, Depends(user_in_org)]


async def roles_in_org(
    session: AsyncSession, org_id: uuid.UUID, role_ids: list[uuid.UUID]
) -> list[Role]:
    if not role_ids:
        raise AppError("A user needs at least one role", "VALIDATION_ERROR", 422)
    roles = (
        await session.exec(select(Role).where(col(Role.id).in_(role_ids), Role.org_id == org_id))
    ).all()
    if len(roles) != len(set(role_ids)):
        raise AppError("One or more roles do not exist", "VALIDATION_ERROR", 422)
    return list(roles)


async def active_admins(session: AsyncSession, org_id: uuid.UUID) -> set[uuid.UUID]:
    rows = await session.exec(
        select(User.id)
        .join(UserRole, col(UserRole.user_id) == col(User.id))
        .join(Role, col(Role.id) == col(UserRole.role_id))
        .where(
            User.org_id == org_id,
            User.status == UserStatus.active,
            func.jsonb_exists(Role.permissions, ALL),
        )
    )
    return set(rows)


async def keep_an_admin(session: AsyncSession, org_id: uuid.UUID) -> None:
    await session.flush()
    if not await active_admins(session, org_id):
        raise AppError("The organization must keep at least one active Admin", "LAST_ADMIN", 409)


async def to_public(session: AsyncSession, users: list[User]) -> list[UserPublic]:
    ids = [u.id for u in users]
    role_rows = (
        await session.exec(
            select(UserRole.user_id, Role.id, Role.name)
            .join(Role, col(Role.id) == col(UserRole.role_id))
            .where(col(UserRole.user_id).in_(ids))
        )
    ).all()
    roles: dict[uuid.UUID, list[RoleRef]] = {}
    for user_id, role_id, name in role_rows:
        roles.setdefault(user_id, []).append(RoleRef(id=role_id, name=name))
    now = datetime.now(UTC)
    latest: dict[uuid.UUID, UserSession] = {}
    for row in (
        await session.exec(
            select(UserSession)
            .where(col(UserSession.user_id).in_(ids))
            .order_by(col(UserSession.last_active_at))
        )
    ).all():
        latest[row.user_id] = row
    out = []
    for u in users:
        s = latest.get(u.id)
        live = (
            s is not None
            and s.ended_at is None
            and s.expires_at > now
            and now - s.last_active_at <= ONLINE_WINDOW
        )
        presence = (
            "disabled" if u.status == UserStatus.disabled else ("online" if live else "offline")
        )
        out.append(
            UserPublic(
                id=u.id,
                full_name=u.full_name,
                email=u.email,
                status=u.status,
                roles=sorted(roles.get(u.id, []), key=lambda r: r.name),
                presence=presence,
                device=s.device if s else None,
                ip=s.ip if s else None,
                last_active_at=s.last_active_at if s else None,
                created_at=u.created_at,
            )
        )
    return out


@router.get("")
async def list_users(principal: Manage, session: SessionDep) -> UsersPublic:
    users = (
        await session.exec(
            select(User).where(User.org_id == principal.org_id).order_by(col(User.created_at))
        )
    ).all()
    return UsersPublic(data=await to_public(session, list(users)), count=len(users))


@router.post("", status_code=201)
async def invite_user(body: UserInvite, principal: Manage, session: SessionDep) -> UserPublic:
    await ensure_capacity(session, principal.org, Meter.users)
    weak_password(body.temporary_password, body.email)
    if await email_taken(session, body.email):
        raise AppError("A user with this email already exists", "EMAIL_TAKEN", 409)
    roles = await roles_in_org(session, principal.org_id, body.role_ids)
    user = User(
        org_id=principal.org_id,
        full_name=body.full_name,
        email=body.email.lower(),
        password_hash=hash_password(body.temporary_password),
        must_change_password=True,
    )
    session.add(user)
    await session.flush()
    session.add_all(UserRole(user_id=user.id, role_id=r.id) for r in roles)
    await session.flush()
    return (await to_public(session, [user]))[0]


@router.get("/{user_id}")
async def get_user(user: UserDep, session: SessionDep) -> UserPublic:
    return (await to_public(session, [user]))[0]


@router.patch("/{user_id}")
async def update_user(
    user: UserDep, body: UserUpdate, principal: Manage, session: SessionDep
) -> UserPublic:
    if body.full_name is not None:
        user.full_name = body.full_name
        session.add(user)
    if body.role_ids is not None:
        roles = await roles_in_org(session, principal.org_id, body.role_ids)
        for existing in (
            await session.exec(select(UserRole).where(UserRole.user_id == user.id))
        ).all():
            await session.delete(existing)
        await session.flush()
        session.add_all(UserRole(user_id=user.id, role_id=r.id) for r in roles)
        await keep_an_admin(session, principal.org_id)
    await session.flush()
    return (await to_public(session, [user]))[0]


@router.post("/{user_id}/disable")
async def disable_user(user: UserDep, principal: Manage, session: SessionDep) -> UserPublic:
    user.status = UserStatus.disabled
    session.add(user)
    now = datetime.now(UTC)
    for s in (
        await session.exec(
            select(UserSession).where(
                UserSession.user_id == user.id, col(UserSession.ended_at).is_(None)
            )
        )
    ).all():
        s.ended_at, s.end_reason = now, SessionEnd.revoked
        session.add(s)
    await keep_an_admin(session, principal.org_id)
    return (await to_public(session, [user]))[0]


@router.post("/{user_id}/enable")
async def enable_user(user: UserDep, principal: Manage, session: SessionDep) -> UserPublic:
    if user.status != UserStatus.active:
        await ensure_capacity(session, principal.org, Meter.users)
        user.status = UserStatus.active
        session.add(user)
        await session.flush()
    return (await to_public(session, [user]))[0]
