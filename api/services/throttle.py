"""Throttling shared by every API replica: its state is in PostgreSQL, one statement per check.

- Fixed windows (`rate_window`): sign-ups per client IP, requests per key on the public routes.
  One upsert counts the request and says whether it is over the limit.
- Sign-in failures (`login_failure`): per account (normalised email, known or not) and per client
  IP. N failures within the window lock the key; each lockout doubles the next one.

Counters are written in their own short transaction, never the request's: a refused request rolls
its own work back, and its count must stay. Keys are keyed hashes, so no address or IP is stored.
"""

from __future__ import annotations

import math
import time
import uuid
from datetime import timedelta

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import AppError, error_body
from infra.security import token_hash
from infra.settings import Settings
from models.organization import Organization
from models.plan import PUBLIC_REQUESTS_PER_WINDOW, Plan

PURGE_EVERY_S = 60.0
PURGE_BATCH = 5_000


class RateLimited(AppError):
    """429 RATE_LIMITED with Retry-After (whole seconds, at least 1)."""

    def __init__(self, retry_after: float, message: str) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(
            f"{message}; try again in {self.retry_after} s",
            "RATE_LIMITED",
            429,
            {"retryAfter": self.retry_after},
        )


async def rate_limited_response(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RateLimited):
        raise exc
    return JSONResponse(
        error_body(exc.message, exc.error_code, exc.details),
        exc.status,
        headers={"Retry-After": str(exc.retry_after)},
    )


def throttle_key(settings: Settings, kind: str, value: str) -> str:
    return token_hash(settings.secret_key.get_secret_value(), f"throttle:{kind}:{value}")


def client_ip(request: Request) -> str:
    # Behind a proxy, uvicorn's --forwarded-allow-ips makes this the X-Forwarded-For client.
    return request.client.host if request.client else "unknown"


class _Purger:
    """Deletes expired rows at most once a minute per process, inside a throttle transaction."""

    def __init__(self) -> None:
        self.next_at = 0.0

    async def maybe(self, conn: AsyncConnection) -> None:
        if time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + PURGE_EVERY_S
        await purge_expired(conn)


_purger = _Purger()


async def purge_expired(conn: AsyncConnection) -> int:
    """Delete (a batch of) rows past their `expires_at`; the number deleted."""
    deleted = 0
    for table in ("rate_window", "login_failure"):
        result = await conn.execute(
            text(
                f"delete from {table} where key in"
                f" (select key from {table} where expires_at < now() limit :n)"
            ),
            {"n": PURGE_BATCH},
        )
        deleted += result.rowcount or 0
    return deleted


# --- fixed windows ---------------------------------------------------------------------------

_HIT = text(
    "insert into rate_window as w (key, window_start, hits, expires_at)"
    " values (:key, now(), 1, now() + :window)"
    " on conflict (key) do update set"
    "  hits = case when w.expires_at > now() then w.hits + 1 else 1 end,"
    "  window_start = case when w.expires_at > now() then w.window_start else now() end,"
    "  expires_at = case when w.expires_at > now() then w.expires_at else now() + :window end"
    " returning hits, extract(epoch from expires_at - now())"
)


async def hit(engine: AsyncEngine, key: str, *, limit: int, window: timedelta) -> float | None:
    """Count one request of `key`; the seconds to wait if it is over `limit` in its window."""
    async with engine.begin() as conn:
        await _purger.maybe(conn)
        hits, remaining = (await conn.execute(_HIT, {"key": key, "window": window})).one()
    return float(remaining) if hits > limit else None


async def limit_public(request: Request, settings: Settings, key: str, plan: str) -> None:
    """A public route's per-key limit from the organization's plan; raises RateLimited."""
    # A plan defined only in the operator's plans file gets the trial rate.
    limit = PUBLIC_REQUESTS_PER_WINDOW.get(plan, PUBLIC_REQUESTS_PER_WINDOW[Plan.trial])
    wait = await hit(
        request.app.state.engine,
        throttle_key(settings, "public", key),
        limit=limit,
        window=settings.public_rate_window,
    )
    if wait is not None:
        raise RateLimited(wait, f"Too many requests for this key (plan limit {limit})")


