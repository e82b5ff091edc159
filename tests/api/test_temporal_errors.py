"""Temporal's errors reach clients through one translation (api/errors.py): unavailable → 503
TEMPORAL_UNAVAILABLE with Retry-After, not found → 404, already started → 409."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.app import create_app
from api.errors import install_error_handlers
from infra.settings import Settings
from tests.builders import Account, contacts_csv, make_spinner, make_table, project, signup
from workflows.contracts import schedule_id

TAG_ONLY = {"steps": [{"id": "t", "type": "tag", "disposition": "ok"}]}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def spinner_and_table(client: AsyncClient) -> tuple[Account, dict[str, Any], dict[str, Any]]:
    admin = await signup(client)
    p = await project(client, admin)
    table = await make_table(client, admin, project_id=p["id"], csv_text=contacts_csv(2))
    spinner = await make_spinner(client, admin, project_id=p["id"], definition=TAG_ONLY)
    return admin, spinner, table


async def create_schedule(
    client: AsyncClient, admin: Account, spinner: dict[str, Any], table: dict[str, Any]
) -> dict[str, Any]:
    r = await client.post(
        f"/api/v1/spinners/{spinner['id']}/schedules",
        json={"tableId": table["id"], "cron": "0 2 * * *", "timezone": "UTC"},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture
async def down_client(settings: Settings) -> AsyncIterator[AsyncClient]:
    """The same database, with the API pointed at a port where no Temporal listens."""
    dead = settings.model_copy(update={"temporal_address": f"127.0.0.1:{closed_port()}"})
    application = create_app(dead)
    async with application.router.lifespan_context(application):
        transport = ASGITransport(app=application)
        async with AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


class TestTemporalUnavailable:
    async def test_schedules_answer_503_with_retry_after(
        self, client: AsyncClient, down_client: AsyncClient
    ) -> None:
        admin, spinner, table = await spinner_and_table(client)
        await create_schedule(client, admin, spinner, table)
        # Listing used to answer 200 with empty next runs, hiding the outage.
        r = await down_client.get(
            f"/api/v1/spinners/{spinner['id']}/schedules", headers=admin.headers
        )
        assert r.status_code == 503, r.text
        assert r.json()["errorCode"] == "TEMPORAL_UNAVAILABLE"
        assert int(r.headers["Retry-After"]) > 0

    async def test_a_refused_run_changes_nothing(
        self, client: AsyncClient, down_client: AsyncClient
    ) -> None:
        admin, spinner, table = await spinner_and_table(client)
        r = await down_client.post(
            f"/api/v1/spinners/{spinner['id']}/schedules",
            json={"tableId": table["id"], "cron": "0 2 * * *", "timezone": "UTC"},
            headers=admin.headers,
        )
        assert r.status_code == 503, r.text
        assert r.json()["errorCode"] == "TEMPORAL_UNAVAILABLE"
        listed = await client.get(
            f"/api/v1/spinners/{spinner['id']}/schedules", headers=admin.headers
        )
        assert listed.json()["count"] == 0


class TestTemporalNotFound:
    async def test_schedule_gone_from_temporal_is_404(
        self, app: FastAPI, client: AsyncClient
    ) -> None:
        admin, spinner, table = await spinner_and_table(client)
        sched = await create_schedule(client, admin, spinner, table)
        temporal: Client = await app.state.temporal()
        await temporal.get_schedule_handle(schedule_id(sched["id"])).delete()
        r = await client.post(f"/api/v1/schedules/{sched['id']}/pause", headers=admin.headers)
        assert r.status_code == 404, r.text
        assert r.json()["errorCode"] == "NOT_FOUND"
        # Its business meaning is kept where there is one: deleting it still removes our row.
        r = await client.delete(f"/api/v1/schedules/{sched['id']}", headers=admin.headers)
        assert r.status_code == 204


def probe_app(temporal: Client) -> FastAPI:
    """Routes that make raw Temporal calls, to check the handler against Temporal's real errors."""
    probe = FastAPI()
    install_error_handlers(probe)
    workflow_id = f"probe-{uuid.uuid4().hex}"

    @probe.post("/start-twice")
    async def start_twice() -> None:
        for _ in range(2):
            await temporal.start_workflow(
                "NoSuchWorkflow",
                id=workflow_id,
                task_queue=f"probe-{uuid.uuid4().hex}",
                execution_timeout=timedelta(seconds=30),
            )

    @probe.get("/describe-missing")
    async def describe_missing() -> None:
        await temporal.get_workflow_handle(f"missing-{uuid.uuid4().hex}").describe()

    return probe


class TestTranslation:
    async def test_real_temporal_errors(self, app: FastAPI) -> None:
        temporal: Client = await app.state.temporal()
        transport = ASGITransport(app=probe_app(temporal))
        async with AsyncClient(transport=transport, base_url="http://probe") as c:
            r = await c.post("/start-twice")
            assert (r.status_code, r.json()["errorCode"]) == (409, "ALREADY_STARTED")
            r = await c.get("/describe-missing")
            assert (r.status_code, r.json()["errorCode"]) == (404, "NOT_FOUND")

    @pytest.mark.parametrize(
        ("status", "code"),
        [
            (RPCStatusCode.UNAVAILABLE, "TEMPORAL_UNAVAILABLE"),
            (RPCStatusCode.DEADLINE_EXCEEDED, "TEMPORAL_UNAVAILABLE"),
            (RPCStatusCode.RESOURCE_EXHAUSTED, "TEMPORAL_BUSY"),
        ],
    )
    async def test_retryable_statuses_are_503_with_retry_after(
        self, status: RPCStatusCode, code: str
    ) -> None:
        # Temporal cannot be made to answer these on demand; the SDK's own error type is raised.
        probe = FastAPI()
        install_error_handlers(probe)

        @probe.get("/fail")
        async def fail() -> None:
            raise RPCError("injected", status, b"")

        async with AsyncClient(transport=ASGITransport(app=probe), base_url="http://probe") as c:
            r = await c.get("/fail")
        assert (r.status_code, r.json()["errorCode"]) == (503, code)
        assert int(r.headers["Retry-After"]) > 0
