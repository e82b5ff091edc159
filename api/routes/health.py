"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import PublicRoute
from infra.vault import vault_client, vault_ready

router = APIRouter(tags=["health"], dependencies=[Depends(PublicRoute())])
PROBE_TIMEOUT = 3.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _database(request: Request) -> str | None:
    try:
        async with request.app.state.engine.connect() as conn:
            await conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
        return f"unreachable ({type(exc).__name__})"
    return None


async def _temporal(request: Request) -> str | None:
    try:
        client = await request.app.state.temporal()
        await client.service_client.check_health(timeout=timedelta(seconds=PROBE_TIMEOUT))
    except Exception as exc:  # noqa: BLE001
        return f"unreachable ({type(exc).__name__})"
    return None


async def _vault(request: Request) -> str | None:
    def probe() -> str | None:
        try:
            return vault_ready(vault_client(request.app.state.settings, timeout=PROBE_TIMEOUT))
        except Exception as exc:  # noqa: BLE001
            return f"unreachable ({type(exc).__name__})"

    return await asyncio.to_thread(probe)


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    async def bounded(name: str, coro: object) -> tuple[str, str | None]:
        try:
            return name, await asyncio.wait_for(coro, PROBE_TIMEOUT + 1)  # type: ignore[arg-type]
        except TimeoutError:
            return name, "timed out"

    results = dict(
        await asyncio.gather(
            bounded("database", _database(request)),
            bounded("temporal", _temporal(request)),
            bounded("vault", _vault(request)),
        )
    )
    failing = {k: v for k, v in results.items() if v}
    checks = {k: (v or "ok") for k, v in results.items()}
    if failing:
        names = ", ".join(f"{k} {v}" for k, v in failing.items())
        return JSONResponse(
            {"message": f"Not ready: {names}", "errorCode": "NOT_READY", "checks": checks}, 503
        )
    return JSONResponse({"status": "ready", "checks": checks})
