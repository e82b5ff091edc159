"""Generated from the app's routes: another organization's ids answer 404 on every route.

Lives with the engine tests because records and jobs only exist once a worker has run a job.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from temporalio.client import Client

from tests.api.test_route_contract import NOT_AN_ID, _other_org_objects, api_routes
from tests.builders import Account, api_key, make_spinner, signup, wait_job


async def _spinner(client: AsyncClient, other: Account, ids: dict[str, str]) -> str:
    definition = {"steps": [{"id": "t", "type": "tag", "disposition": "ok"}]}
    spinner = await make_spinner(client, other, project_id=ids["project_id"], definition=definition)
    return str(spinner["id"])


async def _job(client: AsyncClient, other: Account, ids: dict[str, str]) -> str:
    r = await client.post(
        f"/api/v1/spinners/{ids['spinner_id']}/run",
        json={"tableId": ids["table_id"]},
        headers=other.headers,
    )
    assert r.status_code == 201, r.text
    job = await wait_job(client, other, r.json()["id"])
    return str(job["id"])


async def _record(client: AsyncClient, other: Account, ids: dict[str, str]) -> str:
    r = await client.get(f"/api/v1/jobs/{ids['job_id']}/records", headers=other.headers)
    return str(r.json()["data"][0]["id"])


async def _schedule(client: AsyncClient, other: Account, ids: dict[str, str]) -> str:
    r = await client.post(
        f"/api/v1/spinners/{ids['spinner_id']}/schedules",
        json={"tableId": ids["table_id"], "cron": "0 3 * * *"},
        headers=other.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _secret_name(client: AsyncClient, other: Account, ids: dict[str, str]) -> str:
    r = await client.put(
        "/api/v1/vault/secrets/their_token", json={"value": "theirs"}, headers=other.headers
    )
    assert r.status_code == 201, r.text
    return "their_token"


async def _integration(client: AsyncClient, other: Account, ids: dict[str, str]) -> str:
    r = await client.post(
        "/api/v1/integrations",
        json={
            "kind": "twilio",
            "name": "theirs",
            "credentials": {"account_sid": "AC1", "auth_token": "t"},
        },
        headers=other.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _channel(client: AsyncClient, other: Account, ids: dict[str, str]) -> str:
    r = await client.post(
        "/api/v1/channels",
        json={
            "kind": "sms",
            "name": "theirs",
            "integrationId": ids["integration_id"],
            "sender": "+14155550100",
        },
        headers=other.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _do_not_contact(client: AsyncClient, other: Account, ids: dict[str, str]) -> str:
    r = await client.post(
        "/api/v1/do-not-contact", json={"address": "theirs@example.com"}, headers=other.headers
    )
    assert r.status_code == 201, r.text
    return "theirs@example.com"


async def _link(client: AsyncClient, other: Account, ids: dict[str, str]) -> str:
    definition = {"steps": [{"id": "t", "type": "tag", "disposition": "ok"}]}
    child = await make_spinner(client, other, project_id=ids["project_id"], definition=definition)
    r = await client.post(
        f"/api/v1/spinners/{ids['spinner_id']}/links",
        json={"childSpinnerId": child["id"], "kind": "callback"},
        headers=other.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


ENGINE_BUILDERS = {
    "spinner_id": _spinner,
    "job_id": _job,
    "record_id": _record,
    "schedule_uuid": _schedule,
    "name": _secret_name,
    "integration_id": _integration,
    "channel_id": _channel,
    "address": _do_not_contact,
    "link_id": _link,
}
# Secret names are looked up under the caller's own organization path in Vault, so another
# organization's name is simply a free name here: PUT creates the caller's own secret.
CREATES_IN_OWN_ORG = {("PUT", "/api/v1/vault/secrets/{name}")}


DESTRUCTIVE = "DELETE"
# Deletes run children first, the project (which takes everything with it) last.
DELETE_ORDER = ["schedules", "links", "ingest-token", "spinners", "data-tables", "projects"]


def _order(request: tuple[str, str, list[str]]) -> tuple[bool, int]:
    method, path, _ = request
    if method != DESTRUCTIVE:
        return (False, 0)
    segments = [s for s in path.split("/") if s and not s.startswith("{")]
    ranks = [DELETE_ORDER.index(s) for s in segments if s in DELETE_ORDER]
    # The last named segment is what is deleted; unnamed resources go first.
    return (True, ranks[-1] if ranks else -1)


async def _no_name(client: AsyncClient, account: Account, ids: dict[str, str]) -> str:
    return "nothing_here"


async def _no_address(client: AsyncClient, account: Account, ids: dict[str, str]) -> str:
    return "nobody@example.com"


def _fill(
    path: str, params: list[str], ids: dict[str, str], mine: dict[str, str], theirs: str
) -> str:
    """`path` with every id from `ids`, except `theirs` (one param name) from `mine`'s org."""
    for p in params:
        value = mine[p] if p != theirs and theirs else ids[p]
        path = path.replace("{" + p + "}", value)
    return path


