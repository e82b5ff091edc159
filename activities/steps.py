"""Cheap deterministic steps (log, tag, decision, wait planning), run as local activities."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.plans import PlanCache, StepRun
from models.spinner_language.durations import parse_duration
from models.spinner_language.expressions import ExpressionError, compile_expression
from models.spinner_language.templating import TemplateError, render_template
from workflows.contracts import CHEAP_STEP_TYPES, CheapResults, SendOutcome, StepInput, StepResult

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def render(run: StepRun, source: str) -> str:
    try:
        return render_template(
            source, metadata=run.metadata, outputs=run.outputs, context=run.context
        )
    except TemplateError as exc:
        raise ApplicationError(f"step {run.step['id']}: {exc}", non_retryable=True) from exc


def next_window_start(now: datetime, start: str, end: str, days: list[str], tz: ZoneInfo) -> float:
    """Seconds from now until the next moment inside the local-time window (0 if inside now)."""
    local = now.astimezone(tz)
    sh, sm = (int(x) for x in start.split(":"))
    eh, em = (int(x) for x in end.split(":"))
    for offset in range(0, 8):
        day = (local + timedelta(days=offset)).date()
        if DAYS[day.weekday()] not in days:
            continue
        opens = datetime(day.year, day.month, day.day, sh, sm, tzinfo=tz)
        closes = datetime(day.year, day.month, day.day, eh, em, tzinfo=tz)
        if closes <= opens:
            closes += timedelta(days=1)
        if local < opens:
            return (opens - local).total_seconds()
        if local < closes:
            return 0.0
    raise ApplicationError("wait window never opens (check its days)", non_retryable=True)


class StepActivities:
    def __init__(self, plans: PlanCache) -> None:
        self.plans = plans

    @activity.defn
    async def run_cheap(self, inp: StepInput) -> CheapResults:
        """Runs cheap steps back to back until the next step is not cheap.

        One local activity (one history marker) for a whole run of pure steps instead of one each:
        on a 4-step spinner this halves the worker's work per record.
        """
        run = await self.plans.step_run(inp)
        steps = (await self.plans.version(inp.spinner_version_id)).steps
        return await self.run_cheap_steps(run, steps)

    async def run_cheap_steps(self, run: StepRun, steps: dict[str, dict[str, Any]]) -> CheapResults:
        outputs = dict(run.outputs)
        results: list[StepResult] = []
        step_id: str | None = run.step["id"]
        while step_id is not None and steps[step_id]["type"] in CHEAP_STEP_TYPES:
            step = steps[step_id]
            single = StepRun(
                run.workflow_id,
                run.job_id,
                run.record_id,
                step,
                run.metadata,
                outputs,
                run.context,
                run.now_iso,
            )
            try:
                result = await CHEAP_HANDLERS[step["type"]](self, single)
            except ApplicationError as exc:
                if not exc.non_retryable:
                    raise
                # A bad template or expression fails the record at this step, keeping the steps
                # that already ran in the journey.
                return CheapResults(
                    results,
                    step_id,
                    error=exc.message,
                    failed_step=step_id,
                    failed_type=step["type"],
                )
            results.append(result)
            outputs.update(result.outputs)
            step_id = result.next
        return CheapResults(results, step_id)

    async def log(self, run: StepRun) -> StepResult:
        message = render(run, run.step["message"])
        level = run.step.get("level", "info")
        # The rendered text usually carries contact data: it goes to the journey (encrypted in
        # history), never to process logs.
        activity.logger.log(
            # Info-level log steps run for every record of a campaign: debug in process logs.
            {"info": 10, "warning": 30, "error": 40}.get(level, 10),
            "record %s step %s logged %d characters",
            run.record_id,
            run.step["id"],
            len(message),
        )
        return StepResult(
            run.step["id"],
            run.step["type"],
            outcome="logged",
            messages=[message],
            next=run.step.get("next"),
        )

    async def tag(self, run: StepRun) -> StepResult:
        outputs: dict[str, object] = {}
        if run.step.get("disposition"):
            outputs["disposition"] = render(run, run.step["disposition"])
        tags = [t for t in (render(run, t) for t in run.step.get("tags") or []) if t]
        if tags:
            outputs["tags"] = sorted(set(tags) | set(run.outputs.get("tags") or []))
        return StepResult(
            run.step["id"],
            run.step["type"],
            outcome="tagged",
            outputs=outputs,
            next=run.step.get("next"),
        )

    async def decision(self, run: StepRun) -> StepResult:
        for branch in run.step["branches"]:
            try:
                matched = compile_expression(branch["when"]).evaluate(
                    run.metadata, run.outputs, run.context
                )
            except ExpressionError as exc:
                raise ApplicationError(f"step {run.step['id']}: {exc}", non_retryable=True) from exc
            if matched:
                return StepResult(
                    run.step["id"],
                    run.step["type"],
                    outcome="branched",
                    next=branch["next"],
                    label=branch["label"],
                )
        return StepResult(
            run.step["id"],
            run.step["type"],
            outcome="branched",
            next=run.step["default"],
            label="default",
        )

    @activity.defn
    async def settle_send(self, done: SendOutcome) -> StepResult:
        outputs: dict[str, object] = {"message_status": done.status}
        if done.reply is not None:
            outputs["reply"] = done.reply
        return StepResult(
            done.step_id,
            done.step_type,
            outcome=done.outcome,
            outputs=outputs,
            next=done.next,
            label=done.outcome,
        )

    @activity.defn
    async def settle_wait(self, result: StepResult) -> StepResult:
        """How a wait for a callback ended; exists so the outcome is written to history."""
        return result

    @activity.defn
    async def wait_plan(self, inp: StepInput) -> StepResult:
        run = await self.plans.step_run(inp)
        step = run.step
        now = datetime.fromisoformat(run.now_iso)
        if step.get("duration"):
            delay = parse_duration(step["duration"]).total_seconds()
        elif step.get("until_field"):
            raw = run.metadata.get(step["until_field"])
            try:
                until = datetime.fromisoformat(str(raw))
            except ValueError as exc:
                raise ApplicationError(
                    f"step {step['id']}: '{step['until_field']}' is not an ISO date-time: {raw!r}",
                    non_retryable=True,
                ) from exc
            if until.tzinfo is None:
                until = until.replace(tzinfo=ZoneInfo(run.context.get("timezone") or "UTC"))
            delay = max(0.0, (until - now).total_seconds())
        else:
            window = step["window"]
            tz_name = (
                (window.get("timezone_field") and run.metadata.get(window["timezone_field"]))
                or window.get("timezone")
                or run.context.get("timezone")
                or "UTC"
            )
            try:
                tz = ZoneInfo(str(tz_name))
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ApplicationError(
                    f"step {step['id']}: unknown time zone {tz_name!r}", non_retryable=True
                ) from exc
            delay = next_window_start(
                now, window["start"], window["end"], list(window.get("days") or DAYS), tz
            )
        return StepResult(
            run.step["id"],
            run.step["type"],
            outcome="waited" if delay > 0 else "no_wait",
            next=step.get("next"),
            delay_s=delay,
            outputs={},
        )


CHEAP_HANDLERS = {
    "log": StepActivities.log,
    "tag": StepActivities.tag,
    "decision": StepActivities.decision,
}
