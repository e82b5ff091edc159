"""Record callbacks (issue #12, findings 3–5): Standard Webhooks signatures that cover the event id,
a random per-organization secret in Vault rotated with an overlap, and a public URL that tells
nobody whether a record exists."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
from httpx import AsyncClient
from temporalio.client import Client

from tests.activities.test_messaging import query
from tests.builders import (
    Account,
    as_user,
    callback_secret,
    invite,
    make_spinner,
    post_signed,
    run_now,
    signed_callback,
    signup,
    wait_job,
)
from tests.workflows.test_steps_and_triggers import records_of, setup
from tests.workflows.test_supporting_spinners import link, wait_record

WAIT = {
    "steps": [
        {
            "id": "hold",
            "type": "wait_for_callback",
            "timeout": "1h",
            "on_callback": "yes",
            "on_timeout": "no",
        },
        {"id": "yes", "type": "tag", "disposition": "Answered {{callback.answer}}"},
        {"id": "no", "type": "tag", "disposition": "No answer"},
    ]
}
CHILD = {"steps": [{"id": "esc", "type": "tag", "disposition": "Escalated {{callback.answer}}"}]}


async def waiting_records(
    client: AsyncClient, rows: int
) -> tuple[Account, str, list[dict[str, Any]]]:
    """`rows` records waiting for a callback; their spinner has a callback-linked child."""
    admin, p, table = await setup(client, rows)
    parent = await make_spinner(client, admin, project_id=p["id"], definition=WAIT)
    child = await make_spinner(client, admin, project_id=p["id"], definition=CHILD)
    assert (await link(client, admin, parent, child, kind="callback")).status_code == 201
    job = await run_now(client, admin, parent, table)
    await wait_job(client, admin, job, until=("waiting",))
    return admin, job, await records_of(client, admin, job)


def events_of(database_url: str, record_id: int) -> list[str]:
    rows = query(
        database_url,
        "select event_id from callback_event where record_id = %s order by id",
        record_id,
    )
    return [str(r[0]) for r in rows]


async def status_of(client: AsyncClient, admin: Account, record_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/v1/records/{record_id}", headers=admin.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


class TestReplay:
    async def test_the_same_signed_request_is_a_duplicate_whatever_else_changes(
        self, client: AsyncClient, worker: Client, database_url: str
    ) -> None:
        admin, job, (rec, other) = await waiting_records(client, 2)
        secret = await callback_secret(client, admin)
        signed = signed_callback(secret, rec["callbackUrl"], {"answer": "yes"}, msg_id="ev-1")

        first = await post_signed(client, signed)
        assert first.status_code == 200, first.text
        assert first.json() == {"ok": True, "late": False}
        # The same request again, and with headers the signature does not cover changed or added
        # (today's `X-CXGear-Event-Id` among them): one event.
        again = await post_signed(client, signed)
        assert (again.status_code, again.json()) == (200, {"ok": True, "duplicate": True})
        extra = {**signed.headers, "x-cxgear-event-id": "ev-99", "user-agent": "replayer"}
        again = await client.post(signed.path, content=signed.body, headers=extra)
        assert (again.status_code, again.json()) == (200, {"ok": True, "duplicate": True})
        # A new webhook-id needs a new signature.
        swapped = {**signed.headers, "webhook-id": "ev-2"}
        r = await client.post(signed.path, content=signed.body, headers=swapped)
        assert (r.status_code, r.json()["errorCode"]) == (403, "BAD_SIGNATURE")
        # The same signed request at another record's URL of the organization.
        moved = await client.post(
            urlsplit(other["callbackUrl"]).path, content=signed.body, headers=signed.headers
        )
        assert (moved.status_code, moved.json()["errorCode"]) == (409, "EVENT_ID_REUSED")

        root = await wait_record(
            client,
            admin,
            rec["id"],
            lambda r: (
                r["status"] == "completed"
                and len(r["children"]) >= 1
                and r["children"][0]["status"] == "completed"
            ),
        )
        assert root["disposition"] == "Answered yes"
        assert [c["kind"] for c in root["children"]] == ["callback"]
        assert events_of(database_url, rec["id"]) == ["ev-1"]
        assert events_of(database_url, other["id"]) == []
        assert (await status_of(client, admin, other["id"]))["status"] == "waiting"
        await client.post(f"/api/v1/jobs/{job}/cancel", headers=admin.headers)


class TestRefusals:
    async def test_another_organizations_secret_and_a_stale_timestamp_change_nothing(
        self, client: AsyncClient, worker: Client, database_url: str
    ) -> None:
        admin, job, (rec,) = await waiting_records(client, 1)
        mine = await callback_secret(client, admin)
        theirs = await callback_secret(client, await signup(client))
        url = rec["callbackUrl"]
        refused = [
            signed_callback(theirs, url, {"answer": "forged"}),
            signed_callback(mine, url, {"answer": "stale"}, timestamp=int(time.time()) - 600),
            signed_callback(mine, url, {"answer": "early"}, timestamp=int(time.time()) + 600),
        ]
        for signed in refused:
            r = await post_signed(client, signed)
            assert (r.status_code, r.json()["errorCode"]) == (403, "BAD_SIGNATURE"), r.text
        unsigned = await client.post(urlsplit(url).path, json={"answer": "unsigned"})
        assert unsigned.status_code == 403
        assert events_of(database_url, rec["id"]) == []
        current = await status_of(client, admin, rec["id"])
        assert (current["status"], current["children"]) == ("waiting", [])

        # Positive control: the genuine sender's callback is the first and only one to count.
        ok = await post_signed(client, signed_callback(mine, url, {"answer": "real"}))
        assert ok.status_code == 200, ok.text
        done = await wait_record(
            client,
            admin,
            rec["id"],
            lambda r: r["status"] == "completed" and len(r["children"]) == 1,
        )
        assert done["disposition"] == "Answered real"
        assert len(events_of(database_url, rec["id"])) == 1
        await wait_job(client, admin, job)


class TestNoExistenceOracle:
    async def test_a_missing_record_and_a_bad_signature_get_the_same_answer(
        self, client: AsyncClient, worker: Client, database_url: str
    ) -> None:
        admin, job, (rec,) = await waiting_records(client, 1)
        secret = await callback_secret(client, admin)
        assert re.fullmatch(r"[0-9a-f]{32}", rec["callbackUrl"].rsplit("/", 1)[1])
        missing = rec["callbackUrl"].rsplit("/", 1)[0] + "/" + uuid.uuid4().hex
        cases = {
            "missing record, good signature": signed_callback(secret, missing, {"answer": "a"}),
            "existing record, wrong secret": signed_callback(
                "whsec_" + "A" * 43 + "=", rec["callbackUrl"], {"answer": "a"}
            ),
            "existing record, stale": signed_callback(
                secret, rec["callbackUrl"], {"answer": "a"}, timestamp=int(time.time()) - 900
            ),
            "missing record, stale": signed_callback(
                secret, missing, {"answer": "a"}, timestamp=int(time.time()) - 900
            ),
        }
        answers = {}
        for name, signed in cases.items():
            r = await post_signed(client, signed)
            answers[name] = (r.status_code, r.text)
        assert len(set(answers.values())) == 1, answers
        assert next(iter(answers.values()))[0] == 403
        # Sequential ids are not callback URLs at all: an existing and a missing one look alike.
        by_id = [
            await client.post(f"/api/v1/public/callbacks/{n}", json={})
            for n in (rec["id"], rec["id"] + 10_000)
        ]
        assert by_id[0].status_code == by_id[1].status_code == 422
        assert by_id[0].json()["errorCode"] == by_id[1].json()["errorCode"] == "VALIDATION_ERROR"
        assert events_of(database_url, rec["id"]) == []
        await client.post(f"/api/v1/jobs/{job}/cancel", headers=admin.headers)


class TestSecret:
    async def test_rotation_shows_the_secret_once_and_the_old_one_verifies_for_the_overlap(
        self,
        client: AsyncClient,
        worker: Client,
        database_url: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        admin, job, recs = await waiting_records(client, 4)
        urls = [r["callbackUrl"] for r in recs]
        r = await client.get("/api/v1/callbacks/secret", headers=admin.headers)
        assert r.json() == {
            "exists": False,
            "version": None,
            "rotatedAt": None,
            "previousValidUntil": None,
        }
        # No secret yet: nothing verifies, not even something signed with the server's key.
        assert (
            await post_signed(client, signed_callback("whsec_AAAA", urls[0], {}))
        ).status_code == 403

        r = await client.post("/api/v1/callbacks/secret/rotate", headers=admin.headers)
        assert r.status_code == 201, r.text
        first = r.json()
        assert first["secret"].startswith("whsec_") and len(first["secret"]) > 40
        assert (first["version"], first["previousValidUntil"]) == (1, None)
        shown = await client.get("/api/v1/callbacks/secret", headers=admin.headers)
        assert shown.json()["exists"] is True and "secret" not in shown.json()
        assert first["secret"] not in shown.text
        s1 = first["secret"]
        assert (
            await post_signed(client, signed_callback(s1, urls[0], {"answer": "1"}))
        ).status_code == 200

        r = await client.post("/api/v1/callbacks/secret/rotate", headers=admin.headers)
        second = r.json()
        s2 = second["secret"]
        assert s2 != s1 and second["version"] == 2
        assert second["previousValidUntil"] is not None  # 24 h by default
        for secret, url in ((s1, urls[1]), (s2, urls[2])):
            r = await post_signed(client, signed_callback(secret, url, {"answer": "2"}))
            assert r.status_code == 200, r.text

        # A leaked secret: rotate with no overlap and the previous one stops at once.
        r = await client.post(
            "/api/v1/callbacks/secret/rotate", json={"immediate": True}, headers=admin.headers
        )
        s3 = r.json()["secret"]
        assert r.json()["previousValidUntil"] is None
        stale = await post_signed(client, signed_callback(s2, urls[3], {"answer": "old"}))
        assert stale.status_code == 403
        assert events_of(database_url, recs[3]["id"]) == []
        ok = await post_signed(client, signed_callback(s3, urls[3], {"answer": "new"}))
        assert ok.status_code == 200, ok.text

        audit = await client.get("/api/v1/vault/audit", params={"limit": 10}, headers=admin.headers)
        assert [e["name"] for e in audit.json()["data"]].count("system/callback-secret") == 3
        await wait_job(client, admin, job)
        for secret in (s1, s2, s3):
            assert secret not in caplog.text
            assert secret.removeprefix("whsec_") not in caplog.text

    async def test_only_vault_writers_rotate_it(self, client: AsyncClient) -> None:
        admin = await signup(client)
        user = await invite(client, admin, roles=["Supervisor"])
        supervisor = await as_user(client, user["email"])
        r = await client.post("/api/v1/callbacks/secret/rotate", headers=supervisor.headers)
        assert (r.status_code, r.json()["errorCode"]) == (403, "FORBIDDEN")
        r = await client.get("/api/v1/callbacks/secret", headers=admin.headers)
        assert r.json()["exists"] is False