class TestCrossOrganization:
    async def test_every_id_route_answers_404_for_another_orgs_ids(
        self, app: FastAPI, client: AsyncClient, worker: Client
    ) -> None:
        """Each request is tried by the owner too (non-404), so a wrong builder cannot pass.

        Another organization's request comes first, the owner's second: a 404 seen before the
        owner's success was not caused by the object being gone. DELETEs run last so the
        objects exist for every other route. Paths with two ids are also tried with only one
        of them foreign (`/spinners/{mine}/links/{theirs}` and the reverse).
        """
        me = await signup(client)
        my_key = await api_key(client, me, scopes=["ingest", "trigger"])
        other = await signup(client)
        their_key = await api_key(client, other, scopes=["ingest", "trigger"])
        theirs = await _other_org_objects(client, other, ENGINE_BUILDERS)
        # Secret names and addresses are the caller's own namespace: "mine" must not hold theirs.
        mine = await _other_org_objects(
            client, me, {**ENGINE_BUILDERS, "name": _no_name, "address": _no_address}
        )
        checked, mixed, wrong = 0, 0, []
        requests: list[tuple[str, str, list[str]]] = []
        for route in api_routes(app):
            if not route.path.startswith("/api/"):
                continue  # console pages get their data from these API routes, as the user
            if route.path.startswith("/api/v1/public/callbacks/"):
                continue  # authenticated by the caller's HMAC signature, which is checked first
            params = [p for p in re.findall(r"{(\w+)}", route.path) if p not in NOT_AN_ID]
            if not params:
                continue
            unknown = [p for p in params if p not in theirs]
            assert not unknown, f"{route.path}: add a builder for {unknown} in EXTRA_BUILDERS"
            for method in route.methods:
                if (method, route.path) not in CREATES_IN_OWN_ORG:
                    requests.append((method, route.path, params))
        requests.sort(key=_order)
        for method, route_path, params in requests:
            is_public = "/public/" in route_path
            as_me = {"Authorization": f"Bearer {my_key}"} if is_public else me.headers
            as_owner = {"Authorization": f"Bearer {their_key}"} if is_public else other.headers
            path = _fill(route_path, params, theirs, mine, "")
            # One foreign id among the caller's own, for each position of a multi-id path.
            partial = (
                [_fill(route_path, params, theirs, mine, p) for p in params]
                if len(params) > 1
                else []
            )
            for variant in partial:
                r = await client.request(method, variant, headers=as_me, json={})
                mixed += 1
                if r.status_code != 404:
                    wrong.append(f"mixed {method} {variant} -> {r.status_code} {r.text[:120]}")
            r = await client.request(method, path, headers=as_me, json={})
            checked += 1
            if r.status_code != 404:
                wrong.append(f"{method} {route_path} -> {r.status_code} {r.text[:120]}")
            owner = await client.request(method, path, headers=as_owner, json={})
            if owner.status_code == 404:
                wrong.append(
                    f"owner {method} {route_path} -> 404 {owner.text[:120]} (bad builder?)"
                )
        assert wrong == [], "\n".join(wrong)
        assert checked >= 10 and mixed >= 2


