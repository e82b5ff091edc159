"""In-process workers for engine tests and the history recorder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import Client

from activities import ActivityDeps
from activities.http_client import ApiCaller
from cxgear.worker import build_workers
from infra.db import create_engine
from infra.providers import ProviderGuard
from infra.settings import Settings
from infra.temporal_client import connect_temporal
from infra.vault import SecretStore


@asynccontextmanager
async def running_workers(settings: Settings, **deps: Any) -> AsyncIterator[Client]:
    """In-process workers on the settings' task queues; `deps` overrides ActivityDeps fields."""
    client = await connect_temporal(settings)
    engine = create_engine(settings.database_url)
    activity_deps = ActivityDeps(
        engine=engine,
        public_api_url=settings.public_api_url,
        api_caller=ApiCaller(allowed_hosts=settings.http_allowed_hosts),
        secrets=SecretStore(settings),
        provider_guard=ProviderGuard(settings.provider_allowed_hosts),
        temporal=client,
        **deps,
    )
    workers = build_workers(client, settings, activity_deps)
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield client
    finally:
        for w in workers:
            await w.shutdown()
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.dispose()
