"""Per-worker caches of what steps need: the compiled plan of a spinner version and the record's
metadata and context. Activities get ids and a step id through Temporal, not the plan.

Published spinner versions are immutable and a record's metadata is a snapshot taken when it is
created, so both caches are always correct; they are LRUs only to bound memory.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError

from models.record import callback_url
from models.spinner_language.definition import SpinnerDefinition
from models.spinner_language.durations import parse_duration
from models.spinner_language.expressions import ExpressionError, compile_expression
from models.spinner_language.steps import StepBase
from models.spinner_language.templating import TemplateError, template_references
from workflows.contracts import (
    CHEAP_STEP_TYPES,
    SEND_STEP_TYPES,
    PlanStep,
    RecordPlan,
    StepInput,
)

# The activity timeouts the workflow sets: a provider call is quick, and a hung connection must
# not hold a send for long (the ledger makes the retry safe); LLM and HTTP steps get their own
# timeout plus a margin for the work around the call.
SEND_TIMEOUT_S = 20.0
FUNCTION_TIMEOUT_S = 30.0
LLM_MARGIN_S = 10.0
# apply_tags asks the model once per GenAI tag group; its attempt allows this many groups.
GENAI_GROUPS_BUDGET = 5
QA_SCORE_TIMEOUT_S = 30.0
HTTP_MARGIN_S = 5.0


@dataclass
class StepRun:
    """What one step works with inside the worker: its definition, the record's metadata and
    context, and the outputs its templates read."""

    workflow_id: str
    job_id: str
    record_id: int
    step: dict[str, Any]
    metadata: dict[str, Any]
    outputs: dict[str, Any]
    context: dict[str, Any]
    now_iso: str = ""


@dataclass
class CompiledPlan:
    plan: RecordPlan
    steps: dict[str, dict[str, Any]]
    spinner_id: str


@dataclass
class RecordData:
    metadata: dict[str, Any]
    context: dict[str, Any]


K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):  # noqa: UP046 - Python 3.11
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


def _reads(step: StepBase) -> set[str] | None:
    """Output names the step's templates and conditions read; None when it may read any."""
    refs: list[str] = []
    try:
        for _, source in step.template_fields():
            refs += template_references(source)
        for _, source in step.expression_fields():
            refs += compile_expression(source).references()
    except (TemplateError, ExpressionError):
        return None
    keys: set[str] = set()
    for ref in refs:
        parts = ref.split(".")
        if parts[0] in ("payload", "context"):
            continue
        if parts[0] == "output":
            if len(parts) == 1:
                return None
            keys.add(parts[1])
        else:
            # A bare name reads an output of that name before metadata.
            keys.add(parts[0])
    return keys


def _targets(data: dict[str, Any]) -> list[str]:
    found = [data.get("next"), data.get("default")]
    found += [b.get("next") for b in data.get("branches") or []]
    return [t for t in found if t]


def compile_plan(definition: dict[str, Any]) -> tuple[RecordPlan, dict[str, dict[str, Any]]]:
    """The workflow's typed plan (routing and timeouts only) and each step's full definition."""
    parsed = SpinnerDefinition.model_validate(definition)
    steps: dict[str, dict[str, Any]] = {}
    reads: dict[str, set[str] | None] = {}
    for step in parsed.steps:
        steps[step.id] = step.model_dump(mode="json")
        reads[step.id] = _reads(step)
        if steps[step.id]["type"] == "function":
            reads[step.id] = None  # a function sees every output
        elif steps[step.id]["type"] == "tag" and reads[step.id] is not None:
            reads[step.id] = {*(reads[step.id] or set()), "tags"}  # tags accumulate
    plan_steps: dict[str, PlanStep] = {}
    for step_id, data in steps.items():
        kind = data["type"]
        wanted = reads[step_id]
        if kind in CHEAP_STEP_TYPES:
            # One local activity runs this step and the cheap steps it leads to.
            wanted = _cheap_region_reads(step_id, steps, reads)
        plan_steps[step_id] = PlanStep(
            id=step_id,
            type=kind,
            next=data.get("next"),
            on={k: v for k, v in data.items() if k.startswith("on_") and isinstance(v, str)},
            wait_for=str(data.get("wait_for") or "none"),
            wait_timeout_s=parse_duration(data["timeout"]).total_seconds()
            if kind in (*SEND_STEP_TYPES, "wait_for_callback") and data.get("timeout")
            else 0.0,
            activity_timeout_s=_activity_timeout(data),
            reads=sorted(wanted) if wanted is not None else None,
        )
    start = parsed.start or parsed.steps[0].id
    return RecordPlan(start, plan_steps), steps


