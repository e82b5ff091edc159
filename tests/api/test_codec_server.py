"""The codec server (`/codec/decode`, `/codec/encode`) against a real record workflow's history:
who may decode what, tampering, the Temporal UI's request shape, CORS, and the `temporal` CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import WorkflowSerializationContext

from api.services.temporal_links import job_workflows_url, record_workflow_url
from cxgear.stack import find_binary
from cxgear.stack.dev import plan
from infra.codec import ENCODING, WORKFLOW_META, load_codec
from infra.log_privacy import redact_path
from infra.settings import Settings
from tests.api.test_data_tables import live_api
from tests.builders import (
    Account,
    api_key,
    as_user,
    invite,
    make_spinner,
    make_table,
    project,
    run_now,
    signup,
    wait_job,
)
from tests.conftest import make_settings
from tests.workflows.workers import running_workers
from workflows.contracts import job_workflow_id, record_workflow_id

UI_ORIGIN = "http://127.0.0.1:8233"


def log_then_tag() -> dict[str, Any]:
    return {
        "steps": [
            {"id": "hello", "type": "log", "message": "Calling {{name}}", "next": "t"},
            {"id": "t", "type": "tag", "disposition": "ok"},
        ]
    }


@dataclass
class RecordRun:
    admin: Account
    job_id: str
    record_id: int
    workflow_id: str
    canary: str


@pytest.fixture(scope="module")
async def worker(settings: Settings) -> AsyncIterator[Client]:
    async with running_workers(settings) as client:
        yield client


@pytest.fixture(scope="module")
async def record_run(app: FastAPI, worker: Client) -> RecordRun:
    """One organization's completed one-record job whose contact name is a canary."""
    canary = f"Canary{uuid.uuid4().hex[:12]}"
    transport = ASGITransport(app=app, client=("203.0.113.20", 40000))
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        admin = await signup(client)
        p = await project(client, admin)
        table = await make_table(
            client, admin, project_id=p["id"], csv_text=f"name,phone\n{canary},+14155550100\n"
        )
        spinner = await make_spinner(client, admin, project_id=p["id"], definition=log_then_tag())
        job_id = await run_now(client, admin, spinner, table)
        job = await wait_job(client, admin, job_id)
        assert job["status"] == "completed", job
        records = (await client.get(f"/api/v1/jobs/{job_id}/records", headers=admin.headers)).json()
        record_id = int(records["data"][0]["id"])
    return RecordRun(admin, job_id, record_id, record_workflow_id(record_id), canary)


async def raw_sealed_payloads(settings: Settings, workflow_id: str) -> list[Payload]:
    """The record's payloads exactly as Temporal stores them (read without the codec)."""
    plain = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    history = await plain.get_workflow_handle(workflow_id).fetch_history()
    found: list[Payload] = []
    for event in history.events:
        attrs = event.activity_task_completed_event_attributes
        if event.HasField("activity_task_completed_event_attributes"):
            found.extend(attrs.result.payloads)
        if event.HasField("marker_recorded_event_attributes"):
            for payloads in event.marker_recorded_event_attributes.details.values():
                found.extend(payloads.payloads)
        if event.HasField("workflow_execution_started_event_attributes"):
            found.extend(event.workflow_execution_started_event_attributes.input.payloads)
    sealed = [p for p in found if p.metadata.get("encoding") == ENCODING]
    assert sealed, "the record's history holds no sealed payloads"
    return sealed


def as_ui_json(payloads: list[Payload]) -> dict[str, Any]:
    """The body the Temporal UI posts: protobuf JSON, bytes base64 (metadata values too)."""
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


def from_ui_json(body: dict[str, Any]) -> list[Payload]:
    return [
        Payload(
            metadata={k: base64.b64decode(v) for k, v in p.get("metadata", {}).items()},
            data=base64.b64decode(p.get("data", "")),
        )
        for p in body["payloads"]
    ]


