"""HTTP client for CLI commands that talk to a running CXGear API."""

from __future__ import annotations

import os
from typing import Any

import httpx
import typer
from rich.console import Console

from infra.settings import get_settings

err = Console(stderr=True)


def api_client(token: str | None = None, *, timeout: float = 60) -> httpx.Client:
    base = os.environ.get("CXGEAR_API_URL") or get_settings().public_api_url
    token = token or os.environ.get("CXGEAR_TOKEN")
    if not token:
        err.print("set CXGEAR_TOKEN (a session token from POST /api/v1/auth/login) or pass --token")
        raise typer.Exit(2)
    return httpx.Client(
        base_url=base.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=timeout
    )


def checked(response: httpx.Response) -> Any:
    """The JSON body, or exit with the API's own message and error code."""
    if response.status_code >= 400:
        try:
            body = response.json()
            err.print(
                f"[red]{body.get('errorCode', 'ERROR')}[/red]: {body.get('message', response.text)}"
            )
            for problem in body.get("details") or []:
                if isinstance(problem, dict):
                    err.print(
                        f"  {problem.get('path') or problem.get('field')}: {problem.get('message')}"
                    )
        except ValueError:
            err.print(f"[red]HTTP {response.status_code}[/red]: {response.text[:500]}")
        raise typer.Exit(1)
    return response.json() if response.content else None
