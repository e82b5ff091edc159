"""Worker bootstrap: one Worker per task queue, all built from the one registry."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from temporalio.client import Client
from temporalio.worker import Worker

from activities import ActivityDeps, build_activities
from activities.attempt_log import AttemptLogInterceptor
from activities.http_client import ApiCaller
from infra.db import create_engine
from infra.log_privacy import quiet_http_loggers
from infra.providers import ProviderGuard
from infra.settings import TASK_QUEUES, Settings
from infra.temporal_client import connect_temporal
from infra.vault import SecretStore
from workflows.registry import ALL_WORKFLOWS

log = logging.getLogger("cxgear.worker")


HEARTBEAT_THROTTLE: Final = {"stt": timedelta(seconds=5)}


def build_workers(
    client: Client, settings: Settings, deps: ActivityDeps, queues: list[str] | None = None
) -> list[Worker]:
    # Every worker, however started, keeps request URLs (contact data) out of its logs.
    quiet_http_loggers()
    registry = build_activities(deps)
    workers = []
    for name in queues or list(TASK_QUEUES):
        activities = registry.get(name, [])
        workflows = ALL_WORKFLOWS if name == "main" else []
        if not activities and not workflows:
            continue
        workers.append(
            Worker(
                client,
                task_queue=settings.task_queue(name),
                workflows=workflows,
                activities=activities,
                max_concurrent_activities=200,
                # A workflow task's clock runs while it waits here for the GIL: taking more than a
                # process can finish within the task timeout turns a burst into timeouts and
                # replays (seen at 100 on 2 cores). The rest wait on the server, at no cost.
                max_concurrent_workflow_tasks=20,
                max_task_queue_activities_per_second=settings.provider_rate_limits.get(name),
                interceptors=[AttemptLogInterceptor(deps.engine)],
                # Heartbeats reach the server at most this often (the SDK's default is 60 s):
                # a long transcription's progress shows in the workflow's pending activity.
                max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE.get(name, timedelta(seconds=60)),
            )
        )
    return workers


def activity_deps(
    settings: Settings, client: Client | None = None, **overrides: Any
) -> ActivityDeps:
    """The worker's dependencies from settings; `overrides` replaces ActivityDeps fields (tests)."""
    fields: dict[str, Any] = {
        "engine": create_engine(settings.database_url, pool_size=20),
        "public_api_url": settings.public_api_url,
        "api_caller": ApiCaller(allowed_hosts=settings.http_allowed_hosts),
        "secrets": SecretStore(settings),
        "provider_guard": ProviderGuard(settings.provider_allowed_hosts),
        "temporal": client,
        "send_list_lag": settings.send_list_lag,
    }
    return ActivityDeps(**(fields | overrides))


@dataclass
class RunningWorkers:
    workers: list[Worker]
    runs: list[asyncio.Task[None]]


@asynccontextmanager
async def running_workers(
    client: Client, settings: Settings, deps: ActivityDeps, queues: list[str] | None = None
) -> AsyncIterator[RunningWorkers]:
    """The workers of `queues` polling while the block runs; shut down and the engine disposed after."""
    workers = build_workers(client, settings, deps, queues)
    runs = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield RunningWorkers(workers, runs)
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*runs, return_exceptions=True)
        await deps.engine.dispose()


async def run_worker(settings: Settings, queues: list[str]) -> None:
    client = await connect_temporal(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_workers(
        client, settings, activity_deps(settings, client), queues
    ) as running:
        log.info("worker polling %s", ", ".join(w.task_queue for w in running.workers))
        # Either a signal asks us to stop, or a worker ends on its own (fatal error).
        await asyncio.wait(
            [asyncio.create_task(stop.wait()), *running.runs], return_when=asyncio.FIRST_COMPLETED
        )
        log.info("worker stopping")
    for task in running.runs:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
