"""A record's journey, derived from its workflow history (decoded payloads) plus the attempt log."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic.alias_generators import to_camel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.exceptions import FailureError

from models.journey import JourneyPublic, JourneyStep

TIMED_STEPS = {"wait", "whatsapp", "sms", "email"}
INTERNAL_ACTIVITIES = {"complete_record", "set_record_phase"}
STEP_ACTIVITIES = {
    "start_record",
    "run_cheap",
    "wait_plan",
    "settle_send",
    "settle_wait",
    "run_function",
    "api_call",
    "ai_agent",
    "transcribe",
    "apply_tags",
    "qa_score",
    "summarize",
    "send_message",
    "send_email",
}


async def _decode(client: Client, payloads: Payloads | Sequence[Payload]) -> list[Any]:
    items = list(payloads.payloads) if isinstance(payloads, Payloads) else list(payloads)
    if not items:
        return []
    # Runs the payload codec (when configured) and the payload converter.
    return list(await client.data_converter.decode(items))


async def _failure_message(client: Client, failure: Failure, *, prefer_cause: bool = True) -> str:
    """The failure's real message (or its cause's): the codec encrypts messages in history."""
    copy = Failure()
    copy.CopyFrom(failure)  # decode_failure decodes in place; history events stay as fetched
    error = await client.data_converter.decode_failure(copy)
    cause = error.__cause__
    if prefer_cause and isinstance(cause, FailureError) and cause.message:
        return cause.message
    return error.message if isinstance(error, FailureError) else str(error)


def _ts(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime(tzinfo=UTC)


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    return int((end - start).total_seconds() * 1000) if start and end else None


def _step_from_result(result: dict[str, Any], **extra: Any) -> JourneyStep:
    kind, outcome = result.get("step_type", "?"), result.get("outcome", "done")
    # The engine's result keys, named in the API's camelCase.
    detail = {
        name: result[k]
        for k, name in (("next", "next"), ("label", "label"), ("delay_s", "delayS"))
        if result.get(k) not in (None, 0, 0.0)
    }
    if result.get("outputs"):
        detail["outputs"] = result["outputs"]
    return JourneyStep(
        step_id=result.get("step_id"),
        type=kind,
        outcome=outcome,
        label=f"{kind} · {outcome}",
        status="completed",
        messages=list(result.get("messages") or []),
        detail=detail,
        **extra,
    )


def _cheap_steps(batch: dict[str, Any], attempts: int, ended: datetime) -> list[JourneyStep]:
    """One batched local activity ran several cheap steps; each becomes its own journey step."""
    found = [
        _step_from_result(r, attempts=attempts, ended_at=ended) for r in batch.get("results") or []
    ]
    if batch.get("error"):
        kind = batch.get("failed_type") or "step"
        found.append(
            JourneyStep(
                step_id=batch.get("failed_step"),
                type=kind,
                outcome="failed",
                label=f"{kind} · failed",
                status="failed",
                error=batch["error"],
                attempts=attempts,
                ended_at=ended,
            )
        )
    return found


async def attempt_counts(
    conn: AsyncConnection, workflow_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Per workflow, the highest attempt of each activity the attempt log holds."""
    rows = await conn.execute(
        text(
            "select workflow_id, activity_id, max(attempt) from activity_attempt"
            " where workflow_id = any(:ids) group by workflow_id, activity_id"
        ),
        {"ids": list(workflow_ids)},
    )
    out: dict[str, dict[str, int]] = {}
    for wf_id, activity_id, attempt in rows:
        out.setdefault(str(wf_id), {})[str(activity_id)] = int(attempt)
    return out


async def store_snapshots(
    conn: AsyncConnection, journeys: Sequence[tuple[int, Any, JourneyPublic]]
) -> None:
    """Stores (record id, org id, journey) as the records' snapshots, replacing older ones.

    A record re-driven meanwhile is running again: its old journey is not stored.
    """
    if not journeys:
        return
    await conn.execute(
        text(
            "insert into journey_snapshot (record_id, org_id, journey, created_at)"
            " select :id, :org, cast(:journey as jsonb), now() from record r"
            " where r.id = :id and r.status in ('completed', 'failed', 'cancelled')"
            " on conflict (record_id) do update set journey = excluded.journey,"
            " created_at = excluded.created_at"
        ),
        [
            {"id": rid, "org": org, "journey": json.dumps(j.model_dump(mode="json"))}
            for rid, org, j in journeys
        ],
    )