def ui_headers(account: Account) -> dict[str, str]:
    return {**account.headers, "X-Namespace": "default", "Origin": UI_ORIGIN}


def json_payload(value: Any) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())


class TestAccess:
    async def test_anonymous_decode_is_401(
        self, client: AsyncClient, settings: Settings, record_run: RecordRun
    ) -> None:
        sealed = await raw_sealed_payloads(settings, record_run.workflow_id)
        r = await client.post("/codec/decode", json=as_ui_json(sealed))
        assert r.status_code == 401, r.text
        assert r.json()["errorCode"] == "TOKEN_INVALID"
        assert record_run.canary not in r.text

    async def test_a_user_without_spinners_read_is_403(
        self, client: AsyncClient, settings: Settings, record_run: RecordRun
    ) -> None:
        agent = await invite(client, record_run.admin, roles=["Agent"])
        account = await as_user(client, agent["email"])
        sealed = await raw_sealed_payloads(settings, record_run.workflow_id)
        r = await client.post("/codec/decode", json=as_ui_json(sealed), headers=account.headers)
        assert r.status_code == 403, r.text
        assert r.json() == {"message": "Missing permission spinners.read", "errorCode": "FORBIDDEN"}

    async def test_an_api_key_cannot_decode(
        self, client: AsyncClient, settings: Settings, record_run: RecordRun
    ) -> None:
        key = await api_key(client, record_run.admin, scopes=["ingest", "trigger"])
        sealed = await raw_sealed_payloads(settings, record_run.workflow_id)
        r = await client.post(
            "/codec/decode", json=as_ui_json(sealed), headers={"Authorization": f"Bearer {key}"}
        )
        assert r.status_code == 401 and r.json()["errorCode"] == "API_KEY_NOT_ALLOWED"


class TestOwnership:
    async def test_the_owner_reads_the_record_history_decoded(
        self, client: AsyncClient, settings: Settings, record_run: RecordRun
    ) -> None:
        sealed = await raw_sealed_payloads(settings, record_run.workflow_id)
        assert all(p.metadata[WORKFLOW_META] == record_run.workflow_id.encode() for p in sealed)
        assert not any(record_run.canary.encode() in p.data for p in sealed)
        r = await client.post(
            "/codec/decode", json=as_ui_json(sealed), headers=ui_headers(record_run.admin)
        )
        assert r.status_code == 200, r.text
        opened = from_ui_json(r.json())
        assert len(opened) == len(sealed)
        assert all(p.metadata["encoding"] != ENCODING for p in opened)
        assert any(record_run.canary.encode() in p.data for p in opened)

    async def test_the_owner_reads_the_job_workflow_too(
        self, client: AsyncClient, settings: Settings, record_run: RecordRun
    ) -> None:
        sealed = await raw_sealed_payloads(settings, job_workflow_id(record_run.job_id))
        r = await client.post(
            "/codec/decode", json=as_ui_json(sealed), headers=record_run.admin.headers
        )
        assert r.status_code == 200, r.text
        assert all(p.metadata["encoding"] != ENCODING for p in from_ui_json(r.json()))
        other = await signup(client)
        r = await client.post("/codec/decode", json=as_ui_json(sealed), headers=other.headers)
        assert r.status_code == 404

    async def test_another_organization_gets_404_and_nothing_decoded(
        self, client: AsyncClient, settings: Settings, record_run: RecordRun
    ) -> None:
        other = await signup(client)
        sealed = await raw_sealed_payloads(settings, record_run.workflow_id)
        r = await client.post("/codec/decode", json=as_ui_json(sealed), headers=ui_headers(other))
        assert r.status_code == 404, r.text
        assert r.json()["errorCode"] == "PAYLOAD_NOT_FOUND"
        assert record_run.canary not in r.text
        # One foreign payload among the caller's own refuses the whole batch.
        mine = await client.post(
            "/codec/encode", json=as_ui_json([json_payload("mine")]), headers=other.headers
        )
        mixed = from_ui_json(mine.json()) + sealed[:1]
        r = await client.post("/codec/decode", json=as_ui_json(mixed), headers=other.headers)
        assert r.status_code == 404 and "mine" not in r.text

    async def test_payloads_encoded_by_another_organization_are_refused(
        self, client: AsyncClient, record_run: RecordRun
    ) -> None:
        other = await signup(client)
        r = await client.post(
            "/codec/encode", json=as_ui_json([json_payload("theirs")]), headers=other.headers
        )
        assert r.status_code == 200, r.text
        r = await client.post("/codec/decode", json=r.json(), headers=record_run.admin.headers)
        assert r.status_code == 404 and r.json()["errorCode"] == "PAYLOAD_NOT_FOUND"

    async def test_payloads_without_an_owner_are_decoded_for_nobody(
        self, client: AsyncClient, settings: Settings, record_run: RecordRun
    ) -> None:
        """Sealed without a workflow context (or before owners were recorded): system payloads."""
        codec = await load_codec(settings)
        unowned = await codec.encode([json_payload(record_run.canary)])
        r = await client.post(
            "/codec/decode", json=as_ui_json(unowned), headers=record_run.admin.headers
        )
        assert r.status_code == 404 and record_run.canary not in r.text
        # A workflow id that is none of ours has no organization either.
        foreign = await codec.with_context(
            WorkflowSerializationContext(namespace="default", workflow_id="canary-x")
        ).encode([json_payload(record_run.canary)])
        r = await client.post(
            "/codec/decode", json=as_ui_json(foreign), headers=record_run.admin.headers
        )
        assert r.status_code == 404 and record_run.canary not in r.text


