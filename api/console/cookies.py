"""The browser session cookie and the CSRF token bound to it.

The cookie holds the same session token the API hands out as a bearer token; the CSRF token
is an HMAC of the cookie's value, so it needs no storage and dies with the session. Before
sign-in a random seed cookie plays the session's part (sign-in and sign-up forms).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import HTTPConnection
from starlette.responses import Response

SESSION_COOKIE = "cxgear_session"
SEED_COOKIE = "cxgear_csrf_seed"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_for(secret: str, seed: str) -> str:
    return hmac.new(secret.encode(), b"csrf:" + seed.encode(), hashlib.sha256).hexdigest()


def csrf_matches(secret: str, seed: str | None, sent: str | None) -> bool:
    if not seed or not sent:
        return False
    return hmac.compare_digest(csrf_for(secret, seed), sent)


def csrf_seed(conn: HTTPConnection) -> str | None:
    return conn.cookies.get(SESSION_COOKIE) or conn.cookies.get(SEED_COOKIE)


def _secure(conn: HTTPConnection) -> bool:
    return conn.url.scheme == "https"


def set_session_cookie(conn: HTTPConnection, response: Response, token: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        secure=_secure(conn),
        samesite="lax",
        path="/",
    )
    response.delete_cookie(SEED_COOKIE, path="/")


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def ensure_seed(conn: HTTPConnection, response: Response) -> str:
    """The pre-sign-in CSRF seed: reuse the browser's, else set a new one on the response."""
    seed = conn.cookies.get(SEED_COOKIE)
    if seed:
        return seed
    seed = secrets.token_urlsafe(32)
    response.set_cookie(
        SEED_COOKIE, seed, httponly=True, secure=_secure(conn), samesite="lax", path="/"
    )
    return seed