async def derive_journey(
    client: Client, workflow_id: str, record_id: int, attempts: dict[str, int] | None = None
) -> JourneyPublic:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    attempts = attempts or {}
    steps: list[JourneyStep] = []
    scheduled: dict[int, tuple[dict[str, Any], datetime, str]] = {}
    started_attempt: dict[int, int] = {}
    status: str = "running"
    output: dict[str, Any] = {}
    wait_started: datetime | None = None
    for event in history.events:
        et = event.event_type
        if et == EventType.EVENT_TYPE_MARKER_RECORDED:
            attrs = event.marker_recorded_event_attributes
            if attrs.marker_name != "core_local_activity":
                continue
            meta = json.loads(attrs.details["data"].payloads[0].data)
            kind = meta.get("activity_type", "")
            if kind in INTERNAL_ACTIVITIES or kind not in STEP_ACTIVITIES:
                continue
            if attrs.HasField("failure"):
                steps.append(
                    JourneyStep(
                        step_id=None,
                        type=kind,
                        outcome="failed",
                        label=f"{kind} · failed",
                        status="failed",
                        error=await _failure_message(client, attrs.failure, prefer_cause=False),
                        attempts=int(meta.get("attempt", 1)),
                        ended_at=_ts(event),
                    )
                )
                continue
            result = (await _decode(client, attrs.details["result"]))[0]
            tries = int(meta.get("attempt", 1))
            if kind == "run_cheap":
                steps.extend(_cheap_steps(result, tries, _ts(event)))
            elif kind == "start_record":
                # Loading the record is internal; the leading cheap steps it ran are steps.
                if result.get("cheap"):
                    steps.extend(_cheap_steps(result["cheap"], tries, _ts(event)))
            else:
                steps.append(_step_from_result(result, attempts=tries, ended_at=_ts(event)))
        elif et == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs_s = event.activity_task_scheduled_event_attributes
            run = (await _decode(client, attrs_s.input))[0] if attrs_s.input.payloads else {}
            scheduled[event.event_id] = (run, _ts(event), attrs_s.activity_id)
        elif et == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            a = event.activity_task_started_event_attributes
            started_attempt[a.scheduled_event_id] = a.attempt
        elif et in (
            EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
        ):
            if et == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                sched_id = event.activity_task_completed_event_attributes.scheduled_event_id
            elif et == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
                sched_id = event.activity_task_failed_event_attributes.scheduled_event_id
            else:
                sched_id = event.activity_task_timed_out_event_attributes.scheduled_event_id
            run, began, activity_id = scheduled.get(sched_id, ({}, None, ""))
            tries = max(started_attempt.get(sched_id, 1), attempts.get(activity_id, 0))
            timing = {
                "started_at": began,
                "ended_at": _ts(event),
                "duration_ms": _ms(began, _ts(event)),
            }
            if et == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                res = event.activity_task_completed_event_attributes.result
                result = (await _decode(client, res))[0]
                steps.append(_step_from_result(result, attempts=tries, **timing))
            else:
                failure = (
                    event.activity_task_failed_event_attributes.failure
                    if et == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
                    else event.activity_task_timed_out_event_attributes.failure
                )
                message = await _failure_message(client, failure)
                kind = run.get("step_type") or "activity"
                steps.append(
                    JourneyStep(
                        step_id=run.get("step_id"),
                        type=kind,
                        outcome="failed",
                        label=f"{kind} · failed",
                        status="failed",
                        error=message,
                        attempts=tries,
                        **timing,
                    )
                )
        elif et == EventType.EVENT_TYPE_TIMER_STARTED:
            wait_started = _ts(event)
        elif et == EventType.EVENT_TYPE_TIMER_FIRED:
            # A durable wait belongs to the step that started it: a wait step (its plan comes
            # first) or a send waiting for a reply. A callback wait's own outcome follows it.
            waiting = steps[-1] if steps and steps[-1].type in TIMED_STEPS else None
            steps.append(
                JourneyStep(
                    step_id=waiting.step_id if waiting else None,
                    type="timer",
                    outcome="fired",
                    label="timer · fired",
                    status="completed",
                    started_at=wait_started,
                    ended_at=_ts(event),
                    duration_ms=_ms(wait_started, _ts(event)),
                )
            )
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            started = event.workflow_execution_started_event_attributes
            args = (await _decode(client, started.input)) if started.input.payloads else []
            why = args[0].get("started_by") if args and isinstance(args[0], dict) else None
            if why:
                # A retry child, started by its parent record: why is in its input.
                steps.append(
                    JourneyStep(
                        step_id=None,
                        type="started_by",
                        outcome=str(why.get("kind") or "started"),
                        label=f"started_by · {why.get('kind') or 'started'}",
                        status="completed",
                        ended_at=_ts(event),
                        detail={to_camel(k): v for k, v in why.items()},
                    )
                )
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            sig = event.workflow_execution_signaled_event_attributes
            payload = (await _decode(client, sig.input))[0] if sig.input.payloads else {}
            steps.append(
                JourneyStep(
                    step_id=None,
                    type="callback",
                    outcome="received",
                    label=f"{sig.signal_name} · received",
                    status="completed",
                    ended_at=_ts(event),
                    detail=payload if isinstance(payload, dict) else {"value": payload},
                )
            )
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            res = event.workflow_execution_completed_event_attributes.result
            result = (await _decode(client, res))[0]
            status, output = result.get("status", "completed"), result.get("outputs") or {}
        elif et in (
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
        ):
            status = (
                "failed" if et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED else "cancelled"
            )
    output = {k: v for k, v in output.items() if not str(k).startswith("_")}
    return JourneyPublic(
        record_id=record_id,
        workflow_id=workflow_id,
        status=status,
        steps=steps,
        output=output,
        source="history",
    )
