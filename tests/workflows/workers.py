"""In-process workers for engine tests and the history recorder, built as `cxgear worker` builds them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import Client

from cxgear import worker
from infra.settings import Settings
from infra.temporal_client import connect_temporal


@asynccontextmanager
async def running_workers(settings: Settings, **deps: Any) -> AsyncIterator[Client]:
    """Workers on every task queue of the settings; `deps` overrides ActivityDeps fields."""
    client = await connect_temporal(settings)
    async with worker.running_workers(
        client, settings, worker.activity_deps(settings, client, **deps)
    ):
        yield client