def _cheap_region_reads(
    first: str, steps: dict[str, dict[str, Any]], reads: dict[str, set[str] | None]
) -> set[str] | None:
    wanted: set[str] = set()
    seen: set[str] = set()
    todo = [first]
    while todo:
        step_id = todo.pop()
        if step_id in seen or step_id not in steps:
            continue
        seen.add(step_id)
        if steps[step_id]["type"] not in CHEAP_STEP_TYPES:
            continue
        found = reads[step_id]
        if found is None:
            return None
        wanted |= found
        todo += _targets(steps[step_id])
    return wanted


def _activity_timeout(data: dict[str, Any]) -> float:
    kind = data["type"]
    if kind in SEND_STEP_TYPES:
        return SEND_TIMEOUT_S
    if kind == "ai_agent":
        return float(data.get("timeout_s") or 120) + LLM_MARGIN_S
    if kind == "api_call":
        return float(data.get("timeout_s") or 10) + HTTP_MARGIN_S
    if kind == "transcribe":
        return float(data.get("timeout_s") or 3600) + HTTP_MARGIN_S
    if kind == "summarize":
        return float(data.get("timeout_s") or 120) + LLM_MARGIN_S
    if kind == "apply_tags":
        # One model call per GenAI tag group, each up to timeout_s.
        return GENAI_GROUPS_BUDGET * float(data.get("timeout_s") or 120) + LLM_MARGIN_S
    if kind == "qa_score":
        return QA_SCORE_TIMEOUT_S
    if kind == "function":
        return FUNCTION_TIMEOUT_S
    return 0.0


class PlanCache:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        public_api_url: str,
        versions: int = 256,
        records: int = 20_000,
    ) -> None:
        self.engine = engine
        self.public_api_url = public_api_url.rstrip("/")
        self._versions: Lru[str, CompiledPlan] = Lru(versions)
        self._records: Lru[int, RecordData] = Lru(records)

    async def version(self, version_id: str) -> CompiledPlan:
        cached = self._versions.get(version_id)
        if cached is None:
            async with self.engine.connect() as conn:
                row = (
                    await conn.execute(
                        text(
                            "select definition, spinner_id, version from spinner_version"
                            " where id = :id"
                        ),
                        {"id": version_id},
                    )
                ).first()
            if row is None:
                raise ApplicationError(
                    f"spinner version {version_id} not found", non_retryable=True
                )
            plan, steps = compile_plan(row[0])
            cached = CompiledPlan(plan, steps, str(row[1]))
            self._versions.put(version_id, cached)
        return cached

    def context(
        self,
        record_id: int,
        *,
        callback_token: uuid.UUID,
        job_id: str,
        project_id: str,
        spinner_id: str,
        timezone: str,
    ) -> dict[str, Any]:
        return {
            "jobId": job_id,
            "recordId": str(record_id),
            "projectId": project_id,
            "spinnerId": spinner_id,
            "callbackUrl": callback_url(self.public_api_url, callback_token),
            "timezone": timezone,
        }

    def remember(self, record_id: int, data: RecordData) -> None:
        self._records.put(record_id, data)

    async def record(self, record_id: int, spinner_id: str) -> RecordData:
        cached = self._records.get(record_id)
        if cached is None:
            async with self.engine.connect() as conn:
                row = (
                    await conn.execute(
                        text(
                            "select r.metadata, r.job_id, r.project_id, p.timezone,"
                            " r.callback_token from record r"
                            " join project p on p.id = r.project_id where r.id = :id"
                        ),
                        {"id": record_id},
                    )
                ).first()
            if row is None:
                raise ApplicationError(f"record {record_id} not found", non_retryable=True)
            context = self.context(
                record_id,
                callback_token=row[4],
                job_id=str(row[1]),
                project_id=str(row[2]),
                spinner_id=spinner_id,
                timezone=str(row[3]),
            )
            cached = RecordData(dict(row[0] or {}), context)
            self._records.put(record_id, cached)
        return cached

    async def step_run(self, inp: StepInput, step_id: str | None = None) -> StepRun:
        """The step's definition and the record's data for an activity's input."""
        compiled = await self.version(inp.spinner_version_id)
        step = compiled.steps.get(step_id or inp.step_id)
        if step is None:
            raise ApplicationError(
                f"step {step_id or inp.step_id} is not in spinner version {inp.spinner_version_id}",
                non_retryable=True,
            )
        data = await self.record(inp.record_id, compiled.spinner_id)
        return StepRun(
            inp.workflow_id,
            inp.job_id,
            inp.record_id,
            step,
            data.metadata,
            inp.outputs,
            data.context,
            inp.now_iso,
        )
