"""Activity interceptor that writes one attempt-log row per failed activity attempt.

Workflow history keeps only an activity's last attempt (its number and result); the journey reads
the failed ones before it from here. Attempts that succeed are in history already, so the hot path
writes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

log = logging.getLogger("cxgear.attempts")


class AttemptLogInterceptor(Interceptor):
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _AttemptLog(next, self.engine)


class _AttemptLog(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, engine: AsyncEngine) -> None:
        super().__init__(next)
        self.engine = engine

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        started = datetime.now(UTC)
        try:
            result = await super().execute_activity(input)
        except BaseException as exc:
            await self._write(info, started, f"{type(exc).__name__}: {exc}"[:2000])
            raise
        return result

    async def _write(self, info: activity.Info, started: datetime, error: str | None) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    text(
                        "insert into activity_attempt (workflow_id, activity_id, activity_type, attempt,"
                        " started_at, ended_at, error) values (:wf, :aid, :type, :attempt, :started, now(), :error)"
                    ),
                    {
                        "wf": info.workflow_id,
                        "aid": info.activity_id,
                        "type": info.activity_type,
                        "attempt": info.attempt,
                        "started": started,
                        "error": error,
                    },
                )
        except Exception:  # noqa: BLE001 - bookkeeping must never fail the step itself
            log.warning("could not write the attempt log for %s", info.activity_type, exc_info=True)
