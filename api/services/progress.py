"""Job progress and counts for every viewer from one PostgreSQL poll per job and interval.

`ProgressHub.current` answers `GET /jobs/{id}/progress` from the last poll while it is younger
than the interval, and from a snapshot up to `STALE_INTERVALS` intervals old while one viewer's
request refreshes it in the background (so no viewer waits behind the count of a large job),
and from the last one while that refresh is still running (up to `REFRESHING_STALE_INTERVALS`); `ProgressHub.watch` feeds the SSE stream: the first viewer of a job starts its
poller, every later viewer subscribes to it, and the poller stops when the last one leaves.
`GET /jobs/{id}` takes its counts from the same snapshot (`counts_of`).
No Temporal query is involved: the records and the job row are kept current by the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from models.job import TERMINAL_JOB, JobCounts, JobStatus
from models.job_progress import JobPhase, JobProgressPublic
from store.progress import ProgressRow, read_progress

log = logging.getLogger(__name__)

RATE_WINDOW_S = 30.0
# A snapshot this many intervals old is still served (and refreshed behind the answer); older
# ones are refreshed before answering.
STALE_INTERVALS = 2
# While a refresh is running, a snapshot up to this many intervals old is served rather than
# queueing for it.
REFRESHING_STALE_INTERVALS = 10
# A job nobody has asked about for this long loses its cached figures and rate samples.
FORGET_AFTER_S = 120.0


class JobGone(Exception):
    """The job was deleted while someone watched it."""


@dataclass
class _Feed:
    org_id: uuid.UUID
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last: JobProgressPublic | None = None
    polled_at: float = 0.0
    # (monotonic time, records done) of recent polls, for a rate that follows the job's pace.
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))
    viewers: set[asyncio.Queue[JobProgressPublic | None]] = field(default_factory=set)
    poller: asyncio.Task[None] | None = None
    refresh: asyncio.Task[None] | None = None
    gone: bool = False


class ProgressHub:
    def __init__(self, engine: AsyncEngine, *, interval: float = 1.0) -> None:
        self.engine = engine
        self.interval = interval
        self.polls = 0  # database polls made, for tests and metrics
        self._feeds: dict[uuid.UUID, _Feed] = {}

    def _feed(self, org_id: uuid.UUID, job_id: uuid.UUID) -> _Feed:
        feed = self._feeds.get(job_id)
        if feed is None:
            self._forget_idle()
            feed = self._feeds[job_id] = _Feed(org_id)
        return feed

    def _forget_idle(self) -> None:
        now = time.monotonic()
        for job_id, feed in list(self._feeds.items()):
            if not feed.viewers and now - feed.polled_at > FORGET_AFTER_S:
                del self._feeds[job_id]

    async def current(
        self, org_id: uuid.UUID, job_id: uuid.UUID, *, status: str | None = None
    ) -> JobProgressPublic:
        """The job's snapshot; with `status` (the job row just read), one taken while the job had
        another status is replaced before answering, so a job seen ended has its final counts."""
        feed = self._feed(org_id, job_id)
        if feed.gone:
            raise JobGone(str(job_id))
        if status is not None and feed.last is not None and feed.last.status != status:
            return await self._fresh(job_id, feed, status=status)
        age = time.monotonic() - feed.polled_at
        if feed.last is not None and age < self.interval:
            return feed.last
        refreshing = feed.refresh is not None and not feed.refresh.done()
        if feed.last is not None and age < STALE_INTERVALS * self.interval:
            if not refreshing:
                feed.refresh = asyncio.create_task(self._refresh(job_id, feed))
            return feed.last
        if (
            feed.last is not None
            and refreshing
            and age < REFRESHING_STALE_INTERVALS * self.interval
        ):
            # A refresh is already on its way (a slow count on a busy database): waiting for it
            # would only queue this viewer behind it.
            return feed.last
        return await self._fresh(job_id, feed)

    async def _fresh(
        self, job_id: uuid.UUID, feed: _Feed, *, status: str | None = None
    ) -> JobProgressPublic:
        async with feed.lock:
            if (
                feed.last is None
                or time.monotonic() - feed.polled_at >= self.interval
                or (status is not None and feed.last.status != status)
            ):
                await self._poll(job_id, feed)
            assert feed.last is not None
            return feed.last

    async def _refresh(self, job_id: uuid.UUID, feed: _Feed) -> None:
        try:
            await self._fresh(job_id, feed)
        except JobGone:
            feed.gone = True
        except Exception:  # noqa: BLE001 - the next viewer past the stale bound polls and sees it
            log.warning("progress of job %s not refreshed", job_id, exc_info=True)

    async def _poll(self, job_id: uuid.UUID, feed: _Feed) -> None:
        self.polls += 1
        async with self.engine.connect() as conn:
            row = await read_progress(conn, feed.org_id, job_id)
        if row is None:
            raise JobGone(str(job_id))
        now = time.monotonic()
        feed.polled_at = now
        feed.samples.append((now, row.done))
        while feed.samples and now - feed.samples[0][0] > RATE_WINDOW_S:
            feed.samples.popleft()
        feed.last = progress_of(job_id, row, feed.samples)

    async def watch(self, org_id: uuid.UUID, job_id: uuid.UUID) -> AsyncIterator[JobProgressPublic]:
        """Snapshots as the shared poller takes them; ends after the job's final one."""
        feed = self._feed(org_id, job_id)
        inbox: asyncio.Queue[JobProgressPublic | None] = asyncio.Queue(maxsize=1)
        feed.viewers.add(inbox)
        if feed.last is not None and time.monotonic() - feed.polled_at < self.interval:
            inbox.put_nowait(feed.last)
        if feed.poller is None or feed.poller.done():
            feed.poller = asyncio.create_task(self._run(job_id, feed))
        try:
            while True:
                snapshot = await inbox.get()
                if snapshot is None:
                    return
                yield snapshot
                if snapshot.phase == JobPhase.ended:
                    return
        finally:
            feed.viewers.discard(inbox)
            if not feed.viewers and feed.poller is not None:
                feed.poller.cancel()
                feed.poller = None

    async def _run(self, job_id: uuid.UUID, feed: _Feed) -> None:
        while feed.viewers:
            try:
                snapshot = await self._fresh(job_id, feed)
            except JobGone:
                snapshot = None
            for inbox in list(feed.viewers):
                # A slow viewer gets the newest snapshot, not a backlog.
                with contextlib.suppress(asyncio.QueueEmpty):
                    inbox.get_nowait()
                inbox.put_nowait(snapshot)
            if snapshot is None or snapshot.phase == JobPhase.ended:
                return
            await asyncio.sleep(self.interval)


