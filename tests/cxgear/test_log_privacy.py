"""No secret or contact data in any log of a real run: `cxgear api` (uvicorn, access log included)
and `cxgear worker` as processes, a job whose function step throws with a phone number, an ingest
through a webhook token, a do-not-contact removal. The run has its own PostgreSQL and Temporal
server so that their logs hold this run only. Then every log file (API, worker, PostgreSQL,
Temporal) is scanned for canaries, after positive controls show each log is live."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from cxgear.migrate import migrate
from cxgear.stack.ports import free_port
from cxgear.stack.postgres import EmbeddedPostgres
from cxgear.stack.temporal import EmbeddedTemporal
from infra.log_privacy import redact_path
from tests.api.test_ingest import webhook
from tests.builders import (
    PASSWORD,
    make_spinner,
    make_table,
    project,
    run_now,
    signup,
    wait_job,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CANARY_PHONE = "+14155550177"
CANARY_EMAIL_USER = f"canary-{uuid.uuid4().hex[:12]}"
CANARY_EMAIL = f"{CANARY_EMAIL_USER}@example.com"
# Throws with the row's phone in its message, as user code does.
THROWING = "throw new Error('cannot reach ' + payload.phone);"


@contextmanager
def process(args: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"API exited: {log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)


class VerboseTemporal(EmbeddedTemporal):
    """The same dev server at log level info (the stack's default is warn): more lines that
    could leak, and some from this run to show the log is live."""

    def command(self) -> list[str]:
        args = super().command()
        args[args.index("--log-level") + 1] = "info"
        return args


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def own_postgres(tmp_path: Path, logs: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(
        tmp_path / "pgdata", free_port(), fast=True, log_file=logs / "postgres.log"
    )
    server.start()
    try:
        migrate(server.url)
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_temporal(logs: Path) -> Iterator[EmbeddedTemporal]:
    server = VerboseTemporal(None, free_port(), None, log_file=logs / "temporal.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stack_env(
    tmp_path: Path,
    own_postgres: EmbeddedPostgres,
    own_temporal: EmbeddedTemporal,
    openbao_server: Any,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXGEAR_")}
    env.update(
        CXGEAR_ENVIRONMENT="test",
        CXGEAR_STATE_DIR=str(tmp_path / "state"),
        CXGEAR_DATABASE_URL=own_postgres.url,
        CXGEAR_TEMPORAL_ADDRESS=own_temporal.address,
        CXGEAR_VAULT_ADDRESS=openbao_server.address,
        CXGEAR_VAULT_TOKEN=openbao_server.token,
        CXGEAR_SECRET_KEY=f"log-privacy-{uuid.uuid4().hex}",
        CXGEAR_TASK_QUEUE_PREFIX=f"t{uuid.uuid4().hex[:8]}",
        PYTHONUNBUFFERED="1",
    )
    return env


@contextmanager
def running_stack(env: dict[str, str], logs: Path) -> Iterator[str]:
    """`cxgear api` and `cxgear worker` as processes; yields the API's URL. Both have stopped
    (and flushed their logs) once the block ends."""
    port = free_port()
    env = {**env, "CXGEAR_PUBLIC_API_URL": f"http://127.0.0.1:{port}"}
    cxgear = [sys.executable, "-m", "cxgear"]
    with (
        process([*cxgear, "api", "--port", str(port)], logs / "api.log", env) as api,
        process([*cxgear, "worker"], logs / "worker.log", env),
    ):
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, api, logs / "api.log")
        yield url


class TestRedactPath:
    @pytest.mark.parametrize(
        ("path", "logged"),
        [
            ("/api/v1/public/data-tables/ingest/cxw_s3cret", "/api/v1/public/data-tables/ingest/[redacted]"),
            ("/api/v1/public/data-tables/ingest/guess?x=1", "/api/v1/public/data-tables/ingest/[redacted]?x=[redacted]"),
            ("/api/v1/do-not-contact/ada%40example.com", "/api/v1/do-not-contact/[redacted]"),
            ("/api/v1/do-not-contact/%2B14155550177", "/api/v1/do-not-contact/[redacted]"),
            ("/api/v1/do-not-contact/remove", "/api/v1/do-not-contact/remove"),
            ("/api/v1/do-not-contact?before=9&limit=2", "/api/v1/do-not-contact?before=9&limit=2"),
            ("/api/v1/jobs/1/records?q=%2B1415&limit=5", "/api/v1/jobs/1/records?q=[redacted]&limit=5"),
            ("/anything/cxg_key/x?cxw_token", "/anything/[redacted]/x?[redacted]"),
        ],
    )  # fmt: skip
    def test_credentials_and_contact_data_are_redacted(self, path: str, logged: str) -> None:
        assert redact_path(path) == logged


async def run_the_job(client: httpx.AsyncClient) -> str:
    """Ingest by webhook token, a function step throwing with the phone, a do-not-contact
    removal, a records search by phone; returns the webhook token."""
    admin = await signup(client, email=CANARY_EMAIL)
    # A second sign-up with the same address: refused, and no unique-violation DETAIL (which
    # would quote the address) in PostgreSQL's log.
    r = await client.post(
        "/api/v1/auth/signup",
        json={
            "fullName": "Ada Again",
            "organizationName": "Org again",
            "email": CANARY_EMAIL,
            "password": PASSWORD,
        },
    )
    assert r.status_code == 409, r.text
    p = await project(client, admin)
    table = await make_table(
        client, admin, project_id=p["id"], csv_text=f"name,phone\nAda,{CANARY_PHONE}\n"
    )
    hook = await webhook(client, admin, table["id"])
    r = await client.post(hook, json={"records": [{"name": CANARY_EMAIL, "phone": CANARY_PHONE}]})
    assert r.status_code == 200, r.text

    spinner = await make_spinner(
        client,
        admin,
        project_id=p["id"],
        definition={"steps": [{"id": "reach", "type": "function", "code": THROWING}]},
    )
    job = await wait_job(client, admin, await run_now(client, admin, spinner, table))
    assert job["status"] == "failed", job
    records = f"/api/v1/jobs/{job['id']}/records"
    recs = (await client.get(records, headers=admin.headers)).json()
    assert recs["count"] == 2
    # The message is kept where it belongs: on the record (and in its encrypted journey).
    assert all(f"cannot reach {CANARY_PHONE}" in r["error"] for r in recs["data"]), recs
    r = await client.get(records, params={"q": CANARY_PHONE}, headers=admin.headers)
    assert r.status_code == 200, r.text

    dnc = "/api/v1/do-not-contact"
    for _ in range(2):  # the second add of the same address must not surface as a SQL error
        r = await client.post(dnc, json={"address": CANARY_EMAIL}, headers=admin.headers)
        assert r.status_code in (200, 201), r.text
    r = await client.post(dnc, json={"address": CANARY_PHONE}, headers=admin.headers)
    assert r.status_code in (200, 201), r.text
    r = await client.post(f"{dnc}/remove", json={"address": CANARY_EMAIL}, headers=admin.headers)
    assert r.status_code == 204, r.text
    # An old client removing by path: refused, and its path must not reach the log either.
    r = await client.delete(f"{dnc}/{CANARY_EMAIL}", headers=admin.headers)
    assert r.status_code in (404, 405)
    return hook.rsplit("/", 1)[1]


def probe_postgres(server: EmbeddedPostgres) -> str:
    """A failing statement of our own, so the scan is known to read the log PostgreSQL writes
    its errors (and their statements) to."""
    marker = f"cx_log_probe_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.url.replace("+psycopg", ""), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute(f"select 1 from {marker}")
    return marker


class TestLogsOfARun:
    async def test_no_token_phone_or_email_in_any_log(
        self,
        logs: Path,
        stack_env: dict[str, str],
        own_postgres: EmbeddedPostgres,
        own_temporal: EmbeddedTemporal,
    ) -> None:
        with running_stack(stack_env, logs) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                token = await run_the_job(client)
        marker = probe_postgres(own_postgres)
        # Stopped, so every line is flushed; the fixtures' stop() after this is a no-op.
        own_postgres.stop()
        own_temporal.stop()

        texts = {f.name: f.read_text(errors="replace") for f in sorted(logs.iterdir())}
        assert sorted(texts) == ["api.log", "postgres.log", "temporal.log", "worker.log"]
        access = texts["api.log"]
        # Positive controls: the logs were written, and the redacted requests are in them.
        assert '"POST /api/v1/public/data-tables/ingest/[redacted] HTTP/1.1" 200' in access
        assert '"POST /api/v1/do-not-contact/remove HTTP/1.1" 204' in access
        assert '"DELETE /api/v1/do-not-contact/[redacted] HTTP/1.1"' in access
        assert '"POST /api/v1/auth/signup HTTP/1.1" 409' in access
        assert "/records?q=[redacted]" in access
        assert "'reach' failed in its own code" in texts["worker.log"]
        assert f'relation "{marker}" does not exist' in texts["postgres.log"]
        # The server's own lines from this run: it loaded the workers' task queues.
        prefix = stack_env["CXGEAR_TASK_QUEUE_PREFIX"]
        assert f"wf-task-queue-name={prefix}" in texts["temporal.log"]
        needles = {
            "webhook token": token,
            "webhook token body": token.removeprefix("cxw_"),
            "phone": CANARY_PHONE.removeprefix("+"),
            "email": CANARY_EMAIL_USER,
        }
        for name, text in texts.items():
            assert text.strip(), f"{name} is empty"
            found = [what for what, needle in needles.items() if needle in text]
            assert not found, f"{name} contains the {found}:\n{text[-3000:]}"
