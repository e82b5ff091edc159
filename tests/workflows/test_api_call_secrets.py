"""`api_call` with a bearer token and headers from named Vault secrets: sent, never shown."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from httpx import AsyncClient
from temporalio.client import Client

from tests.builders import (
    Account,
    contacts_csv,
    make_spinner,
    make_table,
    project,
    signup,
    wait_job,
)
from tests.fakes.crm_api import FakeCrm


async def put_secret(client: AsyncClient, admin: Account, name: str, value: str) -> None:
    r = await client.put(
        f"/api/v1/vault/secrets/{name}", json={"value": value}, headers=admin.headers
    )
    assert r.status_code in (200, 201), r.text


def calling(crm: FakeCrm, marker: str, **auth: Any) -> dict[str, Any]:
    return {
        "steps": [
            {
                "id": "call",
                "type": "api_call",
                "method": "GET",
                "url": crm.base_url + f"/{marker}/{{{{context.recordId}}}}",
                **auth,
                "next": "done",
            },
            {"id": "done", "type": "tag", "disposition": "Called"},
        ]
    }


class TestSecretsInApiCalls:
    async def test_bearer_and_secret_headers_reach_the_api_and_nothing_else(
        self, client: AsyncClient, worker: Client, crm: FakeCrm
    ) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        table = await make_table(client, admin, project_id=p["id"], csv_text=contacts_csv(3))
        token, key = f"tok-{uuid.uuid4().hex}", f"key-{uuid.uuid4().hex}"
        await put_secret(client, admin, "crm_token", token)
        await put_secret(client, admin, "crm_key", key)
        marker = uuid.uuid4().hex[:8]
        spinner = await make_spinner(
            client,
            admin,
            project_id=p["id"],
            definition=calling(
                crm, marker, bearer_secret="crm_token", secret_headers={"X-Api-Key": "crm_key"}
            ),
        )
        r = await client.post(
            f"/api/v1/spinners/{spinner['id']}/run",
            json={"tableId": table["id"]},
            headers=admin.headers,
        )
        job = await wait_job(client, admin, r.json()["id"])
        assert job["status"] == "completed"
        sent = [q for q in crm.ledger.requests if q["path"].startswith(f"/{marker}/")]
        assert len(sent) == 3
        for request in sent:
            headers = {k.lower(): v for k, v in request["headers"].items()}
            assert headers["authorization"] == f"Bearer {token}"
            assert headers["x-api-key"] == key
        recs = (
            await client.get(f"/api/v1/jobs/{job['id']}/records", headers=admin.headers)
        ).json()["data"]
        journey = await client.get(
            f"/api/v1/records/{recs[0]['id']}/journey", headers=admin.headers
        )
        assert journey.status_code == 200
        for shown in (journey.text, repr(recs)):
            assert token not in shown and key not in shown

    async def test_a_missing_secret_fails_the_record_with_a_clear_error(
        self, client: AsyncClient, worker: Client, crm: FakeCrm
    ) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        table = await make_table(client, admin, project_id=p["id"], csv_text=contacts_csv(1))
        marker = uuid.uuid4().hex[:8]
        spinner = await make_spinner(
            client,
            admin,
            project_id=p["id"],
            definition=calling(crm, marker, bearer_secret="not_there"),
        )
        r = await client.post(
            f"/api/v1/spinners/{spinner['id']}/run",
            json={"tableId": table["id"]},
            headers=admin.headers,
        )
        job = await wait_job(client, admin, r.json()["id"])
        assert job["status"] == "failed"
        rec = (await client.get(f"/api/v1/jobs/{job['id']}/records", headers=admin.headers)).json()[
            "data"
        ][0]
        assert rec["error"] == "step call: secret 'not_there' is not in the vault"
        assert rec["failedStep"] == "call"
        assert not [q for q in crm.ledger.requests if q["path"].startswith(f"/{marker}/")]


class TestEncodedBodies:
    async def test_json_form_and_query_values_are_encoded_not_spliced(
        self, client: AsyncClient, worker: Client, crm: FakeCrm
    ) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        name = 'Dwayne "The Rock" Johnson & Co #1\nline two'
        csv_text = f'name,amount\n"{name.replace(chr(34), chr(34) * 2)}",72\n'
        table = await make_table(client, admin, project_id=p["id"], csv_text=csv_text)
        marker = uuid.uuid4().hex[:8]
        post = {"id": "json", "type": "api_call", "method": "POST"}
        definition = {
            "steps": [
                {
                    **post,
                    "url": crm.base_url + f"/{marker}/json",
                    "query": {"who": "{{name}}"},
                    "body": {
                        "name": "{{name}}",
                        "amount": "{{ amount | int }}",
                        "tags": ["vip", "{{name}}"],
                        "raw": True,
                    },
                    "next": "form",
                },
                {
                    **post,
                    "id": "form",
                    "url": crm.base_url + f"/{marker}/form",
                    "form": {"name": "{{name}}"},
                    "next": "done",
                },
                {"id": "done", "type": "tag", "disposition": "Sent"},
            ]
        }
        spinner = await make_spinner(client, admin, project_id=p["id"], definition=definition)
        r = await client.post(
            f"/api/v1/spinners/{spinner['id']}/run",
            json={"tableId": table["id"]},
            headers=admin.headers,
        )
        job = await wait_job(client, admin, r.json()["id"])
        assert job["status"] == "completed"
        sent = {q["path"].split("?")[0]: q for q in crm.ledger.requests if marker in q["path"]}
        as_json = sent[f"/{marker}/json"]
        headers = {k.lower(): v for k, v in as_json["headers"].items()}
        assert headers["content-type"] == "application/json"
        assert json.loads(as_json["body"]) == {
            "name": name,
            "amount": 72,
            "tags": ["vip", name],
            "raw": True,
        }
        query = parse_qs(urlsplit(as_json["path"]).query)
        assert query == {"who": [name]}
        form = sent[f"/{marker}/form"]
        assert {k.lower(): v for k, v in form["headers"].items()}["content-type"] == (
            "application/x-www-form-urlencoded"
        )
        assert parse_qs(form["body"]) == {"name": [name]}

    async def test_a_json_string_body_with_templates_is_refused_at_publish(
        self, client: AsyncClient, crm: FakeCrm
    ) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        step = {
            "id": "json",
            "type": "api_call",
            "method": "POST",
            "url": crm.base_url + "/x",
            "body": '{"name": "{{name}}"}',  # a string: the form the publish check refuses
        }
        spinner = await make_spinner(
            client, admin, project_id=p["id"], definition={"steps": [step]}, publish=False
        )
        r = await client.post(f"/api/v1/spinners/{spinner['id']}/publish", headers=admin.headers)
        assert r.status_code == 422, r.text
        assert "written as an object" in r.text
