"""Records report to their job workflow from the activity that writes their status.

A signal sent by the record workflow itself costs that record one more workflow task (the
workflow waits for the "signalled" event before it may close) and the job one history event per
record. Sent from the activity instead, reports from every record on this worker are gathered per
job for a moment and delivered as one signal.

The activity does not wait for the delivery: holding a workflow task open on a network round trip
stalls busy workers. The record's status is already in PostgreSQL when it is reported, so a report
lost to a crash or a long outage is not lost for the job: a job that stops hearing from its
records sweeps their statuses from the database (`EngineDbActivities.sweep_records`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from workflows.contracts import SIGNAL_RECORDS_REPORTED, RecordFinished, RecordPhase, RecordReports

log = logging.getLogger("cxgear.job_reports")

# Long enough to gather the completions of a busy window into one signal, short enough to be
# invisible next to a record's own run time.
LINGER_S = 0.1
MAX_BATCH = 500
# Retries of one batch; after them the job's database sweep picks the records up.
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)

Report = RecordFinished | RecordPhase


@dataclass
class _Pending:
    reports: list[Report] = field(default_factory=list)


class JobReporter:
    def __init__(self, client: Client, *, linger_s: float = LINGER_S) -> None:
        self.client = client
        self.linger_s = linger_s
        self._pending: dict[str, _Pending] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}

    def submit(self, job_workflow_id: str, report: Report) -> None:
        """Queues a report for the job workflow; it is sent within `linger_s`."""
        self._pending.setdefault(job_workflow_id, _Pending()).reports.append(report)
        if job_workflow_id not in self._flushers:
            self._flushers[job_workflow_id] = asyncio.create_task(
                self._flush(job_workflow_id), name=f"report-{job_workflow_id}"
            )

    async def drain(self, timeout: float = 10.0) -> None:
        """Sends what is queued (worker shutdown)."""
        tasks = list(self._flushers.values())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def _flush(self, job_workflow_id: str) -> None:
        try:
            while job_workflow_id in self._pending:
                await asyncio.sleep(self.linger_s)
                reports = self._pending.pop(job_workflow_id).reports
                if len(reports) > MAX_BATCH:
                    # Keep signals small: the rest goes first in the next round.
                    later = self._pending.setdefault(job_workflow_id, _Pending())
                    later.reports[:0] = reports[MAX_BATCH:]
                    reports = reports[:MAX_BATCH]
                await self._send(job_workflow_id, reports)
        finally:
            self._flushers.pop(job_workflow_id, None)

    async def _send(self, job_workflow_id: str, reports: list[Report]) -> None:
        batch = RecordReports(
            finished=[r for r in reports if isinstance(r, RecordFinished)],
            phases=[r for r in reports if isinstance(r, RecordPhase)],
        )
        handle = self.client.get_workflow_handle(job_workflow_id)
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_S)):
            await asyncio.sleep(delay)
            began = time.monotonic()
            try:
                await handle.signal(SIGNAL_RECORDS_REPORTED, batch)
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    # The job has closed (a cancel that stopped waiting): nothing to tell it.
                    log.info("job workflow %s is closed; reports dropped", job_workflow_id)
                    return
                log.warning(
                    "reporting to %s failed (attempt %d): %s", job_workflow_id, attempt + 1, exc
                )
                continue
            except Exception:  # noqa: BLE001 - the flusher must outlive any one failure
                log.warning("reporting to %s failed", job_workflow_id, exc_info=True)
                continue
            log.debug(
                "reported %d record(s) to %s in %.0f ms",
                len(reports),
                job_workflow_id,
                (time.monotonic() - began) * 1000,
            )
            return
        log.warning(
            "gave up reporting %d record(s) to %s; the job's sweep will find them",
            len(reports),
            job_workflow_id,
        )
