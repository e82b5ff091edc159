"""Inputs, results and signal payloads shared by the engine's workflows and activities.

Kept free of I/O so workflows can import it inside the sandbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any


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
class StepRun:
    """Everything one step needs: ids, the step config, the record's metadata and prior outputs."""

    workflow_id: str
    job_id: str
    record_id: int
    step: dict[str, Any]
    metadata: dict[str, Any]
    outputs: dict[str, Any]
    context: dict[str, Any]
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
class CheapRun:
    """A run of consecutive cheap steps (log, tag, decision) executed in one local activity."""

    run: StepRun
    steps: dict[str, dict[str, Any]]


@dataclass
class CheapResults:
    results: list[StepResult]
    next: str | None
    error: str | None = None
    failed_step: str | None = None
    failed_type: str | None = None


@dataclass
class RecordPlan:
    start: str
    steps: dict[str, dict[str, Any]]
    metadata: dict[str, Any]
    outputs: dict[str, Any]
    context: dict[str, Any]
    project_id: str
    spinner_version: int
    # The spinner has retry links or the record is a supporting child: only then does the
    # record call start_supporting when it ends, so plain spinners pay no extra activity.
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


# Reports gathered by a worker from many records, delivered to their job as one signal.
SIGNAL_RECORDS_REPORTED = "records_reported"
SIGNAL_STARTED_BY = "started_by"


@dataclass
class StartSupportingInput:
    record_id: int
    queues: TaskQueues


@dataclass
class SupportingStart:
    """Why a supporting record started: the signal of its signal-with-start."""

    kind: str  # "retry" or "callback"
    parent_record_id: int
    link_id: str
    attempt: int | None = None
    event_id: str | None = None


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
