"""RecordWorkflow: walks one record through the frozen steps of a published spinner."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    FailureError,
    WorkflowAlreadyStartedError,
)
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.calls import AnalysisActivities, CallActivities
    from activities.email import EmailActivities
    from activities.engine_db import EngineDbActivities
    from activities.function import FunctionActivities
    from activities.http import HttpActivities
    from activities.llm import LlmActivities
    from activities.messaging import MessagingActivities
    from activities.steps import StepActivities
    from activities.supporting import SupportingActivities
    from workflows.contracts import (
        CHEAP_STEP_TYPES,
        CX_RECORD_STATUS,
        DELIVERED_STATUSES,
        FAILED_STATUSES,
        QUERY_CURRENT_STEP,
        RECORD_WORKFLOW,
        SIGNAL_CALLBACK,
        SIGNAL_PROVIDER_EVENT,
        SIGNAL_STARTED_BY,
        CallbackSignal,
        CheapResults,
        CompleteRecordInput,
        PlanStep,
        PrepareSupportingInput,
        ProviderEvent,
        RecordInput,
        RecordPhase,
        RecordPlan,
        RecordResult,
        RecordStart,
        SendOutcome,
        StartRecordInput,
        StepInput,
        StepResult,
        SupportingChildren,
        SupportingStart,
        outputs_read_by,
        record_search_attributes,
    )

LOCAL = timedelta(seconds=30)
LOCAL_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(milliseconds=200))
EXTERNAL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
)
# Status writes and job reports must outlast a Temporal or database restart, not fail the record.
STATUS_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,
)
SUPPORTING_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)
LLM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=4,
)
# Long recordings take minutes to download and transcribe; a silent worker is presumed dead
# after this and the attempt retried elsewhere.
STT_HEARTBEAT = timedelta(seconds=60)
STT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=4,
)


@dataclass(frozen=True)
class PlainActivityStep:
    """A step that is one activity whose result is the step's result."""

    activity: Any
    queue: str  # a field of TaskQueues
    retry: RetryPolicy | None = None
    heartbeat: timedelta | None = None


PLAIN_ACTIVITY_STEPS = {
    "ai_agent": PlainActivityStep(LlmActivities.ai_agent, "llm", LLM_RETRY),
    "transcribe": PlainActivityStep(CallActivities.transcribe, "stt", STT_RETRY, STT_HEARTBEAT),
    "apply_tags": PlainActivityStep(AnalysisActivities.apply_tags, "llm", LLM_RETRY),
    "qa_score": PlainActivityStep(AnalysisActivities.qa_score, "main"),
    "summarize": PlainActivityStep(CallActivities.summarize, "llm", LLM_RETRY),
}
OUTCOME_TARGETS = {
    "replied": "on_replied",
    "delivered": "on_delivered",
    "failed": "on_failed",
    "no_reply": "on_no_reply",
}


def _failure_text(err: BaseException) -> str:
    cause: BaseException | None = err
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, FailureError):
        return cause.message
    return str(cause)


def _absorb(
    batch: CheapResults, outputs: dict[str, Any]
) -> tuple[str | None, tuple[str, str, str | None] | None]:
    """Merges a cheap batch's outputs; the step to run next, or (status, error, step) if one
    of its steps failed (then nothing runs next)."""
    for done in batch.results:
        outputs.update(done.outputs)
    if batch.error is not None:
        return None, ("failed", batch.error, batch.failed_step)
    return batch.next, None