def counts_of(snapshot: JobProgressPublic) -> JobCounts:
    return JobCounts(
        total=snapshot.total,
        pending=snapshot.pending,
        running=snapshot.active,
        waiting=snapshot.waiting,
        completed=snapshot.completed,
        failed=snapshot.failed,
        cancelled=snapshot.cancelled,
    )


def phase_of(status: str) -> JobPhase:
    if status in TERMINAL_JOB:
        return JobPhase.ended
    return {
        JobStatus.queued: JobPhase.preparing,
        JobStatus.paused: JobPhase.paused,
        JobStatus.waiting: JobPhase.waiting,
    }.get(JobStatus(status), JobPhase.running)


def progress_of(
    job_id: uuid.UUID, row: ProgressRow, samples: deque[tuple[float, int]]
) -> JobProgressPublic:
    phase = phase_of(row.status)
    total = max(row.total, row.counted)
    rate: float | None = None
    if phase != JobPhase.ended and len(samples) >= 2 and samples[-1][0] - samples[0][0] >= 2:
        rate = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
    elif row.started_at is not None:
        elapsed = ((row.ended_at or row.now) - row.started_at).total_seconds()
        rate = row.done / elapsed if elapsed > 0 else None
    remaining = total - row.done
    eta = None
    if phase != JobPhase.ended and rate and remaining > 0:
        eta = round(remaining / rate, 1)
    return JobProgressPublic(
        job_id=job_id,
        status=row.status,
        phase=phase,
        paused=phase == JobPhase.paused,
        total=total,
        pending=row.pending,
        started=total - row.pending,
        active=row.running,
        waiting=row.waiting,
        completed=row.completed,
        failed=row.failed,
        cancelled=row.cancelled,
        done=row.done,
        rate_per_s=round(rate, 2) if rate is not None else None,
        eta_s=eta,
        started_at=row.started_at,
        ended_at=row.ended_at,
        as_of=row.now,
    )
