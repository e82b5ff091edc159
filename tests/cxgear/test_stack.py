"""The embedded stack: data survives restarts, `cxgear dev` explains what stops it, starts, stops."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import hvac
import psutil
import psycopg
import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from cxgear.stack import MissingBinaryError, StackError, find_binary
from cxgear.stack.dev import run_dev
from cxgear.stack.openbao import EmbeddedOpenBao
from cxgear.stack.ports import free_port, port_in_use
from cxgear.stack.postgres import EmbeddedPostgres
from cxgear.stack.temporal import SEARCH_ATTRIBUTES, EmbeddedTemporal
from infra.settings import Settings
from tests.dev_stack import DevRun, running_dev


@dataclass
class GreetInput:
    name: str


@dataclass
class GreetResult:
    greeting: str


@workflow.defn
class GreetWorkflow:
    @workflow.run
    async def run(self, params: GreetInput) -> GreetResult:
        return GreetResult(greeting=f"hello {params.name}")


class PersistentStack:
    """The three servers as `cxgear dev` runs them, on fixed dirs and ports so they can restart."""

    def __init__(self, state: Path) -> None:
        self.postgres = EmbeddedPostgres(state / "postgres", free_port())
        self.temporal = EmbeddedTemporal(state / "temporal.db", free_port(), None)
        self.openbao = EmbeddedOpenBao(state / "openbao", free_port(consecutive=2))

    def start(self) -> None:
        # As `cxgear dev` does: all three boot in parallel, then each is waited for.
        self.temporal.launch()
        self.openbao.launch()
        self.postgres.launch()
        self.postgres.wait_ready()
        self.temporal.wait_ready()
        self.openbao.wait_ready()

    def stop(self) -> None:
        self.openbao.stop()
        self.temporal.stop()
        self.postgres.stop()


@pytest.fixture
def persistent_stack(tmp_path: Path) -> Iterator[PersistentStack]:
    stack = PersistentStack(tmp_path / "state")
    try:
        yield stack
    finally:
        stack.stop()


class TestRestart:
    async def test_row_workflow_and_secret_survive_a_restart(
        self, persistent_stack: PersistentStack
    ) -> None:
        stack = persistent_stack
        stack.start()
        conninfo = stack.postgres.url.replace("+psycopg", "")
        with psycopg.connect(conninfo) as conn:
            conn.execute("CREATE TABLE note (id int PRIMARY KEY, body text NOT NULL)")
            conn.execute("INSERT INTO note VALUES (1, 'kept')")

        workflow_id = f"greet-{uuid.uuid4()}"
        task_queue = f"tq-{uuid.uuid4()}"
        client = await Client.connect(stack.temporal.address)
        # The workflow is trivial and lives in a test module full of non-deterministic imports.
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[GreetWorkflow],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            result = await client.execute_workflow(
                GreetWorkflow.run, GreetInput("ada"), id=workflow_id, task_queue=task_queue
            )
        assert result == GreetResult("hello ada")

        secret_path = f"tests/{uuid.uuid4().hex}"
        stack.openbao.client().secrets.kv.v2.create_or_update_secret(
            path=secret_path, secret={"api_key": "sk-kept"}, mount_point="secret"
        )
        token = stack.openbao.token

        stack.stop()
        assert stack.postgres.process is None
        stack.start()

        with psycopg.connect(conninfo) as conn:
            assert conn.execute("SELECT body FROM note WHERE id = 1").fetchone() == ("kept",)

        client = await Client.connect(stack.temporal.address)
        handle = client.get_workflow_handle_for(GreetWorkflow.run, workflow_id)
        description = await handle.describe()
        assert description.status == WorkflowExecutionStatus.COMPLETED
        assert await handle.result() == GreetResult("hello ada")
        history = await handle.fetch_history()
        assert any(
            e.HasField("workflow_execution_completed_event_attributes") for e in history.events
        )

        assert stack.openbao.token == token
        read = stack.openbao.client().secrets.kv.v2.read_secret_version(
            path=secret_path, mount_point="secret", raise_on_deleted_version=True
        )
        assert read["data"]["data"] == {"api_key": "sk-kept"}

        init_file = stack.openbao.init_file
        assert init_file is not None
        assert stat.S_IMODE(init_file.stat().st_mode) == 0o600

    def test_openbao_refuses_initialised_data_without_its_key_file(self, tmp_path: Path) -> None:
        bao = EmbeddedOpenBao(tmp_path / "openbao", free_port(consecutive=2))
        try:
            bao.start()
            bao.stop()
            assert bao.init_file is not None
            bao.init_file.rename(tmp_path / "elsewhere.json")
            with pytest.raises(StackError, match="init.json is missing"):
                bao.start()
        finally:
            bao.stop()


class TestSessionServers:
    async def test_temporal_has_our_search_attributes(
        self, temporal_server: EmbeddedTemporal
    ) -> None:
        client = await Client.connect(temporal_server.address)
        found = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        registered = {
            name: IndexedValueType.Name(kind).removeprefix("INDEXED_VALUE_TYPE_")
            for name, kind in found.custom_attributes.items()
        }
        expected = {name: kind.upper() for name, kind in SEARCH_ATTRIBUTES.items()}
        assert expected.items() <= registered.items()

    def test_openbao_dev_server_has_kv_v2_at_secret(self, openbao_server: EmbeddedOpenBao) -> None:
        client = hvac.Client(url=openbao_server.address, token=openbao_server.token)
        client.secrets.kv.v2.create_or_update_secret(path="probe", secret={"x": "1"})
        assert client.secrets.kv.v2.read_secret_version(
            path="probe", raise_on_deleted_version=True
        )["data"]["data"] == {"x": "1"}

    def test_postgres_creates_the_database(self, postgres_server: EmbeddedPostgres) -> None:
        with psycopg.connect(postgres_server.url.replace("+psycopg", "")) as conn:
            row = conn.execute("SELECT current_user, current_database()").fetchone()
        assert row == ("cxgear", "cxgear")

    def test_time_skipping_server_binary_is_there(self, time_skipping_env_path: str) -> None:
        assert os.access(time_skipping_env_path, os.X_OK)


class TestBinaries:
    @pytest.mark.parametrize(
        "name", ["postgres", "initdb", "temporal", "bao", "temporal-test-server", "weed"]
    )
    def test_every_server_binary_ships_in_a_wheel(self, name: str) -> None:
        assert os.access(find_binary(name), os.X_OK)

    def test_a_missing_binary_is_named_with_its_package(self) -> None:
        with pytest.raises(MissingBinaryError) as caught:
            find_binary("no-such-server-binary")
        message = str(caught.value)
        assert "no-such-server-binary binary not found" in message
        assert "\n" not in message


class TestPorts:
    def test_a_listening_port_is_busy_and_free_once_closed(self) -> None:
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert port_in_use(port)
        holder.close()
        assert not port_in_use(port)

    def test_free_port_pair_leaves_the_next_port_free(self) -> None:
        port = free_port(consecutive=2)
        assert not port_in_use(port) and not port_in_use(port + 1)


def dev_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "state_dir": tmp_path / "state",
        "database_url": f"postgresql+psycopg://cxgear@127.0.0.1:{free_port()}/cxgear",
        "temporal_address": f"127.0.0.1:{free_port()}",
        "temporal_ui_port": free_port(),
        "vault_address": f"http://127.0.0.1:{free_port(consecutive=2)}",
        "api_port": free_port(),
    }
    values.update(overrides)
    return Settings.model_validate(values)


class TestDevPreflight:
    def test_busy_api_port_is_named_in_one_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            code = run_dev(dev_settings(tmp_path, api_port=port))
        out, err = capsys.readouterr()
        assert code == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert f"port {port} (API" in lines[0]
        assert "Traceback" not in out + err
        assert not (tmp_path / "state").exists(), "nothing may start when a port is taken"

    def test_the_same_port_twice_is_refused(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        port = free_port()
        code = run_dev(dev_settings(tmp_path, api_port=port, temporal_ui_port=port))
        assert code == 1
        assert f"port {port} is configured for both Temporal UI and API" in capsys.readouterr().err


@pytest.fixture
def dev_run(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DevRun]:
    """`python -m cxgear dev` on free ports and a fresh state dir, already past its ready line.

    Parametrized indirectly with "background", it starts as a shell's background job does:
    with SIGINT ignored."""
    background = getattr(request, "param", None) == "background"
    command = [sys.executable, "-m", "cxgear", "dev"]
    with running_dev(command, tmp_path / "state", ignore_sigint=background) as run:
        yield run


class TestCxgearDev:
    def test_starts_everything_answers_and_stops_cleanly_on_ctrl_c(
        self, dev_run: DevRun, tmp_path: Path
    ) -> None:
        ports = dev_run.ports
        api = f"http://127.0.0.1:{ports['api']}"
        ui = f"http://127.0.0.1:{ports['ui']}"
        assert httpx.get(f"{api}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{api}/docs", timeout=5).status_code == 200
        assert httpx.get(f"{ui}/", timeout=5).status_code == 200
        bao = httpx.get(f"http://127.0.0.1:{ports['bao']}/v1/sys/health", timeout=5)
        assert bao.status_code == 200
        for url in (api, f"{api}/docs", ui):
            assert url in dev_run.text
        # The UI decodes through the API's codec server, which lets the UI's origin call it.
        codec = httpx.get(f"{ui}/api/v1/settings", timeout=5).json()["Codec"]
        assert codec["Endpoint"] == f"{api}/codec"
        preflight = httpx.options(
            f"{api}/codec/decode",
            headers={
                "Origin": ui,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            },
            timeout=5,
        )
        assert preflight.headers.get("access-control-allow-origin") == ui

        # The S3 store answers with the keys written to the state dir and has the bucket.
        keys_file = tmp_path / "state" / "seaweedfs" / "credentials.json"
        assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
        keys = json.loads(keys_file.read_text())
        s3_url = f"http://127.0.0.1:{ports['s3']}"
        assert s3_url in dev_run.text
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_url,
            aws_access_key_id=keys["access_key"],
            aws_secret_access_key=keys["secret_key"],
            region_name="us-east-1",
        )
        assert [b.get("Name") for b in s3.list_buckets()["Buckets"]] == ["recordings"]
        s3.put_object(Bucket="recordings", Key="hello.txt", Body=b"kept")
        assert s3.get_object(Bucket="recordings", Key="hello.txt")["Body"].read() == b"kept"

        descendants = dev_run.descendants()
        assert len(descendants) >= 6  # postgres, temporal, bao, seaweedfs, API, worker
        # The API and the worker run as in production: `cxgear api` (it freezes its imports out
        # of the collector's passes) and `cxgear worker`.
        commands = {tuple(p.cmdline()[1:4]) for p in descendants}
        assert {("-m", "cxgear", "api"), ("-m", "cxgear", "worker")} <= commands
        dev_run.proc.send_signal(signal.SIGINT)
        assert dev_run.proc.wait(90) == 0, dev_run.read_rest()
        _, alive = psutil.wait_procs(descendants, timeout=10)
        assert alive == [], f"left behind: {alive}"
        for port in ports.values():
            assert not port_in_use(port), f"port {port} still held"

    def test_a_dying_child_stops_the_rest_and_is_named(self, dev_run: DevRun) -> None:
        descendants = dev_run.descendants()
        worker = next(p for p in descendants if p.cmdline()[-2:] == ["cxgear", "worker"])
        worker.kill()
        assert dev_run.proc.wait(90) == 1
        assert "worker exited unexpectedly" in dev_run.read_rest()
        _, alive = psutil.wait_procs(descendants, timeout=10)
        assert alive == [], f"left behind: {alive}"

    @pytest.mark.parametrize("dev_run", ["background"], indirect=True)
    def test_started_with_sigint_ignored_still_stops_on_sigint(self, dev_run: DevRun) -> None:
        descendants = dev_run.descendants()
        dev_run.proc.send_signal(signal.SIGINT)
        code = dev_run.proc.wait(90)
        output = dev_run.read_rest()
        assert code == 0 and "Stopped." in output, output
        _, alive = psutil.wait_procs(descendants, timeout=10)
        assert alive == [], f"left behind: {alive}"
