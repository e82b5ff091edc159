"""Engine fixtures: the module's app plus an in-process worker on its own task queues."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from temporalio.client import Client

from activities import ActivityDeps
from activities.http_client import ApiCaller
from cxgear.db import create_engine
from cxgear.settings import Settings
from cxgear.temporal_client import connect_temporal
from cxgear.vault import SecretStore
from cxgear.worker import build_workers
from tests.conftest import make_settings
from tests.fakes.crm_api import FakeCrm, running_crm


@pytest.fixture(scope="module")
def crm() -> Iterator[FakeCrm]:
    with running_crm() as fake:
        yield fake


@pytest.fixture(scope="module")
def settings(
    database_url: str, temporal_server: Any, openbao_server: Any, crm: FakeCrm
) -> Settings:
    return make_settings(
        database_url=database_url,
        temporal_address=temporal_server.address,
        vault_address=openbao_server.address,
        vault_token=openbao_server.token,
        http_allowed_hosts=[crm.allowed],
        job_window=50,
        job_batch=25,
    )


@pytest.fixture(scope="module")
async def worker(settings: Settings) -> AsyncIterator[Client]:
    client = await connect_temporal(settings)
    engine = create_engine(settings.database_url)
    deps = ActivityDeps(
        engine=engine,
        public_api_url=settings.public_api_url,
        api_caller=ApiCaller(allowed_hosts=settings.http_allowed_hosts),
        secrets=SecretStore(settings),
        temporal=client,
    )
    workers = build_workers(client, settings, deps)
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield client
    finally:
        for w in workers:
            await w.shutdown()
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.dispose()
