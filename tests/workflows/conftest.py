"""Engine fixtures: the module's app plus an in-process worker on its own task queues."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from temporalio.client import Client

from infra.settings import Settings
from tests.conftest import make_settings
from tests.fakes.crm_api import FakeCrm, running_crm
from tests.workflows.workers import running_workers


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
    async with running_workers(settings) as client:
        yield client
