"""Small keyword-only builders for API tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from httpx import AsyncClient

PASSWORD = "Correct-Horse-9-battery"


@dataclass
class Account:
    token: str
    org_id: str
    user_id: str
    email: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def signup(
    client: AsyncClient, *, org: str | None = None, email: str | None = None, device: str = "pytest"
) -> Account:
    email = email or f"admin-{uuid.uuid4().hex[:10]}@example.com"
    r = await client.post(
        "/api/v1/auth/signup",
        json={
            "full_name": "Ada Admin",
            "organization_name": org or f"Org {uuid.uuid4().hex[:6]}",
            "email": email,
            "password": PASSWORD,
        },
        headers={"User-Agent": device},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    return Account(body["token"], body["org_id"], body["user_id"], email)


async def role_id(client: AsyncClient, account: Account, name: str) -> str:
    r = await client.get("/api/v1/roles", headers=account.headers)
    assert r.status_code == 200, r.text
    return next(x["id"] for x in r.json()["data"] if x["name"] == name)


async def invite(
    client: AsyncClient, admin: Account, *, roles: list[str], email: str | None = None
) -> dict[str, Any]:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    ids = [await role_id(client, admin, r) for r in roles]
    r = await client.post(
        "/api/v1/users",
        json={
            "full_name": "Uma User",
            "email": email,
            "temporary_password": PASSWORD,
            "role_ids": ids,
        },
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def login(
    client: AsyncClient, email: str, *, device: str = "pytest", continue_here: bool = False
) -> Any:
    return await client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": PASSWORD, "continue_here": continue_here},
        headers={"User-Agent": device},
    )


async def as_user(client: AsyncClient, email: str) -> Account:
    r = await login(client, email)
    assert r.status_code == 200, r.text
    body = r.json()
    return Account(body["token"], body["org_id"], body["user_id"], email)


async def api_key(client: AsyncClient, admin: Account, *, scopes: list[str]) -> str:
    r = await client.post(
        "/api/v1/api-keys", json={"name": "machine", "scopes": scopes}, headers=admin.headers
    )
    assert r.status_code == 201, r.text
    return str(r.json()["secret"])


async def project(
    client: AsyncClient, account: Account, *, type: str = "outreach"
) -> dict[str, Any]:
    r = await client.post(
        "/api/v1/projects",
        json={"name": f"P {uuid.uuid4().hex[:6]}", "type": type},
        headers=account.headers,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())