@workflow.defn(name=RECORD_WORKFLOW, sandboxed=False)
class RecordWorkflow:
    def __init__(self) -> None:
        self._callbacks: list[CallbackSignal] = []
        self._provider_events: list[ProviderEvent] = []
        self._seen_events: set[str] = set()
        self._step: str | None = None
        self._waiting_send: str | None = None
        self._started_by: SupportingStart | None = None

    @workflow.signal(name=SIGNAL_STARTED_BY)
    def started_by(self, start: SupportingStart) -> None:
        # Sent with the start of a supporting record, so its history shows what started it.
        self._started_by = start

    @workflow.signal(name=SIGNAL_CALLBACK)
    def callback(self, event: CallbackSignal) -> None:
        # Providers and proxies redeliver: one event id has one effect.
        if event.event_id in self._seen_events:
            return
        self._seen_events.add(event.event_id)
        payload = event.payload if isinstance(event.payload, dict) else {}
        if self._waiting_send is not None and ("reply" in payload or "status" in payload):
            # Sandbox channels call no provider: a signed callback simulates the reply or status.
            self._provider_events.append(
                ProviderEvent(
                    event.event_id,
                    self._waiting_send,
                    "reply" if "reply" in payload else "status",
                    status=str(payload.get("status") or ""),
                    body=str(payload.get("reply") or ""),
                )
            )
            return
        self._callbacks.append(event)

    @workflow.signal(name=SIGNAL_PROVIDER_EVENT)
    def provider_event(self, event: ProviderEvent) -> None:
        if event.event_id in self._seen_events:
            return
        self._seen_events.add(event.event_id)
        self._provider_events.append(event)

    @workflow.query(name=QUERY_CURRENT_STEP)
    def current_step(self) -> str | None:
        return self._step

    @workflow.run
    async def run(self, inp: RecordInput) -> RecordResult:
        if inp.started_by is not None:
            self._started_by = inp.started_by
        wf_id = workflow.info().workflow_id
        status, error, failed_step = "completed", None, None
        plan: RecordPlan | None = None
        outputs: dict[str, Any] = {}
        try:
            if inp.delay_s > 0:
                # Started as "waiting" (a supporting record's delay); running once it is over.
                await workflow.sleep(timedelta(seconds=inp.delay_s))
                workflow.upsert_search_attributes([CX_RECORD_STATUS.value_set("running")])
            plan, outputs, step_id, stopped = await self._start(inp, wf_id)
            if stopped is not None:
                status, error, failed_step = stopped
            while step_id is not None:
                self._step = step_id
                step = plan.steps[step_id]
                # Ids and only the outputs the step reads: the step's definition and the record's
                # metadata are read by the activity from its worker's plan cache.
                run = StepInput(
                    wf_id,
                    inp.job_id,
                    inp.record_id,
                    inp.spinner_version_id,
                    step.id,
                    step.type,
                    outputs_read_by(step, outputs),
                    workflow.now().isoformat(),
                )
                if step.type in CHEAP_STEP_TYPES:
                    batch: CheapResults = await workflow.execute_local_activity_method(
                        StepActivities.run_cheap,
                        run,
                        start_to_close_timeout=LOCAL,
                        retry_policy=LOCAL_RETRY,
                    )
                    step_id, stopped = _absorb(batch, outputs)
                    if stopped is not None:
                        status, error, failed_step = stopped
                    continue
                result = await self._run_step(inp, step, run)
                outputs.update(result.outputs)
                step_id = result.next
        except (ActivityError, ApplicationError) as err:
            if isinstance(err, ActivityError) and isinstance(err.cause, CancelledError):
                status, error = "cancelled", "cancelled by operator"
            else:
                status, error, failed_step = "failed", _failure_text(err), self._step
        except (asyncio.CancelledError, CancelledError):
            status, error = "cancelled", "cancelled by operator"
        # Supporting records have no job workflow ("" reports nothing): their job is counted from
        # the records table.
        await workflow.execute_local_activity_method(
            EngineDbActivities.complete_record,
            CompleteRecordInput(
                inp.record_id, status, outputs, error, failed_step, inp.job_workflow_id
            ),
            start_to_close_timeout=LOCAL,
            retry_policy=STATUS_RETRY,
        )
        workflow.upsert_search_attributes([CX_RECORD_STATUS.value_set(status)])
        if plan is not None and plan.supporting:
            await self._start_supporting(inp)
        return RecordResult(status, outputs, error)

    async def _start(
        self, inp: RecordInput, wf_id: str
    ) -> tuple[RecordPlan, dict[str, Any], str | None, tuple[str, str, str | None] | None]:
        """Loads the record and runs its leading cheap steps: the plan, the outputs so far, the
        step to run next, and (status, error, failed step) if a cheap step failed."""
        started: RecordStart = await workflow.execute_local_activity_method(
            EngineDbActivities.start_record,
            StartRecordInput(
                inp.record_id,
                inp.spinner_version_id,
                wf_id,
                inp.job_id,
                workflow.now().isoformat(),
            ),
            start_to_close_timeout=LOCAL,
            retry_policy=LOCAL_RETRY,
        )
        plan = started.plan
        outputs = dict(started.outputs)
        if started.cheap is None:
            return plan, outputs, plan.start, None
        return plan, outputs, *_absorb(started.cheap, outputs)

    async def _start_supporting(self, inp: RecordInput) -> None:
        try:
            prepared: SupportingChildren = await workflow.execute_activity_method(
                SupportingActivities.prepare_supporting,
                PrepareSupportingInput(inp.record_id),
                task_queue=inp.queues.main,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=SUPPORTING_RETRY,
            )
        except ActivityError as err:
            # The record itself is finished; a supporting start that keeps failing is logged.
            workflow.logger.warning("supporting spinners not started: %s", _failure_text(err))
            return
        for child in prepared.children:
            try:
                # Abandoned: the child outlives this record, which ends right after.
                await workflow.start_child_workflow(
                    RecordWorkflow.run,
                    RecordInput(
                        child.record_id,
                        child.job_id,
                        "",
                        child.spinner_version_id,
                        inp.queues,
                        delay_s=child.delay_s,
                        started_by=child.started_by,
                    ),
                    id=child.workflow_id,
                    task_queue=inp.queues.main,
                    parent_close_policy=ParentClosePolicy.ABANDON,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    search_attributes=record_search_attributes(
                        child.job_id,
                        child.project_id,
                        child.spinner_version,
                        status="waiting" if child.delay_s > 0 else "running",
                    ),
                )
            except WorkflowAlreadyStartedError:
                # A re-run record whose child already ran: one child per id, ever.
                pass

    async def _run_step(self, inp: RecordInput, step: PlanStep, run: StepInput) -> StepResult:
        kind = step.type
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
            return await self._wait_for_callback(inp, step)
        timeout = timedelta(seconds=step.activity_timeout_s)
        plain = PLAIN_ACTIVITY_STEPS.get(kind)
        if plain is not None:
            result: StepResult = await workflow.execute_activity_method(
                plain.activity,
                run,
                task_queue=getattr(inp.queues, plain.queue),
                start_to_close_timeout=timeout,
                heartbeat_timeout=plain.heartbeat,
                retry_policy=plain.retry,
            )
            return result
        if kind in ("whatsapp", "sms"):
            sent: StepResult = await workflow.execute_activity_method(
                MessagingActivities.send_message,
                run,
                task_queue=inp.queues.messaging,
                start_to_close_timeout=timeout,
                retry_policy=EXTERNAL_RETRY,
            )
            return await self._settle_send(inp, step, sent)
        if kind == "email":
            mailed: StepResult = await workflow.execute_activity_method(
                EmailActivities.send_email,
                run,
                task_queue=inp.queues.email,
                start_to_close_timeout=timeout,
                retry_policy=EXTERNAL_RETRY,
            )
            return await self._settle_send(inp, step, mailed)
        if kind == "function":
            fn_result: StepResult = await workflow.execute_activity_method(
                FunctionActivities.run_function,
                run,
                task_queue=inp.queues.main,
                start_to_close_timeout=timeout,
                retry_policy=RetryPolicy(maximum_attempts=2),
            )
            return fn_result
        if kind == "api_call":
            http_result: StepResult = await workflow.execute_activity_method(
                HttpActivities.api_call,
                run,
                task_queue=inp.queues.http,
                start_to_close_timeout=timeout,
                retry_policy=EXTERNAL_RETRY,
            )
            return http_result
        raise ApplicationError(
            f"step type '{kind}' is not supported by this worker", non_retryable=True
        )

    async def _settle_send(self, inp: RecordInput, step: PlanStep, sent: StepResult) -> StepResult:
        """Waits (durably) for the send's reply or delivery when the step asks to, then branches."""
        if sent.outcome == "opted_out" or step.wait_for == "none":
            return sent
        self._waiting_send = step.id
        await self._phase(inp, "waiting")
        outcome, status, reply = await self._await_send_result(
            step.id, step.wait_for, step.wait_timeout_s
        )
        self._waiting_send = None
        await self._phase(inp, "active")
        # Recorded as its own marker so the journey shows the result and the branch taken.
        settled: StepResult = await workflow.execute_local_activity_method(
            StepActivities.settle_send,
            SendOutcome(
                step.id,
                step.type,
                outcome,
                status,
                reply,
                step.on.get(OUTCOME_TARGETS[outcome]) or step.next,
            ),
            start_to_close_timeout=LOCAL,
            retry_policy=LOCAL_RETRY,
        )
        # Later steps still see the message id the send produced.
        settled.outputs = {**sent.outputs, **settled.outputs}
        settled.messages = sent.messages + settled.messages
        return settled

    async def _await_send_result(
        self, step_id: str, wait_for: str, timeout_s: float
    ) -> tuple[str, str, str | None]:
        deadline = workflow.now() + timedelta(seconds=timeout_s)
        status = "sent"
        while True:
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                return "no_reply", status, None
            try:
                await workflow.wait_condition(
                    lambda: any(e.step_id == step_id for e in self._provider_events),
                    timeout=timedelta(seconds=remaining),
                )
            except TimeoutError:
                return "no_reply", status, None
            event = next(e for e in self._provider_events if e.step_id == step_id)
            self._provider_events.remove(event)
            if event.kind == "reply":
                return "replied", "replied", event.body
            status = event.status or status
            if status in FAILED_STATUSES:
                return "failed", status, None
            if status in DELIVERED_STATUSES and wait_for == "delivery":
                return "delivered", status, None

    async def _phase(self, inp: RecordInput, phase: str) -> None:
        # Waiting records leave the job's active window so a long wait never stalls a campaign.
        await workflow.execute_local_activity_method(
            EngineDbActivities.set_record_phase,
            RecordPhase(inp.record_id, phase, inp.job_workflow_id),
            start_to_close_timeout=LOCAL,
            retry_policy=STATUS_RETRY,
        )
        if phase == "waiting":
            workflow.upsert_search_attributes([CX_RECORD_STATUS.value_set("waiting")])

    async def _wait_for_callback(self, inp: RecordInput, step: PlanStep) -> StepResult:
        await self._phase(inp, "waiting")
        try:
            await workflow.wait_condition(
                lambda: bool(self._callbacks), timeout=timedelta(seconds=step.wait_timeout_s)
            )
            event = self._callbacks.pop(0)
            result = StepResult(
                step.id,
                step.type,
                outcome="callback_received",
                outputs={"callback": event.payload},
                next=step.on.get("on_callback"),
                label="callback",
            )
        except TimeoutError:
            result = StepResult(
                step.id,
                step.type,
                outcome="timed_out",
                next=step.on.get("on_timeout"),
                label="timeout",
            )
        await self._phase(inp, "active")
        # Recorded as a marker so the journey shows which step waited and the branch it took.
        settled: StepResult = await workflow.execute_local_activity_method(
            StepActivities.settle_wait,
            result,
            start_to_close_timeout=LOCAL,
            retry_policy=LOCAL_RETRY,
        )
        return settled