class TestTampering:
    async def test_a_flipped_byte_is_refused(
        self, client: AsyncClient, settings: Settings, record_run: RecordRun
    ) -> None:
        sealed = await raw_sealed_payloads(settings, record_run.workflow_id)
        sealed[0].data = sealed[0].data[:-1] + bytes([sealed[0].data[-1] ^ 1])
        r = await client.post(
            "/codec/decode", json=as_ui_json(sealed), headers=record_run.admin.headers
        )
        assert r.status_code == 400, r.text
        assert r.json()["errorCode"] == "PAYLOAD_TAMPERED"
        assert record_run.canary not in r.text

    async def test_relabelling_a_foreign_payload_as_mine_does_not_open_it(
        self, client: AsyncClient, settings: Settings, record_run: RecordRun
    ) -> None:
        """Org B's user renames org A's sealed payload to one of B's workflows: the owner is
        authenticated data, so the payload no longer opens."""
        other = await signup(client)
        p = await project(client, other)
        table = await make_table(
            client, other, project_id=p["id"], csv_text="name,phone\nB,+14155550101\n"
        )
        spinner = await make_spinner(client, other, project_id=p["id"], definition=log_then_tag())
        other_job = await run_now(client, other, spinner, table)
        await wait_job(client, other, other_job)
        records = await client.get(f"/api/v1/jobs/{other_job}/records", headers=other.headers)
        other_wf = record_workflow_id(int(records.json()["data"][0]["id"]))

        sealed = await raw_sealed_payloads(settings, record_run.workflow_id)
        for payload in sealed:
            payload.metadata[WORKFLOW_META] = other_wf.encode()
        r = await client.post("/codec/decode", json=as_ui_json(sealed), headers=other.headers)
        assert r.status_code == 400, r.text
        assert r.json()["errorCode"] == "PAYLOAD_TAMPERED"
        assert record_run.canary not in r.text

    async def test_an_unknown_key_is_refused(
        self, client: AsyncClient, settings: Settings, record_run: RecordRun
    ) -> None:
        sealed = await raw_sealed_payloads(settings, record_run.workflow_id)
        sealed[0].metadata["encryption-key-id"] = b"no-such-key"
        r = await client.post(
            "/codec/decode", json=as_ui_json(sealed), headers=record_run.admin.headers
        )
        assert r.status_code == 400 and r.json()["errorCode"] == "PAYLOAD_KEY_UNKNOWN"

    async def test_malformed_base64_is_a_clear_400(
        self, client: AsyncClient, record_run: RecordRun
    ) -> None:
        body = {"payloads": [{"metadata": {"encoding": "%%%"}, "data": "not base64!"}]}
        r = await client.post("/codec/decode", json=body, headers=record_run.admin.headers)
        assert r.status_code == 400, r.text
        assert r.json()["errorCode"] == "PAYLOAD_INVALID"


