"""The spinner engine end to end: API → Temporal → worker → Postgres, with a loopback CRM."""

from __future__ import annotations

from typing import Any

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


def four_steps(crm: FakeCrm) -> dict[str, Any]:
    return {
        "steps": [
            {
                "id": "hello",
                "type": "log",
                "message": "Calling {{name}} ({{context.recordId}})",
                "next": "route",
            },
            {
                "id": "route",
                "type": "decision",
                "branches": [{"when": "amount >= 100", "label": "big", "next": "big"}],
                "default": "small",
            },
            {"id": "big", "type": "tag", "disposition": "Big", "tags": ["vip"], "next": "enrich"},
            {"id": "small", "type": "tag", "disposition": "Small", "next": "enrich"},
            {
                "id": "enrich",
                "type": "api_call",
                "method": "POST",
                "url": crm.base_url + "/contacts/{{context.recordId}}",
                "body": {"name": "{{name}}"},
                "headers": {"content-type": "application/json"},
                "outputs": {"score": "score", "tier": "contact.tier"},
            },
        ]
    }


async def setup(client: AsyncClient, rows: int) -> tuple[Account, dict[str, Any], dict[str, Any]]:
    admin = await signup(client)
    p = await project(client, admin)
    table = await make_table(client, admin, project_id=p["id"], csv_text=contacts_csv(rows))
    return admin, p, table


