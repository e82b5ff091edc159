"""What others must name without importing workflow code: workflow and signal names, workflow
ids, search attributes, task queues, and the inputs, results and signal payloads of the engine.

The API and activities import this module, never the workflow modules, so the layers stay
acyclic. Kept free of I/O so workflows can import it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

# Workflow type names (start them by name: `client.start_workflow(RECORD_WORKFLOW, ...)`).
RECORD_WORKFLOW = "RecordWorkflow"
JOB_WORKFLOW = "JobWorkflow"
SCHEDULED_RUN_WORKFLOW = "ScheduledRunWorkflow"

# Signals and queries.
SIGNAL_CALLBACK = "callback"
SIGNAL_PROVIDER_EVENT = "provider_event"
SIGNAL_STARTED_BY = "started_by"
# Reports gathered by a worker from many records, delivered to their job as one signal.
SIGNAL_RECORDS_REPORTED = "records_reported"
SIGNAL_PAUSE = "pause"
SIGNAL_RESUME = "resume"
SIGNAL_CANCEL = "cancel"
QUERY_PROGRESS = "progress"
QUERY_CURRENT_STEP = "current_step"

# Search attributes for ops staff in the Temporal UI; never PII.
CX_JOB_ID = SearchAttributeKey.for_keyword("CxJobId")
CX_PROJECT_ID = SearchAttributeKey.for_keyword("CxProjectId")
CX_SPINNER_VERSION = SearchAttributeKey.for_int("CxSpinnerVersion")
CX_RECORD_STATUS = SearchAttributeKey.for_keyword("CxRecordStatus")

_SAFE_EVENT = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def record_workflow_id(record_id: int) -> str:
    return f"rec-{record_id}"


def job_workflow_id(job_id: str) -> str:
    return f"job-{job_id}"


def schedule_id(schedule_uuid: str) -> str:
    return f"sched-{schedule_uuid}"


def retry_workflow_id(root_record_id: int, attempt: int) -> str:
    return f"rec-{root_record_id}-retry-{attempt}"


def callback_workflow_id(record_id: int, event_id: str) -> str:
    # Event ids come from callers: anything that is not a plain token is hashed so no PII
    # (an address, a phone number) ever lands in a workflow id.
    if _SAFE_EVENT.match(event_id):
        return f"rec-{record_id}-cb-{event_id}"
    return f"rec-{record_id}-cb-{hashlib.sha256(event_id.encode()).hexdigest()[:32]}"


def record_search_attributes(
    job_id: str, project_id: str, version: int, *, status: str = "running"
) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(CX_JOB_ID, job_id),
            SearchAttributePair(CX_PROJECT_ID, project_id),
            SearchAttributePair(CX_SPINNER_VERSION, version),
            SearchAttributePair(CX_RECORD_STATUS, status),
        ]
    )


@dataclass
class TaskQueues:
    main: str
    http: str
    llm: str
    messaging: str
    email: str
    stt: str


def task_queues(queue_name: Callable[[str], str]) -> TaskQueues:
    """The deployment's task queues, e.g. ``task_queues(settings.task_queue)``."""
    return TaskQueues(**{f.name: queue_name(f.name) for f in fields(TaskQueues)})


@dataclass
class StepInput:
    """What an activity gets for one step: ids, and the outputs so far that the step reads.

    The step's definition and the record's metadata come from the worker's plan cache
    (`activities.plans`), so history holds neither.
    """

    workflow_id: str
    job_id: str
    record_id: int
    spinner_version_id: str
    step_id: str
    # Lets the journey name a step whose activity failed without the plan.
    step_type: str
    outputs: dict[str, Any] = field(default_factory=dict)
    now_iso: str = ""


@dataclass
class StepResult:
    step_id: str
    step_type: str
    outcome: str
    outputs: dict[str, Any] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    next: str | None = None
    delay_s: float = 0.0
    label: str | None = None


@dataclass
class CheapResults:
    results: list[StepResult]
    next: str | None
    error: str | None = None
    failed_step: str | None = None
    failed_type: str | None = None


@dataclass
class PlanStep:
    """What the workflow needs of a step: where it leads and the timeouts to set. Everything
    else stays in the worker's plan cache."""

    id: str
    type: str
    next: str | None = None
    # on_replied / on_delivered / on_failed / on_no_reply / on_callback / on_timeout targets.
    on: dict[str, str] = field(default_factory=dict)
    wait_for: str = "none"
    # How long a send waits for its reply or delivery, or a callback wait for its callback.
    wait_timeout_s: float = 0.0
    # The activity's start-to-close timeout (steps run by a regular activity).
    activity_timeout_s: float = 0.0
    # Output names its templates and conditions read (for a cheap step: the cheap steps it leads
    # to as well); None when it may read any.
    reads: list[str] | None = field(default_factory=list)


