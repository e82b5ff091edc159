"""RecordWorkflow: walks one record through the frozen steps of a published spinner."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.engine_db import EngineDbActivities
    from activities.function import FunctionActivities
    from activities.http import HttpActivities
    from activities.steps import StepActivities
    from workflows.types import (
        SIGNAL_RECORD_FINISHED,
        SIGNAL_RECORD_PHASE,
        CallbackSignal,
        CheapResults,
        CheapRun,
        CompleteRecordInput,
        LoadRecordInput,
        RecordFinished,
        RecordPhase,
        RecordPlan,
        StepResult,
        StepRun,
        TaskQueues,
    )

CX_JOB_ID = SearchAttributeKey.for_keyword("CxJobId")
CX_PROJECT_ID = SearchAttributeKey.for_keyword("CxProjectId")
CX_SPINNER_VERSION = SearchAttributeKey.for_int("CxSpinnerVersion")
CX_RECORD_STATUS = SearchAttributeKey.for_keyword("CxRecordStatus")

LOCAL = timedelta(seconds=30)
LOCAL_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(milliseconds=200))
EXTERNAL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
)
# Histories recorded before cheap steps were batched replay through the one-activity-per-step path.
BATCHED_CHEAP_STEPS = "batched-cheap-steps"
CHEAP_STEPS = {
    "log": StepActivities.log,
    "tag": StepActivities.tag,
    "decision": StepActivities.decision,
}


def record_workflow_id(record_id: int) -> str:
    return f"rec-{record_id}"


def record_search_attributes(job_id: str, project_id: str, version: int) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(CX_JOB_ID, job_id),
            SearchAttributePair(CX_PROJECT_ID, project_id),
            SearchAttributePair(CX_SPINNER_VERSION, version),
            SearchAttributePair(CX_RECORD_STATUS, "running"),
        ]
    )


@dataclass
class RecordInput:
    record_id: int
    job_id: str
    job_workflow_id: str
    spinner_version_id: str
    queues: TaskQueues


@dataclass
class RecordResult:
    status: str
    outputs: dict[str, Any]
    error: str | None = None


def _failure_text(err: BaseException) -> str:
    cause: BaseException | None = err
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, FailureError):
        return cause.message
    return str(cause)


@workflow.defn(sandboxed=False)
class RecordWorkflow:
    def __init__(self) -> None:
        self._callbacks: list[CallbackSignal] = []
        self._seen_events: set[str] = set()
        self._step: str | None = None

    @workflow.signal
    def callback(self, event: CallbackSignal) -> None:
        # Providers and proxies redeliver: one event id has one effect.
        if event.event_id in self._seen_events:
            return
        self._seen_events.add(event.event_id)
        self._callbacks.append(event)

    @workflow.query
    def current_step(self) -> str | None:
        return self._step

    @workflow.run
    async def run(self, inp: RecordInput) -> RecordResult:
        wf_id = workflow.info().workflow_id
        plan: RecordPlan = await workflow.execute_local_activity_method(
            EngineDbActivities.load_record,
            LoadRecordInput(inp.record_id, inp.spinner_version_id, wf_id),
            start_to_close_timeout=LOCAL,
            retry_policy=LOCAL_RETRY,
        )
        outputs = dict(plan.outputs)
        step_id: str | None = plan.start
        status, error, failed_step = "completed", None, None
        try:
            while step_id is not None:
                self._step = step_id
                step = plan.steps[step_id]
                run = StepRun(
                    wf_id,
                    inp.job_id,
                    inp.record_id,
                    step,
                    plan.metadata,
                    outputs,
                    plan.context,
                    workflow.now().isoformat(),
                )
                if step["type"] in CHEAP_STEPS and workflow.patched(BATCHED_CHEAP_STEPS):
                    batch: CheapResults = await workflow.execute_local_activity_method(
                        StepActivities.run_cheap,
                        CheapRun(run, plan.steps),
                        start_to_close_timeout=LOCAL,
                        retry_policy=LOCAL_RETRY,
                    )
                    for done in batch.results:
                        outputs.update(done.outputs)
                    if batch.error is not None:
                        status, error, failed_step = "failed", batch.error, batch.failed_step
                        break
                    step_id = batch.next
                    continue
                result = await self._run_step(inp, run)
                outputs.update(result.outputs)
                step_id = result.next
        except (ActivityError, ApplicationError) as err:
            if isinstance(err, ActivityError) and isinstance(err.cause, CancelledError):
                status, error = "cancelled", "cancelled by operator"
            else:
                status, error, failed_step = "failed", _failure_text(err), self._step
        except (asyncio.CancelledError, CancelledError):
            status, error = "cancelled", "cancelled by operator"
        await workflow.execute_local_activity_method(
            EngineDbActivities.complete_record,
            CompleteRecordInput(inp.record_id, status, outputs, error, failed_step),
            start_to_close_timeout=LOCAL,
            retry_policy=LOCAL_RETRY,
        )
        workflow.upsert_search_attributes([CX_RECORD_STATUS.value_set(status)])
        await workflow.get_external_workflow_handle(inp.job_workflow_id).signal(
            SIGNAL_RECORD_FINISHED, RecordFinished(inp.record_id, status)
        )
        return RecordResult(status, outputs, error)

    async def _run_step(self, inp: RecordInput, run: StepRun) -> StepResult:
        kind = run.step["type"]
        if kind in CHEAP_STEPS:
            result: StepResult = await workflow.execute_local_activity_method(
                CHEAP_STEPS[kind], run, start_to_close_timeout=LOCAL, retry_policy=LOCAL_RETRY
            )
            return result
        if kind == "wait":
            plan: StepResult = await workflow.execute_local_activity_method(
                StepActivities.wait_plan,
                run,
                start_to_close_timeout=LOCAL,
                retry_policy=LOCAL_RETRY,
            )
            if plan.delay_s > 0:
                await self._phase(inp, "waiting")
                await workflow.sleep(timedelta(seconds=plan.delay_s))
                await self._phase(inp, "active")
            return plan
        if kind == "wait_for_callback":
            return await self._wait_for_callback(inp, run)
        if kind == "function":
            fn_result: StepResult = await workflow.execute_activity_method(
                FunctionActivities.run_function,
                run,
                task_queue=inp.queues.main,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=2),
            )
            return fn_result
        if kind == "api_call":
            timeout = float(run.step.get("timeout_s", 10)) + 5
            http_result: StepResult = await workflow.execute_activity_method(
                HttpActivities.api_call,
                run,
                task_queue=inp.queues.http,
                start_to_close_timeout=timedelta(seconds=timeout),
                retry_policy=EXTERNAL_RETRY,
            )
            return http_result
        raise ApplicationError(
            f"step type '{kind}' is not supported by this worker", non_retryable=True
        )

    async def _phase(self, inp: RecordInput, phase: str) -> None:
        # Waiting records leave the job's active window so a long wait never stalls a campaign.
        await workflow.execute_local_activity_method(
            EngineDbActivities.set_record_phase,
            RecordPhase(inp.record_id, phase),
            start_to_close_timeout=LOCAL,
            retry_policy=LOCAL_RETRY,
        )
        if phase == "waiting":
            workflow.upsert_search_attributes([CX_RECORD_STATUS.value_set("waiting")])
        await workflow.get_external_workflow_handle(inp.job_workflow_id).signal(
            SIGNAL_RECORD_PHASE, RecordPhase(inp.record_id, phase)
        )

    async def _wait_for_callback(self, inp: RecordInput, run: StepRun) -> StepResult:
        step = run.step
        await self._phase(inp, "waiting")
        try:
            await workflow.wait_condition(
                lambda: bool(self._callbacks), timeout=timedelta(seconds=float(step["timeout_s"]))
            )
            event = self._callbacks.pop(0)
            result = StepResult(
                run.step["id"],
                run.step["type"],
                outcome="callback_received",
                outputs={"callback": event.payload},
                next=step.get("on_callback"),
                label="callback",
            )
        except TimeoutError:
            result = StepResult(
                run.step["id"],
                run.step["type"],
                outcome="timed_out",
                next=step.get("on_timeout"),
                label="timeout",
            )
        await self._phase(inp, "active")
        return result