class TestRunNow:
    async def test_records_counts_outcomes_and_journey(
        self, client: AsyncClient, worker: Client, crm: FakeCrm
    ) -> None:
        admin, p, table = await setup(client, 30)
        spinner = await make_spinner(client, admin, project_id=p["id"], definition=four_steps(crm))
        before = len(crm.ledger.requests)
        r = await client.post(
            f"/api/v1/spinners/{spinner['id']}/run",
            json={"tableId": table["id"]},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        job = await wait_job(client, admin, r.json()["id"])
        assert job["status"] == "completed"
        assert job["counts"]["total"] == 30
        assert job["counts"]["completed"] == 30
        assert len(crm.ledger.requests) - before == 30
        records = (
            await client.get(f"/api/v1/jobs/{job['id']}/records?limit=500", headers=admin.headers)
        ).json()
        assert records["count"] == 30
        big = [x for x in records["data"] if x["disposition"] == "Big"]
        assert len(big) == 20  # amounts 100..290
        assert big[0]["outcomes"]["tags"] == ["vip"]
        assert big[0]["outcomes"]["score"] == 42
        assert big[0]["outcomes"]["tier"] == "gold"
        detail = (await client.get(f"/api/v1/records/{big[0]['id']}", headers=admin.headers)).json()
        assert detail["spinnerVersion"] == 1
        journey = (
            await client.get(f"/api/v1/records/{big[0]['id']}/journey", headers=admin.headers)
        ).json()
        labels = [s["label"] for s in journey["steps"]]
        assert labels == [
            "log · logged",
            "decision · branched",
            "tag · tagged",
            "api_call · api_called",
        ]
        assert journey["steps"][0]["messages"][0].startswith("Calling Contact")
        assert journey["output"]["disposition"] == "Big"
        again = (
            await client.get(f"/api/v1/records/{big[0]['id']}/journey", headers=admin.headers)
        ).json()
        assert again["source"] == "snapshot"
        assert again["steps"] == journey["steps"]

    async def test_filters_and_search(
        self, client: AsyncClient, worker: Client, crm: FakeCrm
    ) -> None:
        admin, p, table = await setup(client, 12)
        spinner = await make_spinner(client, admin, project_id=p["id"], definition=four_steps(crm))
        r = await client.post(
            f"/api/v1/spinners/{spinner['id']}/run",
            json={"tableId": table["id"]},
            headers=admin.headers,
        )
        job = await wait_job(client, admin, r.json()["id"])
        small = (
            await client.get(
                f"/api/v1/jobs/{job['id']}/records?disposition=Small", headers=admin.headers
            )
        ).json()
        assert small["count"] == 10
        found = (
            await client.get(
                f"/api/v1/projects/{p['id']}/records?q=Contact 11", headers=admin.headers
            )
        ).json()
        assert [x["metadata"]["name"] for x in found["data"]] == ["Contact 11"]
        page1 = (
            await client.get(f"/api/v1/jobs/{job['id']}/records?limit=5", headers=admin.headers)
        ).json()
        page2 = (
            await client.get(
                f"/api/v1/jobs/{job['id']}/records?limit=5&after={page1['nextAfter']}",
                headers=admin.headers,
            )
        ).json()
        first, second = [x["id"] for x in page1["data"]], [x["id"] for x in page2["data"]]
        # Two full pages, no overlap, and together the first ten records in order.
        assert len(first) == 5 and len(second) == 5
        assert not set(first) & set(second)
        everything = (
            await client.get(f"/api/v1/jobs/{job['id']}/records?limit=10", headers=admin.headers)
        ).json()
        assert first + second == [x["id"] for x in everything["data"]]

    async def test_draft_cannot_run(
        self, client: AsyncClient, worker: Client, crm: FakeCrm
    ) -> None:
        admin, p, table = await setup(client, 2)
        spinner = await make_spinner(
            client, admin, project_id=p["id"], definition=four_steps(crm), publish=False
        )
        r = await client.post(
            f"/api/v1/spinners/{spinner['id']}/run",
            json={"tableId": table["id"]},
            headers=admin.headers,
        )
        assert r.status_code == 409
        assert r.json()["errorCode"] == "NOT_PUBLISHED"

    async def test_failed_step_is_recorded_and_redriven(
        self, client: AsyncClient, worker: Client, crm: FakeCrm
    ) -> None:
        admin, p, table = await setup(client, 3)
        definition = four_steps(crm)
        definition["steps"][-1]["url"] = crm.base_url + "/fail/{{context.recordId}}"
        spinner = await make_spinner(client, admin, project_id=p["id"], definition=definition)
        r = await client.post(
            f"/api/v1/spinners/{spinner['id']}/run",
            json={"tableId": table["id"]},
            headers=admin.headers,
        )
        job = await wait_job(client, admin, r.json()["id"])
        assert job["status"] == "failed"
        assert job["counts"]["failed"] == 3
        rec = (await client.get(f"/api/v1/jobs/{job['id']}/records", headers=admin.headers)).json()[
            "data"
        ][0]
        assert rec["failedStep"] == "enrich"
        assert "404" in rec["error"]
        journey = (
            await client.get(f"/api/v1/records/{rec['id']}/journey", headers=admin.headers)
        ).json()
        assert journey["steps"][-1]["label"] == "api_call · failed"
        assert journey["steps"][-1]["attempts"] == 1  # a 404 is not retried
        # Fix the spinner? Re-drive re-runs the failed step with the same frozen version.
        calls_before = len(crm.ledger.requests)
        r = await client.post(f"/api/v1/jobs/{job['id']}/redrive", json={}, headers=admin.headers)
        assert r.status_code == 200, r.text
        job = await wait_job(client, admin, job["id"])
        assert job["counts"]["failed"] == 3
        assert len(crm.ledger.requests) - calls_before == 3
        journey = (
            await client.get(f"/api/v1/records/{rec['id']}/journey", headers=admin.headers)
        ).json()
        # From the failed step: the log/decision/tag steps did not run again.
        assert [s["label"] for s in journey["steps"]] == ["api_call · failed"]


class TestVersions:
    async def test_publish_is_frozen_and_numbered(
        self, client: AsyncClient, worker: Client, crm: FakeCrm
    ) -> None:
        admin, p, _ = await setup(client, 1)
        spinner = await make_spinner(client, admin, project_id=p["id"], definition=four_steps(crm))
        again = await client.post(
            f"/api/v1/spinners/{spinner['id']}/publish", headers=admin.headers
        )
        assert again.json()["version"] == 1  # unchanged draft: no new version
        changed = four_steps(crm)
        changed["steps"][0]["message"] = "v2 {{name}}"
        await client.patch(
            f"/api/v1/spinners/{spinner['id']}", json={"definition": changed}, headers=admin.headers
        )
        v2 = await client.post(f"/api/v1/spinners/{spinner['id']}/publish", headers=admin.headers)
        assert v2.json()["version"] == 2
        versions = (
            await client.get(f"/api/v1/spinners/{spinner['id']}/versions", headers=admin.headers)
        ).json()
        assert [v["version"] for v in versions["data"]] == [1, 2]
        assert versions["data"][0]["definition"]["steps"][0]["message"].startswith("Calling")

    async def test_invalid_draft_cannot_publish(self, client: AsyncClient, worker: Client) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        bad = {"steps": [{"id": "a", "type": "log", "message": "x", "next": "nowhere"}]}
        spinner = await make_spinner(
            client, admin, project_id=p["id"], definition=bad, publish=False
        )
        assert any("nowhere" in i["message"] for i in spinner["issues"])
        r = await client.post(f"/api/v1/spinners/{spinner['id']}/publish", headers=admin.headers)
        assert r.status_code == 422
        assert "nowhere" in r.json()["message"]
