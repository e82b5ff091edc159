"""Generated from the app's routes: every route declares its access, and ids never cross organizations."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from httpx import AsyncClient

from api.deps import PublicRoute, RequireApiKey, RequirePermission, RequireSignedIn
from tests.builders import Account, api_key, invite, project, role_id, signup

ACCESS_MARKERS = (RequirePermission, RequireApiKey, PublicRoute, RequireSignedIn)
NOT_AN_ID = {"token"}


def _calls(dependant: Any) -> list[Any]:
    found = [dependant.call]
    for sub in dependant.dependencies:
        found.extend(_calls(sub))
    return found


def api_routes(app: FastAPI) -> list[APIRoute]:
    return [r for r in app.routes if isinstance(r, APIRoute)]


class TestAccessDeclared:
    async def test_every_route_declares_its_permission(self, app: FastAPI) -> None:
        missing = [
            f"{sorted(r.methods)} {r.path}"
            for r in api_routes(app)
            if not any(isinstance(c, ACCESS_MARKERS) for c in _calls(r.dependant))
        ]
        assert missing == []

    async def test_permission_keys_are_known(self, app: FastAPI) -> None:
        from models.permissions import PERMISSIONS

        used = {
            c.permission
            for r in api_routes(app)
            for c in _calls(r.dependant)
            if isinstance(c, RequirePermission)
        }
        assert used and used <= set(PERMISSIONS)


async def _other_org_objects(client: AsyncClient, other: Account) -> dict[str, str]:
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
    for name, build in EXTRA_BUILDERS.items():
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


class TestCrossOrganization:
    async def test_every_id_route_answers_404_for_another_orgs_ids(
        self, app: FastAPI, client: AsyncClient
    ) -> None:
        me = await signup(client)
        key = await api_key(client, me, scopes=["ingest", "trigger"])
        other = await signup(client)
        theirs = await _other_org_objects(client, other)
        checked, wrong = 0, []
        for route in api_routes(app):
            params = [p for p in re.findall(r"{(\w+)}", route.path) if p not in NOT_AN_ID]
            if not params:
                continue
            unknown = [p for p in params if p not in theirs]
            assert not unknown, f"{route.path}: add a builder for {unknown} in EXTRA_BUILDERS"
            path = route.path
            for p in params:
                path = path.replace("{" + p + "}", theirs[p])
            is_public = "/public/" in route.path
            headers = {"Authorization": f"Bearer {key}"} if is_public else me.headers
            for method in route.methods:
                r = await client.request(method, path, headers=headers, json={})
                checked += 1
                if r.status_code != 404:
                    wrong.append(f"{method} {route.path} -> {r.status_code} {r.text[:120]}")
        assert wrong == []
        assert checked >= 10
