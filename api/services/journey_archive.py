"""Materialises closed records' journeys into PostgreSQL so they outlive Temporal's retention.

`complete_record` queues a closed record in `journey_pending` in the transaction that writes its
end. The API process drains the queue in the background: it claims due rows (a lease, so several
API replicas share the work and a crashed one leaves its claims to the next), derives each journey
from the record's history and stores it as the record's snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.services.journey import attempt_counts, derive_journey, store_snapshots
from models.journey import JourneyPublic
from models.record import TERMINAL_RECORD

log = logging.getLogger(__name__)

BATCH = 100
CONCURRENCY = 8
# A claimed row is not claimed again for this long; a batch takes seconds.
LEASE = timedelta(minutes=2)
# A history that is not closed yet (the record's last task is still in flight) or not readable
# right now is retried after this, doubled per try up to RETRY_AT_MOST.
RETRY_AFTER = timedelta(seconds=2)
RETRY_AT_MOST = timedelta(minutes=10)
# A history that stays not found this many times is gone (retention ran out first): give up.
NOT_FOUND_TRIES = 5


@dataclass
class ArchiveRound:
    claimed: int = 0
    archived: int = 0
    deferred: int = 0
    dropped: int = 0


def _retry_delay(tries: int) -> timedelta:
    return min(RETRY_AFTER * (1 << min(max(tries - 1, 0), 16)), RETRY_AT_MOST)


ClientProvider = Callable[[], Awaitable[Client]]


async def archive_due(
    engine: AsyncEngine, temporal: ClientProvider, *, limit: int = BATCH
) -> ArchiveRound:
    """Archives up to `limit` due journeys; returns what happened to each claimed row.

    Temporal is connected to only when something is due.
    """
    async with engine.begin() as conn:
        claimed = (
            await conn.execute(
                text(
                    "update journey_pending p set due_at = now() + :lease, tries = p.tries + 1"
                    " where p.record_id in (select record_id from journey_pending"
                    " where due_at <= now() order by due_at limit :n for update skip locked)"
                    " returning p.record_id, p.org_id, p.workflow_id, p.tries"
                ),
                {"lease": LEASE, "n": limit},
            )
        ).all()
        if not claimed:
            return ArchiveRound()
        attempts = await attempt_counts(conn, [row.workflow_id for row in claimed])
    client = await temporal()

    gate = asyncio.Semaphore(CONCURRENCY)

    async def derive(row: Row[Any]) -> JourneyPublic | RPCError | None:
        async with gate:
            try:
                journey = await derive_journey(
                    client, row.workflow_id, row.record_id, attempts.get(row.workflow_id)
                )
            except RPCError as exc:
                return exc
        # The record's end is written a task before its workflow closes.
        return journey if journey.status in TERMINAL_RECORD else None

    results = await asyncio.gather(*(derive(row) for row in claimed))
    done: list[dict[str, Any]] = []
    later: list[dict[str, Any]] = []
    gone: list[dict[str, Any]] = []
    for row, result in zip(claimed, results, strict=True):
        key = {"id": row.record_id, "tries": row.tries}
        if isinstance(result, JourneyPublic):
            done.append({**key, "org": row.org_id, "journey": result})
        elif (
            isinstance(result, RPCError)
            and result.status == RPCStatusCode.NOT_FOUND
            and row.tries >= NOT_FOUND_TRIES
        ):
            gone.append(key)
        else:
            if isinstance(result, RPCError):
                log.info("history of record %s not readable yet: %s", row.record_id, result.status)
            later.append({**key, "delay": _retry_delay(row.tries)})

    async with engine.begin() as conn:
        await store_snapshots(conn, [(k["id"], k["org"], k["journey"]) for k in done])
        if done or gone:
            # A row queued again since the claim (a re-driven record closed again) has its tries
            # reset and stays for the next round.
            await conn.execute(
                text("delete from journey_pending where record_id = :id and tries = :tries"),
                [{"id": k["id"], "tries": k["tries"]} for k in done + gone],
            )
        if later:
            await conn.execute(
                text(
                    "update journey_pending set due_at = now() + :delay"
                    " where record_id = :id and tries = :tries"
                ),
                later,
            )
    for key in gone:
        log.warning("journey of record %s not archived: its history is gone", key["id"])
    return ArchiveRound(len(claimed), len(done), len(later), len(gone))


async def archive_journeys(
    engine: AsyncEngine,
    temporal: ClientProvider,
    stop: asyncio.Event,
    *,
    idle: timedelta = timedelta(seconds=1),
) -> None:
    """Drains the archive queue until `stop` is set; a full batch goes straight on to the next."""
    pause = idle
    while not stop.is_set():
        try:
            outcome = await archive_due(engine, temporal)
            pause = idle
        except Exception:  # noqa: BLE001 - Temporal or the database is down: try again later
            log.warning("journey archiving paused", exc_info=True)
            outcome = ArchiveRound()
            pause = min(pause * 2, RETRY_AT_MOST)
        if outcome.claimed >= BATCH:
            continue
        try:
            await asyncio.wait_for(stop.wait(), pause.total_seconds())
        except TimeoutError:
            pass
