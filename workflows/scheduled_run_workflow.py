"""ScheduledRunWorkflow: started by a Temporal Schedule; creates a job and hands it to JobWorkflow."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.engine_db import EngineDbActivities
    from workflows.contracts import (
        SCHEDULED_RUN_WORKFLOW,
        JobInput,
        ScheduledJob,
        ScheduledRunInput,
        ScheduledRunResult,
        TaskQueues,
        job_workflow_id,
    )
    from workflows.job_workflow import JobWorkflow


@workflow.defn(name=SCHEDULED_RUN_WORKFLOW)
class ScheduledRunWorkflow:
    @workflow.run
    async def run(self, inp: ScheduledRunInput) -> ScheduledRunResult:
        job: ScheduledJob = await workflow.execute_activity_method(
            EngineDbActivities.create_scheduled_job,
            inp,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_attempts=5),
        )
        if job.job_id is None:
            return ScheduledRunResult(None, job.reason)
        queues: TaskQueues = inp.queues
        await workflow.start_child_workflow(
            JobWorkflow.run,
            JobInput(
                job.job_id,
                job.project_id,
                job.spinner_version_id,
                job.spinner_version,
                queues,
                inp.window,
                inp.batch,
                inp.children_per_run,
            ),
            id=job_workflow_id(job.job_id),
            task_queue=queues.main,
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        return ScheduledRunResult(job.job_id)
