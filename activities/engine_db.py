"""Database activities of the engine: job preparation, record paging, record state, job status."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.job_reports import JobReporter
from activities.plans import PlanCache, RecordData, StepRun
from activities.steps import StepActivities
from store.jobs import (
    NewJob,
    NoPublishedVersion,
    NoRows,
    TableRows,
    create_job,
    job_of_firing,
    roll_up_job,
)
from store.usage import PlanRefused
from workflows.contracts import (
    CHEAP_STEP_TYPES,
    CompleteRecordInput,
    JobIdInput,
    JobStatusInput,
    JobSummary,
    NextRecordsInput,
    NextRecordsResult,
    RecordFinished,
    RecordPhase,
    RecordPlan,
    RecordReports,
    RecordStart,
    ScheduledJob,
    ScheduledRunInput,
    StartRecordInput,
    SweepInput,
    outputs_read_by,
)

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
# The record's workflow closes a task after its end is written; its journey is archived after.
JOURNEY_SETTLE = timedelta(seconds=2)


class EngineDbActivities:
    def __init__(
        self, engine: AsyncEngine, *, plans: PlanCache, reporter: JobReporter | None = None
    ) -> None:
        self.engine = engine
        self.plans = plans
        self.reporter = reporter
        self._steps = StepActivities(plans)

    def _report(self, job_workflow_id: str, report: RecordFinished | RecordPhase) -> None:
        if not job_workflow_id:
            return
        if self.reporter is None:
            raise ApplicationError("this worker has no Temporal client to report to the job")
        self.reporter.submit(job_workflow_id, report)

    @activity.defn
    async def sweep_records(self, inp: SweepInput) -> RecordReports:
        """What the job's in-flight records did that the job has not heard (lost reports)."""
        active, ids = set(inp.active), [*inp.active, *inp.waiting]
        finished: list[RecordFinished] = []
        phases: list[RecordPhase] = []
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("select id, status from record where job_id = :job and id = any(:ids)"),
                {"job": inp.job_id, "ids": ids},
            )
            for rid, status in rows:
                if status in TERMINAL_STATUSES:
                    finished.append(RecordFinished(int(rid), str(status)))
                elif status == "waiting" and rid in active:
                    phases.append(RecordPhase(int(rid), "waiting"))
                elif status == "running" and rid not in active:
                    phases.append(RecordPhase(int(rid), "active"))
        return RecordReports(finished, phases)

    @activity.defn
    async def start_record(self, inp: StartRecordInput) -> RecordStart:
        """Loads the record and runs its leading cheap steps: one local activity, one marker."""
        compiled = await self.plans.version(inp.version_id)
        steps = compiled.plan.steps
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        "update record r set status = 'running', current_step = null,"
                        " started_at = coalesce(r.started_at, now()), attempts = r.attempts + 1"
                        " from project p, record old where r.id = :id and old.id = r.id"
                        " and p.id = r.project_id returning r.job_id, r.project_id, r.metadata,"
                        " r.outcomes, p.timezone, old.current_step, r.workflow_id is not null"
                        " or exists (select 1 from spinner_link l where l.kind = 'retry'"
                        " and l.parent_spinner_id = cast(:spinner as uuid)), r.callback_token"
                    ),
                    {"id": inp.record_id, "spinner": compiled.spinner_id},
                )
            ).first()
        if row is None:
            raise ApplicationError(f"record {inp.record_id} not found", non_retryable=True)
        data = RecordData(
            dict(row[2] or {}),
            self.plans.context(
                inp.record_id,
                callback_token=row[7],
                job_id=str(row[0]),
                project_id=str(row[1]),
                spinner_id=compiled.spinner_id,
                timezone=str(row[4]),
            ),
        )
        # Later steps of this record on this worker read its metadata from memory.
        self.plans.remember(inp.record_id, data)
        # A re-driven record resumes at its failed step with the outputs it had reached.
        resume_at = row[5] if row[5] in steps else None
        outputs: dict[str, Any] = dict(row[3]) if resume_at else {}
        plan = RecordPlan(resume_at or compiled.plan.start, steps, supporting=bool(row[6]))
        first = steps[plan.start]
        if first.type not in CHEAP_STEP_TYPES:
            return RecordStart(plan, outputs, None)
        run = StepRun(
            inp.wf_id,
            inp.job_id,
            inp.record_id,
            compiled.steps[plan.start],
            data.metadata,
            outputs_read_by(first, outputs),
            data.context,
            inp.now_iso,
        )
        return RecordStart(plan, outputs, await self._steps.run_cheap_steps(run, compiled.steps))

    @activity.defn
    async def complete_record(self, inp: CompleteRecordInput) -> None:
        disposition = inp.outputs.get("disposition")
        async with self.engine.begin() as conn:
            await conn.execute(
                # The journey is queued for the API's archiver in the same statement, so a
                # closed record is never left without one once its history expires.
                text(
                    "with closed as (update record set status = :status,"
                    " outcomes = cast(:outcomes as jsonb), error = :error,"
                    " failed_step = :failed_step, disposition = :disposition, ended_at = now()"
                    " where id = :id returning id, org_id, workflow_id)"
                    " insert into journey_pending (record_id, org_id, workflow_id, due_at)"
                    " select id, org_id, coalesce(workflow_id, 'rec-' || id), now() + :settle"
                    " from closed"
                    " on conflict (record_id) do update set workflow_id = excluded.workflow_id,"
                    " due_at = excluded.due_at, tries = 0"
                ),
                {
                    "id": inp.record_id,
                    "status": inp.status,
                    "outcomes": json.dumps(inp.outputs, default=str),
                    "error": inp.error,
                    "failed_step": inp.failed_step,
                    "disposition": str(disposition)[:200] if disposition is not None else None,
                    "settle": JOURNEY_SETTLE,
                },
            )
        self._report(inp.job_workflow_id, RecordFinished(inp.record_id, inp.status))

    @activity.defn
    async def set_record_phase(self, inp: RecordPhase) -> None:
        status = "waiting" if inp.phase == "waiting" else "running"
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "update record set status = :s where id = :id and status in ('running', 'waiting')"
                ),
                {"s": status, "id": inp.record_id},
            )
        self._report(inp.job_workflow_id, RecordPhase(inp.record_id, inp.phase))

    @activity.defn
    async def next_records(self, inp: NextRecordsInput) -> NextRecordsResult:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "select id from record where job_id = :job and status = 'pending' and id > :after"
                    " order by id limit :limit"
                ),
                {"job": inp.job_id, "after": inp.after, "limit": inp.limit},
            )
            return NextRecordsResult([int(r[0]) for r in rows])

    @activity.defn
    async def prepare_job(self, inp: JobIdInput) -> int:
        """Snapshot the job's rows into records (metadata fields only); safe to run twice."""
        async with self.engine.begin() as conn:
            job = (
                await conn.execute(
                    text(
                        "select org_id, project_id, spinner_id, table_id, metadata_fields, row_ids,"
                        " only_new, status from job where id = :id for update"
                    ),
                    {"id": inp.job_id},
                )
            ).first()
            if job is None:
                raise ApplicationError(f"job {inp.job_id} not found", non_retryable=True)
            existing = (
                await conn.execute(
                    text("select count(*) from record where job_id = :id"), {"id": inp.job_id}
                )
            ).scalar_one()
            if existing == 0 and job.table_id is not None:
                fields = list(job.metadata_fields or [])
                projection = (
                    "(select coalesce(jsonb_object_agg(key, value), '{}'::jsonb)"
                    " from jsonb_each(d.data) where key = any(cast(:fields as text[])))"
                    if fields
                    else "d.data"
                )
                where = ["d.table_id = :table"]
                if job.row_ids is not None:
                    where.append("d.row_id = any(cast(:row_ids as bigint[]))")
                if job.only_new:
                    where.append(
                        "not exists (select 1 from record r join job j on j.id = r.job_id"
                        " where j.spinner_id = :spinner and r.row_id = d.row_id and r.job_id <> :job)"
                    )
                await conn.execute(
                    text(
                        "insert into record (org_id, job_id, project_id, row_id, status, metadata,"
                        " outcomes, attempts, created_at)"
                        f" select :org, :job, :project, d.row_id, 'pending', {projection}, '{{}}'::jsonb,"
                        f" 0, now() from data_row d where {' and '.join(where)} order by d.row_id"
                    ),
                    {
                        "org": job.org_id,
                        "job": inp.job_id,
                        "project": job.project_id,
                        "table": job.table_id,
                        "fields": fields,
                        "row_ids": list(job.row_ids or []),
                        "spinner": job.spinner_id,
                    },
                )
            total = (
                await conn.execute(
                    text("select count(*) from record where job_id = :id"), {"id": inp.job_id}
                )
            ).scalar_one()
            await conn.execute(
                text(
                    "update job set total = :total, started_at = coalesce(started_at, now()),"
                    " status = case when status = 'queued' then 'running' else status end where id = :id"
                ),
                {"total": total, "id": inp.job_id},
            )
            return int(total)

    @activity.defn
    async def set_job_status(self, inp: JobStatusInput) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "update job set status = :s where id = :id"
                    " and status not in ('completed', 'partial', 'failed', 'cancelled')"
                ),
                {"s": inp.status, "id": inp.job_id},
            )

    @activity.defn
    async def cancel_pending(self, inp: JobIdInput) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "update record set status = 'cancelled', ended_at = now(), error = 'cancelled by operator'"
                    " where job_id = :id and status = 'pending'"
                ),
                {"id": inp.job_id},
            )

    @activity.defn
    async def finish_job(self, inp: JobStatusInput) -> JobSummary:
        """Counts come from the records themselves, so they always equal the records' statuses."""
        async with self.engine.begin() as conn:
            tally = await roll_up_job(
                conn, inp.job_id, ended=True, cancelled=inp.status == "cancelled"
            )
        return JobSummary(tally.status, tally.total, tally.completed, tally.failed, tally.cancelled)

    @activity.defn
    async def create_scheduled_job(self, inp: ScheduledRunInput) -> ScheduledJob:
        """One scheduled firing → one job with its records; the firing's workflow id makes
        retries harmless. A firing past the plan's monthly limits creates nothing and says so."""
        firing = activity.info().workflow_id
        if firing is None:
            raise ApplicationError("a scheduled run is started by its workflow", non_retryable=True)
        async with self.engine.begin() as conn:
            job = await job_of_firing(conn, firing)
            if job is not None:  # a retry of an attempt that committed
                return ScheduledJob(
                    str(job.id),
                    str(job.project_id),
                    str(job.spinner_version_id),
                    job.spinner_version,
                )
            sched = (
                await conn.execute(
                    text(
                        "select s.org_id, s.spinner_id, s.table_id, s.only_new,"
                        " s.only_unanalysed, sp.project_id,"
                        " t.metadata_fields from spinner_schedule s"
                        " join spinner sp on sp.id = s.spinner_id"
                        " join data_table t on t.id = s.table_id where s.id = :id"
                    ),
                    {"id": inp.schedule_id},
                )
            ).first()
            if sched is None:
                return ScheduledJob(None, reason="schedule was deleted")
            new = NewJob(
                org_id=sched.org_id,
                project_id=sched.project_id,
                spinner_id=sched.spinner_id,
                trigger="schedule",
                table_id=sched.table_id,
                metadata_fields=list(sched.metadata_fields or []),
                schedule_firing=firing,
            )
            try:
                rows = TableRows(
                    only_new=sched.only_new,
                    skip_if_empty=True,
                    only_unanalysed=sched.only_unanalysed,
                )
                job = await create_job(conn, new, rows)
            except NoPublishedVersion:
                return ScheduledJob(None, reason="spinner has no published version")
            except NoRows:
                # A nightly run over "rows not analysed yet" often finds none: no empty job.
                return ScheduledJob(None, reason="no rows to run")
            except PlanRefused as exc:
                activity.logger.warning("scheduled run %s skipped: %s", firing, exc)
                return ScheduledJob(None, reason=f"skipped: plan limit: {exc}")
        return ScheduledJob(
            str(job.id), str(job.project_id), str(job.spinner_version_id), job.spinner_version
        )
