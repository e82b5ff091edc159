"""`cxgear dev`: PostgreSQL, Temporal + UI, OpenBao and SeaweedFS (S3) from our wheels, then
migrations, API, worker.

Everything runs as children of this process with state under settings.state_dir. Ctrl-C stops
them in dependency order: API and worker first, then the servers they talk to.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import NoReturn
from urllib.parse import unquote, urlsplit

import httpx
from rich.console import Console

from cxgear.stack import StackError, find_binary
from cxgear.stack.openbao import EmbeddedOpenBao
from cxgear.stack.ports import LOOPBACK, port_in_use, port_of_address
from cxgear.stack.postgres import EmbeddedPostgres
from cxgear.stack.process import spawn, stop_process, tail
from cxgear.stack.seaweedfs import EmbeddedSeaweedFS
from cxgear.stack.temporal import EmbeddedTemporal
from infra.settings import Settings

SERVER_TIMEOUT = 90.0
API_TIMEOUT = 90.0
MIGRATE_TIMEOUT = 300.0
POLL = 0.2
BINARIES = ("postgres", "initdb", "temporal", "bao", "weed")
RECORDINGS_BUCKET = "recordings"


@dataclass
class Child:
    """An app process (migrate, API, worker) started by the launcher."""

    name: str
    proc: subprocess.Popen[bytes]
    log_file: Path
    stop_signal: signal.Signals = signal.SIGINT


@dataclass
class Stack:
    state_dir: Path
    logs: Path
    postgres: EmbeddedPostgres
    temporal: EmbeddedTemporal
    openbao: EmbeddedOpenBao
    s3: EmbeddedSeaweedFS
    api_host: str
    api_port: int
    ports: list[tuple[int, str, str]] = field(default_factory=list)
    # The operator's CXGEAR_PROVIDER_ALLOWED_HOSTS (environment or .env), kept for the apps.
    provider_allowed_hosts: list[str] = field(default_factory=list)
    apps: list[Child] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        host = LOOPBACK if self.api_host in ("0.0.0.0", "") else self.api_host
        return f"http://{host}:{self.api_port}"

    @property
    def s3_host(self) -> str:
        return f"{LOOPBACK}:{self.s3.port}"

    @property
    def codec_url(self) -> str:
        return f"{self.api_url}/codec"

    def servers(self) -> list[tuple[str, subprocess.Popen[bytes] | None, Path]]:
        return [
            ("PostgreSQL", self.postgres.process, self.postgres.log_file),
            ("Temporal", self.temporal.process, self.temporal.log_file),
            ("OpenBao", self.openbao.process, self.openbao.log_file),
            ("SeaweedFS", self.s3.process, self.s3.log_file),
        ]


def plan(settings: Settings) -> Stack:
    state = settings.state_dir.expanduser().absolute()
    logs = state / "logs"
    # urlsplit rather than SQLAlchemy's make_url: importing SQLAlchemy costs the launcher a second.
    db = urlsplit(settings.database_url)
    pg_port = db.port or 5432
    db_user = unquote(db.username) if db.username else "cxgear"
    db_name = db.path.lstrip("/") or "cxgear"
    temporal_port = port_of_address(settings.temporal_address, 7233)
    vault_port = port_of_address(settings.vault_address, 8200)
    stack = Stack(
        state_dir=state,
        logs=logs,
        postgres=EmbeddedPostgres(
            state / "postgres",
            pg_port,
            user=db_user,
            database=db_name,
            log_file=logs / "postgres.log",
        ),
        temporal=EmbeddedTemporal(
            state / "temporal.db",
            temporal_port,
            settings.temporal_ui_port,
            namespace=settings.temporal_namespace,
            log_file=logs / "temporal.log",
        ),
        openbao=EmbeddedOpenBao(state / "openbao", vault_port, log_file=logs / "openbao.log"),
        s3=EmbeddedSeaweedFS(
            state / "seaweedfs",
            settings.embedded_s3_port,
            buckets=(RECORDINGS_BUCKET,),
            log_file=logs / "seaweedfs.log",
        ),
        api_host=settings.api_host,
        api_port=settings.api_port,
        provider_allowed_hosts=list(settings.provider_allowed_hosts),
    )
    # The UI asks our API to decode payloads (users still need to be signed in; see README).
    stack.temporal.ui_codec_endpoint = stack.codec_url
    stack.ports = [
        (pg_port, "PostgreSQL", "CXGEAR_DATABASE_URL"),
        (temporal_port, "Temporal", "CXGEAR_TEMPORAL_ADDRESS"),
        (settings.temporal_ui_port, "Temporal UI", "CXGEAR_TEMPORAL_UI_PORT"),
        (vault_port, "OpenBao", "CXGEAR_VAULT_ADDRESS"),
        (stack.openbao.cluster_port, "OpenBao cluster", "CXGEAR_VAULT_ADDRESS"),
        (settings.api_port, "API", "CXGEAR_API_PORT"),
    ]
    # SeaweedFS's master, volume and filer take the ports right after its S3 port.
    stack.ports += [(port, "SeaweedFS", "CXGEAR_EMBEDDED_S3_PORT") for port in stack.s3.ports]
    return stack


def preflight(stack: Stack) -> str | None:
    """Everything that can be checked before starting anything; a one-line problem or None."""
    for name in BINARIES:
        try:
            find_binary(name)
        except StackError as exc:
            return str(exc)
    seen: dict[int, str] = {}
    for port, what, _ in stack.ports:
        if port in seen:
            return f"port {port} is configured for both {seen[port]} and {what}"
        seen[port] = what
    busy = [
        (port, what, env)
        for port, what, env in stack.ports
        if port_in_use(port, stack.api_host if what == "API" else LOOPBACK)
    ]
    if busy:
        named = ", ".join(f"{port} ({what}, set by {env})" for port, what, env in busy)
        word = "port" if len(busy) == 1 else "ports"
        return f"{word} {named} already in use; stop what holds it or choose another"
    return None


def run_dev(settings: Settings) -> int:
    # A shell starts background jobs with SIGINT ignored and Python keeps that, so `kill -INT`
    # from a script would do nothing; Ctrl-C must stop us however we were started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out = Console(soft_wrap=True, highlight=False)
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    started = time.monotonic()
    stack = plan(settings)
    problem = preflight(stack)
    if problem:
        err.print(f"cxgear dev: {problem}", markup=False, style="red")
        return 1
    stack.logs.mkdir(parents=True, exist_ok=True)
    out.print(
        f"Starting PostgreSQL, Temporal, OpenBao and SeaweedFS (state in {stack.state_dir}, "
        f"logs in {stack.logs}/)",
        markup=False,
    )
    code = 0
    with _sigterm_as_interrupt():
        try:
            _start(stack, out, started)
            _watch(stack)
        except KeyboardInterrupt:
            out.print("Stopping...")
        except StackError as exc:
            err.print(f"cxgear dev: {exc}", markup=False, style="red")
            code = 1
        finally:
            with _signals_ignored():
                _stop(stack)
    if code == 0:
        out.print("Stopped.")
    return code


def _start(stack: Stack, out: Console, started: float) -> None:
    # Launch all four before waiting on any: they boot in parallel, so the wait is the slowest.
    stack.temporal.launch()
    stack.openbao.launch()
    stack.s3.launch()
    stack.postgres.launch()
    stack.postgres.wait_ready(SERVER_TIMEOUT)
    stack.temporal.wait_ready(SERVER_TIMEOUT)
    stack.openbao.wait_ready(SERVER_TIMEOUT)
    stack.s3.wait_ready(SERVER_TIMEOUT)
    out.print(f"Servers up in {time.monotonic() - started:.1f}s; migrating the database")

    env = _app_env(stack)
    migrate = _run_app(stack, "migrate", [sys.executable, "-m", "cxgear", "migrate"], env)
    code = _wait(migrate.proc, MIGRATE_TIMEOUT)
    stack.apps.remove(migrate)
    if code != 0:
        raise StackError(_exit_message("migrations", code, migrate.log_file, "failed"))

    # `cxgear api`, as in production: it freezes the imported modules out of the collector.
    api_cmd = [sys.executable, "-m", "cxgear", "api"]
    api_cmd += ["--host", stack.api_host, "--port", str(stack.api_port)]
    _run_app(stack, "API", api_cmd, env)
    _run_app(stack, "worker", [sys.executable, "-m", "cxgear", "worker"], env)
    _wait_healthy(stack)

    temporal_ui = stack.temporal.ui_url or "(headless)"
    for label, value in (
        ("API", stack.api_url),
        ("OpenAPI docs", f"{stack.api_url}/docs"),
        ("Temporal UI", temporal_ui),
        ("Codec server", f"{stack.codec_url}  (the Temporal UI decodes payloads through it)"),
        ("Temporal gRPC", stack.temporal.address),
        ("OpenBao", f"{stack.openbao.address}  (root token in {stack.openbao.init_file})"),
        (
            "S3 (SeaweedFS)",
            f"{stack.s3.endpoint_url}  (bucket {RECORDINGS_BUCKET}; keys in "
            f"{stack.s3.credentials_file})",
        ),
        ("Logs", f"{stack.logs}/"),
    ):
        out.print(f"  {label:<14} {value}", markup=False)
    out.print(f"CXGear ready in {time.monotonic() - started:.1f}s. Press Ctrl-C to stop.")


def _app_env(stack: Stack) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CXGEAR_DATABASE_URL=stack.postgres.url,
        CXGEAR_TEMPORAL_ADDRESS=stack.temporal.address,
        CXGEAR_VAULT_ADDRESS=stack.openbao.address,
        CXGEAR_VAULT_AUTH="token",
        CXGEAR_VAULT_TOKEN=stack.openbao.token,
        CXGEAR_ENVIRONMENT="development",
        CXGEAR_STATE_DIR=str(stack.state_dir),
        CXGEAR_EMBEDDED_S3_URL=stack.s3.endpoint_url,
        CXGEAR_EMBEDDED_S3_ACCESS_KEY=stack.s3.keys.access_key,
        CXGEAR_EMBEDDED_S3_SECRET_KEY=stack.s3.keys.secret_key,
        # An s3 storage integration may name the embedded store although it is on loopback.
        CXGEAR_PROVIDER_ALLOWED_HOSTS=json.dumps([*stack.provider_allowed_hosts, stack.s3_host]),
        # Log lines should reach the files as they happen, not when a buffer fills.
        PYTHONUNBUFFERED="1",
    )
    return env


def _run_app(stack: Stack, name: str, args: list[str], env: dict[str, str]) -> Child:
    log_file = stack.logs / f"{name.lower()}.log"
    child = Child(
        name, spawn(args, log_file=log_file, env=env, death_signal=signal.SIGINT), log_file
    )
    stack.apps.append(child)
    return child


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (code := proc.poll()) is None:
        if time.monotonic() > deadline:
            raise StackError(f"pid {proc.pid} still running after {timeout:.0f}s")
        time.sleep(0.05)
    return code


def _wait_healthy(stack: Stack) -> None:
    deadline = time.monotonic() + API_TIMEOUT
    url = f"{stack.api_url}/healthz"
    while True:
        _check_alive(stack)
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise StackError(f"API did not answer {url} within {API_TIMEOUT:.0f}s")
        time.sleep(0.1)


def _check_alive(stack: Stack) -> None:
    everyone = [(c.name, c.proc, c.log_file) for c in stack.apps] + stack.servers()
    for name, proc, log_file in everyone:
        code = proc.poll() if proc is not None else None
        if code is not None:
            raise StackError(_exit_message(name, code, log_file, "exited unexpectedly"))


def _exit_message(name: str, code: int, log_file: Path, verb: str) -> str:
    last = tail(log_file)
    return f"{name} {verb} (code {code}); see {log_file}" + (f": {last}" if last else "")


def _watch(stack: Stack) -> NoReturn:
    while True:
        _check_alive(stack)
        time.sleep(POLL)


def _stop(stack: Stack) -> None:
    for child in stack.apps:
        # SIGINT: uvicorn and the worker both treat it as "finish in-flight work, then exit".
        stop_process(child.proc, sig=child.stop_signal, timeout=20)
    stack.apps.clear()
    stack.s3.stop()
    stack.openbao.stop()
    stack.temporal.stop()
    stack.postgres.stop()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (systemd, docker stop, kill) gets the same orderly stop as Ctrl-C."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """A second Ctrl-C must not abandon a half-finished shutdown; each step is time-bounded."""
    try:
        previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
