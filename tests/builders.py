"""Small keyword-only builders for API tests."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from httpx import AsyncClient, Response

from infra.callback_signing import sign_callback
from tests.fakes.signed import SignedRequest

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
            "fullName": "Ada Admin",
            "organizationName": org or f"Org {uuid.uuid4().hex[:6]}",
            "email": email,
            "password": PASSWORD,
        },
        headers={"User-Agent": device},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    account = Account(body["token"], body["orgId"], body["userId"], email)
    if body["mustChangePassword"]:
        # An invited user's first act. The "new" password is the same text so a test's later
        # logins keep using PASSWORD; the product only asks that it be changed, and strong.
        r = await client.post(
            "/api/v1/auth/password",
            json={"currentPassword": PASSWORD, "newPassword": PASSWORD},
            headers=account.headers,
        )
        assert r.status_code == 204, r.text
    return account


async def role_id(client: AsyncClient, account: Account, name: str) -> str:
    r = await client.get("/api/v1/roles", headers=account.headers)
    assert r.status_code == 200, r.text
    return str(next(x["id"] for x in r.json()["data"] if x["name"] == name))


async def invite(
    client: AsyncClient, admin: Account, *, roles: list[str], email: str | None = None
) -> dict[str, Any]:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    ids = [await role_id(client, admin, r) for r in roles]
    r = await client.post(
        "/api/v1/users",
        json={
            "fullName": "Uma User",
            "email": email,
            "temporaryPassword": PASSWORD,
            "roleIds": ids,
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
        json={"email": email, "password": PASSWORD, "continueHere": continue_here},
        headers={"User-Agent": device},
    )


async def as_user(client: AsyncClient, email: str) -> Account:
    r = await login(client, email)
    assert r.status_code == 200, r.text
    body = r.json()
    account = Account(body["token"], body["orgId"], body["userId"], email)
    if body["mustChangePassword"]:
        # An invited user's first act. The "new" password is the same text so a test's later
        # logins keep using PASSWORD; the product only asks that it be changed, and strong.
        r = await client.post(
            "/api/v1/auth/password",
            json={"currentPassword": PASSWORD, "newPassword": PASSWORD},
            headers=account.headers,
        )
        assert r.status_code == 204, r.text
    return account


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


async def make_table(
    client: AsyncClient, account: Account, *, project_id: str, csv_text: str, name: str = "contacts"
) -> dict[str, Any]:
    r = await client.post(
        f"/api/v1/projects/{project_id}/data-tables", json={"name": name}, headers=account.headers
    )
    assert r.status_code == 201, r.text
    table = dict(r.json())
    r = await client.post(
        f"/api/v1/data-tables/{table['id']}/import",
        files={"file": ("rows.csv", csv_text.encode(), "text/csv")},
        headers=account.headers,
    )
    assert r.status_code in (200, 201), r.text
    return table


def contacts_csv(n: int, *, extra: str = "") -> str:
    lines = ["name,phone,amount,tz" + (f",{extra}" if extra else "")]
    for i in range(n):
        lines.append(f"Contact {i},+1415555{i:04d},{i * 10},Europe/Paris" + (",x" if extra else ""))
    return "\n".join(lines) + "\n"


async def make_spinner(
    client: AsyncClient,
    account: Account,
    *,
    project_id: str,
    definition: dict[str, Any],
    publish: bool = True,
    name: str | None = None,
) -> dict[str, Any]:
    r = await client.post(
        f"/api/v1/projects/{project_id}/spinners",
        json={"name": name or f"S {uuid.uuid4().hex[:6]}", "definition": definition},
        headers=account.headers,
    )
    assert r.status_code == 201, r.text
    spinner = dict(r.json())
    if publish:
        p = await client.post(f"/api/v1/spinners/{spinner['id']}/publish", headers=account.headers)
        assert p.status_code == 201, p.text
    return spinner


async def run_now(
    client: AsyncClient, account: Account, spinner: dict[str, Any], table: dict[str, Any]
) -> str:
    """Run now of a published spinner over a table; the new job's id."""
    r = await client.post(
        f"/api/v1/spinners/{spinner['id']}/run",
        json={"tableId": table["id"]},
        headers=account.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def start_job(
    client: AsyncClient, definition: dict[str, Any], rows: int
) -> tuple[Account, str]:
    """A new organization runs a published spinner over `rows` contacts: (admin, job id)."""
    admin = await signup(client)
    p = await project(client, admin)
    table = await make_table(client, admin, project_id=p["id"], csv_text=contacts_csv(rows))
    spinner = await make_spinner(client, admin, project_id=p["id"], definition=definition)
    return admin, await run_now(client, admin, spinner, table)


async def wait_job(
    client: AsyncClient,
    account: Account,
    job_id: str,
    *,
    timeout: float = 60,
    until: tuple[str, ...] = (),
) -> dict[str, Any]:
    import asyncio
    import time

    ends = until or ("completed", "partial", "failed", "cancelled")
    deadline = time.monotonic() + timeout
    while True:
        job = (await client.get(f"/api/v1/jobs/{job_id}", headers=account.headers)).json()
        if job["status"] in ends:
            return dict(job)
        assert time.monotonic() < deadline, f"job did not reach {ends}: {job}"
        await asyncio.sleep(0.2)


async def callback_secret(client: AsyncClient, admin: Account) -> str:
    """Create (or rotate) the organization's record-callback secret; the one time it is shown."""
    r = await client.post("/api/v1/callbacks/secret/rotate", headers=admin.headers)
    assert r.status_code == 201, r.text
    secret: str = r.json()["secret"]
    return secret


def signed_callback(
    secret: str,
    callback_url: str,
    payload: Any,
    *,
    msg_id: str | None = None,
    timestamp: int | None = None,
) -> SignedRequest:
    """A record callback as a sender signs it (Standard Webhooks), ready to POST."""
    body = json.dumps(payload).encode()
    headers = sign_callback(
        secret,
        msg_id or f"msg_{uuid.uuid4().hex}",
        int(time.time()) if timestamp is None else timestamp,
        body,
    )
    headers["content-type"] = "application/json"
    return SignedRequest(callback_url, headers, body, json_body=payload)


async def post_signed(client: AsyncClient, req: SignedRequest) -> Response:
    """Deliver a signed request through the ASGI client (its path; the host is the app's)."""
    return await client.post(req.path, content=req.body, headers=req.headers)
