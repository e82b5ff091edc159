"""`cxgear login` / `cxgear logout`: a session token kept in the user's config directory."""

from __future__ import annotations

import os
import platform
import sys

import httpx
import typer
from rich.console import Console

from cxgear.cli_client import (
    api_base_url,
    checked,
    forget_session,
    store_session,
    stored_session,
)

out = Console()


def login(
    email: str = typer.Option(..., "--email", "-e", prompt=True, help="Your account's email"),
    api_url: str | None = typer.Option(
        None, "--api-url", help="The API to sign in to (default: $CXGEAR_API_URL)"
    ),
    continue_here: bool = typer.Option(
        False, "--continue-here", help="End your session on another device"
    ),
) -> None:
    """Sign in and keep the session (readable by you only) for the other commands.

    The password comes from stdin, or a hidden prompt."""
    password = (
        sys.stdin.readline().rstrip("\n")
        if not sys.stdin.isatty()
        else typer.prompt("password", hide_input=True)
    )
    base = (api_url or api_base_url()).rstrip("/")
    body = {
        "email": email,
        "password": password,
        "device": f"cxgear CLI on {platform.node() or 'unknown host'}",
        "continueHere": continue_here,
    }
    with httpx.Client(base_url=base, timeout=30) as http:
        session = checked(http.post("/api/v1/auth/login", json=body))
    path = store_session(
        {
            "api_url": base,
            "token": session["token"],
            "email": email,
            "expiresAt": session["expiresAt"],
        }
    )
    out.print(f"signed in to {base} as {email} until {session['expiresAt']} (session in {path})")
    if session.get("mustChangePassword"):
        out.print("your password must be changed before anything else (in the console)")


def logout() -> None:
    """End the stored session on the server and forget it here."""
    stored = stored_session()
    if stored is None:
        out.print("not signed in")
        return
    with httpx.Client(
        base_url=os.environ.get("CXGEAR_API_URL") or stored["api_url"],
        headers={"Authorization": f"Bearer {stored['token']}"},
        timeout=30,
    ) as http:
        response = http.post("/api/v1/auth/logout")
    forget_session()
    # An expired or already ended session is still signed out; anything else is worth a word.
    if response.status_code not in (204, 401):
        checked(response)
    out.print("signed out")
