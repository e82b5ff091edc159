"""Supporting (child) spinners: retry links on a condition, callback links, and their guards."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from httpx import AsyncClient
from temporalio.client import Client

from activities.supporting import SupportingActivities
from infra.db import create_engine
from infra.settings import Settings
from tests.builders import Account, callback_secret, make_spinner, run_now, wait_job
from tests.workflows.test_steps_and_triggers import post_callback, records_of, setup
from workflows.contracts import PrepareSupportingInput

RETRY_WHEN_AMOUNT = {
    "steps": [
        {
            "id": "route",
            "type": "decision",
            "branches": [{"when": "amount > 5", "next": "retry", "label": "big"}],
            "default": "done",
        },
        {"id": "retry", "type": "tag", "disposition": "Retry"},
        {"id": "done", "type": "tag", "disposition": "Done"},
    ]
}
ALWAYS_RETRY = {"steps": [{"id": "again", "type": "tag", "disposition": "Retry"}]}


async def link(
    client: AsyncClient, admin: Account, parent: dict[str, Any], child: dict[str, Any], **body: Any
) -> Any:
    return await client.post(
        f"/api/v1/spinners/{parent['id']}/links",
        json={"childSpinnerId": child["id"], **body},
        headers=admin.headers,
    )


async def record(client: AsyncClient, admin: Account, record_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/v1/records/{record_id}", headers=admin.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def wait_record(
    client: AsyncClient,
    admin: Account,
    record_id: int,
    ready: Callable[[dict[str, Any]], bool],
    timeout: float = 60,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        rec = await record(client, admin, record_id)
        if ready(rec):
            return rec
        assert time.monotonic() < deadline, f"record {record_id} never got ready: {rec}"
        await asyncio.sleep(0.3)


def all_done(n: int) -> Callable[[dict[str, Any]], bool]:
    return lambda rec: (
        len(rec["children"]) == n
        and all(c["status"] in ("completed", "failed") for c in rec["children"])
    )


async def journey(client: AsyncClient, admin: Account, record_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/v1/records/{record_id}/journey", headers=admin.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


class TestRetryLinks:
    async def test_retry_children_run_in_their_own_job_and_link_both_ways(
        self, client: AsyncClient, worker: Client
    ) -> None:
        admin, p, table = await setup(client, 2)  # amounts 0 and 10
        parent = await make_spinner(client, admin, project_id=p["id"], definition=RETRY_WHEN_AMOUNT)
        child = await make_spinner(client, admin, project_id=p["id"], definition=ALWAYS_RETRY)
        r = await link(
            client,
            admin,
            parent,
            child,
            kind="retry",
            condition='disposition == "Retry"',
            delay="2s",
            maxAttempts=2,
        )
        assert r.status_code == 201, r.text
        job = await wait_job(client, admin, await run_now(client, admin, parent, table))
        assert job["status"] == "completed"
        assert job["counts"]["total"] == 2  # children are not counted in the parent's job
        recs = {r["disposition"]: r for r in await records_of(client, admin, job["id"])}
        retried, done = recs["Retry"], recs["Done"]

        root = await wait_record(client, admin, retried["id"], all_done(2), timeout=90)
        first, second = root["children"]
        assert [(c["kind"], c["attempt"], c["status"]) for c in root["children"]] == [
            ("retry", 1, "completed"),
            ("retry", 2, "completed"),
        ]
        assert first["jobId"] == second["jobId"] != job["id"]
        assert (await record(client, admin, done["id"]))["children"] == []

        support = await wait_job(client, admin, first["jobId"])
        assert support["status"] == "completed"
        assert support["trigger"] == "retry"
        assert support["spinnerId"] == child["id"]
        assert support["parentJobId"] == job["id"]
        assert support["counts"]["completed"] == 2
        rows = await records_of(client, admin, support["id"])
        assert [r["id"] for r in rows] == [first["recordId"], second["recordId"]]
        assert {r["rowId"] for r in rows} == {retried["rowId"]}
        assert all(r["metadata"] == retried["metadata"] for r in rows)

        one = await record(client, admin, first["recordId"])
        assert one["parentRecordId"] == retried["id"]
        assert [c["recordId"] for c in one["children"]] == [second["recordId"]]
        j1 = await journey(client, admin, first["recordId"])
        assert j1["workflowId"] == f"rec-{retried['id']}-retry-1"
        assert j1["parentRecordId"] == retried["id"]
        labels = [s["label"] for s in j1["steps"]]
        # Started by its parent record as a child workflow; then the 2s delay.
        assert labels[:2] == ["started_by · retry", "timer · fired"]
        # Ops filtering on CxRecordStatus see the delayed child waiting, then running.
        assert await record_statuses(worker, j1["workflowId"]) == [
            "waiting",
            "running",
            "completed",
        ]
        assert "supporting · started" in labels
        j2 = await journey(client, admin, second["recordId"])
        assert j2["workflowId"] == f"rec-{retried['id']}-retry-2"
        assert j2["parentRecordId"] == first["recordId"]
        assert "supporting · started" not in [s["label"] for s in j2["steps"]]  # max attempts
        jroot = await journey(client, admin, retried["id"])
        assert [c["recordId"] for c in jroot["children"]] == [
            first["recordId"],
            second["recordId"],
        ]

    async def test_a_repeated_trigger_never_starts_twice(
        self, client: AsyncClient, worker: Client, settings: Settings
    ) -> None:
        admin, p, table = await setup(client, 2)
        parent = await make_spinner(client, admin, project_id=p["id"], definition=RETRY_WHEN_AMOUNT)
        child = await make_spinner(client, admin, project_id=p["id"], definition=ALWAYS_RETRY)
        r = await link(
            client, admin, parent, child, kind="retry", condition='disposition == "Retry"'
        )
        assert r.status_code == 201, r.text
        job = await wait_job(client, admin, await run_now(client, admin, parent, table))
        retried = next(
            r for r in await records_of(client, admin, job["id"]) if r["disposition"] == "Retry"
        )
        root = await wait_record(client, admin, retried["id"], all_done(1))
        wf_id = f"rec-{retried['id']}-retry-1"
        run_id = (await worker.get_workflow_handle(wf_id).describe()).run_id

        engine = create_engine(settings.database_url)
        try:
            # The preparing activity run again (a retry, a re-run record) finds the first child.
            activities = SupportingActivities(engine)
            again = PrepareSupportingInput(retried["id"])
            results = await asyncio.gather(
                activities.prepare_supporting(again), activities.prepare_supporting(again)
            )
        finally:
            await engine.dispose()
        assert [x.messages for x in results] == [[f"{wf_id}: found"]] * 2
        assert [[c.record_id for c in x.children] for x in results] == [
            [root["children"][0]["recordId"]]
        ] * 2
        assert (await worker.get_workflow_handle(wf_id).describe()).run_id == run_id
        after = await record(client, admin, retried["id"])
        assert after["children"] == root["children"]
        support = await wait_job(client, admin, root["children"][0]["jobId"])
        assert support["counts"]["total"] == 1


class TestCallbackLinks:
    async def test_signed_callbacks_start_the_child_once_even_after_the_record_finished(
        self, client: AsyncClient, worker: Client
    ) -> None:
        admin, p, table = await setup(client, 1)
        parent = await make_spinner(
            client,
            admin,
            project_id=p["id"],
            definition={
                "steps": [
                    {
                        "id": "hold",
                        "type": "wait_for_callback",
                        "timeout": "1h",
                        "on_callback": "yes",
                        "on_timeout": "yes",
                    },
                    {"id": "yes", "type": "tag", "disposition": "Answered"},
                ]
            },
        )
        child = await make_spinner(
            client,
            admin,
            project_id=p["id"],
            definition={
                "steps": [{"id": "esc", "type": "tag", "disposition": "Escalated {{callback.why}}"}]
            },
        )
        r = await link(client, admin, parent, child, kind="callback", event="escalate")
        assert r.status_code == 201, r.text
        job_id = await run_now(client, admin, parent, table)
        await wait_job(client, admin, job_id, until=("waiting",))
        rec = (await records_of(client, admin, job_id))[0]
        secret = await callback_secret(client, admin)
        body = {"event": "escalate", "why": "angry"}
        for _ in range(2):  # a redelivery is a duplicate: one child only
            ok = await post_callback(client, secret, rec["callbackUrl"], body, event="ev-1")
            assert ok.status_code == 200, ok.text
        assert (await wait_job(client, admin, job_id))["status"] == "completed"
        ignored = await post_callback(
            client, secret, rec["callbackUrl"], {"event": "note", "why": "fyi"}, event="ev-2"
        )
        assert ignored.json()["late"] is True
        late = await post_callback(
            client, secret, rec["callbackUrl"], {"event": "escalate", "why": "again"}, event="ev-3"
        )
        assert late.status_code == 200 and late.json()["late"] is True

        root = await wait_record(client, admin, rec["id"], all_done(2))
        assert [(c["kind"], c["attempt"]) for c in root["children"]] == [("callback", None)] * 2
        support = await wait_job(client, admin, root["children"][0]["jobId"])
        assert support["trigger"] == "callback"
        assert support["counts"]["completed"] == 2
        dispositions = [x["disposition"] for x in await records_of(client, admin, support["id"])]
        assert dispositions == ["Escalated angry", "Escalated again"]
        j = await journey(client, admin, root["children"][0]["recordId"])
        assert j["workflowId"] == f"rec-{rec['id']}-cb-ev-1"
        assert j["parentRecordId"] == rec["id"]
        assert [s["label"] for s in j["steps"]].count("started_by · received") == 1


class TestGuards:
    async def test_run_now_of_a_supporting_spinner_is_refused(
        self, client: AsyncClient, worker: Client
    ) -> None:
        admin, p, table = await setup(client, 1)
        parent = await make_spinner(client, admin, project_id=p["id"], definition=ALWAYS_RETRY)
        child = await make_spinner(client, admin, project_id=p["id"], definition=ALWAYS_RETRY)
        assert (await link(client, admin, parent, child, kind="callback")).status_code == 201
        r = await client.post(
            f"/api/v1/spinners/{child['id']}/run",
            json={"tableId": table["id"]},
            headers=admin.headers,
        )
        assert r.status_code == 409
        assert r.json()["errorCode"] == "SUPPORTING_SPINNER"

    async def test_links_are_validated_listed_and_deleted(
        self, client: AsyncClient, worker: Client
    ) -> None:
        admin, p, _ = await setup(client, 1)
        parent = await make_spinner(client, admin, project_id=p["id"], definition=ALWAYS_RETRY)
        draft = await make_spinner(
            client, admin, project_id=p["id"], definition=ALWAYS_RETRY, publish=False
        )
        other, theirs, _ = await setup(client, 1)
        stranger = await make_spinner(
            client, other, project_id=theirs["id"], definition=ALWAYS_RETRY
        )
        retry = {"kind": "retry", "condition": 'disposition == "Retry"'}

        r = await link(client, admin, parent, draft, **retry)
        assert (r.status_code, r.json()["errorCode"]) == (422, "NOT_PUBLISHED")
        r = await link(client, admin, parent, stranger, **retry)
        assert r.status_code == 404
        r = await link(client, admin, parent, parent, **retry)
        assert r.status_code == 422
        r = await link(client, admin, parent, draft, kind="retry", condition="disposition = 1")
        assert r.status_code == 422
        assert "condition" in r.json()["message"]
        r = await link(client, admin, parent, draft, kind="retry")
        assert r.status_code == 422
        r = await link(client, admin, parent, draft, kind="callback", condition="x == 1")
        assert r.status_code == 422
        r = await link(client, admin, parent, draft, maxAttempts=11, **retry)
        assert r.status_code == 422
        r = await link(client, admin, parent, draft, delay="soon", **retry)
        assert r.status_code == 422

        child = await make_spinner(client, admin, project_id=p["id"], definition=ALWAYS_RETRY)
        made = await link(client, admin, parent, child, delay="15m", maxAttempts=3, **retry)
        assert made.status_code == 201, made.text
        listed = await client.get(f"/api/v1/spinners/{parent['id']}/links", headers=admin.headers)
        assert [x["id"] for x in listed.json()["data"]] == [made.json()["id"]]
        assert listed.json()["data"][0]["maxAttempts"] == 3
        gone = await client.delete(
            f"/api/v1/spinners/{parent['id']}/links/{made.json()['id']}", headers=admin.headers
        )
        assert gone.status_code == 204
        listed = await client.get(f"/api/v1/spinners/{parent['id']}/links", headers=admin.headers)
        assert listed.json()["count"] == 0


async def record_statuses(client: Client, workflow_id: str) -> list[str]:
    """CxRecordStatus as the record started and as each upsert set it, from its history."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    found = []
    for event in history.events:
        if event.HasField("workflow_execution_started_event_attributes"):
            fields = event.workflow_execution_started_event_attributes.search_attributes
        elif event.HasField("upsert_workflow_search_attributes_event_attributes"):
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
        else:
            continue
        if "CxRecordStatus" in fields.indexed_fields:
            found.append(json.loads(fields.indexed_fields["CxRecordStatus"].data))
    return found
