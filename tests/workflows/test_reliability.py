"""Crashes during a job: a SIGKILLed worker and a restarted (file-backed) Temporal server.

Each test runs the worker as a real `cxgear worker` process against its own Temporal server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from api.app import create_app
from cxgear.stack.ports import free_port
from cxgear.stack.temporal import EmbeddedTemporal
from infra.settings import Settings
from tests.builders import (
    Account,
    contacts_csv,
    make_spinner,
    make_table,
    project,
    signup,
    wait_job,
)
from tests.conftest import make_settings
from tests.fakes.crm_api import FakeCrm, running_crm

RECORDS = 300


@pytest.fixture(scope="module")
def crm() -> Iterator[FakeCrm]:
    with running_crm() as fake:
        yield fake


@pytest.fixture(scope="module")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedTemporal]:
    server = EmbeddedTemporal(
        tmp_path_factory.mktemp("temporal") / "temporal.db", free_port(), None
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def settings(
    database_url: str, temporal: EmbeddedTemporal, openbao_server: Any, crm: FakeCrm
) -> Settings:
    return make_settings(
        database_url=database_url,
        temporal_address=temporal.address,
        vault_address=openbao_server.address,
        vault_token=openbao_server.token,
        http_allowed_hosts=[crm.allowed],
        job_window=40,
    )


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    assert settings.vault_token is not None
    env = {
        **os.environ,
        "CXGEAR_ENVIRONMENT": "test",
        "CXGEAR_DATABASE_URL": settings.database_url,
        "CXGEAR_TEMPORAL_ADDRESS": settings.temporal_address,
        # The worker loads the payload codec's keys from the same Vault as the test's client.
        "CXGEAR_VAULT_ADDRESS": settings.vault_address,
        "CXGEAR_VAULT_TOKEN": settings.vault_token.get_secret_value(),
        "CXGEAR_SECRET_KEY": settings.secret_key.get_secret_value(),
        "CXGEAR_TASK_QUEUE_PREFIX": settings.task_queue_prefix,
        "CXGEAR_HTTP_ALLOWED_HOSTS": json.dumps(settings.http_allowed_hosts),
        "CXGEAR_PROVIDER_ALLOWED_HOSTS": json.dumps(settings.provider_allowed_hosts),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "cxgear", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def spinner_definition(crm: FakeCrm) -> dict[str, Any]:
    return {
        "steps": [
            {"id": "hello", "type": "log", "message": "Calling {{name}}", "next": "enrich"},
            {
                "id": "enrich",
                "type": "api_call",
                "method": "GET",
                "url": crm.base_url + "/c/{{context.recordId}}",
                "next": "tag",
            },
            {"id": "tag", "type": "tag", "disposition": "Done"},
        ]
    }


async def start_job(client: AsyncClient, crm: FakeCrm) -> tuple[Account, str]:
    admin = await signup(client)
    p = await project(client, admin)
    table = await make_table(client, admin, project_id=p["id"], csv_text=contacts_csv(RECORDS))
    spinner = await make_spinner(
        client, admin, project_id=p["id"], definition=spinner_definition(crm)
    )
    r = await client.post(
        f"/api/v1/spinners/{spinner['id']}/run",
        json={"tableId": table["id"]},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    return admin, r.json()["id"]


async def until_done_at_least(
    client: AsyncClient, admin: Account, job_id: str, n: int
) -> dict[str, Any]:
    for _ in range(600):
        job = (await client.get(f"/api/v1/jobs/{job_id}", headers=admin.headers)).json()
        if job["counts"]["completed"] >= n:
            return dict(job)
        await asyncio.sleep(0.1)
    raise AssertionError(f"job never reached {n} completed: {job}")


async def assert_every_record_ended_once(
    client: AsyncClient, admin: Account, job: dict[str, Any]
) -> None:
    assert job["status"] == "completed", job
    counts = job["counts"]
    assert counts["total"] == RECORDS
    assert counts["completed"] == RECORDS
    assert counts["failed"] == counts["pending"] == counts["running"] == counts["waiting"] == 0
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        page = (
            await client.get(
                f"/api/v1/jobs/{job['id']}/records?limit=500"
                + (f"&after={after}" if after else ""),
                headers=admin.headers,
            )
        ).json()
        seen.extend(page["data"])
        after = page["nextAfter"]
        if after is None:
            break
    assert len(seen) == RECORDS
    assert {r["status"] for r in seen} == {"completed"}
    assert all(r["disposition"] == "Done" for r in seen)


class TestCrashes:
    async def test_sigkilled_worker_loses_nothing(
        self, client: AsyncClient, settings: Settings, crm: FakeCrm
    ) -> None:
        worker = start_worker(settings)
        try:
            admin, job_id = await start_job(client, crm)
            await until_done_at_least(client, admin, job_id, 60)
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            worker = start_worker(settings)
            job = await wait_job(client, admin, job_id, timeout=240)
            await assert_every_record_ended_once(client, admin, job)
        finally:
            worker.kill()
            worker.wait(10)

    async def test_temporal_restart_mid_job(
        self, client: AsyncClient, settings: Settings, crm: FakeCrm, temporal: EmbeddedTemporal
    ) -> None:
        worker = start_worker(settings)
        try:
            admin, job_id = await start_job(client, crm)
            await until_done_at_least(client, admin, job_id, 60)
            temporal.stop()
            await asyncio.sleep(1)
            temporal.start()
            job = await wait_job(client, admin, job_id, timeout=240)
            await assert_every_record_ended_once(client, admin, job)
        finally:
            worker.send_signal(signal.SIGINT)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