def outputs_read_by(step: PlanStep, outputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs so far that the step reads (all of them when that is not known)."""
    if step.reads is None:
        return dict(outputs)
    return {k: outputs[k] for k in step.reads if k in outputs}


@dataclass
class RecordPlan:
    start: str
    steps: dict[str, PlanStep]
    # The spinner has retry links or the record is a supporting child: only then does the
    # record call prepare_supporting when it ends, so plain spinners pay no extra activity.
    supporting: bool = False


@dataclass
class StartRecordInput:
    record_id: int
    version_id: str
    wf_id: str
    job_id: str
    now_iso: str


@dataclass
class RecordStart:
    plan: RecordPlan
    # Outputs a re-driven record had reached (it resumes at plan.start, its failed step).
    outputs: dict[str, Any]
    # The leading cheap steps, already run (None when the first step is not cheap).
    cheap: CheapResults | None


@dataclass
class CompleteRecordInput:
    record_id: int
    status: str
    outputs: dict[str, Any]
    error: str | None = None
    failed_step: str | None = None
    # When set, the activity reports the record's end to this job workflow.
    job_workflow_id: str = ""


@dataclass
class RecordPhase:
    record_id: int
    phase: str  # "waiting" or "active"
    # As an activity input: the job workflow to report the change to ("" = none).
    job_workflow_id: str = ""


@dataclass
class RecordFinished:
    record_id: int
    status: str


@dataclass
class SweepInput:
    job_id: str
    active: list[int]
    waiting: list[int]


@dataclass
class RecordReports:
    finished: list[RecordFinished]
    phases: list[RecordPhase]


@dataclass
class CallbackSignal:
    event_id: str
    payload: dict[str, Any]


@dataclass
class ProviderEvent:
    """A provider's news about one of our sends, matched to the sending step through the ledger.

    kind: "status" (status = queued/sent/delivered/read/failed/undelivered/bounce/dropped…)
    or "reply" (body = the contact's reply text).
    """

    event_id: str
    step_id: str
    kind: str
    status: str = ""
    body: str = ""


@dataclass
class SendOutcome:
    """How a waiting send ended: replied, delivered, failed or no_reply (timed out)."""

    step_id: str
    step_type: str
    outcome: str
    status: str
    reply: str | None
    next: str | None


SEND_STEP_TYPES = frozenset({"whatsapp", "sms", "email"})
# Pure steps run back to back in one local activity.
CHEAP_STEP_TYPES = frozenset({"log", "tag", "decision"})
FAILED_STATUSES = frozenset({"failed", "undelivered", "bounce", "dropped", "blocked"})
DELIVERED_STATUSES = frozenset({"delivered", "read", "open", "click"})


@dataclass
class NextRecordsInput:
    job_id: str
    after: int
    limit: int


@dataclass
class NextRecordsResult:
    ids: list[int]


@dataclass
class JobStatusInput:
    job_id: str
    status: str


@dataclass
class JobIdInput:
    job_id: str


@dataclass
class JobSummary:
    status: str
    total: int
    completed: int
    failed: int
    cancelled: int


@dataclass
class PrepareSupportingInput:
    record_id: int


@dataclass
class SupportingStart:
    """Why a supporting record started: the signal of its signal-with-start."""

    kind: str  # "retry" or "callback"
    parent_record_id: int
    link_id: str
    attempt: int | None = None
    event_id: str | None = None


@dataclass
class SupportingChild:
    """A child record that exists in PostgreSQL and whose workflow must be started."""

    record_id: int
    workflow_id: str
    job_id: str
    project_id: str
    spinner_version_id: str
    spinner_version: int
    delay_s: float
    started_by: SupportingStart


@dataclass
class SupportingChildren(StepResult):
    """The supporting step of a finished record (shown in its journey) and what to start."""

    children: list[SupportingChild] = field(default_factory=list)


@dataclass
class ScheduledRunInput:
    schedule_id: str
    queues: TaskQueues
    window: int = 500
    batch: int = 50
    children_per_run: int = 2000


@dataclass
class ScheduledJob:
    job_id: str | None
    project_id: str = ""
    spinner_version_id: str = ""
    spinner_version: int = 0
    reason: str | None = None


@dataclass
class ScheduledRunResult:
    job_id: str | None
    reason: str | None = None


@dataclass
class RecordInput:
    record_id: int
    job_id: str
    job_workflow_id: str
    spinner_version_id: str
    queues: TaskQueues
    # Supporting records: a durable wait before the first step (the link's delay).
    delay_s: float = 0.0
    # Retry children: why they started (callback children learn it from their start signal).
    started_by: SupportingStart | None = None


@dataclass
class RecordResult:
    status: str
    outputs: dict[str, Any]
    error: str | None = None


@dataclass
class JobState:
    cursor: int = 0
    exhausted: bool = False
    prepared: bool = False
    active: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    started: int = 0
    paused: bool = False
    cancelling: bool = False
    status: str = "queued"


@dataclass
class JobInput:
    job_id: str
    project_id: str
    spinner_version_id: str
    spinner_version: int
    queues: TaskQueues
    window: int = 500
    batch: int = 50
    children_per_run: int = 2000
    state: JobState | None = None


@dataclass
class JobProgress:
    status: str
    started: int
    active: int
    waiting: int
    completed: int
    failed: int
    cancelled: int
    paused: bool
