"""JobWorkflow: a cursor-driven sliding window of RecordWorkflows over a job's records."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.engine_db import EngineDbActivities
    from workflows.contracts import (
        JOB_WORKFLOW,
        QUERY_PROGRESS,
        SIGNAL_CANCEL,
        SIGNAL_PAUSE,
        SIGNAL_RECORDS_REPORTED,
        SIGNAL_RESUME,
        JobIdInput,
        JobInput,
        JobProgress,
        JobState,
        JobStatusInput,
        JobSummary,
        NextRecordsInput,
        NextRecordsResult,
        RecordFinished,
        RecordInput,
        RecordPhase,
        RecordReports,
        SweepInput,
        record_search_attributes,
        record_workflow_id,
    )
    from workflows.record_workflow import RecordWorkflow

DB_TIMEOUT = timedelta(seconds=60)
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=30)
)


# Records report by a signal their activities send without waiting; a report lost to a crash is
# found by sweeping the records' statuses once the job has heard nothing for a while.
SWEEP_AFTER = timedelta(seconds=15)
SWEEP_AT_MOST_EVERY = timedelta(minutes=10)


# Outside the sandbox like RecordWorkflow: the sandbox re-imports the workflow's modules for every
# run, and a 100k job is dozens of continued runs. Determinism is guarded by the replay tests.
@workflow.defn(name=JOB_WORKFLOW, sandboxed=False)
class JobWorkflow:
    @workflow.init
    def __init__(self, inp: JobInput) -> None:
        # Carried state is restored here, not in run(): signals that reach a continued run in its
        # first task are handled before run() starts and must see the in-flight ids.
        self._s = inp.state or JobState()
        self._active: set[int] = set(self._s.active)
        self._waiting: set[int] = set(self._s.waiting)
        self._quiet_for = SWEEP_AFTER

    # --- reports from records -------------------------------------------------------------
    def _record_finished(self, done: RecordFinished) -> None:
        # A record reports once, but signals can be redelivered: only ids we track count.
        if done.record_id in self._active:
            self._active.discard(done.record_id)
        elif done.record_id in self._waiting:
            self._waiting.discard(done.record_id)
        else:
            return
        if done.status == "completed":
            self._s.completed += 1
        elif done.status == "failed":
            self._s.failed += 1
        else:
            self._s.cancelled += 1

    def _record_phase(self, change: RecordPhase) -> None:
        rid = change.record_id
        if change.phase == "waiting" and rid in self._active:
            self._active.discard(rid)
            self._waiting.add(rid)
        elif change.phase == "active" and rid in self._waiting:
            self._waiting.discard(rid)
            self._active.add(rid)

    @workflow.signal(name=SIGNAL_RECORDS_REPORTED)
    def records_reported(self, reports: RecordReports) -> None:
        # Gathered by a worker from many records; a record's reports never share a batch.
        for change in reports.phases:
            self._record_phase(change)
        for done in reports.finished:
            self._record_finished(done)

    # --- operator signals -----------------------------------------------------------------
    @workflow.signal(name=SIGNAL_PAUSE)
    def pause(self) -> None:
        self._s.paused = True

    @workflow.signal(name=SIGNAL_RESUME)
    def resume(self) -> None:
        self._s.paused = False

    @workflow.signal(name=SIGNAL_CANCEL)
    def cancel(self) -> None:
        self._s.cancelling = True

    @workflow.query(name=QUERY_PROGRESS)
    def progress(self) -> JobProgress:
        return JobProgress(
            status=self._s.status,
            started=self._s.started,
            active=len(self._active),
            waiting=len(self._waiting),
            completed=self._s.completed,
            failed=self._s.failed,
            cancelled=self._s.cancelled,
            paused=self._s.paused,
        )

    @workflow.run
    async def run(self, inp: JobInput) -> JobSummary:
        if not self._s.prepared:
            await workflow.execute_activity_method(
                EngineDbActivities.prepare_job,
                JobIdInput(inp.job_id),
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(minutes=1),
                retry_policy=DB_RETRY,
            )
            self._s.prepared = True
        started_this_run = 0
        while True:
            await self._publish_status(inp)
            if self._s.cancelling:
                await self._cancel_all(inp)
                break
            room = min(inp.window - len(self._active), inp.children_per_run - started_this_run)
            # The server suggests continuing as new well before its history warning; starting
            # more children in this run would only grow the history past it.
            suggested = workflow.info().is_continue_as_new_suggested()
            if not self._s.paused and not self._s.exhausted and room > 0 and not suggested:
                started_this_run += await self._start_more(inp, room)
                continue
            if self._s.exhausted and not self._active and not self._waiting:
                break
            if started_this_run >= inp.children_per_run or suggested:
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._s.active, self._s.waiting = sorted(self._active), sorted(self._waiting)
                workflow.continue_as_new(
                    JobInput(
                        inp.job_id,
                        inp.project_id,
                        inp.spinner_version_id,
                        inp.spinner_version,
                        inp.queues,
                        inp.window,
                        inp.batch,
                        inp.children_per_run,
                        self._s,
                    )
                )
            await self._until_changed(inp)
        summary: JobSummary = await workflow.execute_activity_method(
            EngineDbActivities.finish_job,
            JobStatusInput(inp.job_id, "cancelled" if self._s.cancelling else ""),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        self._s.status = summary.status
        return summary

    def _shape(self) -> tuple[int, int, bool, bool]:
        return (len(self._active), len(self._waiting), self._s.paused, self._s.cancelling)

    async def _until_changed(self, inp: JobInput) -> None:
        before = self._shape()
        try:
            await workflow.wait_condition(lambda: self._shape() != before, timeout=self._quiet_for)
            self._quiet_for = SWEEP_AFTER
        except TimeoutError:
            await self._sweep(inp)
            self._quiet_for = min(self._quiet_for * 2, SWEEP_AT_MOST_EVERY)

    async def _sweep(self, inp: JobInput) -> None:
        if not self._active and not self._waiting:
            return
        found: RecordReports = await workflow.execute_local_activity_method(
            EngineDbActivities.sweep_records,
            SweepInput(inp.job_id, sorted(self._active), sorted(self._waiting)),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        self.records_reported(found)

    async def _start_more(self, inp: JobInput, limit: int) -> int:
        page: NextRecordsResult = await workflow.execute_local_activity_method(
            EngineDbActivities.next_records,
            NextRecordsInput(inp.job_id, self._s.cursor, limit),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        if not page.ids:
            self._s.exhausted = True
            return 0
        self._active.update(page.ids)
        self._s.cursor = page.ids[-1]
        me = workflow.info().workflow_id
        for i in range(0, len(page.ids), inp.batch):
            # Starting children one by one caps a job near 10 records/s; a batch per task does not.
            await asyncio.gather(
                *(
                    workflow.start_child_workflow(
                        RecordWorkflow.run,
                        RecordInput(
                            rid,
                            inp.job_id,
                            me,
                            inp.spinner_version_id,
                            inp.queues,
                        ),
                        id=record_workflow_id(rid),
                        task_queue=inp.queues.main,
                        parent_close_policy=ParentClosePolicy.ABANDON,
                        search_attributes=record_search_attributes(
                            inp.job_id, inp.project_id, inp.spinner_version
                        ),
                    )
                    for rid in page.ids[i : i + inp.batch]
                )
            )
        self._s.started += len(page.ids)
        return len(page.ids)

    async def _publish_status(self, inp: JobInput) -> None:
        if self._s.paused:
            wanted = "paused"
        elif not self._active and self._waiting and (self._s.exhausted or self._s.paused):
            wanted = "waiting"
        else:
            wanted = "running"
        if wanted != self._s.status:
            self._s.status = wanted
            await workflow.execute_local_activity_method(
                EngineDbActivities.set_job_status,
                JobStatusInput(inp.job_id, wanted),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
            )

    async def _cancel_all(self, inp: JobInput) -> None:
        await workflow.execute_activity_method(
            EngineDbActivities.cancel_pending,
            JobIdInput(inp.job_id),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        in_flight = sorted(self._active | self._waiting)
        for i in range(0, len(in_flight), inp.batch):
            await asyncio.gather(
                *(
                    workflow.get_external_workflow_handle(record_workflow_id(rid)).cancel()
                    for rid in in_flight[i : i + inp.batch]
                ),
                return_exceptions=True,
            )
        # Each cancelled record still reports its final status; wait for them so counts agree.
        deadline = workflow.now() + timedelta(minutes=10)
        while (self._active or self._waiting) and workflow.now() < deadline:
            try:
                await workflow.wait_condition(
                    lambda: not self._active and not self._waiting, timeout=SWEEP_AFTER
                )
            except TimeoutError:
                await self._sweep(inp)