class TestUiRequestShape:
    async def test_encode_then_decode_gives_the_original_payloads(
        self, client: AsyncClient, record_run: RecordRun
    ) -> None:
        original = [
            json_payload({"name": "Ada", "amount": 3}),
            json_payload("signal text"),
            Payload(metadata={"encoding": b"binary/null"}),
        ]
        body = as_ui_json(original)
        r = await client.post("/codec/encode", json=body, headers=ui_headers(record_run.admin))
        assert r.status_code == 200, r.text
        encoded = r.json()
        assert [p["metadata"]["encoding"] for p in encoded["payloads"]] == [
            base64.b64encode(ENCODING).decode()
        ] * 3
        assert "Ada" not in json.dumps(encoded)
        r = await client.post("/codec/decode", json=encoded, headers=ui_headers(record_run.admin))
        assert r.status_code == 200, r.text
        assert from_ui_json(r.json()) == original

    async def test_unsealed_payloads_pass_through(
        self, client: AsyncClient, record_run: RecordRun
    ) -> None:
        body = as_ui_json([json_payload("already readable")])
        r = await client.post("/codec/decode", json=body, headers=record_run.admin.headers)
        assert r.status_code == 200 and r.json() == body

    async def test_an_empty_batch_is_an_empty_answer(
        self, client: AsyncClient, record_run: RecordRun
    ) -> None:
        r = await client.post(
            "/codec/decode", json={"payloads": []}, headers=record_run.admin.headers
        )
        assert r.status_code == 200 and r.json() == {"payloads": []}


class TestCodecLinks:
    """A codec endpoint with its own grant, for a browser on a Temporal UI that sends no header."""

    async def link(self, client: AsyncClient, account: Account) -> str:
        r = await client.post("/api/v1/codec/link", headers=account.headers)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["endpoint"].startswith("http://127.0.0.1:8000/codec/s/cxc_")
        assert account.token not in body["endpoint"]
        return str(body["endpoint"]).removeprefix("http://127.0.0.1:8000")

    async def test_the_link_decodes_as_its_user_with_no_header(
        self, client: AsyncClient, settings: Settings, record_run: RecordRun
    ) -> None:
        path = await self.link(client, record_run.admin)
        sealed = await raw_sealed_payloads(settings, record_run.workflow_id)
        r = await client.post(
            f"{path}/decode",
            json=as_ui_json(sealed),
            headers={"X-Namespace": "default", "Origin": UI_ORIGIN},
        )
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == UI_ORIGIN
        assert any(record_run.canary.encode() in p.data for p in from_ui_json(r.json()))
        encoded = await client.post(f"{path}/encode", json=as_ui_json([json_payload("x")]))
        assert encoded.status_code == 200
        back = await client.post(f"{path}/decode", json=encoded.json())
        assert from_ui_json(back.json()) == [json_payload("x")]

    async def test_another_organizations_link_decodes_nothing_of_ours(
        self, client: AsyncClient, settings: Settings, record_run: RecordRun
    ) -> None:
        path = await self.link(client, await signup(client))
        sealed = await raw_sealed_payloads(settings, record_run.workflow_id)
        r = await client.post(f"{path}/decode", json=as_ui_json(sealed))
        assert r.status_code == 404 and record_run.canary not in r.text

    async def test_a_forged_or_ended_link_is_401(
        self, client: AsyncClient, record_run: RecordRun
    ) -> None:
        account = await signup(client)
        path = await self.link(client, account)
        forged = path[:-1] + ("A" if path[-1] != "A" else "B")
        for bad in (forged, "/codec/s/cxc_nothing", f"/codec/s/{uuid.uuid4().hex}"):
            r = await client.post(f"{bad}/decode", json={"payloads": []})
            assert r.status_code == 401 and r.json()["errorCode"] == "TOKEN_INVALID", bad
        assert (await client.post(f"{path}/decode", json={"payloads": []})).status_code == 200
        assert (
            await client.post("/api/v1/auth/logout", headers=account.headers)
        ).status_code == 204
        r = await client.post(f"{path}/decode", json={"payloads": []})
        assert r.status_code == 401 and r.json()["errorCode"] == "SESSION_REVOKED"

    async def test_only_users_who_may_decode_get_a_link(
        self, client: AsyncClient, record_run: RecordRun
    ) -> None:
        agent = await invite(client, record_run.admin, roles=["Agent"])
        r = await client.post(
            "/api/v1/codec/link", headers=(await as_user(client, agent["email"])).headers
        )
        assert r.status_code == 403

    def test_the_grant_never_reaches_the_access_log(self) -> None:
        assert redact_path("/codec/s/cxc_0123abcd/decode") == "/codec/s/[redacted]/decode"


