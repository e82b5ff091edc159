"""Request dependencies: database session (one transaction per request), principals, permissions."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ParamSpec, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import ARRAY, Text, bindparam, literal_column
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client as TemporalClient

from api.console.cookies import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE, csrf_matches
from api.errors import AppError, forbidden, temporal_unavailable
from api.services.progress import ProgressHub
from api.services.throttle import limit_public
from infra.providers import ProviderGuard
from infra.security import API_KEY_PREFIX, token_hash
from infra.settings import Settings
from infra.vault import SecretStore
from models.api_key import ApiKey
from models.organization import Organization
from models.permissions import grants
from models.user import User, UserStatus
from models.user_session import SessionEnd, UserSession

LAST_ACTIVE_RESOLUTION = timedelta(seconds=60)
P = ParamSpec("P")
T = TypeVar("T")


def in_event_loop(cls: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """A dependency that builds `cls` from the request's parameters on the event loop. FastAPI
    runs a plain class or function in its thread pool, a hop that costs more than the call."""

    async def build(*args: P.args, **kwargs: P.kwargs) -> T:
        return cls(*args, **kwargs)

    build.__signature__ = inspect.signature(cls, eval_str=True)  # type: ignore[attr-defined]
    return build


class UnitOfWork:
    """A request's transaction plus work to run only once it has committed."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._after_commit: list[Callable[[], Awaitable[Any]]] = []

    def after_commit(self, fn: Callable[[], Awaitable[Any]]) -> None:
        self._after_commit.append(fn)

    async def run_after_commit(self) -> None:
        for fn in self._after_commit:
            await fn()


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session:
        uow = UnitOfWork(session)
        try:
            yield uow
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
    await uow.run_after_commit()


UowDep = Annotated[UnitOfWork, Depends(get_uow, scope="function")]


async def get_session(uow: UowDep) -> AsyncSession:
    return uow.session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


TemporalProvider = Callable[[], Awaitable[TemporalClient]]


async def get_temporal_provider(request: Request) -> TemporalProvider:
    """Connects when called, so a route that may not need Temporal only connects if it does."""
    provider: TemporalProvider = request.app.state.temporal

    async def connected() -> TemporalClient:
        try:
            return await provider()
        except RuntimeError as exc:  # the SDK's connect failure
            raise temporal_unavailable() from exc

    return connected


async def get_temporal(
    provider: Annotated[TemporalProvider, Depends(get_temporal_provider)],
) -> TemporalClient:
    return await provider()


TemporalDep = Annotated[TemporalClient, Depends(get_temporal)]
TemporalLazyDep = Annotated[TemporalProvider, Depends(get_temporal_provider)]


async def get_progress_hub(request: Request) -> ProgressHub:
    hub: ProgressHub = request.app.state.progress
    return hub


ProgressDep = Annotated[ProgressHub, Depends(get_progress_hub)]


async def get_secret_store(request: Request) -> SecretStore:
    store: SecretStore = request.app.state.secret_store
    return store


SecretStoreDep = Annotated[SecretStore, Depends(get_secret_store)]


async def get_provider_guard(settings: SettingsDep) -> ProviderGuard:
    return ProviderGuard(settings.provider_allowed_hosts)


ProviderGuardDep = Annotated[ProviderGuard, Depends(get_provider_guard)]


@dataclass
class Principal:
    """A signed-in person: user, organization, session and effective permissions."""

    user: User
    org: Organization
    session: UserSession
    permissions: list[str] = field(default_factory=list)

    @property
    def org_id(self) -> uuid.UUID:
        return self.org.id

    def can(self, permission: str) -> bool:
        return grants(self.permissions, permission)


@dataclass
class KeyPrincipal:
    """A machine calling with an organization API key."""

    key: ApiKey
    org: Organization

    @property
    def org_id(self) -> uuid.UUID:
        return self.org.id


# Declared in the OpenAPI document so /docs has an Authorize button for each kind of caller; the
# checks below raise our own errors (auto_error=False), not FastAPI's.
SESSION_TOKEN = HTTPBearer(
    scheme_name="SessionToken",
    description="A person's session token from `POST /api/v1/auth/login` or sign-up.",
    auto_error=False,
)
API_KEY = HTTPBearer(
    scheme_name="ApiKey",
    bearerFormat="cxg_…",
    description="An organization API key (`cxg_…`) with the route's scope, for machines.",
    auto_error=False,
)
SessionCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(SESSION_TOKEN)]
KeyCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(API_KEY)]