async def _mock_integration(client: AsyncClient, account: Account) -> str:
    r = await client.post(
        "/api/v1/integrations",
        json={"kind": "mock", "name": f"m{uuid.uuid4().hex[:6]}", "credentials": {}},
        headers=account.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _body_cases(
    mine: dict[str, str], theirs_or_unknown: dict[str, str]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, body): the caller's own objects in the path, `theirs_or_unknown` in the body."""
    x = theirs_or_unknown
    tag = uuid.uuid4().hex[:6]
    return [
        ("POST", f"/api/v1/spinners/{mine['spinner_id']}/run", {"tableId": x["table_id"]}),
        (
            "POST",
            f"/api/v1/public/trigger/{mine['spinner_id']}",
            {"dataTableId": x["table_id"]},
        ),
        (
            "POST",
            f"/api/v1/spinners/{mine['spinner_id']}/schedules",
            {"tableId": x["table_id"], "cron": "0 3 * * *"},
        ),
        (
            "POST",
            f"/api/v1/spinners/{mine['spinner_id']}/links",
            {"childSpinnerId": x["child_spinner_id"], "kind": "callback"},
        ),
        (
            "POST",
            "/api/v1/channels",
            {
                "kind": "sms",
                "name": f"c{tag}",
                "integrationId": x["integration_id"],
                "sender": "+14155550111",
            },
        ),
        (
            "POST",
            "/api/v1/users",
            {
                "fullName": "New Person",
                "email": f"p{tag}@example.com",
                "temporaryPassword": "a-long-temporary-passphrase-42",
                "roleIds": [x["role_id"]],
            },
        ),
        (
            "PUBLISH",
            f"/api/v1/projects/{mine['project_id']}/spinners",
            {"steps": [{"id": "s", "type": "sms", "channel_id": x["channel_id"], "body": "Hi"}]},
        ),
        (
            "PUBLISH",
            f"/api/v1/projects/{mine['project_id']}/spinners",
            {
                "steps": [
                    {
                        "id": "a",
                        "type": "ai_agent",
                        "integration_id": x["mock_integration_id"],
                        "role": "You are terse.",
                        "task": "Say hi",
                    }
                ]
            },
        ),
    ]


class TestIdsInBodies:
    async def test_another_orgs_ids_in_a_body_are_answered_like_unknown_ids(
        self, client: AsyncClient, worker: Client
    ) -> None:
        """The same request with the caller's own id succeeds (the positive control); with
        another organization's id it gets exactly the answer an id that exists nowhere gets."""
        me = await signup(client)
        my_key = await api_key(client, me, scopes=["ingest", "trigger"])
        other = await signup(client)
        builders = {
            "spinner_id": _spinner,
            "child_spinner_id": _spinner,
            "integration_id": _integration,
            "channel_id": _channel,
        }
        mine = await _other_org_objects(client, me, builders)
        theirs = await _other_org_objects(client, other, builders)
        mine["mock_integration_id"] = await _mock_integration(client, me)
        theirs["mock_integration_id"] = await _mock_integration(client, other)
        nowhere = {key: str(uuid.uuid4()) for key in theirs}

        async def send(method: str, path: str, body: dict[str, Any]) -> tuple[int, str]:
            headers = {"Authorization": f"Bearer {my_key}"} if "/public/" in path else me.headers
            if method != "PUBLISH":
                r = await client.request(method, path, json=body, headers=headers)
                return r.status_code, r.json().get("errorCode", "") if r.status_code >= 400 else ""
            spinner = await client.post(
                path,
                json={"name": f"S {uuid.uuid4().hex[:6]}", "definition": body},
                headers=headers,
            )
            assert spinner.status_code == 201, spinner.text
            r = await client.post(
                f"/api/v1/spinners/{spinner.json()['id']}/publish", headers=headers
            )
            return r.status_code, r.json().get("errorCode", "") if r.status_code >= 400 else ""

        wrong = []
        cases = zip(
            _body_cases(mine, mine),
            _body_cases(mine, theirs),
            _body_cases(mine, nowhere),
            strict=True,
        )
        for own, foreign, unknown in cases:
            theirs_answer = await send(*foreign)
            unknown_answer = await send(*unknown)
            own_answer = await send(*own)
            if not 200 <= own_answer[0] < 300:
                wrong.append(f"own {own[0]} {own[1]} -> {own_answer} (bad case?)")
            if not 400 <= theirs_answer[0] < 500 or theirs_answer != unknown_answer:
                wrong.append(
                    f"{foreign[0]} {foreign[1]} {foreign[2]}: another org's id -> {theirs_answer},"
                    f" an unknown id -> {unknown_answer}"
                )
        assert wrong == [], "\n".join(wrong)
