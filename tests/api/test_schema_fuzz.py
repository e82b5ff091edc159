"""Property-based test over the OpenAPI schema: no input to any operation answers a 5xx.

Schemathesis generates requests from the schema (every body, path and query parameter) and sends
them to the ASGI app in-process, signed in and with real ids substituted for path parameters so
generated data reaches the code behind the lookups. A new route or field is covered without
writing anything here (CONVENTIONS 19).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import schemathesis
from httpx import ASGITransport, AsyncClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from infra.settings import Settings
from models.call_analysis.evaluation import evaluate_tags
from models.call_analysis.scorecard import score
from store.calls import NewAnalysedCall, load_call_config, save_analysed_call
from tests.builders import (
    Account,
    api_key,
    contacts_csv,
    make_spinner,
    make_table,
    project,
    role_id,
    signup,
    wait_job,
)
from tests.conftest import make_settings
from tests.workflows.workers import running_workers

TAG_ONLY = {"steps": [{"id": "t", "type": "tag", "disposition": "ok"}]}
# Kept small so the whole schema (~80 operations) runs in a few minutes on 2 cores.
EXAMPLES_PER_OPERATION = 20


@pytest.fixture(scope="module")
def workers(settings: Settings) -> Iterator[None]:
    """Workers on their own thread and loop: the schemathesis test is synchronous, so the test
    session's loop does not run while it does (and a job's progress query needs a worker)."""
    stop = threading.Event()
    ready = threading.Event()

    async def main() -> None:
        async with running_workers(settings):
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.1)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(60), "workers did not start"
    yield
    stop.set()
    thread.join(30)


async def _seed(settings: Settings) -> dict[str, Any]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://testserver") as client:
            admin = await signup(client)
            p = await project(client, admin)
            table = await make_table(client, admin, project_id=p["id"], csv_text=contacts_csv(2))
            spinner = await make_spinner(client, admin, project_id=p["id"], definition=TAG_ONLY)
            r = await client.post(
                f"/api/v1/spinners/{spinner['id']}/run",
                json={"tableId": table["id"]},
                headers=admin.headers,
            )
            assert r.status_code == 201, r.text
            job_id = r.json()["id"]
            await wait_job(client, admin, job_id)
            records = await client.get(f"/api/v1/jobs/{job_id}/records", headers=admin.headers)
            r = await client.post(
                f"/api/v1/spinners/{spinner['id']}/schedules",
                json={"tableId": table["id"], "cron": "0 2 * * *", "timezone": "UTC"},
                headers=admin.headers,
            )
            assert r.status_code == 201, r.text
            schedule = r.json()["id"]
            agent = await role_id(client, admin, "Agent")
            r = await client.post(
                f"/api/v1/roles/{agent}/extend", json={"name": "Fuzz"}, headers=admin.headers
            )
            assert r.status_code == 201, r.text
            await api_key(client, admin, scopes=["ingest"])
            keys = await client.get("/api/v1/api-keys", headers=admin.headers)
            calls = await _seed_calls(app, client, admin)
            return {
                "token": admin.token,
                "ids": {
                    "project_id": p["id"],
                    "table_id": table["id"],
                    "spinner_id": spinner["id"],
                    "job_id": job_id,
                    "record_id": records.json()["data"][0]["id"],
                    "schedule_uuid": schedule,
                    "role_id": r.json()["id"],
                    "key_id": keys.json()["data"][0]["id"],
                    **calls,
                },
            }


async def _seed_calls(app: Any, client: AsyncClient, admin: Account) -> dict[str, str]:
    """A call_analyzer project with a tag, a scorecard and one analysed call, so generated
    requests reach the Call Analyzer's code past the project-type check."""
    p = await project(client, admin, type="call_analyzer")
    tag = await client.post(
        f"/api/v1/projects/{p['id']}/call-tags",
        json={"kind": "bag_of_words", "name": "hello", "phrases": ["hello"]},
        headers=admin.headers,
    )
    card = await client.post(
        f"/api/v1/projects/{p['id']}/scorecards",
        json={
            "name": "QA",
            "questions": [{"id": "q", "text": "t", "points": 5, "condition": "hello"}],
        },
        headers=admin.headers,
    )
    assert tag.status_code == card.status_code == 201, (tag.text, card.text)
    async with app.state.engine.begin() as conn:
        config = await load_call_config(conn, uuid.UUID(p["id"]))
        assert config.scorecard is not None
        tags = evaluate_tags(config.tags, {}, [], {})
        call = await save_analysed_call(
            conn,
            NewAnalysedCall(
                org_id=uuid.UUID(admin.org_id),
                project_id=uuid.UUID(p["id"]),
                record_id=secrets.randbelow(10**15) + 1,
                transcript=[],
                tags=tags,
                score=score(config.scorecard, tags),
                scorecard_snapshot=config.scorecard,
            ),
        )
    return {
        "call_project_id": p["id"],
        "tag_id": tag.json()["id"],
        "scorecard_id": card.json()["id"],
        "analysed_call_id": str(call),
    }


# Paths of the Call Analyzer take the call_analyzer project for {project_id}.
CALL_PATHS = ("/call-", "/scorecards", "/analysed-calls")


@pytest.fixture(scope="module")
def seeded(settings: Settings, workers: None) -> dict[str, Any]:
    # Its own thread and loop, like the app under test: nothing is shared with the session loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _seed(settings)).result()


@pytest.fixture(scope="module")
def app_under_test(settings: Settings, seeded: dict[str, Any]) -> Any:
    # Started (lifespan) by schemathesis on its own loop at the first request.
    return create_app(settings)


# The schema does not depend on settings, so it is read at collection time (schemathesis's lazy
# `from_fixture` loader does not work with this pytest); requests go to `app_under_test`.
schema = schemathesis.openapi.from_dict(create_app(make_settings()).openapi())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_error(case: Any, seeded: dict[str, Any], app_under_test: Any) -> None:
    # Signing out would end the session every later operation uses.
    if case.path != "/api/v1/auth/logout":
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {seeded['token']}"}
    # Two cases in three get real ids (chosen from the generated data, so runs repeat) to reach
    # the code behind the lookups; the rest keep the generated ids, out-of-range ones included.
    # Deletes always keep them, so they cannot remove what later operations look up.
    params = case.path_parameters or {}
    if case.method.upper() != "DELETE" and zlib.crc32(repr(params).encode()) % 3:
        for name in params:
            if name == "project_id" and any(p in case.path for p in CALL_PATHS):
                params[name] = seeded["ids"]["call_project_id"]
            elif name in seeded["ids"]:
                params[name] = seeded["ids"][name]
    case.call_and_validate(
        checks=[not_a_server_error], app=app_under_test, base_url="http://testserver"
    )
