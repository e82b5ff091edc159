"""Shared fixtures: real PostgreSQL, Temporal and OpenBao (see stack_fixtures), one database per module."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from api.app import create_app
from cxgear.migrate import migrate
from infra.settings import Settings
from tests.fakes.signed import FAKE_HOST

pytest_plugins = ["tests.stack_fixtures"]

TEMPLATE_DB = "cxgear_template"
# Record ids of each module start somewhere in this range (see fresh_database).
RECORD_ID_SPREAD = 10**12


@pytest.fixture(scope="session")
def template_database(postgres_server: Any) -> str:
    admin = postgres_server.url_for("postgres").replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    migrate(postgres_server.url_for(TEMPLATE_DB))
    return TEMPLATE_DB


def fresh_database(postgres_server: Any, template: str) -> str:
    """A database of its own for a module, its record ids starting at a random offset.

    Record workflow ids are `rec-<record id>` and every module shares one Temporal server: a
    record still waiting in an earlier module's database would otherwise own the workflow id of
    this module's record with the same id, and that record could never start.
    """
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = postgres_server.url_for("postgres").replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    url = str(postgres_server.url_for(name))
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(
            "select setval(pg_get_serial_sequence('record', 'id'), %s)",
            (secrets.randbelow(RECORD_ID_SPREAD) + 1,),
        )
    return url


@pytest.fixture(scope="module")
def database_url(postgres_server: Any, template_database: str) -> str:
    return fresh_database(postgres_server, template_database)


def make_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "environment": "test",
        "secret_key": "test-secret-key-that-is-long-enough-0123456789",
        "task_queue_prefix": f"t{uuid.uuid4().hex[:8]}",
        # Every test signs up from the same client address; tests/api/test_throttle.py sets its own.
        "signup_rate_limit": 100_000,
        # The suite exercises plan metering, so sign-ups get the trial plan, not the
        # self-hosted default (unlimited).
        "default_plan": "trial",
        # The provider fakes, by name: 127.0.0.1 and every other loopback name stay refused.
        "provider_allowed_hosts": [FAKE_HOST],
        # The provider fakes list a message as soon as they accept it (unless a test says
        # otherwise), so a retried send need not wait a real provider's lag to reconcile.
        "send_list_lag": timedelta(seconds=2),
    }
    base.update(overrides)
    return Settings(**base)


@pytest.fixture(scope="module")
def settings(database_url: str, temporal_server: Any, openbao_server: Any) -> Settings:
    return make_settings(
        database_url=database_url,
        temporal_address=temporal_server.address,
        vault_address=openbao_server.address,
        vault_token=openbao_server.token,
    )


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=app, client=("203.0.113.10", 40000))
    async with AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def unique() -> Iterator[str]:
    yield uuid.uuid4().hex[:10]


BROWSER_TESTS = "tests/console/browser/"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests run last: Playwright's sync API keeps its event loop running in the main
    thread until its session fixture stops, and every async test after it would fail to start
    its own loop."""
    items.sort(key=lambda item: item.nodeid.startswith(BROWSER_TESTS))
