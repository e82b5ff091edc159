"""`cxgear spinners apply/export`, `cxgear run --watch` and `cxgear journey` against a live API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from httpx import AsyncClient
from temporalio.client import Client
from typer.testing import CliRunner

from cxgear.cli import app as cli
from infra.settings import Settings
from tests.api.test_data_tables import live_api
from tests.builders import Account, contacts_csv, make_table, project, signup

runner = CliRunner()

SPINNER_YAML = """\
name: Greeter
description: Greets and tags
definition:
  steps:
    - id: hello
      type: log
      message: "Hello {{name}}"
      next: route
    - id: route
      type: decision
      branches:
        - when: amount >= 20
          label: big
          next: big
      default: small
    - id: big
      type: tag
      disposition: Big
    - id: small
      type: tag
      disposition: Small
"""


@pytest.fixture(scope="module")
def api_url(settings: Settings) -> Iterator[str]:
    with live_api(settings) as url:
        yield url


async def cx(api_url: str, account: Account, *args: str) -> tuple[int, str]:
    # In a thread: the in-process worker shares this event loop and must keep running meanwhile.
    result = await asyncio.to_thread(
        runner.invoke,
        cli,
        list(args),
        env={"CXGEAR_API_URL": api_url, "CXGEAR_TOKEN": account.token, "COLUMNS": "200"},
    )
    return result.exit_code, result.output


class TestSpinnersAsCode:
    async def test_apply_twice_changes_nothing_then_run_watch_and_journey(
        self, client: AsyncClient, worker: Client, api_url: str, tmp_path: Path
    ) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        table = await make_table(client, admin, project_id=p["id"], csv_text=contacts_csv(4))
        spec = tmp_path / "greeter.yml"
        spec.write_text(SPINNER_YAML)
        code, out = await cx(
            api_url, admin, "spinners", "apply", str(spec), "--project", p["id"], "--publish"
        )
        assert code == 0, out
        assert "created spinner" in out and "published version 1" in out
        code, out = await cx(
            api_url, admin, "spinners", "apply", str(spec), "--project", p["id"], "--publish"
        )
        assert code == 0, out
        assert "unchanged" in out and "already published as version 1" in out
        spinners = (
            await client.get(f"/api/v1/projects/{p['id']}/spinners", headers=admin.headers)
        ).json()
        assert spinners["count"] == 1
        spinner_id = spinners["data"][0]["id"]
        exported = tmp_path / "exported.yml"
        code, out = await cx(api_url, admin, "spinners", "export", spinner_id, "-o", str(exported))
        assert code == 0, out
        code, out = await cx(api_url, admin, "spinners", "apply", str(exported), "--publish")
        assert code == 0, out
        assert "unchanged" in out

        code, out = await cx(api_url, admin, "run", spinner_id, "--table", table["id"], "--watch")
        assert code == 0, out
        assert "job completed: 4 completed, 0 failed" in out
        job = (await client.get(f"/api/v1/projects/{p['id']}/jobs", headers=admin.headers)).json()[
            "data"
        ][0]
        rec = (await client.get(f"/api/v1/jobs/{job['id']}/records", headers=admin.headers)).json()[
            "data"
        ][-1]
        code, out = await cx(api_url, admin, "journey", str(rec["id"]))
        assert code == 0, out
        assert "log · logged" in out and "decision · branched" in out and "Big" in out

    async def test_invalid_yaml_is_reported(
        self, client: AsyncClient, api_url: str, tmp_path: Path
    ) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        spec = tmp_path / "bad.yml"
        spec.write_text(SPINNER_YAML.replace("next: route", "next: nowhere"))
        code, out = await cx(
            api_url, admin, "spinners", "apply", str(spec), "--project", p["id"], "--publish"
        )
        assert code == 1
        assert "nowhere" in out


class TestJobsRecordsSchedulesCli:
    async def test_jobs_records_and_schedules(
        self, client: AsyncClient, worker: Client, api_url: str, tmp_path: Path
    ) -> None:
        admin = await signup(client)
        p = await project(client, admin)
        table = await make_table(client, admin, project_id=p["id"], csv_text=contacts_csv(4))
        spec = tmp_path / "greeter.yml"
        spec.write_text(SPINNER_YAML)
        code, out = await cx(
            api_url, admin, "spinners", "apply", str(spec), "--project", p["id"], "--publish"
        )
        assert code == 0, out
        code, out = await cx(api_url, admin, "spinners", "list", "-p", p["id"], "--json")
        spinner_id = json.loads(out)[0]["id"]
        code, out = await cx(api_url, admin, "run", spinner_id, "--table", table["id"], "--watch")
        assert code == 0 and "job completed: 4 completed" in out, out

        code, out = await cx(api_url, admin, "jobs", "list", "-p", p["name"], "--json")
        jobs = json.loads(out)
        assert [(j["status"], j["counts"]["completed"]) for j in jobs] == [("completed", 4)]
        job_id = jobs[0]["id"]
        code, out = await cx(api_url, admin, "jobs", "show", job_id)
        assert code == 0 and job_id in out and "4/4" in out
        # A finished job cannot be paused: the API's refusal is one line, exit 1.
        code, out = await cx(api_url, admin, "jobs", "pause", job_id)
        assert code == 1 and len(out.strip().splitlines()) == 1, out

        code, out = await cx(
            api_url, admin, "records", "list", "--job", job_id, "--disposition", "Big", "--json"
        )
        assert code == 0, out
        big = json.loads(out)
        assert big["count"] == 2 and {r["disposition"] for r in big["data"]} == {"Big"}
        code, out = await cx(
            api_url,
            admin,
            "records",
            "list",
            "-p",
            p["id"],
            "--status",
            "completed",
            "--limit",
            "3",
        )
        assert code == 0 and "3 of 4 records; next page: --after" in out, out
        code, out = await cx(api_url, admin, "records", "list")
        assert code == 2 and "--job or --project" in out

        code, out = await cx(
            api_url,
            admin,
            "schedules",
            "create",
            spinner_id,
            "--table",
            table["id"],
            "--cron",
            "0 9 * * 1",
            "--json",
        )
        assert code == 0, out
        schedule_id = json.loads(out)["id"]
        code, out = await cx(api_url, admin, "schedules", "pause", schedule_id)
        assert code == 0 and "is paused" in out
        code, out = await cx(api_url, admin, "schedules", "list", spinner_id, "--json")
        assert [(s["id"], s["paused"]) for s in json.loads(out)] == [(schedule_id, True)]
        code, out = await cx(api_url, admin, "schedules", "resume", schedule_id)
        assert code == 0 and "is active" in out
        code, out = await cx(api_url, admin, "schedules", "delete", schedule_id)
        assert code == 0
        code, out = await cx(api_url, admin, "schedules", "list", spinner_id, "--json")
        assert json.loads(out) == []
