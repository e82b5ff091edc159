"""Generated from the app's routes: every route declares its access, and ids never cross organizations."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, _iter_routes_with_context
from httpx import AsyncClient

from api.console.pages import ConsolePage
from api.deps import PublicRoute, RequireApiKey, RequirePermission, RequireSignedIn
from tests.builders import Account, invite, project, role_id

# Console pages get their data from API routes called as the user (api/console/api_client.py).
ACCESS_MARKERS = (RequirePermission, RequireApiKey, PublicRoute, RequireSignedIn, ConsolePage)
# Path words that name no object of an organization (a token, a webhook kind such as "status").
NOT_AN_ID = {"token", "kind"}


def _calls(dependant: Any) -> list[Any]:
    found = [dependant.call]
    for sub in dependant.dependencies:
        found.extend(_calls(sub))
    return found


def api_routes(app: FastAPI) -> list[Any]:
    """Every API route with its full path, dependencies and methods (FastAPI nests included routers)."""
    found: list[Any] = []
    for route, context in _iter_routes_with_context(app.routes):
        if context is not None and isinstance(route, APIRoute):
            found.append(context)
        elif isinstance(route, APIRoute):
            found.append(route)
    return found


class TestAccessDeclared:
    async def test_every_route_declares_its_permission(self, app: FastAPI) -> None:
        missing = [
            f"{sorted(r.methods)} {r.path}"
            for r in api_routes(app)
            if not any(isinstance(c, ACCESS_MARKERS) for c in _calls(r.dependant))
        ]
        assert missing == []

    async def test_no_dependency_runs_in_the_thread_pool(self, app: FastAPI) -> None:
        # FastAPI runs a plain function or class in its thread pool: a hop per request that cost
        # about a tenth of the API's CPU under load (bench_load). `in_event_loop` wraps a class.
        def on_loop(call: Any) -> bool:
            method = getattr(call, "__call__", None)  # noqa: B004 - an instance's __call__
            return any(
                inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f)
                for f in (call, method)
            )

        in_pool = {
            f"{getattr(c, '__module__', '?')}.{getattr(c, '__qualname__', c)}"
            for r in api_routes(app)
            for c in _calls(r.dependant)[1:]
            if c is not None and not on_loop(c)
        }
        assert in_pool == set()

    async def test_permission_keys_are_known(self, app: FastAPI) -> None:
        from models.permissions import PERMISSIONS

        used = {
            c.permission
            for r in api_routes(app)
            for c in _calls(r.dependant)
            if isinstance(c, RequirePermission)
        }
        assert used and used <= set(PERMISSIONS)


async def _other_org_objects(
    client: AsyncClient, other: Account, builders: dict[str, Any] | None = None
) -> dict[str, str]:
    user = await invite(client, other, roles=["Agent"])
    key_r = await client.post(
        "/api/v1/api-keys", json={"name": "k", "scopes": ["ingest"]}, headers=other.headers
    )
    p = await project(client, other)
    ids: dict[str, str] = {
        "user_id": user["id"],
        "role_id": await role_id(client, other, "Agent"),
        "key_id": key_r.json()["id"],
        "project_id": p["id"],
    }
    for name, build in {**EXTRA_BUILDERS, **(builders or {})}.items():
        ids[name] = await build(client, other, ids)
    return ids


# Later resources register a builder for their path parameter here.
EXTRA_BUILDERS: dict[str, Callable[[AsyncClient, Account, dict[str, str]], Awaitable[str]]] = {}


async def _data_table(client: AsyncClient, other: Account, ids: dict[str, str]) -> str:
    r = await client.post(
        f"/api/v1/projects/{ids['project_id']}/data-tables",
        json={"name": "theirs"},
        headers=other.headers,
    )
    assert r.status_code == 201, r.text
    table_id = str(r.json()["id"])
    # With rows, a route that forgot the organization check would answer 200, not 409.
    r = await client.post(
        f"/api/v1/data-tables/{table_id}/import",
        content=b"name,phone\nAda,+14155550100\n",
        headers={**other.headers, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    return table_id


EXTRA_BUILDERS["table_id"] = _data_table


async def _call_project(client: AsyncClient, other: Account, ids: dict[str, str]) -> str:
    return str((await project(client, other, type="call_analyzer"))["id"])


async def _call_tag(client: AsyncClient, other: Account, ids: dict[str, str]) -> str:
    r = await client.post(
        f"/api/v1/projects/{ids['call_project_id']}/call-tags",
        json={"kind": "bag_of_words", "name": "theirs", "phrases": ["hello"]},
        headers=other.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _scorecard(client: AsyncClient, other: Account, ids: dict[str, str]) -> str:
    r = await client.post(
        f"/api/v1/projects/{ids['call_project_id']}/scorecards",
        json={
            "name": "theirs",
            "questions": [{"id": "q", "text": "Said hello", "points": 1, "condition": "theirs"}],
        },
        headers=other.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _analysed_call(client: AsyncClient, other: Account, ids: dict[str, str]) -> str:
    """Written as the pipeline's activity writes it (there is no API route creating one)."""
    import secrets
    import uuid

    from store.calls import NewAnalysedCall, save_analysed_call

    app = client._transport.app  # type: ignore[attr-defined]  # the ASGI app under test
    async with app.state.engine.begin() as conn:
        new = NewAnalysedCall(
            org_id=uuid.UUID(other.org_id),
            project_id=uuid.UUID(ids["call_project_id"]),
            record_id=secrets.randbelow(10**15) + 1,
            transcript=[],
            tags={},
        )
        return str(await save_analysed_call(conn, new))


EXTRA_BUILDERS["call_project_id"] = _call_project
EXTRA_BUILDERS["tag_id"] = _call_tag
EXTRA_BUILDERS["scorecard_id"] = _scorecard
EXTRA_BUILDERS["analysed_call_id"] = _analysed_call