def _bearer(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials.strip():
        raise AppError("Missing bearer token", "TOKEN_INVALID", 401)
    return credentials.credentials.strip()


# Session, person, organization and the person's permissions in one round trip, built once:
# this runs on every signed-in request. The one place the rule "a person's permissions are the
# union of their roles' permissions" is written.
_PRINCIPAL_ROW = (
    select(
        UserSession,
        User,
        Organization,
        literal_column(
            "(select array_agg(distinct p) from user_role ur join role r on r.id = ur.role_id"
            " cross join jsonb_array_elements_text(r.permissions) p"
            " where ur.user_id = user_session.user_id)",
            ARRAY(Text),
        ),
    )
    .outerjoin(User, col(User.id) == col(UserSession.user_id))
    .outerjoin(Organization, col(Organization.id) == col(UserSession.org_id))
)
PRINCIPAL_BY_TOKEN = _PRINCIPAL_ROW.where(col(UserSession.token_hash) == bindparam("token"))
PRINCIPAL_BY_SESSION = _PRINCIPAL_ROW.where(col(UserSession.id) == bindparam("session_id"))


def _session_token(
    request: Request, credentials: HTTPAuthorizationCredentials | None, settings: Settings
) -> str:
    """The bearer token, else the console's session cookie. A cookie is sent by the browser on
    its own, so a state-changing call authenticated by it must also carry the CSRF header."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if credentials is not None or not cookie:
        return _bearer(credentials)
    if request.method not in SAFE_METHODS and not csrf_matches(
        settings.secret_key.get_secret_value(), cookie, request.headers.get(CSRF_HEADER)
    ):
        raise AppError("Missing or wrong CSRF token", "CSRF_FAILED", 403)
    return cookie


async def get_principal(
    request: Request, credentials: SessionCredentials, session: SessionDep, settings: SettingsDep
) -> Principal:
    token = _session_token(request, credentials, settings)
    if token.startswith(API_KEY_PREFIX):
        raise AppError(
            "API keys cannot call this route; sign in and use a session token",
            "API_KEY_NOT_ALLOWED",
            401,
        )
    return await _principal(
        session,
        PRINCIPAL_BY_TOKEN,
        {"token": token_hash(settings.secret_key.get_secret_value(), token)},
        AppError("Session token is not valid", "TOKEN_INVALID", 401),
    )


async def session_principal(
    session: AsyncSession, session_id: uuid.UUID, missing: AppError
) -> Principal:
    """The person behind a session id (a codec link's grant), if the session is still live."""
    return await _principal(session, PRINCIPAL_BY_SESSION, {"session_id": session_id}, missing)


async def _principal(
    session: AsyncSession, statement: Any, params: dict[str, Any], missing: AppError
) -> Principal:
    row = (await session.exec(statement, params=params)).first()
    if row is None:
        raise missing
    found, user, org, permissions = row
    return _live_principal(session, found, user, org, sorted(permissions or ()))


def _live_principal(
    session: AsyncSession,
    found: UserSession,
    user: User | None,
    org: Organization | None,
    permissions: list[str],
) -> Principal:
    """The one set of rules for whether a session still stands for its person."""
    now = datetime.now(UTC)
    if found.ended_at is not None:
        if found.end_reason == SessionEnd.replaced:
            raise AppError(
                "This session was ended by a sign-in on another device", "SESSION_REPLACED", 401
            )
        raise AppError("This session was signed out", "SESSION_REVOKED", 401)
    if found.expires_at <= now:
        raise AppError("Session expired; sign in again", "SESSION_EXPIRED", 401)
    if user is None or org is None or user.status != UserStatus.active:
        raise AppError("This session was signed out", "SESSION_REVOKED", 401)
    if now - found.last_active_at > LAST_ACTIVE_RESOLUTION:
        found.last_active_at = now
        session.add(found)
    return Principal(user, org, found, permissions)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


class RequirePermission:
    """Route dependency that declares and enforces the permission a route needs."""

    def __init__(self, permission: str) -> None:
        self.permission = permission

    async def __call__(self, principal: CurrentPrincipal) -> Principal:
        if principal.user.must_change_password:
            raise AppError(
                "Change your temporary password first (POST /api/v1/auth/password)",
                "PASSWORD_CHANGE_REQUIRED",
                403,
            )
        if not principal.can(self.permission):
            raise forbidden(self.permission)
        return principal


class RequireSignedIn:
    """Route dependency for routes any signed-in user may call (their own session, profile).

    The only routes open to a user who still has a temporary password (reading who they are,
    changing the password, signing out): every other route takes a permission, and
    `RequirePermission` refuses such a user with PASSWORD_CHANGE_REQUIRED.
    """

    async def __call__(self, principal: CurrentPrincipal) -> Principal:
        return principal


class RequireApiKey:
    """Route dependency for machine routes: an organization API key with the given scope."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    async def __call__(
        self,
        request: Request,
        credentials: KeyCredentials,
        session: SessionDep,
        settings: SettingsDep,
    ) -> KeyPrincipal:
        token = _bearer(credentials)
        if not token.startswith(API_KEY_PREFIX):
            raise AppError(
                "This route needs an organization API key (cxg_…), not a session token",
                "API_KEY_REQUIRED",
                401,
            )
        key = (
            await session.exec(
                select(ApiKey).where(
                    ApiKey.key_hash == token_hash(settings.secret_key.get_secret_value(), token)
                )
            )
        ).first()
        if key is None or key.revoked_at is not None:
            raise AppError("API key is not valid or was revoked", "API_KEY_INVALID", 401)
        if self.scope not in key.scopes:
            raise AppError(f"API key lacks the '{self.scope}' scope", "FORBIDDEN", 403)
        org = await session.get(Organization, key.org_id)
        if org is None:
            raise AppError("API key is not valid or was revoked", "API_KEY_INVALID", 401)
        await limit_public(request, settings, f"api-key:{key.id}", org.plan)
        now = datetime.now(UTC)
        if key.last_used_at is None or now - key.last_used_at > LAST_ACTIVE_RESOLUTION:
            key.last_used_at = now
            session.add(key)
        return KeyPrincipal(key, org)


class PublicRoute:
    """Marks a route that needs no principal (sign-up, login, health, token-in-path webhooks)."""

    async def __call__(self) -> None:
        return None


def Allow(permission: str) -> Any:
    return Depends(RequirePermission(permission))


SignedIn = Annotated[Principal, Depends(RequireSignedIn())]
