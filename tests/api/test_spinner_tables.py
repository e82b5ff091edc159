"""A spinner and the tables it runs on: records keep their job's spinner version, and templates
are checked against the metadata fields of the table a run reads, not of every table."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from tests.builders import Account, api_key, make_spinner, make_table, project, run_now, signup


def uses(field: str) -> dict[str, Any]:
    return {"steps": [{"id": "hello", "type": "log", "message": f"Calling {{{{ {field} }}}}"}]}


async def records(client: AsyncClient, admin: Account, path: str) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/{path}/records?limit=500", headers=admin.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def about(issues: list[dict[str, Any]], field: str) -> list[str]:
    return [i["message"] for i in issues if f"'{field}'" in i["message"]]


class TestRecordSpinnerVersion:
    async def test_records_show_the_version_their_job_runs(self, client: AsyncClient) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        table = await make_table(
            client, admin, project_id=p["id"], csv_text="name,phone\nAda,+14155550100\nBo,+1\n"
        )
        spinner = await make_spinner(client, admin, project_id=p["id"], definition=uses("name"))
        first = await run_now(client, admin, spinner, table)
        r = await client.patch(
            f"/api/v1/spinners/{spinner['id']}",
            json={"definition": uses("phone")},
            headers=admin.headers,
        )
        assert r.status_code == 200, r.text
        r = await client.post(f"/api/v1/spinners/{spinner['id']}/publish", headers=admin.headers)
        assert r.status_code == 201 and r.json()["version"] == 2, r.text
        second = await run_now(client, admin, spinner, table)

        assert [r["spinnerVersion"] for r in await records(client, admin, f"jobs/{first}")] == [
            1,
            1,
        ]
        assert [r["spinnerVersion"] for r in await records(client, admin, f"jobs/{second}")] == [
            2,
            2,
        ]
        listed = await records(client, admin, f"projects/{p['id']}")
        assert sorted(r["spinnerVersion"] for r in listed) == [1, 1, 2, 2]
        detail = await client.get(f"/api/v1/records/{listed[0]['id']}", headers=admin.headers)
        assert detail.json()["spinnerVersion"] == 1


class TestTemplateFieldsPerTable:
    async def tables(
        self, client: AsyncClient, admin: Account
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        p = await project(client, admin)
        contacts = await make_table(
            client, admin, project_id=p["id"], csv_text="name,phone\nAda,+14155550100\n"
        )
        plans = await make_table(
            client, admin, project_id=p["id"], csv_text="name,plan\nAda,gold\n", name="plans"
        )
        return p["id"], contacts, plans

    async def test_run_now_warns_about_a_field_of_another_table(self, client: AsyncClient) -> None:
        admin = await signup(client)
        project_id, contacts, plans = await self.tables(client, admin)
        spinner = await make_spinner(client, admin, project_id=project_id, definition=uses("plan"))
        # Saved with no table known yet: any table of the project may be the one it runs on.
        assert about(spinner["issues"], "plan") == []

        r = await client.post(
            f"/api/v1/spinners/{spinner['id']}/run",
            json={"tableId": contacts["id"]},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        assert about(r.json()["warnings"], "plan") == [
            "unknown name 'plan': it is neither a metadata field nor an output of an earlier step"
        ]
        r = await client.post(
            f"/api/v1/spinners/{spinner['id']}/run",
            json={"tableId": plans["id"]},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        assert r.json()["warnings"] == []

    async def test_schedule_and_trigger_warn_for_their_table(self, client: AsyncClient) -> None:
        admin = await signup(client)
        project_id, contacts, plans = await self.tables(client, admin)
        spinner = await make_spinner(client, admin, project_id=project_id, definition=uses("plan"))
        r = await client.post(
            f"/api/v1/spinners/{spinner['id']}/schedules",
            json={"tableId": contacts["id"], "cron": "0 2 * * *", "timezone": "UTC"},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        assert len(about(r.json()["warnings"], "plan")) == 1

        key = {"Authorization": f"Bearer {await api_key(client, admin, scopes=['trigger'])}"}
        r = await client.post(
            f"/api/v1/public/trigger/{spinner['id']}",
            json={"dataTableId": contacts["id"], "records": [{"name": "Cy", "phone": "+1"}]},
            headers=key,
        )
        assert r.status_code == 201, r.text
        assert len(about(r.json()["warnings"], "plan")) == 1
        r = await client.post(
            f"/api/v1/public/trigger/{spinner['id']}",
            json={"dataTableId": plans["id"], "records": [{"name": "Cy", "plan": "tin"}]},
            headers=key,
        )
        assert r.status_code == 201, r.text
        assert r.json()["warnings"] == []

    async def test_saved_spinner_is_checked_against_the_tables_it_runs_on(
        self, client: AsyncClient
    ) -> None:
        admin = await signup(client)
        project_id, contacts, _ = await self.tables(client, admin)
        spinner = await make_spinner(client, admin, project_id=project_id, definition=uses("plan"))
        await run_now(client, admin, spinner, contacts)
        r = await client.get(f"/api/v1/spinners/{spinner['id']}", headers=admin.headers)
        assert about(r.json()["issues"], "plan") == [
            "unknown name 'plan': it is neither a metadata field nor an output of an earlier step"
        ]
