"""Pytest plugin: the real servers, started once per test session from the same wheels as `cxgear dev`.

Loaded from tests/conftest.py with ``pytest_plugins = ["tests.stack_fixtures"]``. Each server
starts only when a test first asks for it, on a free loopback port, and stops at session end.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

import pytest

from cxgear.stack import StackError, find_binary
from cxgear.stack.openbao import EmbeddedOpenBao
from cxgear.stack.ports import free_port
from cxgear.stack.postgres import EmbeddedPostgres
from cxgear.stack.seaweedfs import PORTS as SEAWEEDFS_PORTS
from cxgear.stack.seaweedfs import EmbeddedSeaweedFS, S3Keys
from cxgear.stack.temporal import EmbeddedTemporal

__all__ = [
    "free_port",
    "openbao_server",
    "postgres_server",
    "s3_server",
    "temporal_server",
    "time_skipping_env_path",
]

STARTUP_TIMES: dict[str, float] = {}
# Another process can take a port between free_port() and the server binding it.
PORT_RACE_ATTEMPTS = 3


class Server(Protocol):
    def start(self, timeout: float = 60) -> None: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=Server)


def _start(name: str, make: Callable[[int], S]) -> S:
    for attempt in range(1, PORT_RACE_ATTEMPTS + 1):
        server = make(attempt)
        began = time.monotonic()
        try:
            server.start()
        except StackError:
            server.stop()
            if attempt == PORT_RACE_ATTEMPTS:
                raise
            continue
        STARTUP_TIMES[name] = time.monotonic() - began
        return server
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    root = tmp_path_factory.mktemp("postgres")

    def make(attempt: int) -> EmbeddedPostgres:
        return EmbeddedPostgres(
            root / f"data{attempt}",
            free_port(),
            fast=True,
            log_file=root / f"postgres{attempt}.log",
        )

    server = _start("PostgreSQL", make)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedTemporal]:
    """In-memory `temporal server start-dev` with our search attributes; `.address` is host:port."""
    root = tmp_path_factory.mktemp("temporal")

    def make(attempt: int) -> EmbeddedTemporal:
        return EmbeddedTemporal(None, free_port(), None, log_file=root / f"temporal{attempt}.log")

    server = _start("Temporal", make)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def openbao_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedOpenBao]:
    """`bao server -dev` (in memory, KV v2 at secret/); `.address` and root `.token`."""
    root = tmp_path_factory.mktemp("openbao")

    def make(attempt: int) -> EmbeddedOpenBao:
        return EmbeddedOpenBao(
            None, free_port(consecutive=2), dev=True, log_file=root / f"openbao{attempt}.log"
        )

    server = _start("OpenBao", make)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSeaweedFS]:
    """SeaweedFS with its S3 gateway and a `recordings` bucket; `.endpoint_url`, `.keys`,
    `.client()`."""
    root = tmp_path_factory.mktemp("seaweedfs")
    keys = S3Keys("cxtest" + uuid.uuid4().hex[:10], uuid.uuid4().hex + uuid.uuid4().hex)

    def make(attempt: int) -> EmbeddedSeaweedFS:
        return EmbeddedSeaweedFS(
            root / f"data{attempt}",
            free_port(consecutive=SEAWEEDFS_PORTS),
            keys=keys,
            buckets=("recordings",),
            log_file=root / f"seaweedfs{attempt}.log",
        )

    server = _start("SeaweedFS", make)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def time_skipping_env_path() -> str:
    """For `WorkflowEnvironment.start_time_skipping(test_server_existing_path=...)`: no download."""
    return str(find_binary("temporal-test-server"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if STARTUP_TIMES:
        figures = ", ".join(f"{name} {secs:.2f}s" for name, secs in STARTUP_TIMES.items())
        terminalreporter.write_line(f"embedded servers started: {figures}")