class TestCors:
    PREFLIGHT = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }

    @pytest.mark.parametrize("origin", [UI_ORIGIN, "http://localhost:8233"])
    async def test_preflight_from_the_temporal_ui_is_allowed(
        self, client: AsyncClient, origin: str
    ) -> None:
        r = await client.options("/codec/decode", headers={"Origin": origin, **self.PREFLIGHT})
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == origin
        allowed = r.headers["access-control-allow-headers"].lower()
        assert {"authorization", "x-namespace", "content-type"} <= set(allowed.split(", "))
        assert "POST" in r.headers["access-control-allow-methods"]
        assert r.headers["access-control-allow-credentials"] == "true"

    async def test_preflight_from_another_origin_is_refused(self, client: AsyncClient) -> None:
        r = await client.options(
            "/codec/decode", headers={"Origin": "http://evil.example", **self.PREFLIGHT}
        )
        assert r.status_code == 400
        assert "access-control-allow-origin" not in r.headers

    async def test_answers_carry_the_ui_origin_even_when_refused(self, client: AsyncClient) -> None:
        r = await client.post("/codec/decode", json={"payloads": []}, headers={"Origin": UI_ORIGIN})
        assert r.status_code == 401
        assert r.headers["access-control-allow-origin"] == UI_ORIGIN
        r = await client.post(
            "/codec/decode", json={"payloads": []}, headers={"Origin": "http://evil.example"}
        )
        assert "access-control-allow-origin" not in r.headers

    async def test_the_rest_of_the_api_stays_same_origin(self, client: AsyncClient) -> None:
        r = await client.options(
            "/api/v1/auth/login", headers={"Origin": UI_ORIGIN, **self.PREFLIGHT}
        )
        assert "access-control-allow-origin" not in r.headers

    def test_origins_are_a_setting(self) -> None:
        custom = make_settings(
            temporal_ui_origins="https://temporal.example.com,https://t2.example"
        )
        assert custom.codec_cors_origins == ["https://temporal.example.com", "https://t2.example"]
        moved = make_settings(temporal_ui_port=9233)
        assert moved.codec_cors_origins == ["http://127.0.0.1:9233", "http://localhost:9233"]


@pytest.fixture(scope="module")
def api_url(settings: Settings) -> Iterator[str]:
    with live_api(settings) as url:
        yield url


