"""Crashes during a job: a SIGKILLed worker and a restarted (file-backed) Temporal server.

Each test runs the worker as a real `cxgear worker` process against its own Temporal server.
The CRM answers the first records' `api_call`s and then holds every later request, so the crash
happens while the job is provably unfinished and while requests are in flight. `api_call` is
at-least-once (README): a request in flight when the worker dies is sent again, with the same
`Idempotency-Key`, so the CRM sees exactly one key (one effect) per record.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
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
# Requests the CRM answers before it holds the rest: the job is a fifth done when the world stops.
ANSWERED = 60


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


def start_worker(settings: Settings, log: Path, **env_extra: str) -> subprocess.Popen[bytes]:
    """`cxgear worker` as a process; its output goes to `log` (kept for the failure message)."""
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
        "CXGEAR_SEND_LIST_LAG": f"PT{settings.send_list_lag.total_seconds()}S",
        **env_extra,
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cxgear", "worker"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def kept_logs(request: pytest.FixtureRequest, *logs: Path) -> Iterator[None]:
    """Attach the workers' output (the killed one's included) to the test's report."""
    try:
        yield
    finally:
        for log in logs:
            if log.exists():
                text = log.read_text(errors="replace")
                request.node.add_report_section("call", log.name, text[-20_000:])


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


def spinner_definition(crm: FakeCrm) -> dict[str, Any]:
    return {
        "steps": [
            {"id": "hello", "type": "log", "message": "Calling {{name}}", "next": "enrich"},
            {
                "id": "enrich",
                "type": "api_call",
                "method": "POST",
                "url": crm.base_url + "/c/{{context.recordId}}",
                "body": '{"note": "called"}',
                # A held request outlives the activity (timeout + margin) and is retried.
                "timeout_s": 5,
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


async def until_held_mid_job(
    client: AsyncClient, admin: Account, job_id: str, crm: FakeCrm
) -> dict[str, Any]:
    """Waits until the records the CRM answered have completed and later ones are held there;
    returns the job as the API shows it then (unfinished by construction)."""
    job: dict[str, Any] = {}
    for _ in range(1200):
        job = (await client.get(f"/api/v1/jobs/{job_id}", headers=admin.headers)).json()
        if job["counts"]["completed"] >= ANSWERED and crm.gate.held:
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job never reached {ANSWERED} completed with requests held: {job}")


def assert_unfinished(job: dict[str, Any]) -> None:
    assert job["status"] == "running", job
    assert job["counts"]["completed"] == ANSWERED, job
    assert job["counts"]["total"] == RECORDS, job


async def assert_every_record_ended_once(
    client: AsyncClient, admin: Account, job: dict[str, Any]
) -> list[int]:
    """Returns the job's record ids."""
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
    return [int(r["id"]) for r in seen]


def crm_calls(crm: FakeCrm, record_ids: list[int]) -> dict[int, list[str]]:
    """The Idempotency-Key of every request the CRM received, per record of the job."""
    wanted = {f"/c/{rid}": rid for rid in record_ids}
    calls: dict[int, list[str]] = defaultdict(list)
    for entry in list(crm.ledger.requests):
        if entry["path"] in wanted:
            calls[wanted[entry["path"]]].append(entry["headers"].get("Idempotency-Key", ""))
    return calls


def assert_one_effect_per_record(calls: dict[int, list[str]], record_ids: list[int]) -> None:
    assert sorted(calls) == sorted(record_ids), "some record never reached the CRM"
    keys = {rid: set(found) for rid, found in calls.items()}
    wrong = {rid: k for rid, k in keys.items() if k != {f"rec-{rid}:enrich"}}
    assert not wrong, f"records without exactly one idempotency key: {wrong}"


class TestCrashes:
    async def test_sigkilled_worker_loses_nothing(
        self,
        client: AsyncClient,
        settings: Settings,
        crm: FakeCrm,
        tmp_path: Path,
        request: pytest.FixtureRequest,
    ) -> None:
        killed_log, second_log = tmp_path / "killed-worker.log", tmp_path / "second-worker.log"
        crm.gate.hold_after(ANSWERED)
        worker = start_worker(settings, killed_log)
        try:
            with kept_logs(request, killed_log, second_log):
                admin, job_id = await start_job(client, crm)
                await until_held_mid_job(client, admin, job_id, crm)
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
                # Nothing moves while no worker runs: what the API shows now held at the kill.
                assert_unfinished(
                    (await client.get(f"/api/v1/jobs/{job_id}", headers=admin.headers)).json()
                )
                in_flight = {int(path.rsplit("/", 1)[1]) for path in crm.gate.held}
                crm.gate.release()
                worker = start_worker(settings, second_log)
                job = await wait_job(client, admin, job_id, timeout=240)
                record_ids = await assert_every_record_ended_once(client, admin, job)
                calls = crm_calls(crm, record_ids)
                assert_one_effect_per_record(calls, record_ids)
                # At-least-once, and only where the worker died waiting for the answer.
                resent = {rid for rid, found in calls.items() if len(found) > 1}
                assert in_flight and resent == in_flight, (sorted(resent), sorted(in_flight))
                assert Counter(len(found) for found in calls.values())[1] == RECORDS - len(
                    in_flight
                )
        finally:
            crm.gate.release()
            stop_worker(worker)

    async def test_temporal_restart_mid_job(
        self,
        client: AsyncClient,
        settings: Settings,
        crm: FakeCrm,
        temporal: EmbeddedTemporal,
        tmp_path: Path,
        request: pytest.FixtureRequest,
    ) -> None:
        log = tmp_path / "worker.log"
        crm.gate.hold_after(ANSWERED)
        worker = start_worker(settings, log)
        try:
            with kept_logs(request, log):
                admin, job_id = await start_job(client, crm)
                await until_held_mid_job(client, admin, job_id, crm)
                temporal.stop()
                # The API reads progress from PostgreSQL: it answers while Temporal is down.
                assert_unfinished(
                    (await client.get(f"/api/v1/jobs/{job_id}", headers=admin.headers)).json()
                )
                # The held calls finish while Temporal is down; their results cannot be reported.
                crm.gate.release()
                temporal.start()
                job = await wait_job(client, admin, job_id, timeout=240)
                record_ids = await assert_every_record_ended_once(client, admin, job)
                assert_one_effect_per_record(crm_calls(crm, record_ids), record_ids)
        finally:
            crm.gate.release()
            stop_worker(worker)
