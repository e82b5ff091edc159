"""Every records query the API issues reads `record` through an index on a million records."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.sql import ClauseElement

from cxgear.stack.ports import free_port
from infra.settings import Settings
from store.progress import PROGRESS_SQL
from store.records import (
    RecordFilter,
    capped_count_query,
    children_query,
    explain,
    matching_query,
    page_query,
)
from tests.builders import Account, make_spinner, project, signup
from tests.conftest import make_settings

ROWS = 1_000_000
SMALL_JOB = 5_000  # records 1..5,000; the big job 5,001..600,000; another organization the rest
BIG_JOB_END = 600_000


@pytest.fixture(scope="module")
def settings(database_url: str, openbao_server: Any) -> Settings:
    return make_settings(
        database_url=database_url,
        temporal_address=f"127.0.0.1:{free_port()}",
        vault_address=openbao_server.address,
        vault_token=openbao_server.token,
        archive_journeys=False,
    )


async def tenant(client: AsyncClient) -> tuple[Account, str, str]:
    admin = await signup(client)
    p = await project(client, admin)
    definition = {"steps": [{"id": "done", "type": "tag", "disposition": "Done"}]}
    spinner = await make_spinner(client, admin, project_id=p["id"], definition=definition)
    return admin, p["id"], spinner["id"]


JOB_SQL = text(
    "insert into job (id, org_id, project_id, spinner_id, spinner_version_id, spinner_version,"
    " status, trigger, metadata_fields, only_new, total, created_at)"
    " select :id, v.org_id, :project, v.spinner_id, v.id, v.version, 'running', 'manual', '[]',"
    " false, :total, now() from spinner_version v where v.spinner_id = :spinner"
)

# One statement: statuses, dispositions, metadata and a few supporting children, spread the way a
# long-lived installation has them (mostly finished, a sliver failed or still pending).
RECORDS_SQL = text(
    "insert into record (org_id, job_id, project_id, row_id, status, disposition, metadata,"
    " outcomes, attempts, created_at, parent_record_id)"
    " select case when g <= :big_end then cast(:org_a as uuid) else cast(:org_b as uuid) end,"
    "  case when g <= :small then cast(:small_job as uuid) when g <= :big_end"
    "   then cast(:big_job as uuid) else cast(:other_job as uuid) end,"
    "  case when g <= :big_end then cast(:project_a as uuid) else cast(:project_b as uuid) end,"
    "  g,"
    "  case when g % 100 = 0 then 'failed' when g % 97 = 0 then 'pending'"
    "   when g % 89 = 0 then 'waiting' when g % 83 = 0 then 'running' else 'completed' end,"
    "  case when g % 50 = 0 then 'Retry' when g % 3 = 0 then 'Done' end,"
    "  jsonb_build_object('name', 'Contact ' || g, 'phone', '+1415' || lpad(g::text, 7, '0')),"
    "  '{}', 0, now(),"
    "  case when g % 10000 = 1 and g > 1 then g - 1 end"
    " from generate_series(1, :rows) g"
)


@pytest.fixture(scope="module")
async def million(client_module: AsyncClient, app: FastAPI) -> dict[str, Any]:
    admin_a, project_a, spinner_a = await tenant(client_module)
    admin_b, project_b, spinner_b = await tenant(client_module)
    org_a, org_b = admin_a.org_id, admin_b.org_id
    jobs = {name: uuid.uuid4() for name in ("small", "big", "other")}
    async with app.state.engine.begin() as conn:
        # Loaded the way a restore is: indexes rebuilt once after the rows (from their own
        # definitions, so they are exactly the migration's) and foreign keys not re-checked
        # row by row — seconds instead of minutes for a million rows.
        indexes = (
            await conn.execute(
                text(
                    "select indexname, indexdef from pg_indexes i"
                    " where tablename = 'record' and indexname <> 'record_pkey'"
                    # Indexes that back a constraint (unique callback tokens) stay.
                    " and not exists (select 1 from pg_constraint c"
                    " where c.conname = i.indexname)"
                )
            )
        ).all()
        for name, _ in indexes:
            await conn.execute(text(f"drop index {name}"))
        await conn.execute(text("set local session_replication_role = replica"))
        await conn.execute(text("set local maintenance_work_mem = '256MB'"))
        for name, proj, spinner, total in (
            ("small", project_a, spinner_a, SMALL_JOB),
            ("big", project_a, spinner_a, BIG_JOB_END - SMALL_JOB),
            ("other", project_b, spinner_b, ROWS - BIG_JOB_END),
        ):
            await conn.execute(
                JOB_SQL, {"id": jobs[name], "project": proj, "spinner": spinner, "total": total}
            )
        await conn.execute(
            RECORDS_SQL,
            {
                "org_a": org_a,
                "org_b": org_b,
                "project_a": project_a,
                "project_b": project_b,
                "small_job": jobs["small"],
                "big_job": jobs["big"],
                "other_job": jobs["other"],
                "small": SMALL_JOB,
                "big_end": BIG_JOB_END,
                "rows": ROWS,
            },
        )
        for _, definition in indexes:
            await conn.execute(text(definition))
    async with app.state.engine.connect() as conn:
        # What autovacuum does after a bulk insert: statistics, and the visibility map that lets
        # counts read only the index.
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("vacuum (analyze) record"))
        await autocommit.execute(text("analyze job"))
        first = (await conn.execute(text("select min(id) from record"))).scalar_one()
    return {
        "org_a": uuid.UUID(org_a),
        "project_a": uuid.UUID(project_a),
        "jobs": jobs,
        "first_id": int(first),
        "admin": admin_a,
    }


@pytest.fixture(scope="module")
async def client_module(app: FastAPI) -> Any:
    from httpx import ASGITransport

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
        yield c


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def record_scans(plan: dict[str, Any]) -> list[str]:
    return [
        f"{n['Node Type']} {n.get('Index Name', '')}".strip()
        for n in nodes(plan)
        if n.get("Relation Name") == "record"
    ]


def queries(m: dict[str, Any]) -> dict[str, ClauseElement]:
    org, jobs = m["org_a"], m["jobs"]
    mid = m["first_id"] + SMALL_JOB + 100_000
    scopes = {
        "small job": RecordFilter(org, job_id=jobs["small"]),
        "big job": RecordFilter(org, job_id=jobs["big"]),
        "project": RecordFilter(org, project_id=m["project_a"]),
    }
    narrowings: dict[str, dict[str, str]] = {
        "status failed": {"status": "failed"},
        "status completed": {"status": "completed"},
        "disposition Retry": {"disposition": "Retry"},
        "disposition Done": {"disposition": "Done"},
        "search one contact": {"q": "Contact 4242"},
        "search everyone": {"q": "Contact"},
        "status and disposition": {"status": "failed", "disposition": "Retry"},
    }
    out: dict[str, ClauseElement] = {}
    for scope_name, scope in scopes.items():
        out[f"{scope_name}: first page"] = page_query(scope, after=None, limit=100)
        out[f"{scope_name}: page after"] = page_query(scope, after=mid, limit=100)
        for name, narrowing in narrowings.items():
            f = RecordFilter(scope.org_id, scope.job_id, scope.project_id, **narrowing)
            out[f"{scope_name}, {name}: first page"] = page_query(f, after=None, limit=100)
            out[f"{scope_name}, {name}: page after"] = page_query(f, after=mid, limit=500)
            out[f"{scope_name}, {name}: count"] = capped_count_query(f)
            out[f"{scope_name}, {name}: estimate"] = matching_query(f)
    out["children of a record"] = children_query(org, m["first_id"] + 9_999)
    out["job progress"] = PROGRESS_SQL.bindparams(job=jobs["big"], org=org)
    return out


class TestRecordQueriesOnAMillionRecords:
    async def test_no_query_scans_the_record_table(
        self, app: FastAPI, million: dict[str, Any]
    ) -> None:
        plans: dict[str, list[str]] = {}
        async with app.state.engine.connect() as conn:
            for name, stmt in queries(million).items():
                plans[name] = record_scans(await explain(conn, stmt))
        assert len(plans) == 2 + 3 * (2 + 7 * 4)
        seq = {name: scans for name, scans in plans.items() if any("Seq Scan" in s for s in scans)}
        assert seq == {}
        assert all(plans.values()), {n: s for n, s in plans.items() if not s}

    async def test_counts_come_once_from_stored_totals_an_index_range_or_the_estimate(
        self, client_module: AsyncClient, million: dict[str, Any]
    ) -> None:
        headers, jobs = million["admin"].headers, million["jobs"]

        async def page(path: str) -> dict[str, Any]:
            r = await client_module.get(f"/api/v1/{path}", headers=headers)
            assert r.status_code == 200, r.text
            return dict(r.json())

        whole = await page(f"jobs/{jobs['big']}/records?limit=3")
        assert (whole["count"], whole["countEstimated"]) == (BIG_JOB_END - SMALL_JOB, False)
        assert [r["rowId"] for r in whole["data"]] == [5001, 5002, 5003]
        # Rows 50, 100, … 5,000 of the small job: counted exactly under the cap.
        retry = await page(f"jobs/{jobs['small']}/records?disposition=Retry&limit=500")
        assert (retry["count"], retry["countEstimated"]) == (100, False)
        assert len(retry["data"]) == 100 and retry["nextAfter"] is None
        # Past the cap the planner's figure, flagged: the true count is 577,405.
        completed = await page(f"projects/{million['project_a']}/records?status=completed")
        assert completed["countEstimated"] is True
        assert 400_000 < completed["count"] < 800_000
        later = await page(
            f"projects/{million['project_a']}/records?status=completed"
            f"&after={completed['nextAfter']}"
        )
        assert later["count"] is None and later["data"][0]["id"] > completed["nextAfter"]
        found = await page(f"projects/{million['project_a']}/records?q=Contact 424242")
        assert [r["rowId"] for r in found["data"]] == [424242]
        short = await client_module.get(
            f"/api/v1/projects/{million['project_a']}/records?q=Co", headers=headers
        )
        assert short.status_code == 422
