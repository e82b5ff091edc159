"""HTTP client for CLI commands that talk to a running CXGear API, and the stored session.

The token is taken from `--token`, else `CXGEAR_TOKEN`, else the session `cxgear login` stored
in the user's config directory (a file only its owner can read). The API's address is
`CXGEAR_API_URL`, else the one the stored session was made against, else
`CXGEAR_PUBLIC_API_URL`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import typer

from cxgear.cli_output import error_line, fail
from infra.settings import get_settings

SESSION_FILE = "session.json"


def config_dir() -> Path:
    return Path(typer.get_app_dir("cxgear"))


def session_path() -> Path:
    return config_dir() / SESSION_FILE


def stored_session() -> dict[str, Any] | None:
    try:
        data = json.loads(session_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("token") else None


def store_session(data: dict[str, Any]) -> Path:
    path = session_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created 0600 rather than chmod-ed after writing, so the token is never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)
    return path


def forget_session() -> bool:
    try:
        session_path().unlink()
    except FileNotFoundError:
        return False
    return True


def api_base_url() -> str:
    stored = stored_session() or {}
    base = os.environ.get("CXGEAR_API_URL") or stored.get("api_url")
    return str(base or get_settings().public_api_url).rstrip("/")


def api_client(token: str | None = None, *, timeout: float = 60) -> httpx.Client:
    stored = stored_session() or {}
    token = token or os.environ.get("CXGEAR_TOKEN") or stored.get("token")
    if not token:
        raise fail(
            "not signed in: run `cxgear login`, set CXGEAR_TOKEN (a session token from "
            "POST /api/v1/auth/login) or pass --token"
        )
    return httpx.Client(
        base_url=api_base_url(), headers={"Authorization": f"Bearer {token}"}, timeout=timeout
    )


def checked(response: httpx.Response) -> Any:
    """The JSON body, or exit 1 with the API's message and error code on one line."""
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "message" in body:
            problems = [
                f"{p.get('path') or p.get('field') or p.get('loc')}: {p.get('message') or p.get('msg')}"
                for p in body.get("details") or []
                if isinstance(p, dict)
            ]
            extra = f" ({'; '.join(problems)})" if problems else ""
            error_line(f"{body.get('errorCode', 'ERROR')}: {body['message']}{extra}")
        else:
            error_line(f"HTTP {response.status_code}: {response.text[:300]}")
        raise typer.Exit(1)
    return response.json() if response.content else None