def temporal_show(
    settings: Settings, workflow_id: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    args = [str(find_binary("temporal")), "workflow", "show", "--workflow-id", workflow_id]
    args += ["--address", settings.temporal_address, "--namespace", settings.temporal_namespace]
    return subprocess.run([*args, *extra], capture_output=True, text=True, timeout=60)


def payload_texts(history_json: str) -> tuple[set[str], str]:
    """(every payload encoding, all json/plain payload data joined) of `workflow show -o json`."""
    encodings: set[str] = set()
    texts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            meta, data = node.get("metadata"), node.get("data")
            if isinstance(meta, dict) and "encoding" in meta:
                encoding = base64.b64decode(meta["encoding"]).decode()
                encodings.add(encoding)
                if encoding == "json/plain" and isinstance(data, str):
                    texts.append(base64.b64decode(data).decode())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history_json))
    return encodings, "\n".join(texts)


class TestTemporalCli:
    async def test_workflow_show_prints_decoded_payloads_through_the_codec_server(
        self, settings: Settings, record_run: RecordRun, api_url: str
    ) -> None:
        codec = ["--codec-endpoint", f"{api_url}/codec"]
        auth = ["--codec-auth", f"Bearer {record_run.admin.token}"]
        wf = record_run.workflow_id

        shown = await asyncio.to_thread(temporal_show, settings, wf, *codec, *auth)
        assert shown.returncode == 0, shown.stderr
        assert '{"error":null,"outputs":{"disposition":"ok"},"status":"completed"}' in shown.stdout
        assert "binary/encrypted" not in shown.stdout
        # The full history as JSON: every payload decoded, the contact's name among them.
        as_json = await asyncio.to_thread(
            temporal_show, settings, wf, *codec, *auth, "--output", "json"
        )
        assert as_json.returncode == 0, as_json.stderr
        encodings, texts = payload_texts(as_json.stdout)
        assert "binary/encrypted" not in encodings and "json/plain" in encodings
        assert f"Calling {record_run.canary}" in texts

        # Without the codec, or with the codec but no token, only sealed payloads.
        for extra in ([], codec):
            sealed = await asyncio.to_thread(temporal_show, settings, wf, *extra, "-o", "json")
            assert record_run.canary not in sealed.stdout + sealed.stderr
            if sealed.returncode == 0:
                encodings, texts = payload_texts(sealed.stdout)
                # (search attributes are plain by design: ids, no PII)
                assert "binary/encrypted" in encodings and record_run.canary not in texts


class TestLinks:
    def test_job_and_record_links_open_the_temporal_ui(self, settings: Settings) -> None:
        job_id = str(uuid.uuid4())
        assert job_workflows_url(settings, job_id) == (
            f"http://127.0.0.1:8233/namespaces/default/workflows"
            f"?query=CxJobId%20%3D%20%22{job_id}%22"
        )
        assert record_workflow_url(settings, 42) == (
            f"http://127.0.0.1:8233/namespaces/default/workflows/{record_workflow_id(42)}"
        )
        assert record_workflow_url(settings, 42, "rec-7-cb-a/b") == (
            "http://127.0.0.1:8233/namespaces/default/workflows/rec-7-cb-a%2Fb"
        )

    def test_links_follow_the_configured_ui(self) -> None:
        prod = make_settings(
            temporal_ui_url="https://temporal.example.com/", temporal_namespace="cx"
        )
        assert (
            record_workflow_url(prod, 1)
            == "https://temporal.example.com/namespaces/cx/workflows/rec-1"
        )


class TestDevStack:
    def test_cxgear_dev_points_the_temporal_ui_at_the_codec_server(self, tmp_path: Any) -> None:
        settings = make_settings(state_dir=tmp_path, api_port=18123, temporal_ui_port=18233)
        args = plan(settings).temporal.command()
        assert args[args.index("--ui-codec-endpoint") + 1] == "http://127.0.0.1:18123/codec"
        assert args[args.index("--ui-port") + 1] == "18233"
