"""The FastAPI application: routers under /api/v1, clients created in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse
from temporalio.client import Client as TemporalClient

from api.body_limit import BodyLimitMiddleware
from api.console import mount_console
from api.deps import PublicRoute
from api.errors import LastResortMiddleware, install_error_handlers
from api.routes import (
    api_keys,
    auth,
    callbacks,
    calls_analysed,
    calls_analytics,
    calls_recordings,
    calls_scorecards,
    calls_setup,
    channels,
    codec,
    data_tables,
    do_not_contact,
    health,
    ingest,
    integrations,
    jobs,
    projects,
    records,
    roles,
    schedules,
    spinner_links,
    spinners,
    usage,
    users,
    vault,
    webhooks,
)
from api.services.codec_server import CodecProvider
from api.services.journey_archive import archive_journeys
from api.services.progress import ProgressHub
from api.services.throttle import RateLimited, rate_limited_response
from infra import __version__
from infra.db import create_engine, session_factory
from infra.log_privacy import quiet_http_loggers, redact_access_log
from infra.settings import Settings, get_settings
from infra.temporal_client import connect_temporal
from infra.vault import SecretStore, VaultUnavailable

API_POOL_SIZE = 20
UPLOAD_SUFFIXES = ("/import", "/append")
RECORDING_SUFFIX = "/recordings"


class TemporalProvider:
    """Connects lazily so the API starts (and reports not-ready) while Temporal is down."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: TemporalClient | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> TemporalClient:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await connect_temporal(self.settings)
        return self._client


def api_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    for module in (
        auth,
        users,
        roles,
        api_keys,
        projects,
        data_tables,
        ingest,
        spinners,
        spinner_links,
        jobs,
        records,
        callbacks,
        schedules,
        vault,
        integrations,
        channels,
        do_not_contact,
        usage,
        webhooks,
        calls_setup,
        calls_scorecards,
        calls_analysed,
        calls_analytics,
        calls_recordings,
    ):
        router.include_router(module.router)
    return router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    quiet_http_loggers()
    redact_access_log()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Connections beyond the pool are opened and closed per request: under a burst of
        # viewers that is a PostgreSQL backend started per request.
        engine = create_engine(settings.database_url, pool_size=API_POOL_SIZE)
        app.state.engine = engine
        app.state.sessionmaker = session_factory(engine)
        app.state.temporal = TemporalProvider(settings)
        app.state.progress = ProgressHub(engine)
        app.state.secret_store = SecretStore(settings)
        app.state.codec = CodecProvider(settings)
        stop = asyncio.Event()
        archiver = (
            asyncio.create_task(archive_journeys(engine, app.state.temporal, stop))
            if settings.archive_journeys
            else None
        )
        try:
            yield
        finally:
            stop.set()
            if archiver is not None:
                await archiver
            await engine.dispose()

    app = FastAPI(
        title="CXGear API",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/docs",
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_exception_handler(VaultUnavailable, vault.vault_unavailable)
    app.add_exception_handler(RateLimited, rate_limited_response)
    app.include_router(health.router)
    app.include_router(api_router())
    mount_console(app)
    app.include_router(codec.router)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(PublicRoute())])
    async def openapi_at_root() -> JSONResponse:
        # Where tools look first; the document itself lives under /api/v1 with the API.
        return JSONResponse(app.openapi())

    def limit_for(path: str) -> int:
        if path.endswith(RECORDING_SUFFIX):
            return settings.max_recording_bytes
        return (
            settings.max_upload_bytes if path.endswith(UPLOAD_SUFFIXES) else settings.max_body_bytes
        )

    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
    app.add_middleware(codec.CodecCors, origins=settings.codec_cors_origins)
    # Added last so it is the outermost of ours: it also answers errors raised by the others.
    app.add_middleware(LastResortMiddleware)
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn api.app:app` builds the app on first access so importing this module has no side effects.
    if name == "app":
        return create_app()
    raise AttributeError(name)
