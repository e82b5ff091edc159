"""Sign-up, login (one active session per user), logout and password change."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

from fastapi import APIRouter, Depends, Request
from sqlmodel import col, func, select

from api.deps import PublicRoute, SessionDep, SettingsDep, SignedIn
from api.errors import AppError
from api.services.throttle import SignInThrottle, limit_signup
from infra.security import (
    hash_password,
    new_session_token,
    password_problem,
    token_hash,
    verify_password,
)
from models.organization import Organization, OrganizationPublic
from models.permissions import SYSTEM_ROLES
from models.role import Role
from models.user import User, UserRole, UserStatus
from models.user_session import (
    LoginBody,
    MePublic,
    MeUser,
    PasswordChange,
    SessionEnd,
    SessionPublic,
    SignupBody,
    UserSession,
)

router = APIRouter(prefix="/auth", tags=["auth"])
Public = Depends(PublicRoute())


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@cache
def _unknown_user_hash() -> str:
    # Checked when the email matches nobody, so that answer costs what a wrong password costs.
    return hash_password(new_session_token())


def device_label(request: Request, explicit: str | None) -> str:
    label = explicit or request.headers.get("user-agent") or "unknown device"
    return label[:300]


def weak_password(password: str, email: str) -> None:
    problem = password_problem(password, email=email)
    if problem:
        raise AppError(problem, "WEAK_PASSWORD", 422)


async def email_taken(session: SessionDep, email: str) -> bool:
    count = (
        await session.exec(
            select(func.count()).select_from(User).where(func.lower(User.email) == email.lower())
        )
    ).one()
    return bool(count)


@router.post("/signup", status_code=201, dependencies=[Public])
async def signup(
    body: SignupBody, request: Request, session: SessionDep, settings: SettingsDep
) -> SessionPublic:
    await limit_signup(request, settings)
    full_name, org_name = body.full_name.strip(), body.organization_name.strip()
    if not full_name or not org_name:
        raise AppError("Full name and organization name are required", "VALIDATION_ERROR", 422)
    weak_password(body.password, body.email)
    if await email_taken(session, body.email):
        raise AppError("An account with this email already exists", "EMAIL_TAKEN", 409)
    org = Organization(name=org_name, plan=settings.default_plan)
    session.add(org)
    await session.flush()
    roles = {
        name: Role(org_id=org.id, name=name, permissions=perms, is_system=True)
        for name, perms in SYSTEM_ROLES.items()
    }
    session.add_all(roles.values())
    user = User(
        org_id=org.id,
        full_name=full_name,
        email=body.email.lower(),
        password_hash=hash_password(body.password),
    )
    session.add(user)
    await session.flush()
    session.add(UserRole(user_id=user.id, role_id=roles["Admin"].id))
    return await _start_session(session, settings, user, request, None)


async def _start_session(
    session: SessionDep,
    settings: SettingsDep,
    user: User,
    request: Request,
    device: str | None,
) -> SessionPublic:
    token = new_session_token()
    now = datetime.now(UTC)
    record = UserSession(
        org_id=user.org_id,
        user_id=user.id,
        token_hash=token_hash(settings.secret_key.get_secret_value(), token),
        device=device_label(request, device),
        ip=client_ip(request),
        started_at=now,
        last_active_at=now,
        expires_at=now + settings.session_ttl,
    )
    session.add(record)
    await session.flush()
    return SessionPublic(
        token=token,
        expires_at=record.expires_at,
        user_id=user.id,
        org_id=user.org_id,
        must_change_password=user.must_change_password,
    )


@router.post("/login", dependencies=[Public])
async def login(
    body: LoginBody, request: Request, session: SessionDep, settings: SettingsDep
) -> SessionPublic:
    throttle = SignInThrottle(request, settings, body.email)
    await throttle.check()
    user = (
        await session.exec(select(User).where(func.lower(User.email) == body.email.lower()))
    ).first()
    stored_hash = user.password_hash if user is not None else _unknown_user_hash()
    if not verify_password(stored_hash, body.password) or user is None:
        await throttle.failed()
        raise AppError("Email or password is incorrect", "INVALID_CREDENTIALS", 401)
    await throttle.succeeded()
    if user.status != UserStatus.active:
        raise AppError("This user is disabled; ask an admin", "USER_DISABLED", 403)
    now = datetime.now(UTC)
    device, ip = device_label(request, body.device), client_ip(request)
    active = (
        await session.exec(
            select(UserSession)
            .where(
                UserSession.user_id == user.id,
                col(UserSession.ended_at).is_(None),
                UserSession.expires_at > now,
            )
            .with_for_update()
        )
    ).all()
    for other in active:
        same_device = other.device == device and other.ip == ip
        if not same_device and not body.continue_here:
            raise AppError(
                f"You are signed in on another device ({other.device}, {other.ip}, since "
                f"{other.started_at.isoformat()}); sign in with continueHere to end it",
                "SESSION_ACTIVE_ELSEWHERE",
                409,
                {"device": other.device, "ip": other.ip, "startedAt": other.started_at.isoformat()},
            )
        other.ended_at = now
        other.end_reason = SessionEnd.replaced
        session.add(other)
    return await _start_session(session, settings, user, request, body.device)


@router.post("/logout", status_code=204)
async def logout(principal: SignedIn, session: SessionDep) -> None:
    principal.session.ended_at = datetime.now(UTC)
    principal.session.end_reason = SessionEnd.logout
    session.add(principal.session)


@router.get("/me")
async def me(principal: SignedIn) -> MePublic:
    return MePublic(
        user=MeUser.model_validate(principal.user),
        organization=OrganizationPublic.model_validate(principal.org),
        permissions=principal.permissions,
    )


@router.post("/password", status_code=204)
async def change_password(body: PasswordChange, principal: SignedIn, session: SessionDep) -> None:
    if not verify_password(principal.user.password_hash, body.current_password):
        raise AppError("Current password is incorrect", "INVALID_CREDENTIALS", 401)
    weak_password(body.new_password, principal.user.email)
    principal.user.password_hash = hash_password(body.new_password)
    principal.user.must_change_password = False
    session.add(principal.user)