async def org_plan(session: AsyncSession, org_id: uuid.UUID) -> str:
    org = await session.get(Organization, org_id)
    return org.plan if org is not None else Plan.trial.value


async def limit_signup(request: Request, settings: Settings) -> None:
    wait = await hit(
        request.app.state.engine,
        throttle_key(settings, "signup-ip", client_ip(request)),
        limit=settings.signup_rate_limit,
        window=settings.signup_rate_window,
    )
    if wait is not None:
        raise RateLimited(wait, "Too many sign-ups from this address")


# --- sign-in failures ------------------------------------------------------------------------

# All SET expressions read the row as it was; the lock decision is repeated rather than named.
_IN_WINDOW = "f.window_start > now() - :window"
_FAILURES = f"(case when {_IN_WINDOW} then f.failures + 1 else 1 end)"
_LOCK = f"({_FAILURES} >= :threshold)"
# Lockouts are forgotten once the last one ended longer than :memory ago.
_PRIOR = "(case when f.locked_until > now() - :memory then f.lockouts else 0 end)"
_LOCK_FOR = f"least(:lockout * power(2, least({_PRIOR}, 30)), :lockout_max)"
_FAIL = text(
    "insert into login_failure as f"
    " (key, failures, window_start, lockouts, locked_until, expires_at)"
    " values (:key, 1, now(), 0, null, now() + :window)"
    " on conflict (key) do update set"
    f"  failures = case when {_LOCK} then 0 else {_FAILURES} end,"
    f"  window_start = case when {_LOCK} or not {_IN_WINDOW} then now() else f.window_start end,"
    f"  lockouts = case when {_LOCK} then {_PRIOR} + 1 else f.lockouts end,"
    f"  locked_until = case when {_LOCK} then now() + {_LOCK_FOR} else f.locked_until end,"
    "  expires_at = greatest(now() + :window, f.expires_at,"
    f"   case when {_LOCK} then now() + {_LOCK_FOR} + :memory end)"
    " returning extract(epoch from locked_until - now())"
)
_LOCKED = text(
    "select extract(epoch from max(locked_until) - now()) from login_failure"
    " where key = any(:keys) and locked_until > now()"
)


class SignInThrottle:
    """The two keys of one sign-in attempt: the account (whether it exists or not) and the IP."""

    def __init__(self, request: Request, settings: Settings, email: str) -> None:
        self.engine: AsyncEngine = request.app.state.engine
        self.settings = settings
        self.account = throttle_key(settings, "login-account", email.strip().lower())
        self.ip = throttle_key(settings, "login-ip", client_ip(request))

    @staticmethod
    def refusal(wait: float) -> RateLimited:
        # The same words whichever key is locked and whether the account exists.
        return RateLimited(wait, "Too many failed sign-ins")

    async def check(self) -> None:
        async with self.engine.begin() as conn:
            wait = (await conn.execute(_LOCKED, {"keys": [self.account, self.ip]})).scalar()
        if wait is not None:
            raise self.refusal(float(wait))

    async def failed(self) -> None:
        """Count a failure on both keys; raises RateLimited if that locked either."""
        s = self.settings
        common = {
            "window": s.login_failure_window,
            "lockout": s.login_lockout,
            "lockout_max": s.login_lockout_max,
            "memory": s.login_lockout_memory,
        }
        waits = []
        async with self.engine.begin() as conn:
            await _purger.maybe(conn)
            for key, threshold in (
                (self.account, s.login_max_failures),
                (self.ip, s.login_ip_max_failures),
            ):
                row = await conn.execute(_FAIL, {**common, "key": key, "threshold": threshold})
                waits.append(row.scalar())
        locked = [float(w) for w in waits if w is not None and w > 0]
        if locked:
            raise self.refusal(max(locked))

    async def succeeded(self) -> None:
        # Only the account's count: a valid sign-in must not wash an address's failures away.
        async with self.engine.begin() as conn:
            await conn.execute(
                text("delete from login_failure where key = :key"), {"key": self.account}
            )
